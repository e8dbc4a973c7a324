import {
  MAX_TASK_ATTEMPTS,
  type CompleteGroup,
  type CompleteItem,
  type CompactionSummary,
  type OrchestrationTallies,
  PRIORITIES,
  type Op,
  type Orchestration,
  type Priority,
  type TaskRecord,
  type TaskStatus,
} from './types.js';

import type { TableChanges } from '../storage/types.js';
import { DirtyRows } from './dirty-rows.js';

type CreateOp = Extract<Op, { t: 'orch.create' }>;
type AssignOp = Extract<Op, { t: 'task.assign' }>;

/** Hard bound on tasks one orchestration may create (memory is finite). */
export const MAX_TASKS_PER_ORCHESTRATION = 1_000_000;

/**
 * A task's checkpoint row key: its orchestration's creation index, then its seq (below 2^20,
 * above MAX_TASKS_PER_ORCHESTRATION). Keys in that order are `tasks`' insertion order: an
 * orchestration's tasks are created together, in seq order, and never re-inserted.
 */
const TASK_ORD_SEQ_SPAN = 2 ** 20;

/**
 * Task records retention may remove per applied entry: compacting a million-task orchestration
 * is spread over entries instead of holding the event loop (every member applies it).
 */
export const COMPACT_TASKS_PER_ENTRY = 10_000;

/**
 * Tasks and orchestrations, with the fencing rules that make the completion commit exactly-once:
 * an assignment bumps the task's epoch; a completion applies only with the current epoch
 * and assignee; anything else is refused and counted (stale_completions_refused). Execution
 * itself is at-least-once: every report says how many runs it covers (executions_started).
 */
export class TaskTable {
  tasks = new Map<string, TaskRecord>();
  orchs = new Map<string, Orchestration>();
  idempotency = new Map<string, string>();
  /** Ids of tasks currently assigned (leases to watch). Derived; rebuilt on restore. */
  assigned = new Set<string>();
  /** Tasks of each orchestration by seq - 1: O(1) lookup for compact ops. Derived. */
  private byOrch = new Map<string, Array<TaskRecord | undefined>>();
  /**
   * Finished orchestrations whose records are not all removed yet, by (finished_at,
   * created_index): derived from the orchestrations alone, so a replica restored from a
   * snapshot orders them exactly as one that applied the log.
   */
  private retentionQueue: Orchestration[] = [];
  /** Execution reports refused because their task's record was removed by retention. */
  compactedReportsRefused = 0;
  /** Pending task ids per priority, FIFO. A cache for the scheduler, rebuilt on restore. */
  private queues: Record<Priority, string[]> = { low: [], medium: [], high: [], critical: [] };
  private heads: Record<Priority, number> = { low: 0, medium: 0, high: 0, critical: 0 };
  /** Highest log index of a task.complete entry applied: a lower or equal one is a replay. */
  completeIndexHigh = 0;
  /**
   * Rows changed since the last checkpoint (see DirtyRows). A task as created (pending, never
   * assigned or reported) has no row: restoreRows makes it from its orchestration's row, so
   * creating a million tasks writes one row, and only tasks touched since get theirs.
   */
  readonly dirtyTasks = new DirtyRows<TaskRecord>(); // by record: identity hashing, no string hashing
  readonly dirtyOrchs = new DirtyRows();

  createOrchestration(op: CreateOp, index: number, now: number) {
    if (op.idempotency_key) {
      const existing = this.idempotency.get(op.idempotency_key);
      if (existing) return { ok: true as const, value: { orchestration_id: existing, deduplicated: true } };
    }
    if (!(Number.isInteger(op.count) && op.count >= 1 && op.count <= MAX_TASKS_PER_ORCHESTRATION)) {
      return { ok: false as const, code: 'invalid', message: `count=${op.count}; accepted: integer 1..${MAX_TASKS_PER_ORCHESTRATION}` };
    }
    const id = `orch-${index}`;
    const orch: Orchestration = {
      id,
      task: op.task,
      count: op.count,
      priority: op.priority,
      strategy: op.strategy,
      max_agents: op.max_agents,
      executor: op.executor,
      payload: op.payload,
      idempotency_key: op.idempotency_key,
      created_at: now,
      created_index: index,
      finished_at: null,
      counts: { pending: op.count, assigned: 0, completed: 0, failed: 0, ...emptyTallies() },
    };
    this.orchs.set(id, orch);
    if (op.idempotency_key) this.idempotency.set(op.idempotency_key, id);
    const q = this.queues[op.priority];
    const list: TaskRecord[] = new Array(op.count);
    for (let seq = 1; seq <= op.count; seq++) {
      const tid = `${id}-${seq}`;
      const t = newTask(tid, id, seq, op.priority);
      this.tasks.set(tid, t);
      list[seq - 1] = t;
      q.push(tid);
    }
    this.byOrch.set(id, list);
    this.dirtyOrchs.touch(id);
    return { ok: true as const, value: { orchestration_id: id, deduplicated: false } };
  }

