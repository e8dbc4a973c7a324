// Per-orchestration columnar storage of task records. A million-task orchestration held as
// one object per task cost ~260 bytes per task per replica (18-field object, id string, map
// entry; five replicas in one embedded process); in columns it is ~18 bytes. Every value is
// kept exactly: what does not fit a column's small encoding goes to a per-column side map.

import type { Orchestration, Priority, TaskRecord, TaskStatus } from './types.js';

export const STATUS_NAMES: readonly TaskStatus[] = ['pending', 'assigned', 'completed', 'failed'];
export const STATUS_CODE: Readonly<Record<TaskStatus, number>> = { pending: 0, assigned: 1, completed: 2, failed: 3 };
/** Status code of a seq whose record was removed by retention (or never restored). */
export const ABSENT = 255;

/** Below this count a column is a plain array (a typed array costs ~200 bytes of overhead). */
const SMALL = 64;

/**
 * Tasks per checkpoint block row (a power of two): a checkpoint writes only the blocks whose
 * tasks changed, ~230 KB each for noop tasks, instead of a million-task orchestration's ~14 MB.
 */
export const TASKS_PER_BLOCK = 16_384;

/** log2 of a block size; throws unless it is a power of two in [1, 2^30]. */
export function blockShift(tasksPerBlock: number): number {
  const shift = Math.log2(tasksPerBlock);
  if (!Number.isInteger(shift) || shift < 0 || shift > 30) throw new Error(`tasks per block = ${tasksPerBlock}; accepted: a power of two in 1..2^30`);
  return shift;
}

const DEFAULT_SHIFT = blockShift(TASKS_PER_BLOCK);

type Slots = Uint8Array | Uint16Array | Uint32Array | number[];

/** Largest slot value of width w (0: one byte, 1: two, 2: four); it means "see the side map". */
const maxOf = (w: number): number => (w === 0 ? 0xff : w === 1 ? 0xffff : 0xffffffff);

/**
 * A side map split by block (index i is in block i >>> shift): a block row carries only its
 * own block's entries, so writing one block never walks a million-entry map.
 */
class SideMaps {
  private maps: Array<Map<number, unknown> | undefined> | null = null;

  constructor(private readonly shift: number) {}

  get(i: number): unknown {
    return this.maps?.[i >>> this.shift]?.get(i);
  }

  has(i: number): boolean {
    return this.maps?.[i >>> this.shift]?.has(i) ?? false;
  }

  set(i: number, v: unknown): void {
    const maps = (this.maps ??= []);
    const b = i >>> this.shift;
    (maps[b] ??= new Map()).set(i, v);
  }

  delete(i: number): void {
    this.maps?.[i >>> this.shift]?.delete(i);
  }

  get size(): number {
    let n = 0;
    for (const m of this.maps ?? []) n += m?.size ?? 0;
    return n;
  }

  /** Block b's entries as a row part (see sideToRow). */
  blockToRow(b: number): unknown {
    return sideToRow(this.maps?.[b] ?? null);
  }

  /** Block b's entries back from blockToRow's output. */
  loadBlock(b: number, d: unknown): void {
    const m = sideFromRow(d);
    if (m !== null) (this.maps ??= [])[b] = m;
  }

  /** Entries of every block from a whole-column row part (the format before blocks). */
  loadWhole(d: unknown): void {
    const m = sideFromRow(d);
    if (m !== null) for (const [k, v] of m) this.set(k, v);
  }
}

/**
 * A numeric column: slot 0 is `zero` (0, or null for nullable fields), slot s in [1, max) is
 * `base + s - 1`, slot max means "see the side map", which holds any other value exactly
 * (negative, fractional, past 2^32, or not a number at all). Kept per checkpoint block (2^shift
 * slots): a block is allocated on its first non-zero write, one byte a slot, and widened to two
 * then four on its own when one of its values needs it. Widening a whole million-slot column
 * held its old and new copies at once (6 MB per column per replica, five replicas widening
 * together at 65.5 s of log time) and made every block wide for the values of a few; blocks
 * written before a value needed the width keep the narrow one.
 */
export class NumColumn {
  /** Slots of each block (null: no non-zero value written yet); plain arrays when n < SMALL. */
  private readonly a: Array<Slots | null>;
  /** Width of each block (see maxOf; plain arrays hold any 32-bit value: 2). */
  private readonly width: Uint8Array;
  private readonly mask: number;
  private readonly wide: SideMaps;

