// In-memory LogStorage: the reference semantics that SqliteStorage must match, used by the
// simulator and tests. Crash model: whatever save() accepted is durable; a crashed node loses
// only its in-memory core and rebuilds it from load() on this same object.
// The invariant checks shared with SqliteStorage live here so both stores reject the same input.

import type { ConfState, Entry, HardState, Snapshot, SnapshotMetadata } from '../raft/types.js';
import { CHECKPOINT_TABLES, type CheckpointReader, type CheckpointRow, type CheckpointTable, type LoadedState, type LogStorage, type MachineCheckpoint, type PersistBatch, type StorageStats, type StoredRows } from './types.js';

const ENTRY_TYPES: ReadonlySet<string> = new Set(['normal', 'conf', 'noop']);

/**
 * Throws unless `batch` can be applied to a log holding (snapIndex, lastIndex]. Checked before
 * anything is written, so a rejected batch leaves the store untouched.
 */
export function checkBatch(batch: PersistBatch, snapIndex: number, lastIndex: number, where: string): void {
  let base = snapIndex;
  let last = lastIndex;
  if (batch.snapshot) {
    const at = batch.snapshot.metadata.index;
    // Installing an older snapshot would move the state machine backwards.
    if (at < snapIndex) throw new Error(`${where}: snapshot at ${at} is older than the stored snapshot at ${snapIndex}`);
    base = last = at; // install discards the whole log
  }
  const es = batch.entries;
  const first = es[0]?.index;
  if (first === undefined) return;
  // A gap (or an entry covered by the snapshot) would make the log unloadable later.
  if (first <= base || first > last + 1) {
    throw new Error(`${where}: entries starting at ${first} do not attach to the log (${base}, ${last}]`);
  }
  es.forEach((e, i) => {
    if (e.index !== first + i) throw new Error(`${where}: batch entries not contiguous at position ${i} (index ${e.index}, expected ${first + i})`);
  });
}

/** Throws unless a compaction snapshot lies within the log and agrees with it on the term. */
export function checkCompact(meta: SnapshotMetadata, lastIndex: number, termAtIndex: number | undefined, where: string): void {
  if (meta.index > lastIndex) throw new Error(`${where}: cannot compact to ${meta.index}, log ends at ${lastIndex}`);
  if (termAtIndex !== meta.term) {
    throw new Error(`${where}: snapshot at ${meta.index} has term ${meta.term} but the log has term ${termAtIndex}`);
  }
}

/** Restart-time assertion: entries start right after the snapshot, are contiguous, terms never drop. */
export function checkLog(snapshot: SnapshotMetadata | null, entries: readonly Entry[], where: string): void {
  let expect = (snapshot?.index ?? 0) + 1;
  let term = snapshot?.term ?? 0;
  for (const e of entries) {
    if (e.index !== expect) {
      const after = snapshot ? `the snapshot at ${snapshot.index}` : 'the start of the log';
      throw new Error(`${where}: corrupt log: expected entry ${expect} after ${after}, found ${e.index}`);
    }
    if (e.term < term) throw new Error(`${where}: corrupt log: entry ${e.index} has term ${e.term} < preceding term ${term}`);
    if (!ENTRY_TYPES.has(e.type)) throw new Error(`${where}: corrupt log: entry ${e.index} has unknown type ${JSON.stringify(e.type)}`);
    expect++;
    term = e.term;
  }
}

/**
 * Throws unless checkpoint `c` may be stored over a log whose snapshot (or checkpoint) ends at
 * `snapIndex` and whose rows are `rowsIndex`'s: it moves forward, or turns the installed
 * snapshot at `snapIndex` into rows (every table cleared), and agrees with the log's term.
 * Returns false for a stale one (at or below the stored rows; nothing to do).
 */