  /** Apply assignments; `items` lists those for `notifyAgent` (all when it is undefined). */
  assign(
    op: AssignOp,
    now: number,
    notifyAgent?: string,
  ): { items: Array<{ task: string; agent: string; epoch: number }>; assigned: number; stale: number; recovered: number } {
    const out = { items: [] as Array<{ task: string; agent: string; epoch: number }>, assigned: 0, stale: 0, recovered: 0, notify: notifyAgent };
    const leaseUntil = now + op.lease_ms;
    for (const it of op.items ?? []) this.assignOne(this.tasks.get(it.task), it.agent, it.from_epoch, op.term, leaseUntil, out);
    for (const g of op.groups ?? []) {
      const list = this.byOrch.get(g.orch);
      for (let i = 0; i < g.seqs.length; i++) {
        this.assignOne(list?.[(g.seqs[i] as number) - 1], g.agent, g.from[i] as number, op.term, leaseUntil, out);
      }
    }
    return out;
  }

  private assignOne(
    t: TaskRecord | undefined,
    agent: string,
    fromEpoch: number,
    term: number,
    leaseUntil: number,
    out: { items: Array<{ task: string; agent: string; epoch: number }>; assigned: number; stale: number; recovered: number; notify?: string | undefined },
  ): void {
    if (!t || (t.status !== 'pending' && t.status !== 'assigned') || t.epoch !== fromEpoch) {
      out.stale++;
      return;
    }
    this.dirtyTasks.touch(t);
    this.dirtyOrchs.touch(t.orch);
    if (t.status === 'assigned') {
      // Taken back from its holder (dead, lease expired, or assigned by an earlier leader).
      (this.orchs.get(t.orch) as Orchestration).counts.recovered++;
      // The election record counts only what this leader inherited from earlier terms.
      if (t.assigned_term < term) out.recovered++;
    }
    this.setStatus(t, 'assigned');
    t.epoch++;
    t.assignee = agent;
    t.assigned_term = term;
    t.lease_until = leaseUntil;
    t.assignments++;
    out.assigned++;
    if (out.notify === undefined || out.notify === agent) out.items.push({ task: t.id, agent, epoch: t.epoch });
  }

  /** Apply execution reports carried by the log entry at `index`. */
  complete(items: CompleteItem[], now: number, groups: CompleteGroup[] = [], index = 0): { applied: number; rejected: number } {
    const out = { applied: 0, rejected: 0 };
    // Log indices only grow: an entry at or below the highest seen is being applied again.
    const replayed = index > 0 && index <= this.completeIndexHigh ? index : 0;
    if (index > this.completeIndexHigh) this.completeIndexHigh = index;
    for (const it of items) {
      const t = this.tasks.get(it.task);
      if (t) this.completeOne(t, it.agent, it.epoch, it.ok, it.result, it.starts, now, index, replayed, out);
      else this.refuseMissing(typeof it.task === 'string' ? parseTaskId(it.task) : null, it.starts, out);
    }
    for (const g of groups) {
      const list = this.byOrch.get(g.orch);
      for (let i = 0; i < g.seqs.length; i++) {
        const seq = g.seqs[i] as number;
        const t = list?.[seq - 1];
        if (t) this.completeOne(t, g.agent, g.epochs[i] as number, g.ok, g.results?.[i] ?? null, g.starts?.[i], now, index, replayed, out);
        else this.refuseMissing({ orch: g.orch, seq }, g.starts?.[i], out);
      }
    }
    return out;
  }