  constructor(
    private readonly n: number,
    private readonly base: number,
    private readonly zero: number | null,
    private readonly shift = DEFAULT_SHIFT,
  ) {
    this.wide = new SideMaps(shift);
    const blocks = Math.ceil(n / 2 ** shift);
    this.a = new Array<Slots | null>(blocks).fill(null);
    this.width = new Uint8Array(blocks);
    this.mask = 2 ** shift - 1;
  }

  get(i: number): number {
    const b = i >>> this.shift;
    const a = this.a[b];
    const s = a == null ? 0 : (a[i & this.mask] as number);
    if (s === 0) return this.zero as number;
    if (s === maxOf(this.width[b] as number)) return this.wide.get(i) as number;
    return this.base + s - 1;
  }

  set(i: number, v: unknown): void {
    const b = i >>> this.shift;
    const k = i & this.mask;
    const a0 = this.a[b] ?? null;
    if (a0 !== null && a0[k] === maxOf(this.width[b] as number)) this.wide.delete(i);
    if (v === this.zero) {
      if (a0 !== null) a0[k] = 0;
      return;
    }
    const d = typeof v === 'number' ? v - this.base + 1 : Number.NaN;
    const fits = Number.isInteger(d) && d >= 1 && d < maxOf(2);
    if (fits) while (this.a[b] == null || d >= maxOf(this.width[b] as number)) this.grow(b);
    else if (a0 === null) this.grow(b);
    const a = this.a[b] as Slots;
    if (fits) {
      a[k] = d;
      return;
    }
    a[k] = maxOf(this.width[b] as number);
    this.wide.set(i, v);
  }

  /** Slots in block b. */
  private blockLength(b: number): number {
    return Math.min(this.n, (b + 1) * 2 ** this.shift) - b * 2 ** this.shift;
  }

  /** Allocate block b (one byte a slot), or widen it keeping every slot's meaning. */
  private grow(b: number): void {
    const old = this.a[b] ?? null;
    const len = this.blockLength(b);
    if (old === null) {
      if (this.n < SMALL) {
        this.a[b] = new Array<number>(len).fill(0);
        this.width[b] = 2;
      } else this.a[b] = new Uint8Array(len);
      return;
    }
    const oldW = this.width[b] as number;
    const oldMax = maxOf(oldW);
    const w = oldW + 1;
    this.width[b] = w;
    const a = w === 1 ? new Uint16Array(len) : new Uint32Array(len);
    const max = maxOf(w);
    for (let k = 0; k < len; k++) {
      const s = old[k] as number;
      a[k] = s === oldMax ? max : s;
    }
    this.a[b] = a;
  }

  /**
   * Slots [from, to) of block b as a checkpoint row part: 0 (no non-zero value in the block
   * yet), or [width, slots, the block's side map] where slots is a plain array's slice or 'b'
   * (the bytes appended to `w`). Blocks may differ in width; loadBlock reads any of them.
   */
  blockRow(w: BinWriter, b: number, from: number, to: number): unknown {
    const a = this.a[b] ?? null;
    if (a === null) return 0;
    const side = this.wide.blockToRow(b);
    if (a instanceof Array) return [this.width[b], a.slice(0, to - from), side];
    w.push(a);
    return [this.width[b], 'b', side];
  }

  /** Block b (slots from..from+count) back from blockRow's output; other blocks are kept. */
  loadBlock(d: unknown, r: BinReader, b: number, from: number, count: number): void {
    if (d === 0) return;
    const [width, slots, side] = d as [number, number[] | 'b', unknown];
    if (slots !== 'b') {
      // Plain arrays are the small columns' only (a typed block would truncate their values).
      if (!Array.isArray(slots) || slots.length !== count || this.n >= SMALL) throw new Error(`task block ${b}: ${Array.isArray(slots) ? `${slots.length} JSON slots` : 'no slots'} for ${count} tasks of a ${this.n}-task column`);
      if (this.a[b] == null) this.grow(b);
      const a = this.a[b] as number[];
      for (let k = 0; k < count; k++) a[k] = slots[k] as number;
    } else {
      // Rows of the whole-column format's era carry the column's width: any of 0..2.
      if (!(width === 0 || width === 1 || width === 2) || this.n < SMALL) throw new Error(`task row: a byte column of width ${JSON.stringify(width)} for ${this.n} slots`);
      this.a[b] = width === 0 ? r.take(Uint8Array, count) : width === 1 ? r.take(Uint16Array, count) : r.take(Uint32Array, count);
      this.width[b] = width;
    }
    this.wide.loadBlock(b, side);
  }

