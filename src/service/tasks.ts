import type { CoordinationMachine } from '../machine/coordination-machine.js';
import { parseTaskId } from '../machine/task-table.js';
import type { ExecutorSpec, Orchestration, Priority, Strategy, TaskRecord } from '../machine/types.js';
import { UserError, invalid } from '../util/errors.js';
import { idempotencyKey } from '../swarm/executors.js';
import type { Swarm } from '../swarm/swarm.js';

export interface OrchestrateInput {
  task: string;
  count?: number;
  priority?: Priority;
  strategy?: Strategy;
  max_agents?: number;
  executor?: ExecutorSpec;
  payload?: unknown;
  idempotency_key?: string;
}

export async function orchestrate(swarm: Swarm, o: OrchestrateInput): Promise<Record<string, unknown>> {
  if (swarm.activeMembers().length === 0) {
    throw new UserError('unavailable', `swarm ${swarm.name} has no agents; agent_spawn at least one (a majority must be running)`);
  }
  const executor = o.executor ?? { kind: 'noop' };
  if (executor.kind === 'http' && !executor.http?.url) throw invalid('executor.http.url', executor.http?.url ?? null, 'an http(s) URL');
  if (executor.kind === 'sleep' && !(Number.isInteger(executor.sleep_ms) && executor.sleep_ms! >= 0 && executor.sleep_ms! <= 600_000)) {
    throw invalid('executor.sleep_ms', executor.sleep_ms ?? null, 'an integer 0..600000');
  }
  const value = (await swarm.proposeOk({
    t: 'orch.create',
    task: o.task,
    count: o.count ?? 1,
    priority: o.priority ?? 'medium',
    strategy: o.strategy ?? 'parallel',
    max_agents: o.max_agents ?? swarm.data.max_agents,
    executor,
    payload: o.payload ?? null,
    idempotency_key: o.idempotency_key ?? null,
  })) as { orchestration_id: string; deduplicated: boolean };
  // What the log holds (a deduplicated request may differ from the one that created it),
  // read from the replica that answered (it has applied the entry).
  const stored = swarm.localMachine()?.machine.tasks.orchs.get(value.orchestration_id);
  return {
    orchestration_id: value.orchestration_id,
    deduplicated: value.deduplicated,
    total_tasks: stored?.count ?? o.count ?? 1,
    status: stored?.finished_at != null ? 'finished' : 'running',
    note: 'tasks were committed to the replicated log; agents execute them in the background (task_status / task_results)',
  };
}

function findOrch(m: CoordinationMachine, id: string): Orchestration {
  const o = m.tasks.orchs.get(id);
  if (!o) {
    const known = [...m.tasks.orchs.keys()].slice(-5).join(', ');
    throw new UserError('not_found', `orchestration_id=${JSON.stringify(id)} not found; recent: ${known || '(none)'}`, 'orchestration_id');
  }
  return o;
}

export function orchView(o: Orchestration): Record<string, unknown> {
  const done = o.counts.completed + o.counts.failed;
  return {
    orchestration_id: o.id,
    task: o.task,
    status: o.finished_at !== null ? 'finished' : 'running',
    total_tasks: o.count,
    pending: o.counts.pending,
    assigned: o.counts.assigned,
    completed: o.counts.completed,
    failed: o.counts.failed,
    progress: o.count > 0 ? Math.round((done / o.count) * 10000) / 100 : 100,
    priority: o.priority,
    strategy: o.strategy,
    executor: o.executor.kind,
    created_at: new Date(o.created_at).toISOString(),
    finished_at: o.finished_at !== null ? new Date(o.finished_at).toISOString() : null,
    elapsed_ms: (o.finished_at ?? Date.now()) - o.created_at,
    ...taskRecordsView(o),
  };
}

/**
 * Whether the per-task records are still there. Retention removes those of finished
 * orchestrations (config task_retention_orchestrations / task_retention_ms); the counts above
 * stay exact, and the removed records' sums are reported here.
 */
function taskRecordsView(o: Orchestration): Record<string, unknown> {
  const c = o.compacted;
  if (!c) return { task_records: 'kept' };
  return {
    task_records: c.done_index !== null ? 'compacted' : 'compacting',
    compaction: {
      note: 'per-task records removed by retention (config task_retention_orchestrations, task_retention_ms); counts above are exact',
      records_removed: c.records_removed,
      started_at_index: c.at_index,
      done_at_index: c.done_index,
      started_at: new Date(c.at).toISOString(),
      failed_attempts: c.failed_attempts,
      assignments: c.assignments,
      first_completed_at: c.first_completed_at !== null ? new Date(c.first_completed_at).toISOString() : null,
      last_completed_at: c.last_completed_at !== null ? new Date(c.last_completed_at).toISOString() : null,
      late_reports_refused: c.late_reports_refused,
    },
  };
}

