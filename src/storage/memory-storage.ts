// In-memory LogStorage: the reference semantics that SqliteStorage must match, used by the
// simulator and tests. Crash model: whatever save() accepted is durable; a crashed node loses
// only its in-memory core and rebuilds it from load() on this same object.
// The invariant checks shared with SqliteStorage live here so both stores reject the same input.

import type { ConfState, Entry, HardState, RestartState, Snapshot, SnapshotMetadata } from '../raft/types.js';
import type { LogStorage, PersistBatch, StorageStats } from './types.js';

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

/** A Ready with nothing durable in it; stores skip it rather than pay for a sync. */
export function isEmptyBatch(b: PersistBatch): boolean {
  return !b.snapshot && b.entries.length === 0 && !b.hardState;
}

export class MemoryStorage implements LogStorage {
  private static readonly WHERE = 'MemoryStorage';
  private hardState: HardState = { term: 0, vote: null, commit: 0 };
  private snapshot: Snapshot | null = null;
  private entries: Entry[] = [];
  private bytesWritten = 0;
  private syncs = 0;

  load(initialConf: ConfState): RestartState {
    const snap = this.snapshot;
    checkLog(snap?.metadata ?? null, this.entries, MemoryStorage.WHERE);
    // Fresh copies: the core may mutate what it loads without touching the "disk".
    const state: RestartState = {
      hardState: { ...this.hardState },
      snapshot: snap ? structuredClone(snap.metadata) : null,
      entries: this.entries.map((e) => ({ ...e })),
      initialConf,
    };
    if (snap) state.snapshotData = snap.data;
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

  stats(): StorageStats {
    return { bytesWritten: this.bytesWritten, syncs: this.syncs, syncMsTotal: 0, entryCount: this.entries.length, diskBytes: 0 };
  }

  /** Contents survive close, as a disk's would; a "restarted" node calls load() again. */
  close(): void {}

  private snapIndex(): number {
    return this.snapshot?.metadata.index ?? 0;
  }

  private lastIndex(): number {
    return this.entries.at(-1)?.index ?? this.snapIndex();
  }
}
