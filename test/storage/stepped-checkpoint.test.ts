// Issue 12: the first checkpoint after a snapshot install rewrites the whole state as rows
// (1.1 GB in the cluster bench: one transaction held the member's loop 22 s). Written in
// steps into staging tables and committed by renames, the stored state stays the previous one
// until the commit (a crash or reopen meanwhile leaves it, and no staged rows).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import type { ConfState } from '../../src/raft/types.js';
import { SqliteStorage } from '../../src/storage/sqlite-storage.js';
import type { CheckpointRow, LoadedState, MachineCheckpoint } from '../../src/storage/types.js';
import { steps } from '../helpers/manual-steps.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-stepped-ck-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const CONF: ConfState = { voters: ['a', 'b', 'c'], learners: [] };
const none = { clear: false, del: [], put: [] };

/** A whole-state checkpoint at `index` of `n` memory rows of 1 Mi characters (and a small session row). */
function whole(index: number, n: number, tag: string): MachineCheckpoint {
  const put: CheckpointRow[] = [];
  for (let i = 1; i <= n; i++) put.push([i, JSON.stringify(`${tag}${i}:`.padEnd(1 << 20, 'v'))]);
  return {
    metadata: { index, term: 2, confState: CONF },
    meta: `{"m":"${tag}"}`,
    tables: { memory: { clear: true, del: [], put }, sessions: { clear: true, del: [], put: [[1, '"s"', Buffer.from([1, 2, 3])]] }, orchs: { clear: true, del: [], put: [] } },
  };
}

function raw<T>(file: string, f: (db: Database.Database) => T): T {
  const db = new Database(file, { readonly: true });
  try {
    return f(db);
  } finally {
    db.close();
  }
}

const memoryOf = (st: LoadedState): string[] => [...st.checkpoint!.rows('memory')].map(([, v]) => String(v).slice(0, 12));

/** A member that installed a snapshot in parts at 10 and has log entries 11..20. */
function installed(file: string): SqliteStorage {
  const s = SqliteStorage.open(file);
  s.save({ snapshot: { metadata: { index: 10, term: 2, confState: CONF }, data: ['meta', 'p'.repeat(1000), 'q'] }, entries: [], hardState: { term: 2, vote: null, commit: 20 } });
  const entries = [];
  for (let i = 11; i <= 20; i++) entries.push({ index: i, term: 2, type: 'normal' as const, data: `e${i}` });
  s.save({ snapshot: null, entries, hardState: null });
  return s;
}