/** Linearizable by default: answered after a ReadIndex round on the leader. */
export async function taskStatus(swarm: Swarm, orchestrationId?: string): Promise<Record<string, unknown>> {
  return swarm.proposer.read((leaderId) => {
    const m = swarm.machines.get(leaderId)!;
    if (orchestrationId) return orchView(findOrch(m, orchestrationId));
    const orchs = [...m.tasks.orchs.values()].slice(-20).reverse().map(orchView);
    return { swarm: swarm.name, orchestrations: orchs, total_orchestrations: m.tasks.orchs.size };
  });
}

/** task_results' output: the spec's aggregates, plus bounded rows, plus full records. */
export const RESULT_FORMATS = ['summary', 'detailed', 'json'] as const;
export type ResultFormat = (typeof RESULT_FORMATS)[number];
export const RESULT_ROWS_DEFAULT = 100;
export const RESULT_ROWS_MAX = 10_000;

export interface ResultsOptions {
  /** summary: aggregates; detailed: + per-orchestration and per-task rows; json: + full task records. */
  format?: ResultFormat;
  /** detailed / json: most task rows (default 100, at most 10000). */
  limit?: number;
  /** The first N task records of one orchestration (kept for older clients). */
  includeTasks?: number;
}

export async function taskResults(swarm: Swarm, orchestrationId?: string, opts: ResultsOptions | number = {}): Promise<Record<string, unknown>> {
  const o = typeof opts === 'number' ? { includeTasks: opts } : opts;
  const format = o.format ?? 'summary';
  if (!RESULT_FORMATS.includes(format)) throw invalid('format', format, RESULT_FORMATS.join(' | '));
  const limit = o.limit ?? RESULT_ROWS_DEFAULT;
  if (!Number.isInteger(limit) || limit < 1 || limit > RESULT_ROWS_MAX) throw invalid('limit', limit, `an integer 1..${RESULT_ROWS_MAX}`);
  const out = await summarize(swarm, orchestrationId, o.includeTasks ?? 0, format, limit);
  return out;
}

async function summarize(swarm: Swarm, orchestrationId: string | undefined, includeTasks: number, format: ResultFormat, limit: number): Promise<Record<string, unknown>> {
  return swarm.proposer.read((leaderId) => {
    const m = swarm.machines.get(leaderId)!;
    const orchs = orchestrationId ? [findOrch(m, orchestrationId)] : [...m.tasks.orchs.values()];
    const sum = { total: 0, completed: 0, failed: 0, pending: 0, assigned: 0, duplicates: 0, stale: 0, recovered: 0, started: 0 };
    for (const o of orchs) {
      sum.total += o.count;
      sum.completed += o.counts.completed;
      sum.failed += o.counts.failed;
      sum.pending += o.counts.pending;
      sum.assigned += o.counts.assigned;
      sum.duplicates += o.counts.duplicates;
      sum.stale += o.counts.stale_completions_refused;
      sum.recovered += o.counts.recovered;
      sum.started += o.counts.executions_started;
    }
    const out: Record<string, unknown> = {
      scope: orchestrationId ?? 'all tasks of the swarm',
      total_tasks: sum.total,
      completed: sum.completed,
      failed: sum.failed,
      in_progress: sum.pending + sum.assigned,
      duplicates: sum.duplicates,
      executions_started: sum.started,
      stale_completions_refused: sum.stale,
      tasks_recovered: sum.recovered,
      // The spec's summary counts the swarm's elections (startup included), whatever the scope.
      leader_failures: m.electionTotals.leader_failures,
      elections: m.electionTotals.elections,
      elections_scope: 'every election of the swarm (not only those while these tasks ran)',
      execution_guarantee: executionGuarantee(sum.duplicates),
      counted_from: `replicated state on ${leaderId} after a linearizable read`,
    };
    if (format !== 'summary') {
      out.format = format;
      out.orchestrations = orchs.map((x) => ({
        orchestration_id: x.id,
        task: x.task,
        status: x.finished_at !== null ? 'finished' : 'running',
        total_tasks: x.count,
        completed: x.counts.completed,
        failed: x.counts.failed,
        in_progress: x.counts.pending + x.counts.assigned,
        duplicates: x.counts.duplicates,
        executions_started: x.counts.executions_started,
        stale_completions_refused: x.counts.stale_completions_refused,
        tasks_recovered: x.counts.recovered,
      }));
      // Task rows in orchestration order, bounded: a million-task swarm is not one answer.
      const rows: Array<Record<string, unknown>> = [];
      outer: for (const x of orchs) {
        for (let i = 1; i <= x.count; i++) {
          if (rows.length >= limit) break outer;
          const t = m.tasks.tasks.get(`${x.id}-${i}`);
          if (t) rows.push(format === 'json' ? { ...t } : taskRow(t));
        }
      }
      out.tasks = rows;
      out.tasks_shown = rows.length;
      out.tasks_truncated = rows.length < sum.total;
    }
    if (includeTasks > 0 && orchestrationId) {
      const o = orchs[0]!;
      const tasks: TaskRecord[] = [];
      for (let i = 1; i <= o.count && tasks.length < includeTasks; i++) {
        const t = m.tasks.tasks.get(`${o.id}-${i}`);
        if (t) tasks.push(t);
      }
      out.tasks = tasks;
      if (o.compacted) out.task_records = taskRecordsView(o);
    }
    return out;
  });
}

