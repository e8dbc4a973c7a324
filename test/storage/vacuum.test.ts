// Issue 12: a member's database returns to a bounded size after compaction. Compaction deletes
// log rows and a small snapshot replaces a big one; without auto_vacuum SQLite keeps the freed
// pages in the file forever, and without journal_size_limit the -wal file keeps its peak size.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import type { ConfState, Entry } from '../../src/raft/types.js';
import { SqliteStorage, type FsyncMode } from '../../src/storage/sqlite-storage.js';
import type { PersistBatch } from '../../src/storage/types.js';

const CONF: ConfState = { voters: ['a'], learners: [] };
const MIB = 1 << 20;
const ASYNC_FSYNC_PLATFORM = process.platform !== 'darwin' && process.platform !== 'win32';

const dirs: string[] = [];
const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function tempFile(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-vacuum-'));
  dirs.push(dir);
  return path.join(dir, 'member.db');
}

function open(file: string, opts: Parameters<typeof SqliteStorage.open>[1]): SqliteStorage {
  const s = SqliteStorage.open(file, opts);
  cleanups.push(() => s.close());
  return s;
}

const size = (p: string): number => (fs.existsSync(p) ? fs.statSync(p).size : 0);
const diskBytes = (file: string): number => size(file) + size(`${file}-wal`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function save(s: SqliteStorage, b: PersistBatch): Promise<void> {
  return new Promise((resolve, reject) => {
    if (s.saveAsync(b, (e) => (e ? reject(e) : resolve()))) resolve();
  });
}

/** Wait (bounded: a hang fails, slowness under load does not) until the files fit `bound`. */
async function waitForBound(s: SqliteStorage, file: string, bound: number): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < 15_000) {
    if (!s.vacuumPending() && diskBytes(file) <= bound) return diskBytes(file);
    await sleep(20);
  }
  return diskBytes(file);
}

/** ~16 MiB of log (4 KiB entries), a 16 MiB snapshot at the middle, then a tiny one at the end. */
async function fillAndCompact(s: SqliteStorage): Promise<{ last: number }> {
  const value = 'e'.repeat(4000);
  let idx = 0;
  for (let k = 0; k < 40; k++) {
    const entries: Entry[] = Array.from({ length: 100 }, () => ({ index: ++idx, term: 1, type: 'normal', data: value }));
    await save(s, { snapshot: null, entries, hardState: { term: 1, vote: 'a', commit: idx } });
  }
  s.compact({ metadata: { index: 2000, term: 1, confState: CONF }, data: 's'.repeat(16 * MIB) });
  return { last: idx };
}

const MODES: Array<{ name: string; fsync: FsyncMode; checkpoint?: 'worker' }> = [
  { name: 'fsync inline', fsync: 'inline' },
  ...(ASYNC_FSYNC_PLATFORM ? [{ name: 'fsync threadpool, worker checkpoints', fsync: 'threadpool' as const, checkpoint: 'worker' as const }] : []),
];

