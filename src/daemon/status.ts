import type { Coordinator } from '../service/coordinator.js';

export interface SwarmSummary {
  swarm: string;
  agents: number;
  agents_running: number;
  leader_id: string | null;
  /** Pending or assigned tasks in the replicated task table (leader's replica). */
  unfinished_tasks: number;
}

export function swarmSummaries(coord: Coordinator): SwarmSummary[] {
  return coord.names().map((name) => {
    const s = coord.swarm(name);
    const members = s.activeMembers();
    const m = s.localMachine()?.machine;
    let unfinished = 0;
    if (m) for (const o of m.tasks.orchs.values()) unfinished += o.counts.pending + o.counts.assigned;
    return {
      swarm: name,
      agents: members.length,
      agents_running: members.filter((id) => s.isRunning(id)).length,
      leader_id: s.cluster.leader()?.id ?? null,
      unfinished_tasks: unfinished,
    };
  });
}

/**
 * Tasks that can still make progress keep the daemon up. A swarm without a leader cannot
 * finish its tasks, so they do not pin the daemon forever (they resume at the next start).
 */
export function hasRunnableWork(coord: Coordinator): boolean {
  return swarmSummaries(coord).some((s) => s.unfinished_tasks > 0 && s.leader_id !== null);
}
