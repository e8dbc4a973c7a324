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
import { ABSENT, BinWriter, blockShift, Interner, OrchTasks, STATUS_CODE, TASKS_PER_BLOCK } from './task-columns.js';
import type { CheckpointRow, TableChanges } from '../storage/types.js';
import { collectChanges, DirtyRows } from './dirty-rows.js';

type CreateOp = Extract<Op, { t: 'orch.create' }>;
type AssignOp = Extract<Op, { t: 'task.assign' }>;

/** Hard bound on tasks one orchestration may create (memory is finite). */
export const MAX_TASKS_PER_ORCHESTRATION = 1_000_000;

/**
 * Task records retention may remove per applied entry: compacting a million-task orchestration
 * is spread over entries instead of holding the event loop (every member applies it).
 */
export const COMPACT_TASKS_PER_ENTRY = 10_000;

/**
 * Row keys of an orchestration's checkpoint rows: its metadata at created_index * stride,
 * task block b at that + 1 + b. The stride is the power of two above the most blocks an
 * orchestration can have (64 at 16,384 tasks a block), so rows read in key order come
 * orchestration by orchestration, in creation order, metadata first.
 */
export function ordStride(shift: number): number {
  return 2 ** Math.ceil(Math.log2(Math.ceil(MAX_TASKS_PER_ORCHESTRATION / 2 ** shift) + 1));
}

/**
 * Tasks and orchestrations, with the fencing rules that make the completion commit exactly-once:
 * an assignment bumps the task's epoch; a completion applies only with the current epoch
 * and assignee; anything else is refused and counted (stale_completions_refused). Execution
 * itself is at-least-once: every report says how many runs it covers (executions_started).
 */
export class TaskTable {
  /** The task records by id, read-only: each lookup builds a fresh record from the columns. */
  readonly tasks: TaskIndex = new TaskIndex(this);
  orchs = new Map<string, Orchestration>();
  idempotency = new Map<string, string>();
  /** Ids of tasks currently assigned (leases to watch). Derived; rebuilt on restore. */
  assigned = new Set<string>();
  /** Where each assigned task's record is (same keys as `assigned`). Derived. */
  private assignedSlots = new Map<string, Slot>();
  /** Task records of each orchestration whose records are not all removed. Derived from the records. */
  private byOrch = new Map<string, OrchTasks>();
  /** Agent ids of assignee / completed_by, shared by all orchestrations' columns. */
  private names = new Interner();
  /** Records held (removed ones not counted). */
  private records = 0;
  /**
   * Finished orchestrations whose records are not all removed yet, by (finished_at,
   * created_index): derived from the orchestrations alone, so a replica restored from a
   * snapshot orders them exactly as one that applied the log.
   */
  private retentionQueue: Orchestration[] = [];
  /** Execution reports refused because their task's record was removed by retention. */
  compactedReportsRefused = 0;
  /** Pending tasks per priority, FIFO, as seq ranges. A cache for the scheduler, rebuilt on restore. */
  private queues: Record<Priority, QueueRange[]> = { low: [], medium: [], high: [], critical: [] };
  private heads: Record<Priority, number> = { low: 0, medium: 0, high: 0, critical: 0 };
  /** Highest log index of a task.complete entry applied: a lower or equal one is a replay. */
  completeIndexHigh = 0;
  /**
   * Orchestrations changed since the last checkpoint (their metadata or any of their task
   * records): each has a metadata row and a row per block of tasks (OrchTasks tracks which
   * blocks changed), so a checkpoint costs copying the changed blocks' columns, not a row per
   * task nor a whole million-task orchestration. Dead ords: block rows of orchestrations whose
   * records retention removed.
   */
  readonly dirtyOrchs = new DirtyRows();
  /** Blocks changed since the last checkpoint (paces checkpoints with the other rows). */
  private dirtyBlocks = 0;
  /** log2 of the tasks per checkpoint block row, and the row-key stride that follows. */
  private readonly shift: number;
  private readonly stride: number;

