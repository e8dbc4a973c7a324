// A member whose file has a damaged page must not start (and so never vote or acknowledge),
// even when the damage is in a page the start-up reads never touch: opening, the identity
// check and the last log index read only the schema, the small tables and the rightmost path
// of the entries b-tree. Only the integrity check at open (quick_check) reads every page.

import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { openMemberStorage } from '../../src/swarm/member-storage.js';
import { removeDir, tempDataDir } from './service-util.js';

const dir = tempDataDir('member-storage-corruption');
afterAll(() => removeDir(dir));
const durability = 'full' as const;

/** A member file with `n` entries, closed (WAL folded into the file). */
function memberFile(name: string, n: number): { file: string; incarnation: string } {
  const file = path.join(dir, name);
  const { storage, incarnation } = openMemberStorage(file, 'a', { incarnation: 'inc-1', fresh: true, durability });
  const entries = Array.from({ length: n }, (_, i) => ({ index: i + 1, term: 1, type: 'normal' as const, data: `${i}:${'x'.repeat(400)}` }));
  storage.save({ snapshot: null, entries, hardState: { term: 1, vote: 'a', commit: n } });
  storage.close();
  return { file, incarnation };
}

/** Page numbers of the entries table's leaf pages, in key order. */
function entryLeafPages(file: string): number[] {
  const db = new Database(file, { readonly: true });
  try {
    const rows = db.prepare(`SELECT pageno FROM dbstat WHERE name = 'entries' AND pagetype = 'leaf' ORDER BY path`).all() as Array<{ pageno: number }>;
    return rows.map((r) => r.pageno);
  } finally {
    db.close();
  }
}

describe('openMemberStorage on a damaged file', () => {
  it('refuses a file with one garbage page in the middle of the log, which no start-up read touches', () => {
    const { file, incarnation } = memberFile('middle-page.db', 3000);
    expect(fs.existsSync(`${file}-wal`)).toBe(false); // everything is in the file itself
    const leaves = entryLeafPages(file);
    expect(leaves.length).toBeGreaterThan(10);
    const victim = leaves[Math.floor(leaves.length / 2)]!;
    const pageSize = 4096;
    expect(fs.statSync(file).size % pageSize).toBe(0);
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, Buffer.alloc(pageSize, 0x5a), 0, pageSize, (victim - 1) * pageSize);
    fs.closeSync(fd);

    // SQLite itself opens it and answers what a start reads (the damage is out of their way).
    const db = new Database(file);
    expect(db.prepare('SELECT MAX(idx) FROM entries').pluck().get()).toBe(3000);
    expect(db.prepare(`SELECT term FROM hard_state WHERE id = 1`).pluck().get()).toBe(1);
    db.close();

    expect(() => openMemberStorage(file, 'a', { incarnation, fresh: false, durability })).toThrow(/is damaged/);
  });

  it('opens the same file undamaged', () => {
    const { file, incarnation } = memberFile('intact.db', 3000);
    const got = openMemberStorage(file, 'a', { incarnation, fresh: false, durability });
    expect(got.incarnation).toBe(incarnation);
    got.storage.close();
  });
});
