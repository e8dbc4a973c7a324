// Cost of a checkpoint of the task table (one orchestration's columns as a row) and of the
// restart from it, against a JSON snapshot of the same state. Usage:
//   npx tsx test/bench/checkpoint-cost.ts [tasks]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CoordinationMachine } from '../../src/machine/coordination-machine.js';
import { SqliteStorage } from '../../src/storage/sqlite-storage.js';
import { createOp, entry } from '../machine/machine-util.js';

const n = Number(process.argv[2] ?? 100_000);
const m = new CoordinationMachine();
let i = 0;
m.apply(entry(++i, { op: createOp(n), now: 1000 }));
const id = 'orch-1';
for (let s = 1; s <= n; s += 1000) {
  const seqs = Array.from({ length: Math.min(1000, n - s + 1) }, (_, k) => s + k);
  m.apply(entry(++i, { op: { t: 'task.assign', term: 1, lease_ms: 30_000, groups: [{ orch: id, agent: `a${s % 5}`, seqs, from: seqs.map(() => 0) }] }, now: 2000 + i }));
  m.apply(entry(++i, { op: { t: 'task.complete', items: [], groups: [{ orch: id, agent: `a${s % 5}`, seqs, epochs: seqs.map(() => 1), ok: true }] }, now: 3000 + i }));
}
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ckpt-cost-'));
const st = SqliteStorage.open(path.join(dir, 'a.db'), { durability: 'off' });
st.save({ entries: Array.from({ length: i }, (_, k) => ({ index: k + 1, term: 1, type: 'noop' as const, data: '' })), hardState: { term: 1, vote: null, commit: i }, messages: [] } as never);
const conf = { voters: ['n1'], learners: [] };
const t0 = performance.now();
const c = m.takeCheckpoint();
const t1 = performance.now();
st.checkpoint({ metadata: { index: i, term: 1, confState: conf }, ...c });
const t2 = performance.now();
const bytes = c.tables.orchs.put.reduce((a, [, j, b]) => a + j.length + (b?.byteLength ?? 0), 0);
const r = new CoordinationMachine();
const t3 = performance.now();
r.restoreCheckpoint(st.load(conf).checkpoint!);
const t4 = performance.now();
const json = m.snapshot();
const t5 = performance.now();
const r2 = new CoordinationMachine();
r2.restore(json);
const t6 = performance.now();
if (r.snapshot() !== json || r2.snapshot() !== json) throw new Error('restored state differs');
console.log(
  JSON.stringify({
    tasks: n,
    checkpoint_row_bytes: bytes,
    take_checkpoint_ms: +(t1 - t0).toFixed(1),
    sqlite_checkpoint_ms: +(t2 - t1).toFixed(1),
    restore_from_rows_ms: +(t4 - t3).toFixed(1),
    json_snapshot_bytes: json.length,
    json_snapshot_ms: +(t5 - t4).toFixed(1),
    json_restore_ms: +(t6 - t5).toFixed(1),
  }),
);
st.close();
fs.rmSync(dir, { recursive: true, force: true });