  constructor(readonly tasksPerBlock = TASKS_PER_BLOCK) {
    this.shift = blockShift(tasksPerBlock);
    this.stride = ordStride(this.shift);
  }

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
    this.dirtyOrchs.touch(id);
    if (op.idempotency_key) this.idempotency.set(op.idempotency_key, id);
    // Every field of a new task is its zero value: the columns start that way.
    const cols = new OrchTasks(orch, this.names, true, this.shift);
    for (let i = 0; i < op.count; i += this.tasksPerBlock) this.touchTask(cols, i);
    this.byOrch.set(id, cols);
    this.records += op.count;
    this.enqueue(cols, 1, op.count);
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
    for (const it of op.items ?? []) {
      const slot = this.slotOf(it.task);
      this.assignOne(slot?.t, slot?.i ?? -1, it.agent, it.from_epoch, op.term, leaseUntil, out);
    }
    for (const g of op.groups ?? []) {
      const cols = this.byOrch.get(g.orch);
      for (let i = 0; i < g.seqs.length; i++) {
        this.assignOne(cols, seqIndex(g.seqs[i]), g.agent, g.from[i] as number, op.term, leaseUntil, out);
      }
    }
    return out;
  }

  private assignOne(
    t: OrchTasks | undefined,
    i: number,
    agent: string,
    fromEpoch: number,
    term: number,
    leaseUntil: number,
    out: { items: Array<{ task: string; agent: string; epoch: number }>; assigned: number; stale: number; recovered: number; notify?: string | undefined },
  ): void {
    const status = t && t.has(i) ? t.status[i] : ABSENT;
    if (!t || (status !== STATUS_CODE.pending && status !== STATUS_CODE.assigned) || t.epoch.get(i) !== fromEpoch) {
      out.stale++;
      return;
    }
    this.touchTask(t, i);
    if (status === STATUS_CODE.assigned) {
      // Taken back from its holder (dead, lease expired, or assigned by an earlier leader).
      t.orch.counts.recovered++;
      // The election record counts only what this leader inherited from earlier terms.
      if (t.assignedTerm.get(i) < term) out.recovered++;
    }
    this.setStatus(t, i, 'assigned');
    const epoch = t.epoch.get(i) + 1;
    t.epoch.set(i, epoch);
    t.assignee.set(i, agent);
    t.assignedTerm.set(i, term);
    t.leaseUntil.set(i, leaseUntil);
    t.assignments.set(i, t.assignments.get(i) + 1);
    out.assigned++;
    if (out.notify === undefined || out.notify === agent) out.items.push({ task: taskId(t, i), agent, epoch });
  }

  /** Apply execution reports carried by the log entry at `index`. */
  complete(items: CompleteItem[], now: number, groups: CompleteGroup[] = [], index = 0): { applied: number; rejected: number } {
    const out = { applied: 0, rejected: 0 };
    // Log indices only grow: an entry at or below the highest seen is being applied again.
    const replayed = index > 0 && index <= this.completeIndexHigh ? index : 0;
    if (index > this.completeIndexHigh) this.completeIndexHigh = index;
    for (const it of items) {
      const slot = this.slotOf(it.task);
      if (slot) this.completeOne(slot.t, slot.i, it.agent, it.epoch, it.ok, it.result, it.starts, now, index, replayed, out);
      else this.refuseMissing(typeof it.task === 'string' ? parseTaskId(it.task) : null, it.starts, out);
    }
    for (const g of groups) {
      const cols = this.byOrch.get(g.orch);
      for (let i = 0; i < g.seqs.length; i++) {
        const seq = g.seqs[i] as number;
        const at = seqIndex(seq);
        if (cols && cols.has(at)) this.completeOne(cols, at, g.agent, g.epochs[i] as number, g.ok, g.results?.[i] ?? null, g.starts?.[i], now, index, replayed, out);
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
    t: OrchTasks,
    i: number,
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
    const orch = t.orch;
    this.touchTask(t, i);
    // Every report, applied or refused, stands for the runs it says it covers (default one).
    const runs = starts !== undefined && Number.isInteger(starts) && starts >= 0 ? starts : 1;
    t.executionsStarted.set(i, t.executionsStarted.get(i) + runs);
    orch.counts.executions_started += runs;
    const status = t.status[i];
    if (replayed > 0 && status === STATUS_CODE.completed && t.completedIndex.get(i) === replayed) {
      // The very entry that completed this task, applied a second time: only a replay bug in
      // the host or in snapshot restore does that. Counted, never hidden behind the fence.
      out.applied++;
      this.countCompletion(t, i);
      return;
    }
    if (status !== STATUS_CODE.assigned || t.epoch.get(i) !== epoch || t.assignee.get(i) !== agent) {
      // A late or repeated report (old epoch, another agent, already done): fenced off. Its
      // run happened (at-least-once execution), its result is not committed.
      t.staleRefused.set(i, t.staleRefused.get(i) + 1);
      orch.counts.stale_completions_refused++;
      out.rejected++;
      return;
    }
    out.applied++;
    if (ok) {
      this.countCompletion(t, i);
      t.completedIndex.set(i, index);
      t.setResult(i, result);
      t.completedBy.set(i, agent);
      t.completedAt.set(i, now);
      this.setStatus(t, i, 'completed');
    } else {
      const failures = t.failures.get(i) + 1;
      t.failures.set(i, failures);
      t.setResult(i, result);
      if (failures >= MAX_TASK_ATTEMPTS) {
        t.completedAt.set(i, now);
        this.setStatus(t, i, 'failed');
      } else {
        t.assignee.set(i, null);
        this.setStatus(t, i, 'pending');
        this.enqueue(t, i + 1, i + 1);
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
    const t = this.byOrch.get(o.id);
    this.dirtyOrchs.touch(o.id);
    let removed = 0;
    let visited = 0;
    while (c.next_seq <= o.count && visited < budget) {
      const i = c.next_seq - 1;
      if (t && t.has(i)) {
        c.failed_attempts += t.failures.get(i);
        c.assignments += t.assignments.get(i);
        const completedAt = t.completedAt.get(i) as number | null;
        if (completedAt !== null) {
          if (c.first_completed_at === null || completedAt < c.first_completed_at) c.first_completed_at = completedAt;
          if (c.last_completed_at === null || completedAt > c.last_completed_at) c.last_completed_at = completedAt;
        }
        // An assigned task's record is not removed here in practice (the orchestration finished).
        if (t.status[i] === STATUS_CODE.assigned) this.unassign(taskId(t, i));
        t.remove(i);
        this.touchTask(t, i);
        this.records--;
        c.records_removed++;
        removed++;
      }
      c.next_seq++;
      visited++;
    }
    if (c.next_seq > o.count) {
      c.done_index = index;
      this.byOrch.delete(o.id);
      // Its metadata row stays (the summary); its block rows go.
      if (t) for (let b = 0; b < t.blocks; b++) this.dirtyOrchs.drop(this.ordOf(o) + 1 + b);
    }
    return { removed, visited: Math.max(1, visited) };
  }

  /** Task i of `t` changed: its orchestration's metadata row and its block row are rewritten. */
  private touchTask(t: OrchTasks, i: number): void {
    this.dirtyOrchs.touch(t.orch.id);
    if (t.markDirty(i)) this.dirtyBlocks++;
  }

  /** Key of the orchestration's metadata row (see ordStride). */
  private ordOf(o: Orchestration): number {
    const ord = o.created_index * this.stride;
    if (!Number.isSafeInteger(ord + this.stride)) throw new Error(`checkpoint row key of ${o.id}: created_index ${o.created_index} times ${this.stride} is past 2^53`);
    return ord;
  }

  /** duplicates stays equal to the sum over tasks of max(0, completions_applied - 1). */
  private countCompletion(t: OrchTasks, i: number): void {
    const n = t.completionsApplied.get(i) + 1;
    t.completionsApplied.set(i, n);
    if (n > 1) t.orch.counts.duplicates++;
  }

  private setStatus(t: OrchTasks, i: number, s: TaskStatus): void {
    const counts = t.orch.counts;
    const was = t.statusOf(i);
    counts[was]--;
    counts[s]++;
    t.status[i] = STATUS_CODE[s];
    if (s === 'assigned') {
      if (was !== 'assigned') {
        const id = taskId(t, i);
        this.assigned.add(id);
        this.assignedSlots.set(id, { t, i });
      }
    } else if (was === 'assigned') this.unassign(taskId(t, i));
  }

  private unassign(id: string): void {
    this.assigned.delete(id);
    this.assignedSlots.delete(id);
  }

  /** Append seqs from..to of `t` to its priority's pending queue (merged with a run it continues). */
  private enqueue(t: OrchTasks, from: number, to: number): void {
    const q = this.queues[t.orch.priority];
    const last = q[q.length - 1];
    if (last && last.t === t && last.to + 1 === from && q.length > this.heads[t.orch.priority]) last.to = to;
    else q.push({ t, from, to });
  }

  /** The record's place for a task id, or null when there is no such record. */
  private slotOf(id: unknown): Slot | null {
    if (typeof id !== 'string') return null;
    const p = parseTaskId(id);
    if (!p) return null;
    const t = this.byOrch.get(p.orch);
    const i = p.seq - 1;
    // Only the canonical spelling names a task (`orch-1-01` is no id).
    if (!t || !t.has(i) || taskId(t, i) !== id) return null;
    return { t, i };
  }

  /** Records held (what `tasks.size` reports). */
  get recordCount(): number {
    return this.records;
  }

  /** A fresh copy of the record with this id, or undefined. */
  record(id: string): TaskRecord | undefined {
    const s = this.slotOf(id);
    return s ? s.t.record(s.i) : undefined;
  }

  /** Every record, in creation order (orchestration, then seq), built on demand. */
  *allRecords(): IterableIterator<TaskRecord> {
    for (const t of this.byOrch.values()) for (let i = 0; i < t.orch.count; i++) if (t.has(i)) yield t.record(i);
  }

  /**
   * Each assigned task's id, assignee and lease end, without building its record: the
   * scheduler looks at every one of them every tick.
   */
  forEachAssigned(fn: (id: string, assignee: string | null, leaseUntil: number) => void): void {
    for (const [id, s] of this.assignedSlots) fn(id, s.t.assignee.get(s.i), s.t.leaseUntil.get(s.i));
  }

  /**
   * The orchestration of task `id` when it is assigned to `agent` at `epoch`, else undefined:
   * a worker's check before it runs an assignment, without building the record.
   */
  heldBy(id: string, epoch: number, agent: string): Orchestration | undefined {
    const s = this.assignedSlots.get(id);
    if (!s || s.t.epoch.get(s.i) !== epoch || s.t.assignee.get(s.i) !== agent) return undefined;
    return s.t.orch;
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
    const pending = (r: QueueRange, seq: number): boolean => this.byOrch.get(r.t.orch.id) === r.t && r.t.status[seq - 1] === STATUS_CODE.pending;
    for (let p = PRIORITIES.length - 1; p >= 0 && out.length < limit; p--) {
      const prio = PRIORITIES[p] as Priority;
      const q = this.queues[prio];
      // Drop the head while it no longer needs scheduling, so scans stay short.
      while (this.heads[prio] < q.length) {
        const r = q[this.heads[prio]] as QueueRange;
        while (r.from <= r.to && !pending(r, r.from)) r.from++;
        if (r.from <= r.to) break;
        this.heads[prio]++;
      }
      if (this.heads[prio] > 4096 && this.heads[prio] * 2 > q.length) {
        q.splice(0, this.heads[prio]);
        this.heads[prio] = 0;
      }
      for (let k = this.heads[prio]; k < q.length && out.length < limit; k++) {
        const r = q[k] as QueueRange;
        if (orchFilter && !orchFilter(r.t.orch.id)) continue;
        for (let seq = r.from; seq <= r.to && out.length < limit; seq++) {
          if (!pending(r, seq)) continue;
          const id = taskId(r.t, seq - 1);
          if (exclude.has(id) || seen.has(id)) continue;
          seen.add(id);
          out.push(r.t.record(seq - 1));
        }
      }
    }
    return out;
  }

  toJSON(): unknown {
    return {
      tasks: [...this.allRecords()],
      orchs: [...this.orchs.values()],
      idem: [...this.idempotency.entries()],
      complete_high: this.completeIndexHigh,
      compacted_refused: this.compactedReportsRefused,
    };
  }

  static fromJSON(j: { tasks: TaskRecord[]; orchs: Orchestration[]; idem: Array<[string, string]>; complete_high?: number; compacted_refused?: number }, tasksPerBlock = TASKS_PER_BLOCK): TaskTable {
    const t = new TaskTable(tasksPerBlock);
    t.completeIndexHigh = j.complete_high ?? 0;
    t.compactedReportsRefused = j.compacted_refused ?? 0;
    const upgraded = new Set<string>();
    for (const o of j.orchs) {
      if (upgradeOrchestration(o)) upgraded.add(o.id);
      t.orchs.set(o.id, o);
      if (o.compacted?.done_index == null) t.byOrch.set(o.id, new OrchTasks(o, t.names, false, t.shift));
      if (o.finished_at !== null && o.compacted?.done_index == null) t.retentionQueue.push(o);
    }
    t.retentionQueue.sort((a, b) => (retentionBefore(a, b) ? -1 : retentionBefore(b, a) ? 1 : 0));
    for (const r of j.tasks) {
      upgradeTask(r);
      if (upgraded.has(r.orch)) (t.orchs.get(r.orch) as Orchestration).counts.executions_started += r.executions_started;
      const cols = t.byOrch.get(r.orch);
      const i = r.seq - 1;
      // A snapshot holds records only of orchestrations it lists, at seqs 1..count.
      if (!cols || !(Number.isInteger(r.seq) && i >= 0 && i < cols.orch.count) || r.id !== taskId(cols, i)) throw new Error(`snapshot task record ${JSON.stringify(r.id)} does not belong to a listed orchestration`);
      cols.load(r);
      t.records++;
      if (r.status === 'pending') t.enqueue(cols, r.seq, r.seq);
      if (r.status === 'assigned') {
        t.assigned.add(r.id);
        t.assignedSlots.set(r.id, { t: cols, i });
      }
    }
    t.idempotency = new Map(j.idem);
    return t;
  }

  /** Agent ids the task columns' codes index (checkpoint meta: rows hold codes). */
  agentNames(): readonly string[] {
    return this.names.values;
  }

  /** Rows a checkpoint would write now. */
  dirtyRows(): number {
    return this.dirtyOrchs.count(this.orchs.size) + (this.dirtyOrchs.full ? 0 : this.dirtyBlocks);
  }

  /** Make the next checkpoint rewrite every row (its tracking was lost). */
  markFull(): void {
    this.dirtyOrchs.setFull();
  }

  /**
   * Orchestration rows changed since the last call (all after a snapshot restore). Per
   * orchestration a metadata row, [metadata] once its records are all removed (its summary is
   * all that is left), else [metadata, block count]; and a row per changed block of tasks
   * (OrchTasks.blockRow) with the columns' bytes as the row's binary part.
   */
  takeChanges(): TableChanges {
    return collectChanges(this.takeChangeRows());
  }

  /**
   * takeChanges() a row at a time (a block's row built when it is reached). The table must not
   * change until it returns; one dropped before then has taken some orchestrations' changed
   * blocks (markFull: the next checkpoint rewrites the table).
   */
  *takeChangeRows(): Generator<CheckpointRow, Omit<TableChanges, 'put'>> {
    const d = this.dirtyOrchs;
    const full = d.full;
    const del = full ? [] : d.dead;
    for (const id of full ? this.orchs.keys() : d.ids) {
      const o = this.orchs.get(id);
      if (!o) continue;
      for (const [ord, row, bin] of this.rowsOf(o, (cols) => cols.takeDirty(full))) {
        const json = JSON.stringify(row);
        yield bin === undefined ? [ord, json] : [ord, json, bin];
      }
    }
    d.reset();
    this.dirtyBlocks = 0;
    return { clear: full, del };
  }

  /**
   * An orchestration's rows as values: its metadata row, then (while it has records) the
   * rows of the blocks `blocks` picks, each with its column bytes. Built as they are read.
   */
  private *rowsOf(o: Orchestration, blocks: (cols: OrchTasks) => Iterable<number>): Generator<[number, unknown, Uint8Array | undefined]> {
    const ord = this.ordOf(o);
    const cols = this.byOrch.get(o.id);
    if (!cols) {
      yield [ord, [o], undefined];
      return;
    }
    yield [ord, [o, cols.blocks], undefined];
    for (const b of blocks(cols)) {
      const w = new BinWriter();
      const row = cols.blockRow(b, w);
      yield [ord + 1 + b, row, w.finish()];
    }
  }

  /**
   * Every row a full checkpoint would write, in row-key order, without touching the tracking of
   * changes (a snapshot for a follower must not cost the next checkpoint its rows): what a
   * multi-part snapshot carries and fromRows rebuilds. Each row's values are live (stringify
   * it before the state changes); the bytes are a copy.
   */
  *snapshotRows(): Generator<[number, unknown, Uint8Array | undefined]> {
    for (const o of this.orchs.values()) yield* this.rowsOf(o, (cols) => Array.from({ length: cols.blocks }, (_, b) => b));
  }

  /**
   * Rebuilt from checkpoint rows (takeChanges', in row-key order: creation order, each
   * orchestration's metadata then its blocks; written with `tasksPerBlock`) and the agent
   * names: the records exactly, and the derived structures as fromJSON builds them (queues
   * from the pending records in creation order, assigned set, retention queue). The
   * idempotency map is rebuilt from the orchestrations: each key maps to the one it created,
   * entered when that one was created (so in creation order).
   */
  static fromRows(rows: Iterable<[number, unknown, Uint8Array?]>, names: readonly string[], completeHigh: number, compactedRefused: number, tasksPerBlock: number): TaskTable {
    const l = TaskTable.rowLoader(names, completeHigh, compactedRefused, tasksPerBlock);
    for (const [ord, r, bin] of rows) l.add(ord, r, bin);
    return l.finish();
  }

  /**
   * fromRows a row at a time: `add` each row in order (it throws on a row that does not fit),
   * then `finish` once. A snapshot's rows are loaded as their part arrives this way, so the
   * part's parsed rows need not all be held until the last part is in.
   */
  static rowLoader(names: readonly string[], completeHigh: number, compactedRefused: number, tasksPerBlock: number): { add(ord: number, r: unknown, bin?: Uint8Array): void; finish(): TaskTable } {
    const t = new TaskTable(tasksPerBlock);
    t.completeIndexHigh = completeHigh;
    t.compactedReportsRefused = compactedRefused;
    t.names = Interner.of(names);
    let cur: OrchTasks | null = null;
    let curOrd = -1;
    return {
      add(ord: number, r: unknown, bin?: Uint8Array): void {
        const k = ord % t.stride;
        if (k !== 0) {
          if (cur === null || ord - k !== curOrd) throw new Error(`task row ${ord}: a task block without its orchestration's row`);
          cur.loadBlock(k - 1, r, bin);
          return;
        }
        cur?.finishLoad();
        cur = null;
        const [o, blocks] = r as [Orchestration, number?];
        if (ord !== t.ordOf(o)) throw new Error(`task row ${ord} holds ${o.id}, whose row key is ${t.ordOf(o)}`);
        t.orchs.set(o.id, o);
        if (o.idempotency_key) t.idempotency.set(o.idempotency_key, o.id);
        if (o.compacted?.done_index != null) return;
        const next = OrchTasks.forBlocks(o, t.names, t.shift);
        if (blocks !== next.blocks) throw new Error(`task row of ${o.id}: ${String(blocks)} task blocks, expected ${next.blocks} (${o.count} tasks, ${tasksPerBlock} a block)`);
        cur = next;
        curOrd = ord;
        t.byOrch.set(o.id, cur);
        if (o.finished_at !== null) t.retentionQueue.push(o);
      },
      finish(): TaskTable {
        cur?.finishLoad();
        cur = null;
        t.rebuildDerived();
        t.dirtyOrchs.full = false;
        return t;
      },
    };
  }

  /**
   * Rebuilt from checkpoint rows of the format before blocks (one row per orchestration at
   * ord created_index: [metadata] or [metadata, all its columns], bytes in one part). The next
   * checkpoint rewrites the table in blocks (the stored rows are converted once).
   */
  static fromWholeRows(rows: Iterable<[number, unknown, Uint8Array?]>, names: readonly string[], completeHigh: number, compactedRefused: number, tasksPerBlock = TASKS_PER_BLOCK): TaskTable {
    const t = new TaskTable(tasksPerBlock);
    t.completeIndexHigh = completeHigh;
    t.compactedReportsRefused = compactedRefused;
    t.names = Interner.of(names);
    for (const [, r, bin] of rows) {
      const [o, cols] = r as [Orchestration, unknown?];
      t.orchs.set(o.id, o);
      if (o.idempotency_key) t.idempotency.set(o.idempotency_key, o.id);
      if (o.compacted?.done_index != null) continue;
      if (cols === undefined) throw new Error(`checkpoint row of ${o.id}: no task columns, and its records are not all removed`);
      t.byOrch.set(o.id, OrchTasks.fromWholeRow(o, t.names, cols, bin, t.shift));
      if (o.finished_at !== null) t.retentionQueue.push(o);
    }
    t.rebuildDerived();
    t.markFull();
    return t;
  }

  /** Retention order, record count, pending queues and assigned set from the loaded columns. */
  private rebuildDerived(): void {
    this.retentionQueue.sort((a, b) => (retentionBefore(a, b) ? -1 : retentionBefore(b, a) ? 1 : 0));
    for (const cols of this.byOrch.values()) {
      for (let i = 0; i < cols.orch.count; i++) {
        const s = cols.status[i];
        if (s === ABSENT) continue;
        this.records++;
        if (s === STATUS_CODE.pending) this.enqueue(cols, i + 1, i + 1);
        else if (s === STATUS_CODE.assigned) {
          const id = taskId(cols, i);
          this.assigned.add(id);
          this.assignedSlots.set(id, { t: cols, i });
        }
      }
    }
  }

  /**
   * The derived structures as JSON, for tests: a table rebuilt from checkpoint rows must
   * hold the same as one rebuilt from a snapshot.
   */
  derivedForTest(): string {
    const q = (p: Priority) => this.queues[p].slice(this.heads[p]).map((r) => [r.t.orch.id, r.from, r.to]);
    return JSON.stringify({
      assigned: [...this.assigned],
      slots: [...this.assignedSlots].map(([id, s]) => [id, s.t.orch.id, s.i]),
      queues: PRIORITIES.map(q),
      retention: this.retentionQueue.map((o) => o.id),
      byOrch: [...this.byOrch.keys()],
      records: this.records,
      idem: [...this.idempotency],
    });
  }
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

/** Where a task's record is: its orchestration's columns and seq - 1. */
interface Slot {
  t: OrchTasks;
  i: number;
}

/** Seqs from..to of one orchestration, waiting in a priority queue (from advances as they leave). */
interface QueueRange {
  t: OrchTasks;
  from: number;
  to: number;
}

function taskId(t: OrchTasks, i: number): string {
  return `${t.orch.id}-${i + 1}`;
}

/** seq - 1 when seq is a positive integer, else -1 (no record). */
function seqIndex(seq: unknown): number {
  return typeof seq === 'number' && Number.isInteger(seq) && seq >= 1 ? seq - 1 : -1;
}

/**
 * The task records seen as a read-only map by id. Records live in columns (task-columns.ts):
 * get() and values() build fresh copies, so changing one changes nothing.
 */
export class TaskIndex {
  constructor(private readonly table: TaskTable) {}

  get size(): number {
    return this.table.recordCount;
  }

  get(id: string): TaskRecord | undefined {
    return this.table.record(id);
  }

  has(id: string): boolean {
    return this.table.record(id) !== undefined;
  }

  values(): IterableIterator<TaskRecord> {
    return this.table.allRecords();
  }
}
