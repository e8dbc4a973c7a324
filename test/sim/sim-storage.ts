// Simulated disk for the simulator. Two images of one member's store:
//  - `written`: what the OS holds (page cache + disk): what a restarted process reads back;
//  - `durable`: what is on the platter: what survives a power failure.
// A batch is written at once and becomes durable when its fsync completes (synchronous
// stores: inside save; AsyncSimStorage: after a seeded virtual delay). Faults:
//  - process crash: the process dies; its unsynced batches stay written (the kernel still
//    has them) but are NOT durable, and no fsync callback of that life ever runs;
//  - open: like SqliteStorage.open, load() fsyncs what it reads, so a restarted member
//    never acts on data that a later power failure could take away (`syncOnOpen: false`
//    plants the bug of skipping that sync);
//  - power failure: the kernel had written back a random prefix of the unsynced batches; the
//    batch at the cut was torn mid-write and, SQLite transactions being atomic, is lost
//    whole, as is everything after it;
//  - fsync error (failNextSync): the fsync reports an error and the kernel drops the dirty
//    pages (fsyncgate): every unsynced batch is gone; the host must stop, never ack;
//  - wipe: the disk is replaced by an empty one.

import type { ConfState, Entry, HardState, Snapshot } from '../../src/raft/types.js';
import { CheckpointImage, checkBatch, checkCheckpoint, checkCompact, checkLog, isEmptyBatch } from '../../src/storage/memory-storage.js';
import type { LoadedState, LogStorage, MachineCheckpoint, PersistBatch, StorageStats } from '../../src/storage/types.js';
import type { Clock, TimerHandle } from '../../src/util/clock.js';
import type { Prng } from '../../src/util/prng.js';

/** One image of a store: snapshot, checkpoint rows, log suffix, hard state (MemoryStorage semantics). */
export class DiskImage {
  hardState: HardState = { term: 0, vote: null, commit: 0 };
  snapshot: Snapshot | null = null;
  rows = new CheckpointImage();
  entries: Entry[] = [];

  save(batch: PersistBatch): void {
    if (isEmptyBatch(batch)) return;
    checkBatch(batch, this.snapIndex(), this.lastIndex(), 'SimStorage');
    if (batch.snapshot) {
      this.snapshot = structuredClone(batch.snapshot);
      this.entries = [];
    }
    const first = batch.entries[0];
    if (first) {
      this.entries.length = first.index - this.snapIndex() - 1;
      for (const e of batch.entries) this.entries.push({ ...e });
    }
    if (batch.hardState) this.hardState = { ...batch.hardState };
  }

  compact(snapshot: Snapshot): void {
    const at = snapshot.metadata.index;
    if (at <= this.snapIndex()) return;
    checkCompact(snapshot.metadata, this.lastIndex(), this.entries[at - this.snapIndex() - 1]?.term, 'SimStorage');
    this.entries = this.entries.slice(at - this.snapIndex());
    this.snapshot = structuredClone(snapshot);
  }

  /** A checkpoint (one transaction): rows, metadata, log dropped up to it; false if stale. */
  checkpoint(c: MachineCheckpoint): boolean {
    const at = c.metadata.index;
    if (!checkCheckpoint(c, this.snapIndex(), this.rows.index, this.lastIndex(), (i) => this.entries[i - this.snapIndex() - 1]?.term, 'SimStorage')) return false;
    this.entries = this.entries.slice(at - this.snapIndex());
    this.rows.apply(structuredClone(c));
    if (this.snapshot && this.snapshot.metadata.index <= at) this.snapshot = null;
    return true;
  }

  load(initialConf: ConfState): LoadedState {
    const snap = this.snapshot;
    const fromRows = this.rows.index > 0 && this.rows.index >= (snap?.metadata.index ?? 0);
    const meta = fromRows ? this.rows.metadata : (snap?.metadata ?? null);
    checkLog(meta, this.entries, 'SimStorage');
    const st: LoadedState = {
      hardState: { ...this.hardState },
      snapshot: meta ? structuredClone(meta) : null,
      entries: this.entries.map((e) => ({ ...e })),
      initialConf,
    };
    if (fromRows) st.checkpoint = this.rows.reader();
    else if (snap) st.snapshotData = snap.data;
    return st;
  }