export function checkCheckpoint(c: MachineCheckpoint, snapIndex: number, rowsIndex: number, lastIndex: number, termAt: (i: number) => number | undefined, where: string): boolean {
  const at = c.metadata.index;
  if (at <= rowsIndex) return false;
  if (at < snapIndex) return false;
  if (at === snapIndex) {
    // The rows replace an installed snapshot: they must be the whole state.
    const partial = CHECKPOINT_TABLES.filter((t) => !c.tables[t].clear);
    if (partial.length > 0) throw new Error(`${where}: checkpoint at ${at} replaces the snapshot there but does not rewrite ${partial.join(', ')}`);
    return true;
  }
  checkCompact(c.metadata, lastIndex, termAt(at), where);
  return true;
}

/**
 * A checkpoint's rows held in memory (MemoryStorage, the simulator's disk): the reference
 * semantics of SqliteStorage's machine_* tables. Rows are copied in, and read back sorted by
 * ord, so nothing aliases the caller's objects.
 */
export class CheckpointImage {
  metadata: SnapshotMetadata | null = null;
  meta = '';
  tables = new Map<CheckpointTable, Map<number, CheckpointRow>>(CHECKPOINT_TABLES.map((t) => [t, new Map()]));

  apply(c: MachineCheckpoint): void {
    for (const t of CHECKPOINT_TABLES) {
      const ch = c.tables[t];
      const rows = this.tables.get(t) as Map<number, CheckpointRow>;
      if (ch.clear) rows.clear();
      for (const ord of ch.del) rows.delete(ord);
      for (const [ord, json, bin, find, eager] of ch.put) rows.set(ord, [ord, json, bin?.slice(), find, eager]);
    }
    this.meta = c.meta;
    this.metadata = structuredClone(c.metadata);
  }

  /** The rows as of now (later changes to the image do not show); parsed as they are read. */
  reader(): CheckpointReader {
    const sorted = new Map(
      [...this.tables].map(([t, rows]) => [t, [...rows.values()].sort((a, b) => a[0] - b[0]).map(([ord, json, bin]): CheckpointRow => (bin === undefined ? [ord, json] : [ord, json, bin.slice()]))]),
    );
    const of = (t: CheckpointTable): CheckpointRow[] => sorted.get(t) ?? [];
    return {
      meta: this.meta,
      rows: (t) => of(t).map(([ord, json, bin]) => (bin === undefined ? [ord, JSON.parse(json) as unknown] : [ord, JSON.parse(json) as unknown, bin.slice()])),
      jsonRows: (t, each) => {
        for (const [ord, json] of of(t)) each(ord, json);
      },
      storedRows: (t) => this.storedRows(t),
    };
  }

  /**
   * SqliteStorage's on-demand reads: of the live rows (later checkpoints show, as in the
   * file), null when some row has no lookup key, so the simulator restarts its machines the
   * way a member process does.
   */
  private storedRows(t: CheckpointTable): StoredRows | null {
    const rows = this.tables.get(t) as Map<number, CheckpointRow>;
    for (const r of rows.values()) if (r[3] === undefined) return null;
    const sorted = (keep: (r: CheckpointRow) => boolean): Array<[number, string]> =>
      [...rows.values()].filter(keep).sort((a, b) => a[0] - b[0]).map(([ord, json]) => [ord, json]);
    return {
      count: rows.size,
      find: (key) => sorted((r) => r[3] === key),
      eager: (each) => {
        for (const [ord, json] of sorted((r) => r[4] === true)) each(ord, json);
      },
      all: (each) => {
        for (const [ord, json] of sorted(() => true)) each(ord, json);
      },
    };
  }

  copy(): CheckpointImage {
    const c = new CheckpointImage();
    c.metadata = structuredClone(this.metadata);
    c.meta = this.meta;
    c.tables = new Map([...this.tables].map(([t, rows]) => [t, new Map(rows)]));
    return c;
  }

  get index(): number {
    return this.metadata?.index ?? 0;
  }
}

/** A Ready with nothing durable in it; stores skip it rather than pay for a sync. */
export function isEmptyBatch(b: PersistBatch): boolean {
  return !b.snapshot && b.entries.length === 0 && !b.hardState;
}