  /**
   * A report for a task with no record: unknown (refused), or removed by retention (refused
   * and counted in its orchestration's aggregates, whose run it reports; never applied).
   */
  private refuseMissing(id: { orch: string; seq: number } | null, starts: number | undefined, out: { applied: number; rejected: number }): void {
    out.rejected++;
    const o = id ? this.orchs.get(id.orch) : undefined;
    const c = o?.compacted;
    if (!o || !c || !id || !(Number.isInteger(id.seq) && id.seq >= 1 && id.seq < c.next_seq)) return;
    const runs = starts !== undefined && Number.isInteger(starts) && starts >= 0 ? starts : 1;
    this.dirtyOrchs.touch(o.id);
    o.counts.executions_started += runs;
    o.counts.stale_completions_refused++;
    c.late_reports_refused++;
    this.compactedReportsRefused++;
  }

  private completeOne(
    t: TaskRecord,
    agent: string,
    epoch: number,
    ok: boolean,
    result: unknown,
    starts: number | undefined,
    now: number,
    index: number,
    replayed: number,
    out: { applied: number; rejected: number },
  ): void {
    const orch = this.orchs.get(t.orch) as Orchestration;
    this.dirtyTasks.touch(t);
    this.dirtyOrchs.touch(orch.id);
    // Every report, applied or refused, stands for the runs it says it covers (default one).
    const runs = starts !== undefined && Number.isInteger(starts) && starts >= 0 ? starts : 1;
    t.executions_started += runs;
    orch.counts.executions_started += runs;
    if (replayed > 0 && t.status === 'completed' && t.completed_index === replayed) {
      // The very entry that completed this task, applied a second time: only a replay bug in
      // the host or in snapshot restore does that. Counted, never hidden behind the fence.
      out.applied++;
      this.countCompletion(t, orch);
      return;
    }
    if (t.status !== 'assigned' || t.epoch !== epoch || t.assignee !== agent) {
      // A late or repeated report (old epoch, another agent, already done): fenced off. Its
      // run happened (at-least-once execution), its result is not committed.
      t.stale_completions_refused++;
      orch.counts.stale_completions_refused++;
      out.rejected++;
      return;
    }
    out.applied++;
    if (ok) {
      this.countCompletion(t, orch);
      t.completed_index = index;
      t.result = result;
      t.completed_by = agent;
      t.completed_at = now;
      this.setStatus(t, 'completed');
    } else {
      t.failures++;
      t.result = result;
      if (t.failures >= MAX_TASK_ATTEMPTS) {
        t.completed_at = now;
        this.setStatus(t, 'failed');
      } else {
        t.assignee = null;
        this.setStatus(t, 'pending');
        this.queues[t.priority].push(t.id);
      }
    }
    if (orch.counts.completed + orch.counts.failed === orch.count && orch.finished_at === null) {
      orch.finished_at = now;
      this.queueForRetention(orch);
    }
  }

  /** Insert in (finished_at, created_index) order; finished_at never decreases, so near the end. */
  private queueForRetention(o: Orchestration): void {
    const q = this.retentionQueue;
    let i = q.length;
    while (i > 0 && retentionBefore(o, q[i - 1] as Orchestration)) i--;
    q.splice(i, 0, o);
  }

  /**
   * Retention, run by the machine after every applied entry (log time `now`, log index
   * `index`): removes the per-task records of finished orchestrations beyond the last
   * `keepOrchestrations` finished or finished at least `keepMs` ago, at most `budget` task
   * slots per call. The same log gives the same removals at the same index on every replica.
   * O(1) when nothing is due. Returns the records removed.
   */
  retain(now: number, index: number, keepOrchestrations: number, keepMs: number, budget = COMPACT_TASKS_PER_ENTRY): number {
    let removed = 0;
    let left = budget;
    const q = this.retentionQueue;
    while (left > 0 && q.length > 0) {
      const o = q[0] as Orchestration;
      const due = q.length > keepOrchestrations || now - (o.finished_at as number) >= keepMs;
      if (!due) break;
      const r = this.compactSome(o, now, index, left);
      removed += r.removed;
      left -= r.visited;
      if (o.compacted?.done_index !== null) q.shift();
    }
    return removed;
  }

