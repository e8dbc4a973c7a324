// Attribute the event-loop stalls of a 1 MiB burst (the scale bench's) to the calls that ran
// during them: storage writes, checkpoints, applies and GC, timed by wrapping their methods.
// Run: npx tsx test/bench/burst-stalls.ts  (N=100 writes, GAPS=6 longest stalls listed; WRAP /
// HWRAP name other SqliteStorage / NodeHost methods to time). Prints per-method totals and, for
// each of the longest stalls (a 1 ms interval timer late by over 30 ms), the calls inside it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance, PerformanceObserver } from 'node:perf_hooks';
import { SqliteStorage } from '../../src/storage/sqlite-storage.js';
import { NodeHost } from '../../src/host/node-host.js';
import { spawnAgent } from '../../src/service/agents.js';
import { Coordinator } from '../../src/service/coordinator.js';
import { memoryStore } from '../../src/service/memory.js';

type Call = { name: string; t0: number; ms: number; depth: number };
const calls: Call[] = [];
let depth = 0;
function wrap(proto: any, name: string, label: string) {
  const orig = proto[name];
  proto[name] = function (this: unknown, ...args: unknown[]) {
    const t0 = performance.now();
    depth++;
    try {
      return orig.apply(this, args);
    } finally {
      depth--;
      const ms = performance.now() - t0;
      if (ms > 2) calls.push({ name: label, t0, ms, depth });
    }
  };
}
const which = (process.env.WRAP ?? 'write,checkpoint,insertEntries,putRows,checkpointTx,saveTx').split(',');
for (const n of which) if (n) wrap(SqliteStorage.prototype, n, `sql.${n}`);
for (const n of (process.env.HWRAP ?? 'handleReady,applyEntry,storeCheckpoint,persist,takeCheckpoint').split(',')) if (n && (NodeHost.prototype as any)[n]) wrap(NodeHost.prototype, n, `host.${n}`);

const N = Number(process.env.N ?? 100);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bprof-'));
const coord = new Coordinator({ dataDir: dir, durability: 'full' });
const { swarm } = coord.init({ name: 'bench', max_agents: 5 });
for (let i = 0; i < 5; i++) await spawnAgent(swarm, {});
await swarm.waitForLeader(10_000);
let elections = 0;
swarm.onRoleChangeEvent((c) => { if (c.role === 'leader') elections++; });
const gaps: { end: number; ms: number }[] = [];
let last = performance.now();
const iv = setInterval(() => { const now = performance.now(); if (now - last > 30) gaps.push({ end: now, ms: now - last }); last = now; }, 1);
calls.length = 0;
const gcs: { t0: number; ms: number; kind: number }[] = [];
new PerformanceObserver((l) => { for (const e of l.getEntries()) gcs.push({ t0: e.startTime, ms: e.duration, kind: (e as any).detail?.kind ?? 0 }); }).observe({ entryTypes: ['gc'] });
const value = 'v'.repeat(1024 * 1024 - 16);
const t0 = performance.now();
for (let i = 0; i < N; i++) await memoryStore(swarm, { key: `burst/${i}`, value });
const wall = performance.now() - t0;
clearInterval(iv);
coord.close();
fs.rmSync(dir, { recursive: true, force: true });
const agg = new Map<string, { n: number; ms: number; max: number }>();
for (const c of calls) { const a = agg.get(c.name) ?? { n: 0, ms: 0, max: 0 }; a.n++; a.ms += c.ms; a.max = Math.max(a.max, c.ms); agg.set(c.name, a); }
console.log(`gc total ${gcs.reduce((a, x) => a + x.ms, 0).toFixed(0)} ms max ${Math.max(0, ...gcs.map((x) => x.ms)).toFixed(1)}`);
console.log(`wall ${wall.toFixed(0)} ms, ${(N / wall * 1000).toFixed(1)} w/s, elections ${elections}, gaps>30ms ${gaps.length}, max gap ${Math.max(0, ...gaps.map((g) => g.ms)).toFixed(1)}`);
for (const [k, a] of [...agg].sort((x, y) => y[1].ms - x[1].ms)) console.log(`  ${k.padEnd(24)} n ${String(a.n).padStart(5)} total ${a.ms.toFixed(0).padStart(6)} ms max ${a.max.toFixed(1)}`);
const worst = [...gaps].sort((a, b) => b.ms - a.ms).slice(0, Number(process.env.GAPS ?? 6));
for (const g of worst) {
  const start = g.end - g.ms;
  const inside = calls.filter((c) => c.t0 >= start - 1 && c.t0 < g.end);
  for (const x of gcs.filter((x) => x.t0 >= start - 1 && x.t0 < g.end && x.ms > 1)) inside.push({ name: `gc${x.kind}`, t0: x.t0, ms: x.ms, depth: 0 });
  inside.sort((a, b) => a.t0 - b.t0);
  const top = inside.filter((c) => c.depth === Math.min(...inside.map((x) => x.depth)));
  console.log(`gap ${g.ms.toFixed(1)} ms: ` + inside.map((c) => `${'  '.repeat(c.depth)}${c.name} ${c.ms.toFixed(1)}`).join(' | '));
}
