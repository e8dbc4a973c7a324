// Issue 12: parts of a snapshot arriving from a peer are written to a staging table as they
// arrive, a piece per step, and the save of the install only renames that table: no write of
// the whole state on one event-loop turn. A crash before the install leaves the previous
// state and no staged rows after the restart; an abandoned transfer's rows are deleted in steps.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import type { ConfState, Snapshot } from '../../src/raft/types.js';
import { SqliteStorage } from '../../src/storage/sqlite-storage.js';
import { steps } from '../helpers/manual-steps.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-snap-stage-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const CONF: ConfState = { voters: ['a', 'b', 'c'], learners: [] };
const snap = (index: number, data: readonly string[] | string): Snapshot => ({ metadata: { index, term: 2, confState: CONF }, data });

function count(file: string, table: string): number {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare(`SELECT COUNT(*) FROM ${table}`).pluck().get() as number;
  } finally {
    db.close();
  }
}

// A part of several pieces (2 Mi chars each) with a surrogate pair across each piece boundary.
const bigPart = (tag: string): string => {
  const piece = 2 << 20;
  let s = tag;
  while (s.length < 3 * piece) s += 'x'.repeat(piece - 1 - (s.length % piece)) + '😀';
  return s;
};

describe('SqliteStorage: staged snapshot parts', () => {
  it('writes parts to the staging table as they arrive, a piece per step; the install commits them by rename', () => {
    const file = path.join(tmp, 'a.db');
    const s = SqliteStorage.open(file);
    s.save({ snapshot: snap(5, ['old', 'o1']), entries: [], hardState: { term: 2, vote: null, commit: 5 } });
    const all = ['{"v":4}', bigPart('p1'), '', 'p3 é😀'];
    const parts: string[] = [];
    const st = steps();
    parts.push(all[0]!);
    s.stageSnapshotPart(parts, 0, st.defer);
    parts.push(all[1]!);
    s.stageSnapshotPart(parts, 1, st.defer);
    // Nothing is written on the caller's turn: each step writes one piece.
    expect(s.stagedRows()).toBe(0);
    st.run();
    expect(s.stagedRows()).toBe(1);
    st.run();
    expect(s.stagedRows()).toBe(2);
    parts.push(all[2]!, all[3]!);
    s.stageSnapshotPart(parts, 2, st.defer);
    s.stageSnapshotPart(parts, 3, st.defer);
    let written = false;
    expect(s.stagedSnapshotWritten(parts, () => (written = true))).toBe(false);
    st.runAll();
    expect(written).toBe(true);
    expect(s.stagedSnapshotWritten(parts, () => undefined)).toBe(true);
    // Staged before the save; the stored state is still the old one.
    const staged = s.stagedRows();
    expect(staged).toBe(1 + 4 + 1); // meta, the big part's 4 pieces, (empty part: none), p3
    // (load() is a host restart, which drops the stage: the file is read on its own here.)
    const raw = new Database(file, { readonly: true });
    expect(raw.prepare('SELECT idx, data FROM snapshot').get()).toEqual({ idx: 5, data: 'old' });
    expect(raw.prepare('SELECT data FROM snapshot_part').pluck().all()).toEqual(['o1']);
    raw.close();

    const bytesBefore = s.stats().bytesWritten;
    s.save({ snapshot: snap(20, parts), entries: [], hardState: { term: 2, vote: null, commit: 20 } });
    // The save wrote metadata only (the parts were written by the steps).
    expect(s.stats().bytesWritten - bytesBefore).toBeLessThan(1000);
    expect(s.stagedRows()).toBe(0);
    expect(count(file, 'snapshot_part')).toBe(staged);
    const back = s.load(CONF).snapshotData as string[];
    expect(back).toHaveLength(4);
    expect(back.every((p, i) => p === all[i])).toBe(true);
    s.close();
    const r = SqliteStorage.open(file);
    const again = r.load(CONF);
    expect(again.snapshot?.index).toBe(20);
    expect((again.snapshotData as string[]).every((p, i) => p === all[i])).toBe(true);
    // A later snapshot written whole (not staged) replaces the pieces.
    r.save({ snapshot: snap(30, ['m', 'x']), entries: [], hardState: null });
    expect(r.load(CONF).snapshotData).toEqual(['m', 'x']);
    r.close();
  });

  it('a save before the steps finished writes the rest in its transaction', () => {
    const file = path.join(tmp, 'b.db');
    const s = SqliteStorage.open(file);
    const parts = ['meta', bigPart('q'), 'last'];
    const st = steps();
    for (let i = 0; i < parts.length; i++) s.stageSnapshotPart(parts, i, st.defer);
    st.run();
    expect(s.stagedRows()).toBe(1);
    s.save({ snapshot: snap(7, parts), entries: [], hardState: { term: 2, vote: null, commit: 7 } });
    expect((s.load(CONF).snapshotData as string[]).every((p, i) => p === parts[i])).toBe(true);
    expect(s.stagedRows()).toBe(0);
    st.runAll(); // a step left over finds nothing to do
    expect((s.load(CONF).snapshotData as string[]).every((p, i) => p === parts[i])).toBe(true);
    s.close();
  });

  it('a transfer superseded by another, or dropped, has its staged rows deleted in steps', () => {
    const file = path.join(tmp, 'c.db');
    const s = SqliteStorage.open(file);
    const st = steps();
    const a = ['a0', bigPart('a1')];
    for (let i = 0; i < a.length; i++) s.stageSnapshotPart(a, i, st.defer);
    st.runAll();
    expect(s.stagedRows()).toBe(5);
    // Another transfer starts: a's rows go, b's stay.
    const b = ['b0', 'b1'];
    s.stageSnapshotPart(b, 0, st.defer);
    s.stageSnapshotPart(b, 1, st.defer);
    st.runAll();
    expect(s.stagedRows()).toBe(2);
    // A part of a transfer not staged from its start is not staged.
    s.stageSnapshotPart(['z0', 'z1'], 1, st.defer);
    st.runAll();
    expect(s.stagedRows()).toBe(2);
    // The install of a, no longer staged, is written whole.
    s.save({ snapshot: snap(9, a), entries: [], hardState: { term: 2, vote: null, commit: 9 } });
    expect(s.load(CONF).snapshotData).toEqual(a);
    expect(s.stagedRows()).toBe(2);
    s.dropStagedSnapshot(b);
    st.runAll();
    expect(s.stagedRows()).toBe(0);
    expect(s.load(CONF).snapshotData).toEqual(a);
    s.close();
  });

  it('a crash mid-transfer leaves the old state and no staged rows after the restart; after the install, the new state', () => {
    for (const mode of ['', 'commit']) {
      const file = path.join(tmp, `kill-${mode || 'mid'}.db`);
      const child = spawnSync(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, 'fixtures', 'stage-killer.ts'), file, mode], { encoding: 'utf8', timeout: 60_000 });
      expect(child.signal).toBe('SIGKILL');
      expect(child.stdout).toMatch(mode ? /staged rows 0/ : /staged rows [1-9]/);
      // The killed process's staged rows are in the file (committed to the WAL).
      if (!mode) expect(count(file, 'snapshot_stage')).toBeGreaterThan(1);
      const s = SqliteStorage.open(file);
      const st = s.load(CONF);
      if (mode) {
        expect(st.snapshot?.index).toBe(20);
        expect(st.snapshotData).toEqual(['new-meta', 'n1'.repeat(3 << 20), 'new-2']);
      } else {
        expect(st.snapshot?.index).toBe(10);
        expect(st.snapshotData).toEqual(['old-meta', 'old-1', 'old-2']);
      }
      expect(s.stagedRows()).toBe(0);
      s.close();
    }
  });

  it('upgrades a schema-2 file (parts one per row, no staging table) in place', () => {
    const file = path.join(tmp, 'v2.db');
    const s = SqliteStorage.open(file);
    s.save({ snapshot: snap(4, ['m', 'p1', 'p2']), entries: [], hardState: { term: 2, vote: null, commit: 4 } });
    s.close();
    const raw = new Database(file);
    raw.exec('ALTER TABLE snapshot DROP COLUMN part_rows; DROP TABLE snapshot_stage');
    raw.prepare(`UPDATE meta SET value = '2' WHERE key = 'schema_version'`).run();
    raw.close();
    const r = SqliteStorage.open(file);
    expect(r.load(CONF).snapshotData).toEqual(['m', 'p1', 'p2']);
    const st = steps();
    const parts = ['n0', 'n1'];
    for (let i = 0; i < 2; i++) r.stageSnapshotPart(parts, i, st.defer);
    st.runAll();
    r.save({ snapshot: snap(8, parts), entries: [], hardState: { term: 2, vote: null, commit: 8 } });
    expect(r.load(CONF).snapshotData).toEqual(parts);
    r.close();
    expect(count(file, 'snapshot_stage')).toBe(0);
  });

  it('a host restarted on the same storage drops what it was staging', () => {
    const file = path.join(tmp, 'd.db');
    const s = SqliteStorage.open(file);
    const st = steps();
    const a = ['a0', 'a1'];
    s.stageSnapshotPart(a, 0, st.defer);
    st.runAll();
    s.load(CONF);
    st.runAll();
    expect(s.stagedRows()).toBe(0);
    s.stageSnapshotPart(a, 1, st.defer); // a's stage is gone: not staged
    st.runAll();
    expect(s.stagedRows()).toBe(0);
    s.close();
  });
});
