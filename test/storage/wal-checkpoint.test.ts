// With checkpoint 'worker' (and fsync 'threadpool') the WAL checkpoint (a copy into the database
// plus two fsyncs) runs on a worker thread, never inside a commit on the event loop (issue 12:
// large values stalled it). Opt-in: see CheckpointMode.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ConfState, Entry } from '../../src/raft/types.js';
import { SqliteStorage } from '../../src/storage/sqlite-storage.js';

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
});
