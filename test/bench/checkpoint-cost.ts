// Cost of a checkpoint of the task table (one orchestration's columns: a metadata row and
// its task blocks) and of the restart from it, against a JSON snapshot of the same state; then
// of the next checkpoint after 1,000 of its tasks changed (stale reports: one block). All tasks
// but the last 1,000 completed (those stay assigned). Usage:
//   npx tsx test/bench/checkpoint-cost.ts [tasks] [nojson]
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
  // The last 1,000 stay assigned: the orchestration is unfinished, so retention keeps its records.
  if (s + 1000 <= n) m.apply(entry(++i, { op: { t: 'task.complete', items: [], groups: [{ orch: id, agent: `a${s % 5}`, seqs, epochs: seqs.map(() => 1), ok: true }] }, now: 3000 + i }));
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
// The steady state: the next checkpoint after 1,000 more tasks changed (a retry of tasks in the
// middle: assigned again, completed again), which is what a running orchestration checkpoints.
const mid = Math.floor(n / 2);
const again = Array.from({ length: Math.min(1000, n) }, (_, k) => ((mid + k) % n) + 1);
m.apply(entry(++i, { op: { t: 'task.assign', term: 2, lease_ms: 30_000, groups: [] }, now: 5_000_000 }));
for (const s of again) m.apply(entry(++i, { op: { t: 'task.complete', items: [{ task: `${id}-${s}`, agent: 'late', epoch: 1, ok: true, result: null }] }, now: 5_000_000 + i }));
st.save({ entries: Array.from({ length: again.length + 1 }, (_, k) => ({ index: i - again.length + k, term: 1, type: 'noop' as const, data: '' })), hardState: { term: 1, vote: null, commit: i }, messages: [] } as never);
const t7 = performance.now();
const c2 = m.takeCheckpoint();
const t8 = performance.now();
st.checkpoint({ metadata: { index: i, term: 1, confState: conf }, ...c2 });
const t9 = performance.now();
const bytes2 = c2.tables.orchs.put.reduce((a, [, j, b]) => a + j.length + (b?.byteLength ?? 0), 0);
const r = new CoordinationMachine();
const t3 = performance.now();
r.restoreCheckpoint(st.load(conf).checkpoint!);
const t4 = performance.now();
// 'nojson': skip the JSON snapshot comparison (tens of seconds at 1M tasks on a loaded machine).
const withJson = process.argv[3] !== 'nojson';
const json = withJson ? m.snapshot() : '';
const t5 = performance.now();
const r2 = new CoordinationMachine();
if (withJson) r2.restore(json);
const t6 = performance.now();
if (withJson && (r.snapshot() !== json || r2.snapshot() !== json)) throw new Error('restored state differs');
if (!withJson && r.stateHash() !== m.stateHash()) throw new Error('restored state differs');
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
    next_checkpoint_rows: c2.tables.orchs.put.length,
    next_checkpoint_bytes: bytes2,
    next_take_checkpoint_ms: +(t8 - t7).toFixed(1),
    next_sqlite_checkpoint_ms: +(t9 - t8).toFixed(1),
  }),
);
st.close();
fs.rmSync(dir, { recursive: true, force: true });