  copy(): DiskImage {
    const d = new DiskImage();
    d.hardState = { ...this.hardState };
    d.snapshot = this.snapshot ? structuredClone(this.snapshot) : null;
    d.rows = this.rows.copy();
    d.entries = this.entries.map((e) => ({ ...e }));
    return d;
  }

  /** Whether this image holds entry `index` of `term` (in its log, or under its snapshot). */
  holds(index: number, term: number): boolean {
    if (index <= this.snapIndex()) return true;
    return this.entries[index - this.snapIndex() - 1]?.term === term;
  }

  snapIndex(): number {
    return Math.max(this.snapshot?.metadata.index ?? 0, this.rows.index);
  }

  lastIndex(): number {
    return this.entries.at(-1)?.index ?? this.snapIndex();
  }
}

interface PendingSync {
  batch: PersistBatch;
  /** null once the life that wrote it died: nobody is waiting any more. */
  done: ((err: Error | null) => void) | null;
  timer: TimerHandle | null;
  /** This fsync reports an error (armed by failNextSync when it started). */
  fail: boolean;
}

export interface PowerFailureResult {
  /** Unsynced batches the kernel had written back: they survive. */
  kept: number;
  /** Unsynced batches lost (the first of them torn mid-write and rolled back whole). */
  lost: number;
  /** The batch at the cut spans several rows (entries, hard state, snapshot): a torn
   * transaction, which must vanish whole. */
  torn: boolean;
}

/** Synchronous store: save() returns durable. */
export class SimStorage implements LogStorage {
  private written = new DiskImage();
  private durable = new DiskImage();
  /** Written but not yet durable, oldest first (possibly from an earlier life). */
  private pending: PendingSync[] = [];
  /** Completion time of the latest scheduled fsync: they complete in order. */
  private lastSyncAt = 0;
  private bytesWritten = 0;
  private syncs = 0;
  /** Model SqliteStorage.open: make everything loaded durable. false plants the bug. */
  syncOnOpen = true;
  /** The next asynchronous fsync fails. */
  failNextSync = false;

  /** No fsync error from here: neither an armed one nor one of an fsync already in flight. */
  disarmFsyncErrors(): void {
    this.failNextSync = false;
    for (const p of this.pending) p.fail = false;
  }
  /** Batches that were unsynced when the last load() read them. */
  unsyncedAtLastOpen = 0;
  /** Called when an injected fsync error was reported to the host. */
  onFsyncError: (() => void) | null = null;

  /** `maxSyncMs`: each asynchronous fsync (AsyncSimStorage) takes 0..maxSyncMs virtual ms. */
  constructor(
    protected readonly clock: Clock,
    protected readonly prng: Prng,
    readonly maxSyncMs = 0,
  ) {}

  load(initialConf: ConfState): LoadedState {
    this.unsyncedAtLastOpen = this.pending.length;
    if (this.syncOnOpen) this.syncAll(true);
    return this.written.load(initialConf);
  }

  save(batch: PersistBatch): void {
    if (isEmptyBatch(batch)) return;
    this.written.save(batch);
    this.count(batch);
    // A synchronous commit fsyncs the file: everything written before it is durable too.
    this.syncAll(false);
    this.durable.save(batch);
  }

  protected saveWithAsyncSync(batch: PersistBatch, done: (err: Error | null) => void): boolean {
    this.written.save(batch);
    this.count(batch);
    const delay = this.prng.int(0, this.maxSyncMs + 1);
    const at = Math.max(this.clock.now() + delay, this.lastSyncAt);
    this.lastSyncAt = at;
    const p: PendingSync = { batch, done, timer: null, fail: this.failNextSync };
    this.failNextSync = false;
    p.timer = this.clock.setTimeout(() => (p.fail ? this.fsyncError(p) : this.complete(p)), at - this.clock.now());
    this.pending.push(p);
    return false;
  }