export class MemoryStorage implements LogStorage {
  private static readonly WHERE = 'MemoryStorage';
  private hardState: HardState = { term: 0, vote: null, commit: 0 };
  private snapshot: Snapshot | null = null;
  /** The machine's rows; the state at the log's start is theirs when they are newer than `snapshot`. */
  private rows = new CheckpointImage();
  private entries: Entry[] = [];
  private bytesWritten = 0;
  private syncs = 0;

  load(initialConf: ConfState): LoadedState {
    const snap = this.snapshot;
    const fromRows = this.rows.index > 0 && this.rows.index >= (snap?.metadata.index ?? 0);
    const meta = fromRows ? this.rows.metadata : (snap?.metadata ?? null);
    checkLog(meta, this.entries, MemoryStorage.WHERE);
    // Fresh copies: the core may mutate what it loads without touching the "disk".
    const state: LoadedState = {
      hardState: { ...this.hardState },
      snapshot: meta ? structuredClone(meta) : null,
      entries: this.entries.map((e) => ({ ...e })),
      initialConf,
    };
    if (fromRows) state.checkpoint = this.rows.reader();
    else if (snap) state.snapshotData = snap.data;
    return state;
  }

  save(batch: PersistBatch): void {
    if (isEmptyBatch(batch)) return; // nothing to make durable: no sync counted
    checkBatch(batch, this.snapIndex(), this.lastIndex(), MemoryStorage.WHERE);
    // One serialization yields both the byte count and a copy the caller cannot alias.
    const json = JSON.stringify(batch);
    const copy = JSON.parse(json) as PersistBatch;
    if (copy.snapshot) {
      this.snapshot = copy.snapshot;
      this.entries = [];
    }
    const first = copy.entries[0];
    if (first) {
      this.entries.length = first.index - this.snapIndex() - 1; // drop the conflicting suffix
      for (const e of copy.entries) this.entries.push(e);
    }
    if (copy.hardState) this.hardState = copy.hardState;
    this.bytesWritten += Buffer.byteLength(json);
    this.syncs++;
  }

  compact(snapshot: Snapshot): void {
    const at = snapshot.metadata.index;
    // Stale (e.g. a leader's snapshot was installed meanwhile): the stored one already covers it.
    if (at <= this.snapIndex()) return;
    checkCompact(snapshot.metadata, this.lastIndex(), this.entries[at - this.snapIndex() - 1]?.term, MemoryStorage.WHERE);
    const json = JSON.stringify(snapshot);
    this.entries = this.entries.slice(at - this.snapIndex());
    this.snapshot = JSON.parse(json) as Snapshot;
    this.bytesWritten += Buffer.byteLength(json);
    this.syncs++;
  }

  checkpoint(c: MachineCheckpoint): boolean {
    const at = c.metadata.index;
    if (!checkCheckpoint(c, this.snapIndex(), this.rows.index, this.lastIndex(), (i) => this.entries[i - this.snapIndex() - 1]?.term, MemoryStorage.WHERE)) return false;
    let bytes = Buffer.byteLength(c.meta);
    for (const t of CHECKPOINT_TABLES) for (const [, json, bin] of c.tables[t].put) bytes += 8 + Buffer.byteLength(json) + (bin?.byteLength ?? 0);
    this.entries = this.entries.slice(at - this.snapIndex());
    // apply() copies what it keeps (row bytes included): nothing aliases the caller's.
    this.rows.apply(c);
    // The rows are the newest state now; an older snapshot would only take space.
    if (this.snapshot && this.snapshot.metadata.index <= at) this.snapshot = null;
    this.bytesWritten += bytes;
    this.syncs++;
    return true;
  }

  stats(): StorageStats {
    return { bytesWritten: this.bytesWritten, syncs: this.syncs, syncMsTotal: 0, entryCount: this.entries.length, diskBytes: 0 };
  }

  /** Contents survive close, as a disk's would; a "restarted" node calls load() again. */
  close(): void {}

  /** Where the log starts: after the newer of the snapshot and the rows. */
  private snapIndex(): number {
    return Math.max(this.snapshot?.metadata.index ?? 0, this.rows.index);
  }

  private lastIndex(): number {
    return this.entries.at(-1)?.index ?? this.snapIndex();
  }
}
