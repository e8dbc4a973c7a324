// Size and time of the snapshot a follower is sent for a million-task orchestration (every
// task assigned and completed by one of 8 agents, as after `bench scale --counts 1000000`):
// snapshotData() (the multi-part form), checkSnapshot() and restore() on a fresh machine.
//   nice npx tsx test/bench/snapshot-size.ts [tasks]
// 2026-12-01, 1,000,000 tasks, load 3-5: v4 (one JSON record per task) 377,768,915 chars in 8
// parts, write 3,698 ms, check 2,743 ms, restore 771 ms; v5 (block rows) 17,190,088 chars in 2
// parts, write 132 ms, check 119 ms (it rebuilds the task table), restore 0 ms.
import { CoordinationMachine } from '../../src/machine/coordination-machine.js';
import { snapshotParts } from '../../src/raft/types.js';
import { createOp, LogBuilder } from '../machine/machine-util.js';

const n = Number(process.argv[2] ?? 1_000_000);
const b = new LogBuilder();
b.op(createOp(n));
const orch = 'orch-1';
const step = 10_000;
for (let from = 1; from <= n; from += step) {
  const seqs = Array.from({ length: Math.min(step, n - from + 1) }, (_, k) => from + k);
  const agent = `agent-${(from / step) % 8}`;
  b.now += 7;
  b.op({ t: 'task.assign', term: 1, lease_ms: 30_000, groups: [{ orch, agent, seqs, from: seqs.map(() => 0) }] });
  b.now += 13;
  b.op({ t: 'task.complete', items: [], groups: [{ orch, agent, seqs, epochs: seqs.map(() => 1), ok: true }] });
}
const m = b.machine;
const rss = () => Math.round(process.memoryUsage().rss / 2 ** 20);
const t0 = performance.now();
const parts = snapshotParts(m.snapshotData());
const t1 = performance.now();
const chars = parts.reduce((s, p) => s + p.length, 0);
const r = new CoordinationMachine();
const why = r.checkSnapshot(parts);
const t2 = performance.now();
r.restore(parts);
const t3 = performance.now();
const same = r.snapshot() === m.snapshot();
console.log(JSON.stringify({ tasks: n, parts: parts.length, chars, version: JSON.parse(parts[0]!.slice(0, 20).replace(/,.*/, '}')).v, write_ms: Math.round(t1 - t0), check_ms: Math.round(t2 - t1), restore_ms: Math.round(t3 - t2), check: why, same_state: same, rss_mib: rss() }));