  compact(snapshot: Snapshot): void {
    this.written.compact(snapshot);
    this.syncAll(false);
    this.durable.compact(snapshot);
  }

  /** Like compact: written, then durable with everything before it (a synchronous commit). */
  checkpoint(c: MachineCheckpoint): boolean {
    if (!this.written.checkpoint(c)) return false;
    this.bytesWritten += JSON.stringify(c).length;
    this.syncAll(false);
    this.durable.checkpoint(c);
    return true;
  }

  stats(): StorageStats {
    return { bytesWritten: this.bytesWritten, syncs: this.syncs, syncMsTotal: 0, entryCount: this.written.entries.length, diskBytes: 0 };
  }

  close(): void {}

  /** The process died: nothing more runs; what it wrote stays written but not durable. */
  processCrash(): void {
    for (const p of this.pending) {
      if (p.timer) this.clock.clearTimeout(p.timer);
      p.timer = null;
      p.done = null;
    }
  }

  /** The machine lost power: a random prefix of the unsynced batches had been written back;
   * the rest is gone (the batch at the cut torn and rolled back whole). */
  powerFailure(): PowerFailureResult {
    this.processCrash();
    const n = this.pending.length;
    const kept = n === 0 ? 0 : this.prng.int(0, n + 1);
    for (const p of this.pending.slice(0, kept)) this.durable.save(p.batch);
    const cut = this.pending[kept]?.batch;
    const rows = cut ? cut.entries.length + (cut.hardState ? 1 : 0) + (cut.snapshot ? 1 : 0) : 0;
    this.pending = [];
    this.written = this.durable.copy();
    return { kept, lost: n - kept, torn: rows > 1 };
  }

  /** The disk is replaced by an empty one. */
  wipe(): void {
    this.processCrash();
    this.pending = [];
    this.written = new DiskImage();
    this.durable = new DiskImage();
  }

  /** Batches written but not yet durable. */
  get unsynced(): number {
    return this.pending.length;
  }

  /** Entries written but not yet durable. */
  get unsyncedEntries(): number {
    let n = 0;
    for (const p of this.pending) n += p.batch.entries.length;
    return n;
  }

  /** What survives a power failure (for the checker). */
  get durableImage(): DiskImage {
    return this.durable;
  }

  private count(batch: PersistBatch): void {
    this.bytesWritten += JSON.stringify(batch).length;
    this.syncs++;
  }

  private complete(p: PendingSync): void {
    // In order: every earlier batch is durable by now.
    while (this.pending.length > 0) {
      const q = this.pending.shift() as PendingSync;
      this.durable.save(q.batch);
      if (q.timer) this.clock.clearTimeout(q.timer);
      q.done?.(null);
      if (q === p) return;
    }
  }

  /** fsync failed: the kernel dropped the dirty pages, so no unsynced batch survives; the
   * host is told (and must stop). Its rethrow is this simulated process dying. */
  private fsyncError(p: PendingSync): void {
    const done = p.done;
    this.processCrash();
    this.pending = [];
    this.written = this.durable.copy();
    const err = new Error('injected fsync failure (EIO)');
    this.onFsyncError?.();
    try {
      done?.(err);
    } catch (e) {
      if (e !== err) throw e;
    }
  }

  /** Make every pending batch durable; `silent`: without calling back (a dead process). */
  private syncAll(silent: boolean): void {
    if (this.pending.length === 0) return;
    const ps = this.pending;
    this.pending = [];
    for (const p of ps) {
      this.durable.save(p.batch);
      if (p.timer) this.clock.clearTimeout(p.timer);
    }
    if (!silent) {
      // Their fsync completed (the later synchronous one covers them): tell the caller, but
      // never from inside save()/compact(), as the contract asks.
      for (const p of ps) {
        const done = p.done;
        if (done) this.clock.setTimeout(() => done(null), 0);
      }
    }
  }
}

/** A store whose fsync runs off the event loop: the host gets saveAsync. */
export class AsyncSimStorage extends SimStorage {
  saveAsync(batch: PersistBatch, done: (err: Error | null) => void): boolean {
    return this.saveWithAsyncSync(batch, done);
  }
}
