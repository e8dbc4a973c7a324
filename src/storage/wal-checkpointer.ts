// WAL checkpoints off the event loop. SQLite's automatic checkpoint runs inside the commit
// that crosses the threshold, on the caller's thread, and fsyncs the WAL and the database
// there: with 1 MiB values every fourth write of each member held the loop for it (measured
// on the shared 2-core machine: 70 % of the SQLite time of a 1 MiB burst, single writes up to
// 230 ms). Storages opened with checkpoint 'worker' turn the automatic checkpoint off and
// ask this worker thread instead, which opens its own connection to the file and runs a PASSIVE
// checkpoint (it never blocks the writer; SQLite's WAL locking makes the two connections safe).

import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { logger } from '../util/logger.js';

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.sqlite);
const done = new Int32Array(workerData.done);
parentPort.on('message', ({ id, file }) => {
  let db;
  try {
    // The member's file exists (its writer created it); WAL mode is recorded in the file.
    db = new Database(file, { fileMustExist: true });
    db.pragma('busy_timeout = 1000');
    // Again while the writer appended during the pass: SQLite restarts the WAL from its start
    // only once a checkpoint has copied all of it, and a pass copies only what it saw at its
    // start. Caught up when a pass finds the WAL as long as the one before did.
    let r = db.pragma('wal_checkpoint(PASSIVE)')[0];
    let passes = 1;
    while (r.busy === 0 && passes < workerData.maxPasses) {
      const next = db.pragma('wal_checkpoint(PASSIVE)')[0];
      passes++;
      const same = next.log === r.log;
      r = next;
      if (same) break;
    }
    parentPort.postMessage({ id, ok: true, log: r.log, checkpointed: r.checkpointed, passes });
  } catch (e) {
    parentPort.postMessage({ id, ok: false, error: String(e && e.message || e) });
  } finally {
    // Never the last connection while the writer is open, so closing checkpoints nothing.
    try { if (db) db.close(); } catch {}
    // The file is no longer open here (see waitIdle).
    Atomics.store(done, 0, id);
    Atomics.notify(done, 0);
  }
});
`;

/** A checkpoint's last pass: WAL frames then, and how many of them it copied. */
export interface CheckpointResult {
  log: number;
  checkpointed: number;
  passes: number;
}

type Done = (err: Error | null, result?: CheckpointResult) => void;

/** PASSIVE passes one request runs at most while the writer keeps appending. */
const MAX_PASSES = 4;

class Checkpointer {
  private worker: Worker | null = null;
  private failed = false;
  private seq = 0;
  private readonly pending = new Map<number, Done>();
  /** The last request id whose connection the worker closed (shared with it). */
  private readonly done = new Int32Array(new SharedArrayBuffer(4));
  /** The latest request per file. */
  private readonly lastFor = new Map<string, number>();

  /** Checkpoint `file` on the worker; false when no worker can run (do it inline instead). */
  request(file: string, done: Done): boolean {
    const w = this.ensure();
    if (!w) return false;
    const id = ++this.seq;
    this.pending.set(id, done);
    this.lastFor.set(file, id);
    // Keeps the process alive only while a checkpoint is in flight.
    if (this.pending.size === 1) w.ref();
    w.postMessage({ id, file });
    return true;
  }

  /**
   * Block until the worker no longer has `file` open (its requests done), at most timeoutMs;
   * false on timeout. For a storage's close: a checkpoint still running on a closed member's
   * file recreated its -wal and -shm files while the directory was being removed (the demo
   * failed with ENOTEMPTY in CI).
   */
  waitIdle(file: string, timeoutMs: number): boolean {
    const id = this.lastFor.get(file);
    if (id === undefined) return true;
    const until = performance.now() + timeoutMs;
    for (;;) {
      const cur = Atomics.load(this.done, 0);
      if (cur >= id || this.failed) break;
      const left = until - performance.now();
      if (left <= 0) return false;
      Atomics.wait(this.done, 0, cur, left);
    }
    this.lastFor.delete(file);
    return true;
  }

  private ensure(): Worker | null {
    if (this.worker || this.failed) return this.worker;
    try {
      const sqlite = createRequire(import.meta.url).resolve('better-sqlite3');
      const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { sqlite, done: this.done.buffer, maxPasses: MAX_PASSES } });
      w.unref();
      w.on('message', (m: { id: number; ok: boolean; error?: string } & Partial<CheckpointResult>) => {
        const done = this.pending.get(m.id);
        this.pending.delete(m.id);
        if (this.pending.size === 0) w.unref();
        if (!m.ok) done?.(new Error(m.error ?? 'checkpoint failed'));
        else done?.(null, { log: m.log ?? 0, checkpointed: m.checkpointed ?? 0, passes: m.passes ?? 1 });
      });
      w.on('error', (e) => this.fail(e));
      w.on('exit', (code) => this.fail(new Error(`checkpoint worker exited (${code})`)));
      this.worker = w;
    } catch (e) {
      this.fail(e as Error);
    }
    return this.worker;
  }

  private fail(e: Error): void {
    if (!this.failed) logger.warn({ err: e.message }, 'WAL checkpoint worker unavailable; checkpoints run inline');
    this.failed = true;
    this.worker = null;
    const waiting = [...this.pending.values()];
    this.pending.clear();
    for (const done of waiting) done(e);
  }
}

/** One worker per process, started on first use. */
export const WAL_CHECKPOINTER = new Checkpointer();
