// Per-orchestration columnar storage of task records. A million-task orchestration held as
// one object per task cost ~260 bytes per task per replica (18-field object, id string, map
// entry; five replicas in one embedded process); in columns it is ~25 bytes. Every value is
// kept exactly: what does not fit a column's small encoding goes to a per-column side map.

import type { Orchestration, Priority, TaskRecord, TaskStatus } from './types.js';

export const STATUS_NAMES: readonly TaskStatus[] = ['pending', 'assigned', 'completed', 'failed'];
export const STATUS_CODE: Readonly<Record<TaskStatus, number>> = { pending: 0, assigned: 1, completed: 2, failed: 3 };
/** Status code of a seq whose record was removed by retention (or never restored). */
export const ABSENT = 255;

/** Below this count a column is a plain array (a typed array costs ~200 bytes of overhead). */
const SMALL = 64;

type Slots = Uint8Array | Uint16Array | Uint32Array | number[];

function slots(bits: 8 | 16 | 32, n: number): Slots {
  if (n < SMALL) return new Array<number>(n).fill(0);
  return bits === 8 ? new Uint8Array(n) : bits === 16 ? new Uint16Array(n) : new Uint32Array(n);
}

/**
 * A numeric column: slot 0 is `zero` (0, or null for nullable fields), slot s in [1, max) is
 * `base + s - 1`, slot max means "see the side map", which holds any other value exactly
 * (large, negative, fractional, or not a number at all). Allocated on first non-zero write.
 */
export class NumColumn {
  private a: Slots | null = null;
  private wide: Map<number, unknown> | null = null;
  private readonly max: number;

  constructor(
    private readonly bits: 8 | 16 | 32,
    private readonly n: number,
    private readonly base: number,
    private readonly zero: number | null,
  ) {
    this.max = bits === 8 ? 0xff : bits === 16 ? 0xffff : 0xffffffff;
  }

  get(i: number): number {
    const s = this.a === null ? 0 : (this.a[i] as number);
    if (s === 0) return this.zero as number;
    if (s === this.max) return (this.wide as Map<number, unknown>).get(i) as number;
    return this.base + s - 1;
  }

  set(i: number, v: unknown): void {
    if (v === this.zero) {
      if (this.a !== null && this.a[i] === this.max) this.wide?.delete(i);
      if (this.a !== null) this.a[i] = 0;
      return;
    }
    const a = (this.a ??= slots(this.bits, this.n));
    if (a[i] === this.max) this.wide?.delete(i);
    const d = typeof v === 'number' ? v - this.base + 1 : Number.NaN;
    if (Number.isInteger(d) && d >= 1 && d < this.max) {
      a[i] = d;
      return;
    }
    a[i] = this.max;
    (this.wide ??= new Map()).set(i, v);
  }

  /** Values kept in the side map (for tests: the compact encoding is the common case). */
  get wideCount(): number {
    return this.wide?.size ?? 0;
  }
}

/**
 * Agent ids (assignee, completed_by) as codes into a table shared by the task table: 0 is
 * null, 1..0xfffe a table entry, 0xffff a side-map value (table full, or not a string).
 */
export class Interner {
  readonly values: string[] = [];
  private readonly codes = new Map<string, number>();

  code(v: string): number {
    let c = this.codes.get(v);
    if (c === undefined && this.values.length < 0xfffe - 1) {
      this.values.push(v);
      c = this.values.length;
      this.codes.set(v, c);
    }
    return c ?? 0xffff;
  }
}

export class RefColumn {
  private a: Slots | null = null;
  private wide: Map<number, unknown> | null = null;

  constructor(
    private readonly n: number,
    private readonly names: Interner,
  ) {}

  get(i: number): string | null {
    const s = this.a === null ? 0 : (this.a[i] as number);
    if (s === 0) return null;
    if (s === 0xffff) return (this.wide as Map<number, unknown>).get(i) as string;
    return this.names.values[s - 1] as string;
  }

  set(i: number, v: unknown): void {
    if (v === null) {
      if (this.a !== null) {
        if (this.a[i] === 0xffff) this.wide?.delete(i);
        this.a[i] = 0;
      }
      return;
    }
    const a = (this.a ??= slots(16, this.n));
    if (a[i] === 0xffff) this.wide?.delete(i);
    const c = typeof v === 'string' ? this.names.code(v) : 0xffff;
    a[i] = c;
    if (c === 0xffff) (this.wide ??= new Map()).set(i, v);
  }
}

