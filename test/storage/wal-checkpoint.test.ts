// With checkpoint 'worker' (and fsync 'threadpool') the WAL checkpoint (a copy into the database
// plus two fsyncs) runs on a worker thread, never inside a commit on the event loop (issue 12:
// large values stalled it). Opt-in: see CheckpointMode.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ConfState, Entry } from '../../src/raft/types.js';
import { SqliteStorage } from '../../src/storage/sqlite-storage.js';
import { WAL_CHECKPOINTER } from '../../src/storage/wal-checkpointer.js';

const CONF: ConfState = { voters: ['a'], learners: [] };
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

const ASYNC_FSYNC_PLATFORM = process.platform !== 'darwin' && process.platform !== 'win32';

describe.runIf(ASYNC_FSYNC_PLATFORM)('WAL checkpoints off the event loop', () => {
  it('the connection never checkpoints in a commit; the worker does, and the log reads back whole', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-ckpt-'));
    dirs.push(dir);
    const file = path.join(dir, 'member.db');
    const s = SqliteStorage.open(file, { durability: 'full', fsync: 'threadpool', checkpoint: 'worker' });
    try {
      const value = 'x'.repeat(1 << 20);
      for (let i = 1; i <= 12; i++) {
        const e: Entry = { index: i, term: 1, type: 'normal', data: `${i}:${value}` };
        await new Promise<void>((resolve, reject) => {
          const durable = s.saveAsync({ snapshot: null, entries: [e], hardState: { term: 1, vote: 'a', commit: i } }, (err) => (err ? reject(err) : resolve()));
          if (durable) resolve();
        });
      }
      const t0 = Date.now();
      // One request per 4 MiB written while none is in flight: at least one for 12 MiB.
      while (s.checkpointCounts().worker < 1) {
        if (Date.now() - t0 > 20_000) throw new Error(`worker checkpoints: ${JSON.stringify(s.checkpointCounts())}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(s.checkpointCounts().inline).toBe(0);
      // The worker copied the WAL into the database file: it grew past 4 MiB while open.
      expect(fs.statSync(file).size).toBeGreaterThan(4 << 20);
      const back = s.load(CONF);
      expect(back.entries.map((x) => x.index)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
      expect(back.entries.every((x) => x.data === `${x.index}:${value}`)).toBe(true);
    } finally {
      s.close();
    }
  }, 60_000);

  it('the WAL stays bounded while writes come back to back (the writer copies the tail a worker checkpoint left)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-ckpt-'));
    dirs.push(dir);
    const file = path.join(dir, 'member.db');
    const walBytes = (): number => (fs.existsSync(`${file}-wal`) ? fs.statSync(`${file}-wal`).size : 0);
    const s = SqliteStorage.open(file, { durability: 'full', fsync: 'threadpool', checkpoint: 'worker' });
    try {
      // 3,000 fsynced writes of 8 KB, the next one as soon as the last is durable: a leader
      // under sustained load. 24 MB in all; before the fix the WAL held all of it (it restarts
      // only after a checkpoint that copied the whole of it, and the writer appended during
      // every worker pass), about 36 MiB with its frame headers and B-tree pages.
      const data = 'x'.repeat(2000);
      let maxWal = 0;
      for (let i = 0, index = 1; i < 3000; i++) {
        const entries: Entry[] = [];
        for (let k = 0; k < 4; k++, index++) entries.push({ index, term: 1, type: 'normal', data: `${data}${index}` });
        await new Promise<void>((resolve, reject) => {
          const durable = s.saveAsync({ snapshot: null, entries, hardState: { term: 1, vote: 'a', commit: index - 1 } }, (err) => (err ? reject(err) : resolve()));
          if (durable) resolve();
        });
        maxWal = Math.max(maxWal, walBytes());
      }
      const counts = s.checkpointCounts();
      // Restarted at about 2,000 frames (8 MiB) plus what arrived during one worker request.
      expect(maxWal, JSON.stringify(counts)).toBeLessThan(16 << 20);
      expect(counts.worker).toBeGreaterThan(0);
      expect(counts.inline).toBe(0);
      // The writer appended during a pass and the worker went again, leaving the writer a short
      // tail to copy on its loop (one pass left it 27-30 ms of copying with 200 KB entries).
      expect(counts.passesMax).toBeGreaterThan(1);
      expect(s.load(CONF).entries).toHaveLength(12_000);
    } finally {
      s.close();
    }
  }, 120_000);

  it('close() returns once the worker no longer has the file open: the directory can go at once', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-ckpt-'));
    const file = path.join(dir, 'member.db');
    const s = SqliteStorage.open(file, { durability: 'full', fsync: 'threadpool', checkpoint: 'worker' });
    const value = 'y'.repeat(1 << 20);
    const inFlight = (): boolean => (s as unknown as { checkpointInFlight: boolean }).checkpointInFlight;
    // Written until a write asks the worker for a checkpoint (one per 4 MiB), then closed at once.
    for (let i = 1; !inFlight(); i++) {
      if (i > 20) throw new Error('no worker checkpoint asked for after 20 MiB');
      s.save({ snapshot: null, entries: [{ index: i, term: 1, type: 'normal', data: value }], hardState: { term: 1, vote: 'a', commit: i } });
    }
    s.close();
    // The code before returned while the worker still had the file open (it recreated -wal and
    // -shm files as the demo removed its directory: ENOTEMPTY in CI).
    expect(WAL_CHECKPOINTER.waitIdle(file, 0)).toBe(true);
    fs.rmSync(dir, { recursive: true });
    expect(fs.existsSync(dir)).toBe(false);
  }, 60_000);

  it('an inline-checkpoint member hands its checkpoints to the worker while it writes a snapshot in steps, and takes them back after', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-ckpt-'));
    dirs.push(dir);
    const file = path.join(dir, 'member.db');
    const s = SqliteStorage.open(file, { durability: 'full', fsync: 'threadpool' });
    const autoCheckpoint = (): number => (s as unknown as { db: { pragma(p: string, o: { simple: true }): number } }).db.pragma('wal_autocheckpoint', { simple: true });
    try {
      expect(autoCheckpoint()).toBe(1000);
      // Six parts of 2 Mi characters arriving: a piece per step, 12 Mi characters in all.
      const queued: Array<() => void> = [];
      const parts: string[] = [];
      for (let i = 0; i < 6; i++) {
        parts.push(`${i}:`.padEnd(2 << 20, String.fromCharCode(97 + i)));
        s.stageSnapshotPart(parts, i, (fn) => queued.push(fn));
      }
      while (queued.length > 0) {
        queued.shift()!();
        // No automatic checkpoint inside a step: SQLite's would copy and fsync on this thread.
        expect(autoCheckpoint()).toBe(0);
      }
      const t0 = Date.now();
      while (s.checkpointCounts().worker < 1) {
        if (Date.now() - t0 > 20_000) throw new Error(`worker checkpoints: ${JSON.stringify(s.checkpointCounts())}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      // The install commits the staged parts; the save after it has SQLite checkpoint again.
      s.save({ snapshot: { metadata: { index: 10, term: 1, confState: CONF }, data: parts }, entries: [], hardState: { term: 1, vote: 'a', commit: 10 } });
      s.save({ snapshot: null, entries: [{ index: 11, term: 1, type: 'normal', data: 'after' }], hardState: { term: 1, vote: 'a', commit: 11 } });
      expect(autoCheckpoint()).toBe(1000);
      const back = s.load(CONF);
      expect(back.snapshot?.index).toBe(10);
      expect(back.snapshotData).toEqual(parts);
    } finally {
      s.close();
    }
  }, 60_000);
});