describe('member database size after compaction', () => {
  for (const m of MODES) {
    it(`returns to about the live data, WAL emptied (${m.name})`, async () => {
      const file = tempFile();
      const s = open(file, { durability: 'full', fsync: m.fsync, checkpoint: m.checkpoint });
      expect(s.pageStats().autoVacuum).toBe(2); // INCREMENTAL, set before the first table
      const { last } = await fillAndCompact(s);
      const peak = diskBytes(file);
      expect(peak).toBeGreaterThan(24 * MIB); // the 16 MiB snapshot and most of the log
      const syncsBefore = s.stats().syncs;
      // The log is empty after this and the snapshot is a few bytes: the live data is ~7 pages.
      s.compact({ metadata: { index: last, term: 1, confState: CONF }, data: 'small state' });
      const bound = 1 * MIB;
      const after = await waitForBound(s, file, bound);
      expect(after, `db + wal ${after} B after compaction (peak ${peak} B)`).toBeLessThanOrEqual(bound);
      expect(s.pageStats().freelistCount).toBe(0);
      // Released in bounded steps (1,024 pages each), not in one long one.
      const v = s.vacuumCounts();
      expect(v.steps).toBeGreaterThanOrEqual(8);
      expect(v.pages).toBeGreaterThanOrEqual(8000);
      // Only the compactions' own fsyncs are counted (with fsync 'threadpool' the first one's may
      // land meanwhile); release steps and checkpoints count none.
      expect(s.stats().syncs - syncsBefore).toBeLessThanOrEqual(2);

      // Nothing was lost: the snapshot and the log read back, also from a reopened file.
      const check = (st: SqliteStorage) => {
        const back = st.load(CONF);
        expect(back.snapshot?.index).toBe(last);
        expect(back.snapshotData).toBe('small state');
        expect(back.entries).toEqual([]);
        expect(st.quickCheck()).toBe('ok');
      };
      check(s);
      await save(s, { snapshot: null, entries: [{ index: last + 1, term: 2, type: 'normal', data: 'next' }], hardState: { term: 2, vote: 'a', commit: last + 1 } });
      s.close();
      const again = open(file, { durability: 'full' });
      const back = again.load(CONF);
      expect(back.entries.map((e) => e.data)).toEqual(['next']);
      expect(back.hardState).toEqual({ term: 2, vote: 'a', commit: last + 1 });
    }, 60_000);
  }

  it('keeps small free space: no release below 256 pages and a quarter of the file', async () => {
    const file = tempFile();
    const s = open(file, { durability: 'full' });
    const entries: Entry[] = Array.from({ length: 50 }, (_, i) => ({ index: i + 1, term: 1, type: 'normal', data: 'x'.repeat(4000) }));
    await save(s, { snapshot: null, entries, hardState: { term: 1, vote: 'a', commit: 50 } });
    s.compact({ metadata: { index: 50, term: 1, confState: CONF }, data: 'small' });
    await sleep(100);
    expect(s.pageStats().freelistCount).toBeGreaterThan(0);
    expect(s.vacuumCounts().steps).toBe(0);
  });

  it('converts a file created without auto_vacuum at open, keeping its contents', () => {
    const file = tempFile();
    // A member file as the code before auto_vacuum wrote it, with 16 MiB of free pages.
    const raw = new Database(file);
    raw.pragma('journal_mode = WAL');
    raw.exec(`
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE hard_state (id INTEGER PRIMARY KEY CHECK (id = 1), term INTEGER NOT NULL, vote TEXT, "commit" INTEGER NOT NULL);
      CREATE TABLE entries (idx INTEGER PRIMARY KEY, term INTEGER NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL);
      CREATE TABLE snapshot (id INTEGER PRIMARY KEY CHECK (id = 1), idx INTEGER NOT NULL, term INTEGER NOT NULL, conf_state TEXT NOT NULL, data TEXT NOT NULL);
      INSERT INTO meta VALUES ('schema_version', '1');
      INSERT INTO hard_state VALUES (1, 3, 'a', 10);`);
    const putSnap = raw.prepare(`INSERT OR REPLACE INTO snapshot VALUES (1, ?, 3, ?, ?)`);
    putSnap.run(9, JSON.stringify(CONF), 's'.repeat(16 * MIB));
    putSnap.run(9, JSON.stringify(CONF), 'old state');
    raw.prepare(`INSERT INTO entries VALUES (10, 3, 'normal', 'ten')`).run();
    expect(raw.pragma('auto_vacuum', { simple: true })).toBe(0);
    expect(raw.pragma('freelist_count', { simple: true })).toBeGreaterThan(4000);
    raw.close(); // checkpoints: the file holds the free pages
    expect(size(file)).toBeGreaterThan(16 * MIB);

    const s = open(file, { durability: 'full' });
    expect(s.pageStats()).toMatchObject({ autoVacuum: 2, freelistCount: 0 });
    expect(diskBytes(file)).toBeLessThan(1 * MIB);
    const back = s.load(CONF);
    expect(back.snapshot).toEqual({ index: 9, term: 3, confState: CONF });
    expect(back.snapshotData).toBe('old state');
    expect(back.entries).toEqual([{ index: 10, term: 3, type: 'normal', data: 'ten' }]);
    expect(back.hardState).toEqual({ term: 3, vote: 'a', commit: 10 });
  });
});