  /** Back from a whole-column row part (the format before blocks; the column is fresh). */
  loadWholeRow(d: unknown, r: BinReader): void {
    if (d === 0) return;
    const [width, slots, side] = d as [number, number[] | 'b', unknown];
    const all = slots !== 'b' ? slots : width === 0 ? r.take(Uint8Array, this.n) : width === 1 ? r.take(Uint16Array, this.n) : r.take(Uint32Array, this.n);
    for (let b = 0; b < this.a.length; b++) {
      const from = b * 2 ** this.shift;
      this.a[b] = all.slice(from, from + this.blockLength(b));
      this.width[b] = width;
    }
    this.wide.loadWhole(side);
  }

  /** Values kept in the side map (for tests: the compact encoding is the common case). */
  get wideCount(): number {
    return this.wide.size;
  }

  /** Bytes a slot takes now in the widest block (0 before the first non-zero value). */
  get slotBytes(): number {
    let n = 0;
    for (const a of this.a) if (a != null) n = Math.max(n, a instanceof Array ? 8 : a.BYTES_PER_ELEMENT);
    return n;
  }

  /** Bytes the column's blocks hold (typed arrays; plain arrays counted at 8 a slot). */
  get bytes(): number {
    let n = 0;
    for (const a of this.a) if (a != null) n += a instanceof Array ? 8 * a.length : a.byteLength;
    return n;
  }
}

/** Agent ids (assignee, completed_by) as codes into a table shared by the task table: code - 1 is the index. */
export class Interner {
  readonly values: string[] = [];
  private readonly codes = new Map<string, number>();

  /** Codes as `values` lists them (restored from a checkpoint: rows hold codes). */
  static of(values: readonly string[]): Interner {
    const n = new Interner();
    for (const v of values) n.code(v);
    return n;
  }

  code(v: string): number {
    let c = this.codes.get(v);
    if (c === undefined) {
      this.values.push(v);
      c = this.values.length;
      this.codes.set(v, c);
    }
    return c;
  }
}

/** Agent ids by code (0: null); a value that is not a string is kept as is in a side map. */
export class RefColumn {
  private readonly codes: NumColumn;
  private readonly other: SideMaps;

  constructor(
    n: number,
    private readonly names: Interner,
    shift = DEFAULT_SHIFT,
  ) {
    this.codes = new NumColumn(n, 1, 0, shift);
    this.other = new SideMaps(shift);
  }

  get(i: number): string | null {
    const c = this.codes.get(i);
    if (c === 0) return null;
    if (c === -1) return this.other.get(i) as string;
    return this.names.values[c - 1] as string;
  }

  blockRow(w: BinWriter, b: number, from: number, to: number): unknown {
    return [this.codes.blockRow(w, b, from, to), this.other.blockToRow(b)];
  }

  loadBlock(d: unknown, r: BinReader, b: number, from: number, count: number): void {
    const [codes, other] = d as [unknown, unknown];
    this.codes.loadBlock(codes, r, b, from, count);
    this.other.loadBlock(b, other);
  }

  loadWholeRow(d: unknown, r: BinReader): void {
    const [codes, other] = d as [unknown, unknown];
    this.codes.loadWholeRow(codes, r);
    this.other.loadWhole(other);
  }

  set(i: number, v: unknown): void {
    if (this.codes.get(i) === -1) this.other.delete(i);
    if (v === null) this.codes.set(i, 0);
    else if (typeof v === 'string') this.codes.set(i, this.names.code(v));
    else {
      this.codes.set(i, -1);
      this.other.set(i, v);
    }
  }
}

