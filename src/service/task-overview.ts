import { orchView } from './tasks.js';
import type { Swarm } from '../swarm/swarm.js';

export interface OrchestrationOverview {
  /** The member whose applied state was read: the leader when there is one. */
  read_from: string | null;
  total_orchestrations: number;
  totals: { tasks: number; completed: number; failed: number; recovered: number; executions_started: number; duplicates: number };
  /** The most recent `limit`, newest first, with task_status's fields and the tallies. */
  recent: Array<Record<string, unknown>>;
}

/**
 * Orchestration progress read from one replica's applied state without a ReadIndex round,
 * so an observer refreshing several times a second neither loads the leader nor stalls while
 * there is none (task_status is the linearizable read). O(orchestrations), never O(tasks):
 * the counts are kept up to date at apply time.
 */
export function orchestrationOverview(swarm: Swarm, limit = 10): OrchestrationOverview {
  const lm = swarm.localMachine();
  const totals = { tasks: 0, completed: 0, failed: 0, recovered: 0, executions_started: 0, duplicates: 0 };
  if (!lm) return { read_from: null, total_orchestrations: 0, totals, recent: [] };
  const orchs = lm.machine.tasks.orchs;
  for (const o of orchs.values()) {
    totals.tasks += o.count;
    totals.completed += o.counts.completed;
    totals.failed += o.counts.failed;
    totals.recovered += o.counts.recovered;
    totals.executions_started += o.counts.executions_started;
    totals.duplicates += o.counts.duplicates;
  }
  const recent = [...orchs.values()].slice(-limit).reverse().map((o) => ({
    ...orchView(o),
    recovered: o.counts.recovered,
    executions_started: o.counts.executions_started,
    duplicates: o.counts.duplicates,
  }));
  return { read_from: lm.id, total_orchestrations: orchs.size, totals, recent };
}