/** One task as a row of `task_results --format detailed`. */
function taskRow(t: TaskRecord): Record<string, unknown> {
  return {
    id: t.id,
    orchestration_id: t.orch,
    status: t.status,
    assignee: t.assignee,
    epoch: t.epoch,
    assignments: t.assignments,
    failures: t.failures,
    completions_applied: t.completions_applied,
    executions_started: t.executions_started,
    stale_completions_refused: t.stale_completions_refused,
    completed_by: t.completed_by,
  };
}

/**
 * The contract, stated as it is: the completion commit is exactly-once (checked by the counted
 * `duplicates`), execution is at-least-once, and side effects are deduplicated by key.
 */
export function executionGuarantee(duplicates: number): string {
  const commit =
    duplicates === 0
      ? 'completion committed exactly once per task (duplicates counted: 0)'
      : `VIOLATED: ${duplicates} completion(s) applied more than once`;
  return `${commit}; execution at least once (a task may run again after a lease expiry, crash or partition: executions_started - completed, a lower bound since a run whose agent died before reporting is not counted), so side effects get Idempotency-Key: <task id>`;
}

export async function claimTasks(
  swarm: Swarm,
  o: { agent_id: string; count?: number; orchestration_id?: string; lease_ms?: number },
): Promise<Record<string, unknown>> {
  const count = o.count ?? 1;
  const leaseMs = o.lease_ms ?? 60_000;
  const leader = swarm.cluster.leader();
  if (!leader) throw new UserError('unavailable', `no leader: ${swarm.quorumSummary()}`);
  const m = swarm.machines.get(leader.id)!;
  if (o.orchestration_id) findOrch(m, o.orchestration_id);
  const isExternal = (orchId: string) => m.tasks.orchs.get(orchId)?.executor.kind === 'external' && (!o.orchestration_id || orchId === o.orchestration_id);
  const picks: Array<{ task: string; agent: string; from_epoch: number }> = [];
  const now = Date.now();
  // Expired external claims come back first: their holder went silent.
  for (const tid of m.tasks.assigned) {
    if (picks.length >= count) break;
    const t = m.tasks.tasks.get(tid)!;
    if (isExternal(t.orch) && t.lease_until <= now) picks.push({ task: t.id, agent: o.agent_id, from_epoch: t.epoch });
  }
  for (const t of m.tasks.pickPending(count - picks.length, new Set(picks.map((p) => p.task)), isExternal)) {
    picks.push({ task: t.id, agent: o.agent_id, from_epoch: t.epoch });
  }
  if (picks.length === 0) return { agent_id: o.agent_id, tasks: [], note: 'no claimable tasks (only orchestrations with executor "external" are claimable)' };
  const term = leader.status().term;
  // The entry's own list of what it assigned: a retry of this call (same client session) is
  // answered with the first attempt's result, whose tasks may differ from this attempt's picks.
  const value = (await swarm.proposeOk({ t: 'task.assign', term, lease_ms: leaseMs, items: picks })) as { tasks?: string[] };
  const after = swarm.machines.get(leader.id)!;
  const tasks = (value.tasks ?? picks.map((p) => p.task))
    .map((id) => after.tasks.tasks.get(id))
    .filter((t) => t !== undefined)
    .filter((t) => t.assignee === o.agent_id && t.status === 'assigned')
    .map((t) => ({ task_id: t.id, epoch: t.epoch, idempotency_key: idempotencyKey(t.id), lease_until: new Date(t.lease_until).toISOString(), payload: after.tasks.orchs.get(t.orch)?.payload ?? null, description: after.tasks.orchs.get(t.orch)?.task }));
  return { agent_id: o.agent_id, tasks, note: 'complete each with task_complete(task_id, agent_id, epoch, result); a stale epoch is rejected' };
}

export async function completeTask(
  swarm: Swarm,
  o: { task_id: string; agent_id: string; epoch: number; result?: unknown; success?: boolean },
): Promise<Record<string, unknown>> {
  const value = (await swarm.proposeOk({
    t: 'task.complete',
    items: [{ task: o.task_id, agent: o.agent_id, epoch: o.epoch, ok: o.success ?? true, result: o.result ?? null }],
  })) as { applied: number; rejected: number };
  const leader = swarm.cluster.leader();
  const m = leader ? swarm.machines.get(leader.id) : undefined;
  const t = m?.tasks.tasks.get(o.task_id);
  const orchId = t ? null : parseTaskId(o.task_id)?.orch;
  const compacted = orchId ? m?.tasks.orchs.get(orchId)?.compacted !== undefined : false;
  return {
    task_id: o.task_id,
    accepted: value.applied === 1,
    status: t?.status ?? (compacted ? 'compacted (its orchestration finished and retention removed the record; see task_status)' : 'unknown'),
    current_epoch: t?.epoch ?? null,
    reason:
      value.applied === 1
        ? 'applied'
        : 'refused: unknown task, stale epoch, other assignee, or already completed (counted in stale_completions_refused; your run is counted in executions_started)',
  };
}
