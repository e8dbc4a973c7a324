// /health and /readyz: whether a swarm can commit now, from what this process measures.
// Embedded, the process runs every member and judges from its leader's view; in cluster mode
// it runs one member and judges from that member's view (a follower trusts a leader it heard
// from within an election timeout: a leader that lost its quorum steps down within one).

import { majority } from '../raft/quorum.js';
import { heartbeatStatus } from './consensus.js';
import type { Swarm } from '../swarm/swarm.js';

export interface SwarmHealth {
  swarm: string;
  /** A leader with a quorum: writes can commit. */
  healthy: boolean;
  /** Healthy, the leader has committed an entry of its term (reads are current), and no member here refuses writes for lack of disk. */
  ready: boolean;
  /** Why not healthy (or not ready); null when ready. */
  reason: string | null;
  leader: string | null;
  term: number | null;
  /** Whose view this is: the leader (embedded) or this process's member (cluster mode). */
  observed_by: string | null;
  agents: number;
  agents_running: number;
  quorum_size: number;
}

export function swarmHealth(swarm: Swarm): SwarmHealth {
  const agents = swarm.activeMembers();
  const base = { swarm: swarm.name, agents: agents.length, agents_running: agents.filter((a) => swarm.isRunning(a)).length, quorum_size: majority(agents.length) };
  const down = (reason: string, extra: Partial<SwarmHealth> = {}): SwarmHealth => ({ ...base, healthy: false, ready: false, reason, leader: null, term: null, observed_by: null, ...extra });
  if (agents.length === 0) return down('no agents: agent_spawn at least one (a majority must be running)');
  const diskFault = [...swarm.cluster.hosts.values()].map((h) => (h.isRunning ? h.diskFault : null)).find((f) => f !== null) ?? null;
  const leader = swarm.cluster.leader();
  if (leader) {
    const st = leader.status();
    const at = { leader: leader.id, term: st.term, observed_by: leader.id };
    if (heartbeatStatus(swarm) === 'lost quorum') {
      return down(`leader ${leader.id} has not heard from a majority of its ${st.conf.voters.length} voters within the election timeout (${swarm.quorumSummary()})`, at);
    }
    const log = leader.core.log;
    const notReady = log.term(log.committed) !== st.term ? `leader ${leader.id} has not yet committed an entry of its term ${st.term}` : diskFault;
    return { ...base, ...at, healthy: true, ready: notReady === null, reason: notReady };
  }
  if (swarm.cluster.mode === 'tcp') {
    const self = [...swarm.cluster.hosts.values()][0];
    if (!self?.isRunning) return down(self?.fault ?? `member ${self?.id ?? '(none)'} is not running in this process`);
    const st = self.status();
    const at = { leader: st.leader, term: st.term, observed_by: self.id };
    if (st.leader === null) return down(`no leader known to ${self.id} (term ${st.term}): an election is running or a majority is unreachable`, at);
    const age = self.leaderContactAgeMs();
    const window = swarm.config().election_timeout_min;
    if (age === null || age > window) {
      return down(`${self.id} has not heard from leader ${st.leader} for ${age === null ? 'its whole life' : `${Math.round(age)} ms`} (election timeout ${window} ms)`, at);
    }
    return { ...base, ...at, healthy: true, ready: diskFault === null, reason: diskFault };
  }
  return down(`no leader: ${swarm.quorumSummary()}`);
}
