// Offline restart profile: opens a copy of a member's database (dist/ build) and times each
// step of the rebuild a restarted member runs before it listens: load (hard state, checkpoint
// meta, log tail), the checkpoint rows into the machine, and the replay of the committed tail.
// The machine is shared: compare builds alternately, by the CPU time as well as the wall time.
// Measured 14:20 UTC (a bench member's file: 45,315 memory records, 21 MB; load 30+), 8 rounds
// each, alternating: restoreCheckpoint CPU median 291 ms before the rows were kept as text and
// read in chunks, 182 ms after (0.63x). 19:25 UTC (50,001 records, 23 MB file, load 5-7): 115-175 ms
// with every row read, 0.9-2.1 ms with memory rows read on demand (MemoryStore.fromStored).
// Usage: node test/bench/restore-profile.mjs <member.db> [rounds] [dist root]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';

const [file, roundsArg, distArg] = process.argv.slice(2);
if (!file) throw new Error('usage: restore-profile.mjs <member.db> [rounds] [dist root]');
const dist = path.resolve(distArg ?? path.join(path.dirname(new URL(import.meta.url).pathname), '..', '..', 'dist'));
const { SqliteStorage } = await import(pathToFileURL(path.join(dist, 'src/storage/sqlite-storage.js')).href);
const { CoordinationMachine } = await import(pathToFileURL(path.join(dist, 'src/machine/coordination-machine.js')).href);

const rounds = Number(roundsArg ?? 5);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'restore-profile-'));
for (let r = 0; r < rounds; r++) {
  const copy = path.join(tmp, `m${r}.db`);
  fs.copyFileSync(file, copy);
  if (fs.existsSync(`${file}-wal`)) fs.copyFileSync(`${file}-wal`, `${copy}-wal`);
  const t = [performance.now()];
  const st = SqliteStorage.open(copy, { durability: 'full', fsync: 'threadpool' });
  t.push(performance.now());
  const state = st.load({ voters: [], learners: [] });
  t.push(performance.now());
  const m = new CoordinationMachine();
  const c0 = process.cpuUsage();
  if (state.checkpoint) m.restoreCheckpoint(state.checkpoint);
  const cpu = process.cpuUsage(c0);
  t.push(performance.now());
  let applied = 0;
  for (const e of state.entries) {
    if (e.index > state.hardState.commit) break;
    m.apply(e);
    applied++;
  }
  t.push(performance.now());
  const d = (i) => (t[i + 1] - t[i]).toFixed(1);
  console.log(`open ${d(0)} load ${d(1)} restore ${d(2)} (cpu ${((cpu.user + cpu.system) / 1000).toFixed(1)}) replay ${d(3)} (${applied} of ${state.entries.length} entries) memory held ${m.memory.records.size} of ${m.memory.size} sessions ${m.sessions.size} orchs ${m.tasks.orchs.size}`);
  st.close();
}
fs.rmSync(tmp, { recursive: true, force: true });
