// A member's SQLite page cache is bounded: a process hosts many members (five per embedded
// swarm), and better-sqlite3's build default (16 MB a connection) filled 80 MB of a 1M-task
// run's RSS. Read on the member's own connection (a second connection has its own setting).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { CACHE_KIB, SqliteStorage } from '../../src/storage/sqlite-storage.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe('SqliteStorage page cache', () => {
  for (const fsync of ['inline', 'threadpool'] as const) {
    it(`is bounded to CACHE_KIB per connection (fsync ${fsync}), new file and reopened`, () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-cache-'));
      dirs.push(dir);
      const file = path.join(dir, 'm.db');
      for (let open = 0; open < 2; open++) {
        const s = SqliteStorage.open(file, { durability: 'full', fsync });
        try {
          const db = (s as unknown as { db: Database.Database }).db;
          // Negative: KiB (SQLite's convention); a few MiB at most per member.
          expect(db.pragma('cache_size', { simple: true })).toBe(-CACHE_KIB);
          expect(CACHE_KIB).toBeLessThanOrEqual(4096);
        } finally {
          s.close();
        }
      }
    });
  }
});
