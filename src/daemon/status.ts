import type { Coordinator } from '../service/coordinator.js';

export interface SwarmSummary {
  swarm: string;
  agents: number;
  agents_running: number;
  leader_id: string | null;
  /** Pending or assigned tasks in the replicated task table (leader's replica). */
  unfinished_tasks: number;
  /** Unfinished tasks the swarm's own agents execute (not "external" ones awaiting a client). */
  runnable_tasks: number;
}

export function swarmSummaries(coord: Coordinator): SwarmSummary[] {
  return coord.names().map((name) => {
    const s = coord.swarm(name);
    const members = s.activeMembers();
    const m = s.localMachine()?.machine;
    let unfinished = 0;
    let runnable = 0;
    if (m) {
      for (const o of m.tasks.orchs.values()) {
        const n = o.counts.pending + o.counts.assigned;
        unfinished += n;
        if (o.executor.kind !== 'external') runnable += n;
      }
    }
    return {
      swarm: name,
      agents: members.length,
      agents_running: members.filter((id) => s.isRunning(id)).length,
      leader_id: s.cluster.leader()?.id ?? null,
      unfinished_tasks: unfinished,
      runnable_tasks: runnable,
    };
  });
}

/**
 * Tasks that can still make progress keep the daemon up. A swarm without a leader cannot
 * finish its tasks, and external tasks wait for a client to claim them: neither pins the
 * daemon forever (they are durable and resume at the next start).
 */
export function hasRunnableWork(coord: Coordinator): boolean {
  return swarmSummaries(coord).some((s) => s.runnable_tasks > 0 && s.leader_id !== null);
}