  private compactSome(o: Orchestration, now: number, index: number, budget: number): { removed: number; visited: number } {
    const c: CompactionSummary = (o.compacted ??= {
      at_index: index,
      at: now,
      done_index: null,
      next_seq: 1,
      records_removed: 0,
      failed_attempts: 0,
      assignments: 0,
      first_completed_at: null,
      last_completed_at: null,
      late_reports_refused: 0,
    });
    const list = this.byOrch.get(o.id);
    this.dirtyOrchs.touch(o.id);
    let removed = 0;
    let visited = 0;
    while (c.next_seq <= o.count && visited < budget) {
      const t = list?.[c.next_seq - 1];
      if (t) {
        c.failed_attempts += t.failures;
        c.assignments += t.assignments;
        if (t.completed_at !== null) {
          if (c.first_completed_at === null || t.completed_at < c.first_completed_at) c.first_completed_at = t.completed_at;
          if (c.last_completed_at === null || t.completed_at > c.last_completed_at) c.last_completed_at = t.completed_at;
        }
        this.tasks.delete(t.id);
        this.dirtyTasks.drop(taskOrd(o, t.seq));
        (list as Array<TaskRecord | undefined>)[c.next_seq - 1] = undefined;
        c.records_removed++;
        removed++;
      }
      c.next_seq++;
      visited++;
    }
    if (c.next_seq > o.count) {
      c.done_index = index;
      this.byOrch.delete(o.id);
    }
    return { removed, visited: Math.max(1, visited) };
  }

  /** duplicates stays equal to the sum over tasks of max(0, completions_applied - 1). */
  private countCompletion(t: TaskRecord, orch: Orchestration): void {
    t.completions_applied++;
    if (t.completions_applied > 1) orch.counts.duplicates++;
  }

  private setStatus(t: TaskRecord, s: TaskStatus): void {
    const orch = this.orchs.get(t.orch) as Orchestration;
    orch.counts[t.status]--;
    orch.counts[s]++;
    t.status = s;
    if (s === 'assigned') this.assigned.add(t.id);
    else this.assigned.delete(t.id);
  }

  /** False only when no queue can hold a pending task (cheap: the scheduler asks every tick). */
  mayHavePending(): boolean {
    for (const p of PRIORITIES) if (this.heads[p] < this.queues[p].length) return true;
    return false;
  }

  /**
   * Up to `limit` pending tasks, highest priority first, FIFO within a priority, skipping
   * `exclude` (assignments proposed but not yet applied). Read-only apart from the cache.
   */
  pickPending(limit: number, exclude: ReadonlySet<string>, orchFilter?: (orch: string) => boolean): TaskRecord[] {
    const out: TaskRecord[] = [];
    // A task that failed and went back to pending can sit in its queue twice.
    const seen = new Set<string>();
    for (let p = PRIORITIES.length - 1; p >= 0 && out.length < limit; p--) {
      const prio = PRIORITIES[p] as Priority;
      const q = this.queues[prio];
      // Drop the head while it no longer needs scheduling, so scans stay short.
      while (this.heads[prio] < q.length) {
        const t = this.tasks.get(q[this.heads[prio]] as string);
        if (t && t.status === 'pending') break;
        this.heads[prio]++;
      }
      if (this.heads[prio] > 4096 && this.heads[prio] * 2 > q.length) {
        q.splice(0, this.heads[prio]);
        this.heads[prio] = 0;
      }
      for (let i = this.heads[prio]; i < q.length && out.length < limit; i++) {
        const t = this.tasks.get(q[i] as string);
        if (!t || t.status !== 'pending' || exclude.has(t.id) || seen.has(t.id)) continue;
        seen.add(t.id);
        if (orchFilter && !orchFilter(t.orch)) continue;
        out.push(t);
      }
    }
    return out;
  }

  toJSON(): unknown {
    return {
      tasks: [...this.tasks.values()],
      orchs: [...this.orchs.values()],
      idem: [...this.idempotency.entries()],
      complete_high: this.completeIndexHigh,
      compacted_refused: this.compactedReportsRefused,
    };
  }

  /** Restored from a snapshot: every row is to be written (dirty stays full). */
  static fromJSON(j: { tasks: TaskRecord[]; orchs: Orchestration[]; idem: Array<[string, string]>; complete_high?: number; compacted_refused?: number }): TaskTable {
    const t = TaskTable.build(j.orchs, j.tasks, j.complete_high ?? 0, j.compacted_refused ?? 0);
    t.idempotency = new Map(j.idem);
    return t;
  }

