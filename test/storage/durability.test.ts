// What SqliteStorage fsyncs, observed through an injected SyncFs (real syncs, recorded with
// the inode they were on) and through PRAGMA synchronous on the live connection.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import type { ConfState, Entry, Snapshot } from '../../src/raft/types.js';
import { SqliteStorage, type Durability, type FsyncMode } from '../../src/storage/sqlite-storage.js';
import type { PersistBatch } from '../../src/storage/types.js';
import { ino, syncRecorder, type SyncCall } from './sync-recorder.js';

const CONF: ConfState = { voters: ['a', 'b', 'c'], learners: [] };
const ASYNC_FSYNC_PLATFORM = process.platform !== 'darwin' && process.platform !== 'win32';
const tempDirs: string[] = [];
const cleanups: Array<() => void> = [];

afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
  for (const d of tempDirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function tempFile(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-durability-'));
  tempDirs.push(dir);
  return path.join(dir, 'member.db');
}

function open(file: string, opts: Parameters<typeof SqliteStorage.open>[1] = {}): SqliteStorage {
  const s = SqliteStorage.open(file, opts);
  cleanups.push(() => s.close());
  return s;
}

const ents = (from: number, to: number, term: number): Entry[] =>
  Array.from({ length: to - from + 1 }, (_, i) => ({ index: from + i, term, type: 'normal' as const, data: `v${from + i}` }));
const snap = (index: number, term: number): Snapshot => ({ metadata: { index, term, confState: CONF }, data: `state@${index}` });
const batch = (b: Partial<PersistBatch>): PersistBatch => ({ snapshot: null, entries: [], hardState: null, ...b });
const liveSynchronous = (s: SqliteStorage): number =>
  (s as unknown as { db: Database.Database }).db.pragma('synchronous', { simple: true }) as number;

/** The syncs recorded since `from` that ran on inode `i`. */
const on = (calls: SyncCall[], i: number, from = 0): SyncCall[] => calls.slice(from).filter((c) => c.ino === i);

describe('PRAGMA synchronous on the live connection', () => {
  const cases: Array<{ durability: Durability; fsync: FsyncMode; level: number }> = [
    { durability: 'full', fsync: 'inline', level: 2 },
    // Our own WAL fdatasync; SQLite keeps FULL where fdatasync is not a full flush.
    { durability: 'full', fsync: 'threadpool', level: ASYNC_FSYNC_PLATFORM ? 1 : 2 },
    { durability: 'normal', fsync: 'inline', level: 1 },
    { durability: 'normal', fsync: 'threadpool', level: 1 },
    { durability: 'off', fsync: 'inline', level: 0 },
    { durability: 'off', fsync: 'threadpool', level: 0 },
  ];

  it.each(cases)('durability $durability, fsync $fsync: synchronous=$level, also after commit-only and durable writes', ({ durability, fsync, level }) => {
    const s = open(tempFile(), { durability, fsync });
    expect(liveSynchronous(s)).toBe(level);
    s.save(batch({ entries: ents(1, 3, 1), hardState: { term: 1, vote: 'a', commit: 0 } }));
    expect(liveSynchronous(s)).toBe(level);
    s.save(batch({ hardState: { term: 1, vote: 'a', commit: 2 } })); // commit-only: no fsync wanted
    expect(liveSynchronous(s)).toBe(level);
    s.save(batch({ entries: ents(4, 4, 1) }));
    expect(liveSynchronous(s)).toBe(level);
    expect(s.sqliteSynchronous()).toBe(level);
  });

  it('stats().syncs counts only commits that were really fsynced (none under normal/off)', () => {
    for (const durability of ['full', 'normal', 'off'] as const) {
      const s = open(tempFile(), { durability });
      s.save(batch({ entries: ents(1, 5, 1), hardState: { term: 1, vote: 'a', commit: 0 } }));
      s.save(batch({ hardState: { term: 1, vote: 'a', commit: 3 } })); // commit-only
      s.compact(snap(2, 1));
      expect({ durability, syncs: s.stats().syncs }).toEqual({ durability, syncs: durability === 'full' ? 2 : 0 });
    }
  });
});

describe('fsync threadpool: every batch that must be durable is followed by a WAL fdatasync', () => {
  const durableBatches: Array<{ what: string; b: PersistBatch }> = [
    { what: 'entries', b: batch({ entries: ents(1, 4, 1), hardState: { term: 1, vote: 'a', commit: 0 } }) },
    { what: 'more entries only', b: batch({ entries: ents(5, 6, 1) }) },
    { what: 'term change', b: batch({ hardState: { term: 2, vote: null, commit: 0 } }) },
    { what: 'vote change', b: batch({ hardState: { term: 2, vote: 'b', commit: 0 } }) },
    { what: 'snapshot install', b: batch({ snapshot: snap(10, 2), entries: ents(11, 12, 2) }) },
  ];
  const commitOnly = batch({ hardState: { term: 2, vote: 'b', commit: 11 } });

  it.runIf(ASYNC_FSYNC_PLATFORM)('save(): the -wal descriptor is fdatasynced before save returns', () => {
    const file = tempFile();
    const rec = syncRecorder();
    const s = open(file, { fsync: 'threadpool', syncFs: rec.fs });
    const wal = ino(`${file}-wal`);
    for (const { what, b } of durableBatches) {
      const from = rec.calls.length;
      s.save(b);
      // On the WAL, not the database file (a mutation syncing `file` instead fails here).
      const walSyncs = on(rec.calls, wal, from).filter((c) => c.done);
      expect({ what, walSyncs: walSyncs.length }).toEqual({ what, walSyncs: 1 });
      expect(on(rec.calls, ino(file), from)).toEqual([]);
    }
    const from = rec.calls.length;
    s.save(commitOnly); // may skip: Raft can lose a commit index
    expect(rec.calls.length - from).toBeLessThanOrEqual(1);
    expect(s.stats().syncs).toBe(durableBatches.length);
    expect(s.load(CONF).entries).toEqual(ents(11, 12, 2));
  });

  it.runIf(ASYNC_FSYNC_PLATFORM)('saveAsync(): done runs only after a WAL fdatasync issued after the write completed', async () => {
    const file = tempFile();
    const rec = syncRecorder();
    const s = open(file, { fsync: 'threadpool', syncFs: rec.fs });
    const wal = ino(`${file}-wal`);
    for (const [n, { what, b }] of durableBatches.entries()) {
      const from = rec.calls.length;
      const seenAtDone = await new Promise<{ durable: boolean; walSynced: number; syncsStat: number }>((resolve) => {
        const durable = s.saveAsync(b, (err) => {
          expect(err).toBeNull();
          resolve({ durable, walSynced: on(rec.calls, wal, from).filter((c) => c.done).length, syncsStat: s.stats().syncs });
        });
        if (durable) resolve({ durable, walSynced: on(rec.calls, wal, from).filter((c) => c.done).length, syncsStat: s.stats().syncs });
      });
      expect({ what, ...seenAtDone }).toEqual({ what, durable: false, walSynced: 1, syncsStat: n + 1 });
    }
    const from = rec.calls.length;
    expect(s.saveAsync(commitOnly, () => expect.fail('durable at once: done must not run'))).toBe(true);
    expect(rec.calls.length).toBe(from); // nothing in flight, nothing to flush
  });
});

describe('restart after a kill with an fdatasync still queued (issue 9 defect 2)', () => {
  /** Writes batches whose fdatasync never runs, then abandons the store like kill -9. */
  function crashWithUnsyncedWrites(file: string): void {
    const dying = SqliteStorage.open(file, { fsync: 'threadpool', syncFs: syncRecorder({ hangAsync: true }).fs });
    let durableCount = 0;
    for (const b of [
      batch({ entries: ents(1, 3, 1), hardState: { term: 1, vote: 'a', commit: 0 } }),
      batch({ entries: ents(4, 6, 1), hardState: { term: 2, vote: 'b', commit: 2 } }),
    ]) {
      if (dying.saveAsync(b, () => durableCount++)) durableCount++;
    }
    expect(durableCount).toBe(0); // nothing of it ever became durable
    // No close(): a killed process neither checkpoints nor deletes the WAL. Released only
    // after the test (its WAL descriptor stays with the hung sync, as in the dead process).
    cleanups.unshift(() => (dying as unknown as { db: Database.Database }).db.close());
  }

  it('open() fsyncs the -wal file, the database file and the directory before it returns', () => {
    const file = tempFile();
    crashWithUnsyncedWrites(file);
    for (const fsync of ['threadpool', 'inline'] as const) {
      const rec = syncRecorder();
      const s = open(file, { fsync, syncFs: rec.fs });
      const calls = [...rec.calls]; // everything synced by the time open() returned
      for (const [what, i] of [['wal', ino(`${file}-wal`)], ['db', ino(file)], ['dir', ino(path.dirname(file))]] as const) {
        expect({ fsync, what, synced: on(calls, i).filter((c) => c.done && c.kind !== 'fdatasync').length }).toEqual({ fsync, what, synced: 1 });
      }
      // Only now may the state be treated as durable: the unsynced entries are there.
      expect(s.load(CONF)).toMatchObject({ hardState: { term: 2, vote: 'b', commit: 2 }, entries: ents(1, 6, 1) });
      expect(rec.calls.length).toBe(calls.length); // load() had nothing new to sync
      expect(s.stats().syncs).toBe(0); // recovery syncs are not durable commits
      s.close();
    }
  });

  it('load() on the same store (in-process restart) fsyncs what an earlier saveAsync had not', () => {
    const file = tempFile();
    const rec = syncRecorder({ hangAsync: true });
    const s = SqliteStorage.open(file, { fsync: 'threadpool', syncFs: rec.fs });
    cleanups.push(() => (s as unknown as { db: Database.Database }).db.close()); // the hung sync keeps the WAL fd
    expect(s.saveAsync(batch({ entries: ents(1, 2, 1), hardState: { term: 1, vote: 'a', commit: 0 } }), () => expect.fail('never durable'))).toBe(false);
    const from = rec.calls.length;
    const st = s.load(CONF);
    expect(st.entries).toEqual(ents(1, 2, 1));
    const calls = rec.calls.slice(from);
    for (const [what, i] of [['wal', ino(`${file}-wal`)], ['db', ino(file)], ['dir', ino(path.dirname(file))]] as const) {
      expect({ what, synced: on(calls, i).filter((c) => c.done).length }).toEqual({ what, synced: 1 });
    }
  });

  it('open() makes a newly created member directory durable in its parent', () => {
    const root = path.dirname(tempFile());
    const file = path.join(root, 'a', 'b', 'member.db');
    const rec = syncRecorder();
    open(file, { syncFs: rec.fs });
    for (const dir of [root, path.join(root, 'a'), path.join(root, 'a', 'b')]) {
      expect({ dir, synced: on(rec.calls, ino(dir)).filter((c) => c.kind === 'fsyncSync' && c.done).length }).toEqual({ dir, synced: 1 });
    }
  });
});

describe('restart after a real kill -9', () => {
  it('a process killed with fdatasyncs queued: the next open() fsyncs WAL, db and directory before returning', () => {
    const file = tempFile();
    const child = spawnSync(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, 'fixtures', 'kill-writer.ts'), file], { encoding: 'utf8', timeout: 60_000 });
    expect({ signal: child.signal, stdout: child.stdout, stderr: child.stderr }).toEqual({ signal: 'SIGKILL', stdout: 'written durable=0\n', stderr: '' });
    expect(fs.statSync(`${file}-wal`).size).toBeGreaterThan(0); // left as the killed process wrote it
    const rec = syncRecorder();
    const s = open(file, { fsync: 'threadpool', syncFs: rec.fs });
    const calls = [...rec.calls];
    for (const [what, i] of [['wal', ino(`${file}-wal`)], ['db', ino(file)], ['dir', ino(path.dirname(file))]] as const) {
      expect({ what, synced: on(calls, i).filter((c) => c.done).length }).toEqual({ what, synced: 1 });
    }
    const st = s.load(CONF);
    expect(st.hardState).toEqual({ term: 3, vote: 'a', commit: 0 });
    expect(st.entries.map((e) => e.data)).toEqual(['t1.1', 't1.2', 't2.1', 't2.2', 't3.1', 't3.2']);
  });
});
