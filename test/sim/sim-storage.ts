// Simulated disk for the simulator: MemoryStorage semantics, plus an optional asynchronous
// fsync (saveAsync) whose completion arrives after a seeded virtual delay, and two crash
// models. A process crash keeps everything written (the OS still has it); a power failure
// keeps only what was fsynced, so a host that acted on a batch before its fsync completed
// (sent a vote, acknowledged a write) is caught losing it.

import type { ConfState, RestartState, Snapshot } from '../../src/raft/types.js';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import type { LogStorage, PersistBatch, StorageStats } from '../../src/storage/types.js';
import type { Clock, TimerHandle } from '../../src/util/clock.js';
import type { Prng } from '../../src/util/prng.js';

interface PendingSync {
  batch: PersistBatch;
  done: (err: Error | null) => void;
  timer: TimerHandle;
}

/** Synchronous store: save() returns durable (MemoryStorage semantics). */
export class SimStorage implements LogStorage {
  /** What a restarted process reads back. */
  private written = new MemoryStorage();
  /** What survives a power failure. */
  private durable = new MemoryStorage();
  private pending: PendingSync[] = [];
  /** Completion time of the latest scheduled fsync: they complete in order. */
  private lastSyncAt = 0;
  private readonly conf: ConfState = { voters: [], learners: [] };

  /** `maxSyncMs`: each asynchronous fsync (AsyncSimStorage) takes 0..maxSyncMs virtual ms. */
  constructor(
    protected readonly clock: Clock,
    protected readonly prng: Prng,
    readonly maxSyncMs = 0,
  ) {}

  load(initialConf: ConfState): RestartState {
    return this.written.load(initialConf);
  }

  save(batch: PersistBatch): void {
    this.written.save(batch);
    // A synchronous commit fsyncs the file: everything written before it is durable too.
    this.syncAll(false);
    this.durable.save(batch);
  }

  protected saveWithAsyncSync(batch: PersistBatch, done: (err: Error | null) => void): boolean {
    this.written.save(batch);
    const delay = this.prng.int(0, this.maxSyncMs + 1);
    const at = Math.max(this.clock.now() + delay, this.lastSyncAt);
    this.lastSyncAt = at;
    const p: PendingSync = {
      batch,
      done,
      timer: this.clock.setTimeout(() => this.complete(p), at - this.clock.now()),
    };
    this.pending.push(p);
    return false;
  }

  compact(snapshot: Snapshot): void {
    this.written.compact(snapshot);
    this.syncAll(false);
    this.durable.compact(snapshot);
  }

  stats(): StorageStats {
    return this.written.stats();
  }

  close(): void {}

  /** The process died: nothing more runs, but the OS still writes out what it was given. */
  processCrash(): void {
    this.syncAll(true);
  }

  /** The machine lost power: whatever was not fsynced is gone. */
  powerFailure(): void {
    for (const p of this.pending) this.clock.clearTimeout(p.timer);
    this.pending = [];
    this.written = clone(this.durable, this.conf);
  }

  /** Batches written but not yet durable. */
  get unsynced(): number {
    return this.pending.length;
  }

  private complete(p: PendingSync): void {
    // In order: every earlier batch is durable by now.
    while (this.pending.length > 0) {
      const q = this.pending.shift() as PendingSync;
      this.durable.save(q.batch);
      this.clock.clearTimeout(q.timer);
      q.done(null);
      if (q === p) return;
    }
  }

  /** Make every pending batch durable; `silent`: without calling back (a dead process). */
  private syncAll(silent: boolean): void {
    if (this.pending.length === 0) return;
    const ps = this.pending;
    this.pending = [];
    for (const p of ps) {
      this.durable.save(p.batch);
      this.clock.clearTimeout(p.timer);
    }
    if (!silent) {
      // Their fsync completed (the later synchronous one covers them): tell the caller, but
      // never from inside save()/compact(), as the contract asks.
      for (const p of ps) this.clock.setTimeout(() => p.done(null), 0);
    }
  }
}

function clone(src: MemoryStorage, conf: ConfState): MemoryStorage {
  const st = src.load(conf);
  const out = new MemoryStorage();
  if (st.snapshot) out.save({ snapshot: { metadata: st.snapshot, data: st.snapshotData ?? '' }, entries: [], hardState: null });
  out.save({ snapshot: null, entries: st.entries, hardState: st.hardState });
  return out;
}

/** A store whose fsync runs off the event loop: the host gets saveAsync. */
export class AsyncSimStorage extends SimStorage {
  saveAsync(batch: PersistBatch, done: (err: Error | null) => void): boolean {
    return this.saveWithAsyncSync(batch, done);
  }
}
