// Back up and restore a large state (issue 12: backups past V8's ~512 Mi-character string limit).
// Usage (separate processes, so each phase's peak RSS is its own):
//   npx tsx test/bench/backup-large.ts save DIR [mib=600] [tasks=0]   one-member swarm in
//        DIR/src, MIB records of ~1 MiB written (and TASKS noop tasks run), then
//        saveSnapshotFile to DIR/big.snapshot
//   npx tsx test/bench/backup-large.ts restore DIR         restoreSnapshot(DIR/big.snapshot)
//        into DIR/dst, then open it and compare the state's hash with the one save printed
// Each phase prints one JSON line: state characters, parts, seconds, the event loop's longest
// stall during the save, peak RSS (VmHWM). The state hash here is SHA-256 over the parts of
// snapshotData() (each part then "\n"), computable on old and new code alike.
//
// Measured 2026-12-01, 2-core VM shared with other agents, heap limit 8 GiB, 600 records
// (629,192,727 characters of state):
// - before (81f0359, the state as one string): save fails after 1.94 s with
//   "RangeError: Invalid string length" (JSON.stringify in snapshot()), peak RSS 3,171 MiB;
//   no file, so nothing to restore.
// - after (format 2, parts of at most 4 Mi characters: 629,218,054-byte file), two runs:
//   save 26.4 s at load ~12 / 9.3 s at load ~8, the event loop's longest stall during it
//   410 / 202 ms (GC pauses of a ~3.5 GiB heap reach 171 ms in a --trace-gc run; at load 8-12
//   a niced process also waits for a core), peak RSS 3,885 / 3,815 MiB (the populated swarm
//   included); restore 38.8 / 15.8 s, peak RSS 3,955 / 3,895 MiB; the restored member's
//   state hash equal to the source's both times.
// - 100,000 noop tasks (37,360,326 characters, `save DIR 0 100000`): before, save 2.39 s, all
//   of it one stall of the loop (2,389 ms); after, 0.92 s with a longest stall of 86 ms;
//   restore 3.96 s before, 2.52 s after.

import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { spawnAgent } from '../../src/service/agents.js';
import { saveSnapshotFile } from '../../src/service/backup.js';
import { Coordinator } from '../../src/service/coordinator.js';
import { memoryStore } from '../../src/service/memory.js';
import { restoreSnapshot } from '../../src/service/restore.js';
import { orchestrate } from '../../src/service/tasks.js';
import type { CoordinationMachine } from '../../src/machine/coordination-machine.js';

function peakRssMiB(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : -1;
}

function partsHash(m: CoordinationMachine): { sha256: string; chars: number; parts: number } {
  const d = m.snapshotData();
  const parts = typeof d === 'string' ? [d] : d;
  const h = createHash('sha256');
  let chars = 0;
  for (const p of parts) {
    h.update(p).update('\n');
    chars += p.length;
  }
  return { sha256: h.digest('hex'), chars, parts: parts.length };
}

async function save(dir: string, mib: number, tasks: number): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  const coordinator = new Coordinator({ dataDir: path.join(dir, 'src'), durability: 'off' });
  const { swarm } = coordinator.init({ name: 'big', max_agents: 1 });
  await spawnAgent(swarm, {});
  await swarm.waitForLeader(10_000);
  const t0 = performance.now();
  const value = 'x'.repeat((1 << 20) - 64);
  for (let i = 0; i < mib; i += 4) {
    await Promise.all([0, 1, 2, 3].filter((j) => i + j < mib).map((j) => memoryStore(swarm, { key: `big/${i + j}`, value: `${i + j}:${value}` })));
  }
  if (tasks > 0) {
    const orch = (await orchestrate(swarm, { task: 'bench', count: tasks })).orchestration_id as string;
    const m = swarm.localMachine()!.machine;
    while ((m.tasks.orchs.get(orch)?.counts.completed ?? 0) < tasks) await new Promise((r) => setTimeout(r, 50));
  }
  const writeS = (performance.now() - t0) / 1000;
  const file = path.join(dir, 'big.snapshot');
  fs.rmSync(file, { force: true });
  // The longest gap between ticks of a 5 ms timer: how long the save held the event loop.
  let last = performance.now();
  let stallMs = 0;
  const ticker = setInterval(() => {
    const now = performance.now();
    stallMs = Math.max(stallMs, now - last - 5);
    last = now;
  }, 5);
  const t1 = performance.now();
  let out: Record<string, unknown>;
  try {
    const s = await saveSnapshotFile(swarm, file, { overwrite: false });
    out = { ok: true, bytes: s.bytes, file_parts: s.parts, index: s.index, state_sha256: s.state_sha256 };
  } catch (e) {
    out = { ok: false, error: `${(e as Error).name}: ${(e as Error).message}` };
  }
  const saveS = (performance.now() - t1) / 1000;
  clearInterval(ticker);
  stallMs = Math.max(stallMs, performance.now() - last - 5); // a stall still running at the end
  const m = swarm.localMachine()!.machine;
  const h = partsHash(m);
  fs.writeFileSync(path.join(dir, 'expected.json'), JSON.stringify(h));
  console.log(JSON.stringify({ phase: 'save', records: mib, tasks, write_s: +writeS.toFixed(1), state_chars: h.chars, state_parts: h.parts, save_s: +saveS.toFixed(2), loop_max_stall_ms: Math.round(stallMs), peak_rss_mib: peakRssMiB(), ...out }));
  coordinator.close();
}

async function restore(dir: string): Promise<void> {
  const file = path.join(dir, 'big.snapshot');
  const dst = path.join(dir, 'dst');
  fs.rmSync(dst, { recursive: true, force: true });
  const t0 = performance.now();
  let out: Record<string, unknown>;
  try {
    const r = restoreSnapshot(file, { dataDir: dst, swarm: 'copy' });
    out = { ok: true, index: r.index };
  } catch (e) {
    out = { ok: false, error: `${(e as Error).name}: ${(e as Error).message}` };
  }
  const restoreS = (performance.now() - t0) / 1000;
  let same: boolean | null = null;
  if (out.ok) {
    const c = new Coordinator({ dataDir: dst, durability: 'off' });
    const swarm = c.swarm('copy');
    const id = swarm.activeMembers()[0]!;
    const h = partsHash(swarm.machines.get(id)!);
    const want = JSON.parse(fs.readFileSync(path.join(dir, 'expected.json'), 'utf8')) as { sha256: string };
    same = h.sha256 === want.sha256;
    c.close();
  }
  console.log(JSON.stringify({ phase: 'restore', restore_s: +restoreS.toFixed(2), state_equal: same, peak_rss_mib: peakRssMiB(), file_bytes: fs.existsSync(file) ? fs.statSync(file).size : null, ...out }));
}

const [verb, dir, n, tasks] = process.argv.slice(2);
if (verb === 'save' && dir) await save(dir, Number(n ?? 600), Number(tasks ?? 0));
else if (verb === 'restore' && dir) await restore(dir);
else {
  console.error('usage: backup-large.ts save DIR [mib] [tasks] | restore DIR');
  process.exit(2);
}
process.exit(0);