/**
 * The task records of one orchestration, by seq - 1. Fields shared by all its tasks (orch id,
 * priority) are the orchestration's; log times and indices are offsets from its creation.
 */
export class OrchTasks {
  readonly status: Uint8Array | number[];
  readonly epoch: NumColumn;
  readonly assignee: RefColumn;
  readonly assignedTerm: NumColumn;
  readonly leaseUntil: NumColumn;
  readonly assignments: NumColumn;
  readonly failures: NumColumn;
  readonly completionsApplied: NumColumn;
  readonly completedIndex: NumColumn;
  readonly executionsStarted: NumColumn;
  readonly staleRefused: NumColumn;
  readonly completedBy: RefColumn;
  readonly completedAt: NumColumn;
  /** Results other than null, by index (noop tasks have none). */
  private results: Map<number, unknown> | null = null;

  constructor(
    readonly orch: Orchestration,
    names: Interner,
    present: boolean,
  ) {
    const n = orch.count;
    this.status = n < SMALL ? new Array<number>(n).fill(present ? 0 : ABSENT) : new Uint8Array(n).fill(present ? 0 : ABSENT);
    this.epoch = new NumColumn(8, n, 1, 0);
    this.assignee = new RefColumn(n, names);
    this.assignedTerm = new NumColumn(32, n, 1, 0);
    this.leaseUntil = new NumColumn(32, n, orch.created_at, 0);
    this.assignments = new NumColumn(8, n, 1, 0);
    this.failures = new NumColumn(8, n, 1, 0);
    this.completionsApplied = new NumColumn(8, n, 1, 0);
    this.completedIndex = new NumColumn(32, n, orch.created_index, null);
    this.executionsStarted = new NumColumn(8, n, 1, 0);
    this.staleRefused = new NumColumn(8, n, 1, 0);
    this.completedBy = new RefColumn(n, names);
    this.completedAt = new NumColumn(32, n, orch.created_at, null);
  }

  has(i: number): boolean {
    return i >= 0 && i < this.orch.count && this.status[i] !== ABSENT;
  }

  statusOf(i: number): TaskStatus {
    return STATUS_NAMES[this.status[i] as number] as TaskStatus;
  }

  result(i: number): unknown {
    return this.results !== null && this.results.has(i) ? this.results.get(i) : null;
  }

  setResult(i: number, v: unknown): void {
    if (v === null) this.results?.delete(i);
    else (this.results ??= new Map()).set(i, v);
  }

  /** Remove the record (retention): its slot reads as absent, its side values go. */
  remove(i: number): void {
    this.status[i] = ABSENT;
    this.results?.delete(i);
  }

  /** A fresh object with the record's fields, in the order records always had. */
  record(i: number): TaskRecord {
    const o = this.orch;
    return {
      id: `${o.id}-${i + 1}`,
      orch: o.id,
      seq: i + 1,
      priority: o.priority as Priority,
      status: this.statusOf(i),
      epoch: this.epoch.get(i),
      assignee: this.assignee.get(i),
      assigned_term: this.assignedTerm.get(i),
      lease_until: this.leaseUntil.get(i),
      assignments: this.assignments.get(i),
      failures: this.failures.get(i),
      completions_applied: this.completionsApplied.get(i),
      completed_index: this.completedIndex.get(i),
      executions_started: this.executionsStarted.get(i),
      stale_completions_refused: this.staleRefused.get(i),
      result: this.result(i),
      completed_by: this.completedBy.get(i),
      completed_at: this.completedAt.get(i),
    };
  }

  /** Store a record read from a snapshot at seq r.seq. */
  load(r: TaskRecord): void {
    const i = r.seq - 1;
    this.status[i] = STATUS_CODE[r.status];
    this.epoch.set(i, r.epoch);
    this.assignee.set(i, r.assignee);
    this.assignedTerm.set(i, r.assigned_term);
    this.leaseUntil.set(i, r.lease_until);
    this.assignments.set(i, r.assignments);
    this.failures.set(i, r.failures);
    this.completionsApplied.set(i, r.completions_applied);
    this.completedIndex.set(i, r.completed_index);
    this.executionsStarted.set(i, r.executions_started);
    this.staleRefused.set(i, r.stale_completions_refused);
    this.setResult(i, r.result);
    this.completedBy.set(i, r.completed_by);
    this.completedAt.set(i, r.completed_at);
  }
}