  /**
   * Restored from a checkpoint's rows (each table in ord order, which is insertion order).
   * The idempotency map is rebuilt from the orchestrations: each key maps to the
   * orchestration it created, entered when that one was created (so in creation order).
   */
  static fromRows(orchRows: Iterable<[number, unknown]>, taskRows: Iterable<[number, unknown]>, completeHigh: number, compactedRefused: number): TaskTable {
    const orchs: Orchestration[] = [];
    for (const [, o] of orchRows) orchs.push(o as Orchestration);
    const rows = new Map<number, unknown>();
    for (const [ord, r] of taskRows) rows.set(ord, r);
    // Every task still held, in creation order: its row, or as created when it has none.
    // Records below compacted.next_seq were removed by retention.
    function* tasks(): Iterable<TaskRecord> {
      for (const o of orchs) {
        if (o.compacted?.done_index != null) continue;
        for (let seq = o.compacted?.next_seq ?? 1; seq <= o.count; seq++) {
          const row = rows.get(taskOrd(o, seq));
          yield row === undefined ? newTask(`${o.id}-${seq}`, o.id, seq, o.priority) : taskFromRow(o, seq, row);
        }
      }
    }
    const t = TaskTable.build(orchs, tasks(), completeHigh, compactedRefused);
    for (const o of orchs) if (o.idempotency_key) t.idempotency.set(o.idempotency_key, o.id);
    t.dirtyTasks.full = false;
    t.dirtyOrchs.full = false;
    return t;
  }

  private static build(orchs: Iterable<Orchestration>, tasks: Iterable<TaskRecord>, completeHigh: number, compactedRefused: number): TaskTable {
    const t = new TaskTable();
    t.completeIndexHigh = completeHigh;
    t.compactedReportsRefused = compactedRefused;
    const upgraded = new Set<string>();
    for (const o of orchs) {
      if (upgradeOrchestration(o)) upgraded.add(o.id);
      t.orchs.set(o.id, o);
      if (o.compacted?.done_index == null) t.byOrch.set(o.id, new Array(o.count));
      if (o.finished_at !== null && o.compacted?.done_index == null) t.retentionQueue.push(o);
    }
    t.retentionQueue.sort((a, b) => (retentionBefore(a, b) ? -1 : retentionBefore(b, a) ? 1 : 0));
    for (const r of tasks) {
      upgradeTask(r);
      if (upgraded.has(r.orch)) (t.orchs.get(r.orch) as Orchestration).counts.executions_started += r.executions_started;
      t.tasks.set(r.id, r);
      const list = t.byOrch.get(r.orch);
      if (list) list[r.seq - 1] = r;
      if (r.status === 'pending') t.queues[r.priority].push(r.id);
      if (r.status === 'assigned') t.assigned.add(r.id);
    }
    return t;
  }

  /** Rows a checkpoint would write now. */
  dirtyRows(): number {
    return this.dirtyTasks.count(this.tasks.size) + this.dirtyOrchs.count(this.orchs.size);
  }

  /** Make the next checkpoint rewrite every row (its tracking was lost). */
  markFull(): void {
    this.dirtyTasks.setFull();
    this.dirtyOrchs.setFull();
  }

  /** Orchestration and task rows changed since the last call (all after a snapshot restore). */
  takeChanges(): { orchs: TableChanges; tasks: TableChanges } {
    const orchRow = (id: string): [number, string] | undefined => {
      const o = this.orchs.get(id);
      return o ? [orchOrd(o), JSON.stringify(o)] : undefined;
    };
    // A record removed since (retention) is no longer in `tasks`: its row was dropped.
    const taskRow = (r: TaskRecord): [number, string] | undefined =>
      this.tasks.get(r.id) === r ? [taskOrd(this.orchs.get(r.orch) as Orchestration, r.seq), JSON.stringify(taskToRow(r))] : undefined;
    // Rewritten whole: tasks still as created are left out (see dirtyTasks).
    const all = function* (this: TaskTable): Iterable<[number, string]> {
      for (const r of this.tasks.values()) if (!isAsCreated(r)) yield taskRow(r) as [number, string];
    };
    const tasks = this.dirtyTasks.take(taskRow, () => all.call(this));
    const orchs = this.dirtyOrchs.take(orchRow, () => [...this.orchs.values()].map((o) => orchRow(o.id) as [number, string]));
    return { orchs, tasks };
  }
}

function orchOrd(o: Orchestration): number {
  return o.created_index;
}

function taskOrd(o: Orchestration, seq: number): number {
  return orchOrd(o) * TASK_ORD_SEQ_SPAN + seq;
}

/** Task ids are `<orchestration id>-<seq>`; the orchestration id itself contains a dash. */
export function parseTaskId(id: string): { orch: string; seq: number } | null {
  const dash = id.lastIndexOf('-');
  const seq = Number(id.slice(dash + 1));
  if (dash <= 0 || !Number.isInteger(seq) || seq < 1) return null;
  return { orch: id.slice(0, dash), seq };
}

