import { majority } from '../raft/quorum.js';
import { pause } from './proposer.js';
import type { Swarm } from './swarm.js';

/** How long leader-reading tools wait by default: a few election timeouts (3 x max). */
export function defaultLeaderWaitMs(swarm: Swarm): number {
  return 3 * swarm.config().election_timeout_max;
}

/**
 * Wait up to `waitMs` for a leader that has committed an entry of its term and whose
 * election record is applied, so a read just after start reports the election instead of
 * null. Returns at once when no leader can emerge (no agents, or fewer running than a
 * majority): waiting would only delay the same answer.
 */
export async function awaitLeader(swarm: Swarm, waitMs: number): Promise<void> {
  if (waitMs <= 0 || leaderSettled(swarm)) return;
  const members = swarm.activeMembers();
  if (members.length === 0) return;
  // Cluster mode: peers' liveness is only known through a leader; just wait.
  if (swarm.cluster.mode !== 'tcp' && members.filter((id) => swarm.isRunning(id)).length < majority(members.length)) return;
  const deadline = performance.now() + waitMs;
  while (performance.now() < deadline) {
    await pause(5);
    if (leaderSettled(swarm)) return;
  }
}

function leaderSettled(swarm: Swarm): boolean {
  const l = swarm.cluster.leader();
  if (!l) return false;
  const log = l.core.log;
  if (log.term(log.committed) !== l.core.term) return false;
  const m = swarm.machines.get(l.id);
  return m === undefined || m.elections.some((e) => e.term === l.core.term);
}
