// Issue 12: an installed snapshot whose state is in parts is stored one part per row (no value
// holds the whole state), read back as the same parts after a reopen, replaced whole by the
// next snapshot, and dropped with its rows once a checkpoint supersedes it. A single-string
// snapshot is still stored and read as one string.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import type { ConfState } from '../../src/raft/types.js';
import { SqliteStorage } from '../../src/storage/sqlite-storage.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-snap-parts-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const CONF: ConfState = { voters: ['a', 'b', 'c'], learners: [] };
const empty = { clear: true, del: [], put: [] };

describe('SqliteStorage: snapshot parts', () => {
  it('stores parts as rows and reads them back in order; a later single string replaces them', () => {
    const file = path.join(tmp, 'a.db');
    const s = SqliteStorage.open(file);
    const parts = ['{"v":4,"parts":4}', 'p1'.repeat(1000), 'p2 é😀', 'p3'];
    s.save({ snapshot: { metadata: { index: 10, term: 2, confState: CONF }, data: parts }, entries: [], hardState: { term: 2, vote: null, commit: 10 } });
    expect(s.load(CONF).snapshotData).toEqual(parts);
    s.close();
    const r = SqliteStorage.open(file);
    const back = r.load(CONF);
    expect(back.snapshot?.index).toBe(10);
    expect(back.snapshotData).toEqual(parts);
    // A newer snapshot of fewer parts leaves none of the old ones behind.
    r.save({ snapshot: { metadata: { index: 20, term: 2, confState: CONF }, data: ['m', 'x'] }, entries: [], hardState: null });
    expect(r.load(CONF).snapshotData).toEqual(['m', 'x']);
    r.save({ snapshot: { metadata: { index: 30, term: 2, confState: CONF }, data: 'one string' }, entries: [], hardState: null });
    expect(r.load(CONF).snapshotData).toBe('one string');
    r.close();
  });

  it('a checkpoint past the snapshot drops its part rows', () => {
    const file = path.join(tmp, 'b.db');
    const s = SqliteStorage.open(file);
    s.save({ snapshot: { metadata: { index: 10, term: 2, confState: CONF }, data: ['m', 'a', 'b'] }, entries: [], hardState: { term: 2, vote: null, commit: 11 } });
    s.save({ snapshot: null, entries: [{ index: 11, term: 2, type: 'normal', data: 'e' }], hardState: null });
    expect(s.checkpoint({ metadata: { index: 11, term: 2, confState: CONF }, meta: '{}', tables: { memory: empty, sessions: empty, orchs: empty } })).toBe(true);
    const back = s.load(CONF);
    expect(back.checkpoint).toBeDefined();
    expect(back.snapshotData).toBeUndefined();
    s.close();
    const db = new Database(file, { readonly: true });
    expect(db.prepare('SELECT COUNT(*) FROM snapshot_part').pluck().get()).toBe(0);
    db.close();
  });
});