/** Retention order: finished earlier in log time, then created earlier. */
function retentionBefore(a: Orchestration, b: Orchestration): boolean {
  const fa = a.finished_at as number;
  const fb = b.finished_at as number;
  return fa < fb || (fa === fb && a.created_index < b.created_index);
}

/**
 * A task exactly as createOrchestration made it, key order included (snapshot() shows it; a
 * record upgraded from an older snapshot has another): no checkpoint row is kept for it.
 */
function isAsCreated(t: TaskRecord): boolean {
  if (
    !(t.status === 'pending' && t.epoch === 0 && t.assignee === null && t.assigned_term === 0 && t.lease_until === 0 && t.assignments === 0 &&
      t.failures === 0 && t.completions_applied === 0 && t.completed_index === null && t.executions_started === 0 &&
      t.stale_completions_refused === 0 && t.result === null && t.completed_by === null && t.completed_at === null)
  ) {
    return false;
  }
  const keys = Object.keys(t);
  return keys.length === NEW_TASK_KEYS.length && keys.every((k, i) => k === NEW_TASK_KEYS[i]);
}

function newTask(id: string, orch: string, seq: number, priority: Priority): TaskRecord {
  return {
    id,
    orch,
    seq,
    priority,
    status: 'pending',
    epoch: 0,
    assignee: null,
    assigned_term: 0,
    lease_until: 0,
    assignments: 0,
    failures: 0,
    completions_applied: 0,
    completed_index: null,
    executions_started: 0,
    stale_completions_refused: 0,
    result: null,
    completed_by: null,
    completed_at: null,
  };
}

const NEW_TASK_KEYS = Object.keys(newTask('', '', 1, 'low'));

/**
 * A task's checkpoint row: its mutable fields in newTask's key order, as an array (id, orch,
 * seq and priority come from the orchestration and the row key). Measured per row (CPU, loaded
 * machine): a whole record's JSON took ~6 us to stringify and write. A record whose keys are
 * in another order (upgraded from an older snapshot) is stored whole, to come back as it was.
 */
const TASK_ROW_KEYS = NEW_TASK_KEYS.slice(4) as Array<keyof TaskRecord>;

function taskToRow(t: TaskRecord): unknown {
  const keys = Object.keys(t);
  if (keys.length !== NEW_TASK_KEYS.length || !keys.every((k, i) => k === NEW_TASK_KEYS[i])) return t;
  const row = TASK_ROW_KEYS.map((k) => t[k]);
  // JSON has no undefined in arrays (null would come back): such a record goes whole.
  return row.includes(undefined) ? t : row;
}

function taskFromRow(o: Orchestration, seq: number, row: unknown): TaskRecord {
  if (!Array.isArray(row)) return row as TaskRecord;
  const t = newTask(`${o.id}-${seq}`, o.id, seq, o.priority) as unknown as Record<string, unknown>;
  TASK_ROW_KEYS.forEach((k, i) => (t[k] = row[i]));
  return t as unknown as TaskRecord;
}

function emptyTallies(): OrchestrationTallies {
  return { stale_completions_refused: 0, duplicates: 0, recovered: 0, executions_started: 0 };
}

/**
 * Snapshots written before the counters were renamed: carry the old figures over. Executions
 * were not counted then; each report applied or refused stood for one, which is what we assume.
 */
function upgradeTask(r: TaskRecord): void {
  const old = r as TaskRecord & { completions?: number; rejected_attempts?: number };
  if (r.completions_applied !== undefined) return;
  r.completions_applied = old.completions ?? 0;
  r.stale_completions_refused = old.rejected_attempts ?? 0;
  r.completed_index = null;
  r.executions_started = r.completions_applied + r.failures + r.stale_completions_refused;
  delete old.completions;
  delete old.rejected_attempts;
}

/** True when the orchestration was upgraded: its executions_started is then summed from its tasks. */
function upgradeOrchestration(o: Orchestration): boolean {
  const c = o.counts as Orchestration['counts'] & { rejected_duplicate_attempts?: number };
  if (c.stale_completions_refused !== undefined) return false;
  c.stale_completions_refused = c.rejected_duplicate_attempts ?? 0;
  delete c.rejected_duplicate_attempts;
  c.executions_started = 0;
  return true;
}
