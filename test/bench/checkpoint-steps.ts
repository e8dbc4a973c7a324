// Longest single turn of the first checkpoint after a snapshot install (a whole-state rewrite):
// a machine restored from a snapshot of `n` memory values of ~1 MiB (the 1.05 GiB cluster
// bench's shape), its rows taken on one turn (takeCheckpoint, as before) against a slice per
// turn (checkpointSteps, as the host now does; slice: CONCORD_CHECKPOINT_SLICE_CHARS or the
// default). Rows taken only, not stored (the storage writes a large one in steps already).
// Alternates the two `rounds` times on the same machine (markCheckpointLost between).
// Usage: npx tsx test/bench/checkpoint-steps.ts [n=200] [rounds=2]
import { checkpointSliceChars, CoordinationMachine } from '../../src/machine/coordination-machine.js';
import { entry, putOp } from '../machine/machine-util.js';

const n = Number(process.argv[2] ?? 200);
const rounds = Number(process.argv[3] ?? 2);
const filler = 'abcdefghijklmnopqrstuvwxyz0123456789'.repeat(Math.ceil((1 << 20) / 36));
let m = new CoordinationMachine();
for (let i = 1; i <= n; i++) m.apply(entry(i, { op: putOp(`big/${i}`, `${i}:${filler}`.slice(0, (1 << 20) - 64)), now: 1000 + i }));
for (let i = 1; i <= 60; i++) m.apply(entry(n + i, { op: putOp(`small/${i}`, i), now: 5000 + i }));
// Installed: restored from the snapshot a leader would send (parts), every row to rewrite.
const data = m.snapshotData();
m = new CoordinationMachine();
const tr = performance.now();
m.restore(data);
const restoreMs = performance.now() - tr;
const slice = checkpointSliceChars();
const ms = (x: number) => Math.round(x * 10) / 10;
const out: Array<Record<string, unknown>> = [];
for (let r = 0; r < rounds; r++) {
  m.markCheckpointLost();
  const t0 = performance.now();
  const one = m.takeCheckpoint();
  const oneMs = performance.now() - t0;
  const chars = one.tables.memory.put.reduce((a, [, j]) => a + j.length, 0);
  m.markCheckpointLost();
  const g = m.checkpointSteps(slice);
  const turns: number[] = [];
  for (;;) {
    const s = performance.now();
    const x = g.next();
    turns.push(performance.now() - s);
    if (x.done) {
      if (x.value.tables.memory.put.length !== one.tables.memory.put.length) throw new Error('stepped rows differ');
      break;
    }
  }
  out.push({
    round: r + 1,
    rows: one.tables.memory.put.length,
    row_chars_mib: ms(chars / (1 << 20)),
    one_turn_ms: ms(oneMs),
    stepped_turns: turns.length,
    stepped_longest_turn_ms: ms(Math.max(...turns)),
    stepped_total_ms: ms(turns.reduce((a, b) => a + b, 0)),
  });
}
console.log(JSON.stringify({ values: n, slice_chars: slice, restore_ms: ms(restoreMs), rounds: out }, null, 1));
