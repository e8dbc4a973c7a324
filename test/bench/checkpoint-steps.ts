// Longest single turn of the first checkpoint after a snapshot install (a whole-state rewrite):
// a machine restored from a snapshot of `n` memory values of ~1 MiB (the 1.05 GiB cluster
// bench's shape), its rows taken on one turn (takeCheckpoint, as before) against a slice per
// turn (checkpointSteps, as the host now does; slice: CONCORD_CHECKPOINT_SLICE_CHARS or the
// default). Rows taken only, not stored (the storage writes a large one in steps already).
// Alternates the two `rounds` times on the same machine (markCheckpointLost between).
// Usage: npx tsx test/bench/checkpoint-steps.ts [n=200] [rounds=2]
import { PerformanceObserver } from 'node:perf_hooks';
import { checkpointSliceChars, CoordinationMachine } from '../../src/machine/coordination-machine.js';
import { entry, putOp } from '../machine/machine-util.js';

const n = Number(process.argv[2] ?? 200);
const rounds = Number(process.argv[3] ?? 2);
const filler = 'abcdefghijklmnopqrstuvwxyz0123456789'.repeat(Math.ceil((1 << 20) / 36));
let m = new CoordinationMachine();
for (let i = 1; i <= n; i++) m.apply(entry(i, { op: putOp(`big/${i}`, `${i}:${filler}`.slice(0, (1 << 20) - 64)), now: 1000 + i }));
for (let i = 1; i <= 60; i++) m.apply(entry(n + i, { op: putOp(`small/${i}`, i), now: 5000 + i }));
// Installed: restored from the snapshot a leader would send (parts), every row to rewrite.
let data: ReturnType<CoordinationMachine['snapshotData']> | null = m.snapshotData();
m = new CoordinationMachine();
const tr = performance.now();
m.restore(data);
data = null;
const restoreMs = performance.now() - tr;
const slice = checkpointSliceChars();
const ms = (x: number) => Math.round(x * 10) / 10;
const out: Array<Record<string, unknown>> = [];
// GC pauses, to tell a long turn's own work from a collection that fell in it.
const gcs: Array<{ start: number; ms: number }> = [];
new PerformanceObserver((l) => {
  for (const e of l.getEntries()) gcs.push({ start: e.startTime, ms: e.duration });
}).observe({ entryTypes: ['gc'] });
for (let r = 0; r < rounds; r++) {
  m.markCheckpointLost();
  const t0 = performance.now();
  const one = m.takeCheckpoint();
  const oneMs = performance.now() - t0;
  const chars = one.tables.memory.put.reduce((a, [, j]) => a + j.length, 0);
  const nRows = one.tables.memory.put.length;
  // Dropped before the stepped take, as a host holds one take's rows at a time.
  one.tables.memory.put = [];
  m.markCheckpointLost();
  const g = m.checkpointSteps(slice);
  const turns: number[] = [];
  const spans: Array<[number, number]> = [];
  for (;;) {
    const s = performance.now();
    const x = g.next();
    const e = performance.now();
    turns.push(e - s);
    spans.push([s, e]);
    if (x.done) {
      if (x.value.tables.memory.put.length !== nRows) throw new Error('stepped rows differ');
      break;
    }
    // A turn of its own, as the host's (other work runs between).
    await new Promise<void>((r) => setImmediate(r));
  }
  await new Promise<void>((r) => setTimeout(r, 10));
  const gcIn = spans.map(([s, e]) => gcs.filter((g) => g.start >= s && g.start < e).reduce((a, g) => a + g.ms, 0));
  const longest = turns.indexOf(Math.max(...turns));
  out.push({
    round: r + 1,
    rows: nRows,
    row_chars_mib: ms(chars / (1 << 20)),
    one_turn_ms: ms(oneMs),
    stepped_turns: turns.length,
    stepped_longest_turn_ms: ms(Math.max(...turns)),
    // Turns sorted: the median and the 90th percentile (a long one is often a GC pause).
    stepped_p50_turn_ms: ms([...turns].sort((a, b) => a - b)[Math.floor(turns.length / 2)]!),
    stepped_p90_turn_ms: ms([...turns].sort((a, b) => a - b)[Math.floor(turns.length * 0.9)]!),
    stepped_turns_over_50_ms: turns.filter((t) => t > 50).length,
    // GC pause time inside the longest turn, and the longest turn's time without it.
    stepped_longest_turn_gc_ms: ms(gcIn[longest]!),
    stepped_longest_turn_without_gc_ms: ms(Math.max(...turns.map((t, i) => t - gcIn[i]!))),
    stepped_total_ms: ms(turns.reduce((a, b) => a + b, 0)),
  });
}
console.log(JSON.stringify({ values: n, slice_chars: slice, restore_ms: ms(restoreMs), rounds: out }, null, 1));