describe('SqliteStorage: whole-state checkpoint in steps', () => {
  it('writes the rows a few MiB per step and commits them by rename; the old state stays until then', () => {
    const file = path.join(tmp, 'a.db');
    const s = installed(file);
    const st = steps();
    expect(s.checkpoint(whole(15, 12, 'a'), st.defer)).toBe(true);
    expect(s.checkpointPending()).toBe(true);
    // Nothing written on the caller's turn: the file still holds the snapshot and its log.
    expect(raw(file, (db) => db.prepare('SELECT COUNT(*) FROM machine_memory_stage').pluck().get())).toBe(0);
    st.run();
    const staged = raw(file, (db) => db.prepare('SELECT COUNT(*) FROM machine_memory_stage').pluck().get()) as number;
    expect(staged).toBeGreaterThan(0);
    expect(staged).toBeLessThan(12);
    expect(raw(file, (db) => db.prepare('SELECT idx FROM snapshot').pluck().get())).toBe(10);
    expect(raw(file, (db) => db.prepare('SELECT COUNT(*) FROM machine_checkpoint').pluck().get())).toBe(0);
    st.runAll();
    expect(s.checkpointPending()).toBe(false);
    expect(s.steppedCheckpoints).toBe(1);
    // Committed: rows, metadata, the log up to 15 dropped, the snapshot's parts emptied in steps.
    expect(s.trashTables()).toBe(0);
    s.close();
    const r = SqliteStorage.open(file);
    const back = r.load(CONF);
    expect(back.snapshot?.index).toBe(15);
    expect(back.checkpoint!.meta).toBe('{"m":"a"}');
    expect(memoryOf(back)).toEqual(Array.from({ length: 12 }, (_, i) => `a${i + 1}:`.padEnd(12, 'v')));
    expect([...back.checkpoint!.rows('sessions')]).toEqual([[1, 's', Buffer.from([1, 2, 3])]]);
    expect(back.entries.map((e) => e.index)).toEqual([16, 17, 18, 19, 20]);
    expect(raw(file, (db) => db.prepare(`SELECT COUNT(*) FROM snapshot_part`).pluck().get())).toBe(0);
    expect(raw(file, (db) => db.prepare(`SELECT COUNT(*) FROM sqlite_schema WHERE name LIKE 'trash%'`).pluck().get())).toBe(0);
    // An incremental checkpoint applies on top of the rows committed by rename.
    expect(r.checkpoint({ metadata: { index: 18, term: 2, confState: CONF }, meta: '{"m":"b"}', tables: { memory: { clear: false, del: [2], put: [[20, '"new"']] }, sessions: none, orchs: none } })).toBe(true);
    const b2 = r.load(CONF);
    expect([...b2.checkpoint!.rows('memory')].map(([o]) => o)).toEqual([1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 20]);
    r.close();
  });

  it('memory rows committed by rename keep their lookup keys and indexes, twice over (read on demand after a reopen)', () => {
    const file = path.join(tmp, 'keys.db');
    const s = installed(file);
    const st = steps();
    const keyed = (index: number, tag: string): MachineCheckpoint => {
      const c = whole(index, 12, tag);
      c.tables.memory.put = c.tables.memory.put.map(([ord, json]) => [ord, json, undefined, 1000 + ord, ord === 3]);
      return c;
    };
    const indexesOn = (table: string): string[] =>
      raw(file, (db) => (db.prepare(`SELECT sql FROM sqlite_schema WHERE type = 'index' AND tbl_name = ?`).pluck().all(table) as string[]).map((q) => q.replace(/^CREATE INDEX \S+ /, '').replaceAll('"', '')).sort());
    for (const [index, tag] of [[15, 'a'], [17, 'b']] as const) {
      expect(s.checkpoint(keyed(index, tag), st.defer)).toBe(true);
      st.runAll();
      expect(s.checkpointPending()).toBe(false);
      // One lookup index and one restart-row index on each table: renamed in, or made afresh.
      for (const table of ['machine_memory', 'machine_memory_stage']) expect(indexesOn(table)).toEqual([`ON ${table} (find)`, `ON ${table} (ord) WHERE eager = 1`]);
    }
    s.close();
    const r = SqliteStorage.open(file);
    const rows = r.load(CONF).checkpoint!.storedRows!('memory')!;
    expect(rows.count).toBe(12);
    expect(rows.find(1007).map(([ord, json]) => [ord, json.slice(0, 4)])).toEqual([[7, '"b7:']]);
    const eager: number[] = [];
    rows.eager((ord) => eager.push(ord));
    expect(eager).toEqual([3]);
    r.close();
  });

  it('a crash (or reopen) before the commit leaves the old state and no staged rows', () => {
    const file = path.join(tmp, 'b.db');
    const s = installed(file);
    const st = steps();
    expect(s.checkpoint(whole(15, 12, 'a'), st.defer)).toBe(true);
    st.run();
    st.run();
    expect(raw(file, (db) => db.prepare('SELECT COUNT(*) FROM machine_memory_stage').pluck().get())).toBeGreaterThan(0);
    s.close(); // what stays on disk is what a killed process leaves: committed steps, no commit
    const r = SqliteStorage.open(file);
    const back = r.load(CONF);
    expect(back.snapshot?.index).toBe(10);
    expect(back.snapshotData).toEqual(['meta', 'p'.repeat(1000), 'q']);
    expect(back.entries).toHaveLength(10);
    expect(raw(file, (db) => db.prepare('SELECT COUNT(*) FROM machine_memory_stage').pluck().get())).toBe(0);
    r.close();
  });

  it('another checkpoint commits the pending one first; an install drops it', () => {
    const file = path.join(tmp, 'c.db');
    const s = installed(file);
    const st = steps();
    expect(s.checkpoint(whole(15, 12, 'a'), st.defer)).toBe(true);
    st.run();
    expect(s.checkpoint({ metadata: { index: 17, term: 2, confState: CONF }, meta: '{"m":"c"}', tables: { memory: { clear: false, del: [1], put: [] }, sessions: none, orchs: none } }, st.defer)).toBe(true);
    expect(s.checkpointPending()).toBe(false);
    let back = s.load(CONF);
    expect(back.snapshot?.index).toBe(17);
    expect(memoryOf(back)).toHaveLength(11);
    // A pending one, then a snapshot installed: the snapshot is the state.
    expect(s.checkpoint(whole(19, 12, 'd'), st.defer)).toBe(true);
    st.run();
    s.save({ snapshot: { metadata: { index: 30, term: 3, confState: CONF }, data: 'installed' }, entries: [], hardState: { term: 3, vote: null, commit: 30 } });
    expect(s.checkpointPending()).toBe(false);
    st.runAll();
    back = s.load(CONF);
    expect(back.snapshot?.index).toBe(30);
    expect(back.snapshotData).toBe('installed');
    expect(raw(file, (db) => db.prepare('SELECT COUNT(*) FROM machine_memory_stage').pluck().get())).toBe(0);
    s.close();
  });

  it('replaced tables are emptied in steps while a snapshot transfer is being staged', () => {
    const file = path.join(tmp, 'd.db');
    const s = installed(file);
    const st = steps();
    // A transfer abandoned for another one still arriving.
    const a = ['a0', 'a1'];
    s.stageSnapshotPart(a, 0, st.defer);
    s.stageSnapshotPart(a, 1, st.defer);
    st.runAll();
    expect(s.stagedRows()).toBe(2);
    const b = ['b0'];
    s.stageSnapshotPart(b, 0, st.defer);
    st.runAll();
    expect(s.stagedRows()).toBe(1);
    expect(s.checkpoint(whole(15, 12, 'a'), st.defer)).toBe(true);
    st.runAll();
    expect(s.steppedCheckpoints).toBe(1);
    expect(s.trashTables()).toBe(0);
    expect(raw(file, (db) => db.prepare(`SELECT COUNT(*) FROM sqlite_schema WHERE name LIKE 'trash%'`).pluck().get())).toBe(0);
    // b is still staged, and installs from its staged rows.
    b.push('b1');
    s.stageSnapshotPart(b, 1, st.defer);
    st.runAll();
    const before = s.stats().bytesWritten;
    s.save({ snapshot: { metadata: { index: 40, term: 3, confState: CONF }, data: b }, entries: [], hardState: { term: 3, vote: null, commit: 40 } });
    expect(s.stats().bytesWritten - before).toBeLessThan(200);
    expect(s.load(CONF).snapshotData).toEqual(['b0', 'b1']);
    s.close();
  });
});