/**
 * The task records of one orchestration, by seq - 1. Fields shared by all its tasks (orch id,
 * priority) are the orchestration's; log times and indices are offsets from its creation.
 * For checkpoints the tasks are cut in blocks of 2^shift: a block row holds every column's
 * slots of its tasks, and only blocks with a changed task (markDirty) are written again.
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
  private readonly results: SideMaps;
  /** Checkpoint blocks: count, which changed since the last take (flag and list), how many loaded. */
  readonly blocks: number;
  private readonly dirty: Uint8Array;
  private dirtyList: number[] = [];
  private loaded = 0;

  constructor(
    readonly orch: Orchestration,
    names: Interner,
    /** Every record present (new), none (to be loaded), or null: status set by the caller. */
    present: boolean | null,
    readonly shift = DEFAULT_SHIFT,
  ) {
    const n = orch.count;
    this.status = present === null ? [] : n < SMALL ? new Array<number>(n).fill(present ? 0 : ABSENT) : new Uint8Array(n).fill(present ? 0 : ABSENT);
    this.epoch = new NumColumn(n, 1, 0, shift);
    this.assignee = new RefColumn(n, names, shift);
    this.assignedTerm = new NumColumn(n, 1, 0, shift);
    this.leaseUntil = new NumColumn(n, orch.created_at, 0, shift);
    this.assignments = new NumColumn(n, 1, 0, shift);
    this.failures = new NumColumn(n, 1, 0, shift);
    this.completionsApplied = new NumColumn(n, 1, 0, shift);
    this.completedIndex = new NumColumn(n, orch.created_index, null, shift);
    this.executionsStarted = new NumColumn(n, 1, 0, shift);
    this.staleRefused = new NumColumn(n, 1, 0, shift);
    this.completedBy = new RefColumn(n, names, shift);
    this.completedAt = new NumColumn(n, orch.created_at, null, shift);
    this.results = new SideMaps(shift);
    this.blocks = Math.ceil(n / 2 ** shift);
    this.dirty = new Uint8Array(this.blocks);
  }

  has(i: number): boolean {
    return i >= 0 && i < this.orch.count && this.status[i] !== ABSENT;
  }

  /** The columns in checkpoint row order (the status column is separate). */
  private columns(): Array<NumColumn | RefColumn> {
    return [this.epoch, this.assignee, this.assignedTerm, this.leaseUntil, this.assignments, this.failures, this.completionsApplied, this.completedIndex, this.executionsStarted, this.staleRefused, this.completedBy, this.completedAt];
  }

  /** Task i's block must be written by the next checkpoint; true when it was not marked yet. */
  markDirty(i: number): boolean {
    const b = i >>> this.shift;
    if (this.dirty[b] === 1) return false;
    this.dirty[b] = 1;
    this.dirtyList.push(b);
    return true;
  }

  /** Blocks changed since the last takeDirty (every block: `all`), in block order; then none is. */
  takeDirty(all: boolean): number[] {
    const out = all ? Array.from({ length: this.blocks }, (_, b) => b) : this.dirtyList.sort((x, y) => x - y);
    this.dirty.fill(0);
    this.dirtyList = [];
    return out;
  }

  get dirtyCount(): number {
    return this.dirtyList.length;
  }

  /**
   * Block b as a checkpoint row part (JSON-able) plus bytes appended to `w`: the typed arrays'
   * slices copied as they are (platform byte order; every supported one is little-endian),
   * small columns and the block's side maps in the JSON. Cost is the block's size.
   */
  blockRow(b: number, w: BinWriter): unknown {
    const from = b << this.shift;
    const to = Math.min(this.orch.count, from + 2 ** this.shift);
    let status: unknown = 'b';
    if (this.status instanceof Array) status = this.status.slice(from, to);
    else w.push(this.status.subarray(from, to));
    return [status, this.columns().map((c) => c.blockRow(w, b, from, to)), this.results.blockToRow(b)];
  }

  /** Block b back from blockRow's output and its bytes (`bin`), exactly as it was. */
  loadBlock(b: number, d: unknown, bin: Uint8Array | undefined): void {
    if (!(Number.isInteger(b) && b >= 0 && b < this.blocks) || this.dirty[b] === 1) throw new Error(`task rows of ${this.orch.id}: block ${b} is not one of its ${this.blocks} or came twice`);
    // Marked while loading (a block seen twice is an error), cleared by finishLoad.
    this.dirty[b] = 1;
    this.loaded++;
    const from = b << this.shift;
    const count = Math.min(this.orch.count, from + 2 ** this.shift) - from;
    const [status, cols, results] = d as [number[] | 'b', unknown[], unknown];
    const typed = this.status instanceof Uint8Array;
    if (status === 'b' ? !typed : typed || !Array.isArray(status) || status.length !== count) throw new Error(`task rows of ${this.orch.id}: block ${b}'s status is not ${typed ? 'bytes' : `${count} JSON slots`}`);
    if (!Array.isArray(cols) || cols.length !== this.columns().length) throw new Error(`task rows of ${this.orch.id}: block ${b} has ${Array.isArray(cols) ? cols.length : 'no'} columns, expected ${this.columns().length}`);
    const r = new BinReader(bin ?? new Uint8Array(0));
    if (status === 'b') r.copyInto(this.status as Uint8Array, from, count);
    else for (let k = 0; k < count; k++) this.status[from + k] = status[k] as number;
    this.columns().forEach((c, k) => c.loadBlock(cols[k], r, b, from, count));
    this.results.loadBlock(b, results);
    r.end(`${this.orch.id} block ${b}`);
  }

  /** After loadBlock of every block: throws if one is missing; nothing is dirty then. */
  finishLoad(): void {
    if (this.loaded !== this.blocks) throw new Error(`task rows of ${this.orch.id}: ${this.loaded} of its ${this.blocks} task blocks`);
    this.dirty.fill(0);
  }

  /** A table for block rows to be loaded into (loadBlock, then finishLoad). */
  static forBlocks(orch: Orchestration, names: Interner, shift: number): OrchTasks {
    return new OrchTasks(orch, names, false, shift);
  }

  /** Records back from a whole-orchestration row part (the format before blocks) and its bytes. */
  static fromWholeRow(orch: Orchestration, names: Interner, d: unknown, bin: Uint8Array | undefined, shift = DEFAULT_SHIFT): OrchTasks {
    const [status, cols, results] = d as [number[] | 'b', unknown[], unknown];
    const t = new OrchTasks(orch, names, null, shift);
    const r = new BinReader(bin ?? new Uint8Array(0));
    (t as { status: Uint8Array | number[] }).status = status === 'b' ? r.take(Uint8Array, orch.count) : status;
    t.columns().forEach((c, k) => c.loadWholeRow(cols[k], r));
    t.results.loadWhole(results);
    r.end(orch.id);
    return t;
  }

  statusOf(i: number): TaskStatus {
    return STATUS_NAMES[this.status[i] as number] as TaskStatus;
  }

  result(i: number): unknown {
    return this.results.has(i) ? this.results.get(i) : null;
  }

  setResult(i: number, v: unknown): void {
    if (v === null) this.results.delete(i);
    else this.results.set(i, v);
  }

  /** Remove the record (retention): its slot reads as absent, its side values go. */
  remove(i: number): void {
    this.status[i] = ABSENT;
    this.results.delete(i);
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

/** A checkpoint row's binary part, gathered from typed arrays (copied once, at finish). */
export class BinWriter {
  private readonly parts: Uint8Array[] = [];
  private bytes = 0;

  push(a: Uint8Array | Uint16Array | Uint32Array): void {
    this.parts.push(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
    this.bytes += a.byteLength;
  }

  /** The bytes (a copy: the columns go on changing), or undefined when there are none. */
  finish(): Uint8Array | undefined {
    if (this.parts.length === 0) return undefined;
    const out = Buffer.allocUnsafe(this.bytes);
    let at = 0;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.byteLength;
    }
    return out;
  }
}

/** Reads typed arrays back from a row's binary part, in the order BinWriter took them. */
export class BinReader {
  private at = 0;

  constructor(private readonly buf: Uint8Array) {}

  take<T extends Uint8Array | Uint16Array | Uint32Array>(ctor: { new (n: number): T; BYTES_PER_ELEMENT: number }, n: number): T {
    const bytes = n * ctor.BYTES_PER_ELEMENT;
    if (this.at + bytes > this.buf.byteLength) throw new Error(`task row: column bytes end at ${this.buf.byteLength}, expected at least ${this.at + bytes}`);
    const a = new ctor(n);
    // A copy into a fresh (aligned) array: the row's buffer may start at any offset.
    new Uint8Array(a.buffer).set(this.buf.subarray(this.at, this.at + bytes));
    this.at += bytes;
    return a;
  }

  /** The next count slots' bytes copied into `a` at slot `at` (the same slot width). */
  copyInto(a: Uint8Array | Uint16Array | Uint32Array, at: number, count: number): void {
    const bytes = count * a.BYTES_PER_ELEMENT;
    if (this.at + bytes > this.buf.byteLength) throw new Error(`task row: column bytes end at ${this.buf.byteLength}, expected at least ${this.at + bytes}`);
    new Uint8Array(a.buffer, a.byteOffset + at * a.BYTES_PER_ELEMENT, bytes).set(this.buf.subarray(this.at, this.at + bytes));
    this.at += bytes;
  }

  end(where: string): void {
    if (this.at !== this.buf.byteLength) throw new Error(`task row of ${where}: ${this.buf.byteLength - this.at} column bytes left over`);
  }
}

/**
 * A side map as JSON: 0 when empty, else [indices, values, indices whose value is undefined]
 * (JSON has no undefined; a record shows one as a missing field, which must come back so).
 */
function sideToRow(m: Map<number, unknown> | null): unknown {
  if (m === null || m.size === 0) return 0;
  const keys: number[] = [];
  const vals: unknown[] = [];
  const undef: number[] = [];
  for (const [k, v] of m) {
    if (v === undefined) undef.push(k);
    else {
      keys.push(k);
      vals.push(v);
    }
  }
  return [keys, vals, undef];
}

function sideFromRow(d: unknown): Map<number, unknown> | null {
  if (d === 0) return null;
  const [keys, vals, undef] = d as [number[], unknown[], number[]];
  const m = new Map<number, unknown>();
  keys.forEach((k, i) => m.set(k, vals[i]));
  for (const k of undef) m.set(k, undefined);
  return m;
}
