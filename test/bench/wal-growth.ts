// WAL growth bench: one member's SQLite storage taking log writes back to back, as a leader's
// does under sustained load, with WAL checkpoints inline or on the worker thread (embedded
// members use 'worker'). Prints the WAL file's largest size during the writes, its size at the
// end, and after a pause and one more write (when SQLite restarts the WAL and cuts it to
// journal_size_limit), against the payload written.
//
// Found 2026-12-02: with 'worker' a PASSIVE checkpoint copies the WAL up to its end at its
// start, but the writer appends meanwhile, so no checkpoint ever ended with the whole WAL copied
// and the WAL could not restart while writes continued (145 MiB after 6,000 writes). Fixed
// 2026-12-03 (the writer copies the tail the worker left): the `checkpoints` field shows the
// tails and the longest one's time on the loop.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Entry } from '../../src/raft/types.js';
import { SqliteStorage, type CheckpointMode } from '../../src/storage/sqlite-storage.js';
import type { PersistBatch } from '../../src/storage/types.js';
import { parseNumber, round, sleep } from './stats.js';
import type { BenchArgs, BenchModule } from './types.js';

const MIB = 1 << 20;

function save(st: SqliteStorage, batch: PersistBatch): Promise<void> {
  return new Promise((resolve, reject) => {
    const durable = st.saveAsync(batch, (err) => (err ? reject(err) : resolve()));
    if (durable) resolve();
  });
}

async function run(args: BenchArgs, log: (m: string) => void): Promise<Record<string, unknown>> {
  const writes = parseNumber(args, 'writes', 6000, (n) => Number.isInteger(n) && n >= 1, 'an integer >= 1');
  const per = parseNumber(args, 'per', 4, (n) => Number.isInteger(n) && n >= 1, 'an integer >= 1');
  const bytes = parseNumber(args, 'bytes', 2000, (n) => Number.isInteger(n) && n >= 1, 'an integer >= 1');
  const mode = (args.checkpoint ?? 'worker') as CheckpointMode;
  if (mode !== 'worker' && mode !== 'inline') throw new Error(`--checkpoint=${args.checkpoint}: expected worker or inline`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-bench-wal-'));
  const file = path.join(dir, 'member.db');
  const walSize = (): number => {
    try {
      return fs.statSync(`${file}-wal`).size;
    } catch {
      return 0;
    }
  };
  const st = SqliteStorage.open(file, { durability: 'full', fsync: 'threadpool', checkpoint: mode });
  try {
    st.load({ voters: ['a'], learners: [] });
    const data = 'x'.repeat(bytes);
    let index = 1;
    let maxWal = 0;
    const t0 = performance.now();
    for (let i = 0; i < writes; i++) {
      const entries: Entry[] = [];
      for (let k = 0; k < per; k++, index++) entries.push({ index, term: 1, type: 'normal', data: `${data}${index}` });
      await save(st, { snapshot: null, entries, hardState: { term: 1, vote: 'a', commit: index - 1 } });
      maxWal = Math.max(maxWal, walSize());
      if ((i + 1) % 2000 === 0) log(`${i + 1} writes: WAL ${round(walSize() / MIB, 1)} MiB`);
    }
    const ms = performance.now() - t0;
    const endWal = walSize();
    await sleep(500);
    await save(st, { snapshot: null, entries: [{ index, term: 1, type: 'normal', data: 'y' }], hardState: { term: 1, vote: 'a', commit: index } });
    await sleep(200);
    return {
      checkpoint: mode,
      writes,
      entries_per_write: per,
      payload_mib: round((writes * per * bytes) / MIB, 1),
      writes_per_s: round(writes / (ms / 1000), 0),
      wal_max_mib: round(maxWal / MIB, 1),
      wal_end_mib: round(endWal / MIB, 1),
      wal_after_pause_mib: round(walSize() / MIB, 1),
      checkpoints: st.checkpointCounts(),
    };
  } finally {
    st.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export const bench: BenchModule = {
  description: 'one member storage taking log writes back to back: WAL file size during and after, checkpoints inline or on the worker',
  options: {
    writes: { description: 'writes (each fsynced), back to back', default: '6000' },
    per: { description: 'entries per write', default: '4' },
    bytes: { description: 'bytes per entry', default: '2000' },
    checkpoint: { description: 'worker (embedded members) or inline (cluster members)', default: 'worker' },
  },
  run,
};
