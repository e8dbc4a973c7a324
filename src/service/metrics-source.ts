// What /metrics reports, read at scrape time from the counters the tools read: the hosts'
// metrics() (agent_metrics), their Raft status (consensus_status), the replicated election
// totals (consensus_election_history), task tallies (task_results) and the memory store.
// Nothing here is sampled in the background: an idle server does no work for metrics.

import type { HostMetrics } from '../host/node-host.js';
import type { MemoryRecord } from '../machine/types.js';
import type { Coordinator } from './coordinator.js';
import type { Swarm } from '../swarm/swarm.js';

export interface MemberSample {
  member: string;
  running: boolean;
  /** Null for a member that is not running (no Raft view). */
  view: { hasLeader: boolean; isLeader: boolean; term: number; committed: number; applied: number } | null;
  counters: HostMetrics;
}

export interface SwarmSample {
  swarm: string;
  agents: number;
  agentsRunning: number;
  members: MemberSample[];
  /** The member whose replicated state the swarm-wide figures below come from (null: none running). */
  replica: string | null;
  elections: number;
  leaderFailures: number;
  tasks: { completed: number; failed: number; recovered: number; duplicates: number };
  /**
   * `bytes` null: not measured by this scrape (values written since the last scrapes took more
   * than SIZE_BUDGET_MS to size; `unsized` of them remain, sized by the next scrapes).
   */
  memory: { keys: number; bytes: number | null; unsized: number };
}

/**
 * Serialization a scrape may spend sizing values it has not sized before (ms). A scrape runs on
 * the member's event loop: sizing 1,076 values of 1 MiB took 2.6 s there, which stopped its
 * heartbeats and made its followers elect another leader (snapshot-transfer cluster bench).
 */
export const SIZE_BUDGET_MS = 20;

export function sampleSwarm(swarm: Swarm, sizeBudgetMs = SIZE_BUDGET_MS): SwarmSample {
  const agents = swarm.activeMembers();
  const members: MemberSample[] = [];
  // Hosts of this process only: in cluster mode the peers report from their own processes.
  for (const [id, h] of [...swarm.cluster.hosts].sort(([a], [b]) => a.localeCompare(b))) {
    const st = h.isRunning ? h.status() : null;
    members.push({
      member: id,
      running: h.isRunning,
      view: st && { hasLeader: st.leader !== null, isLeader: st.role === 'leader', term: st.term, committed: st.commit, applied: st.applied },
      counters: h.metrics(),
    });
  }
  const local = swarm.localMachine();
  const m = local?.machine;
  const tasks = { completed: 0, failed: 0, recovered: 0, duplicates: 0 };
  for (const o of m?.tasks.orchs.values() ?? []) {
    tasks.completed += o.counts.completed;
    tasks.failed += o.counts.failed;
    tasks.recovered += o.counts.recovered;
    tasks.duplicates += o.counts.duplicates;
  }
  const memory: SwarmSample['memory'] = { keys: 0, bytes: 0, unsized: 0 };
  if (m) {
    let bytes = 0;
    const until = performance.now() + sizeBudgetMs;
    for (const r of m.memory.values()) {
      // What memory_list would show: keys whose TTL has not passed in log time.
      if (r.expires_at !== null && r.expires_at <= m.clock) continue;
      memory.keys++;
      const n = sizeOf.get(r) ?? (performance.now() < until ? recordBytes(r) : undefined);
      if (n === undefined) memory.unsized++;
      else bytes += n;
    }
    memory.bytes = memory.unsized > 0 ? null : bytes;
  }
  return {
    swarm: swarm.name,
    agents: agents.length,
    agentsRunning: agents.filter((a) => swarm.isRunning(a)).length,
    members,
    replica: local?.id ?? null,
    elections: m?.electionTotals.elections ?? 0,
    leaderFailures: m?.electionTotals.leader_failures ?? 0,
    tasks,
    memory,
  };
}

/**
 * A write replaces its record object, so sizes cached by object stay right: a scrape
 * serializes only the values written since the previous one (it still visits every key).
 */
const sizeOf = new WeakMap<MemoryRecord, number>();

function recordBytes(r: MemoryRecord): number {
  let n = sizeOf.get(r);
  if (n === undefined) sizeOf.set(r, (n = Buffer.byteLength(r.key, 'utf8') + Buffer.byteLength(JSON.stringify(r.value) ?? '', 'utf8')));
  return n;
}

export function sampleAll(coord: Coordinator): SwarmSample[] {
  return coord.names().map((n) => sampleSwarm(coord.swarm(n)));
}
