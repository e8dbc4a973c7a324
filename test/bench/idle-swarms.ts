// Idle-swarms bench: many swarms in one process, doing nothing. A Coordinator on a fresh temp
// data dir (real SQLite files, durability full, the in-process transport), `swarms` swarms of
// `agents` agents each, every swarm with an elected leader whose first entries are committed.
// After a settle period the process is measured over a window while nobody asks anything:
// CPU (process.cpuUsage: user + system, as % of one core), RSS at the end, the timers the
// process arms per second and holds live (counted by wrapping the global timer functions from
// before the first swarm opens), Raft messages and heartbeats per second, SQLite writes.
//
// One JSON line: swarms, agents, cpu_pct_of_core, rss_mb, timers (live at the end),
// timer_arms_per_s, heartbeats_per_s, ... The idle cost of one swarm is cpu_pct_of_core /
// swarms; how many swarms one process holds before idle cost passes one core follows.

import fs from 'node:fs';
import { Session } from 'node:inspector/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { spawnAgent } from '../../src/service/agents.js';
import { Coordinator } from '../../src/service/coordinator.js';
import { InProcNetwork } from '../../src/host/inproc-network.js';
import { processTickWheel, type Swarm } from '../../src/swarm/swarm.js';
import type { Durability } from '../../src/storage/sqlite-storage.js';
import { parseNumber, round, sleep } from './stats.js';
import type { BenchArgs, BenchModule } from './types.js';

const TARGETS = { cpu_pct_of_core_max: 5, rss_mb_max: 500 };

interface Options {
  swarms: number;
  agents: number;
  windowS: number;
  settleS: number;
  durability: Durability;
  cpuprof: string | null;
}

function parseOptions(args: BenchArgs): Options {
  const durability = (args.durability ?? 'full') as Durability;
  if (!['full', 'normal', 'off'].includes(durability)) throw new Error(`--durability=${durability}: expected full, normal or off`);
  return {
    swarms: parseNumber(args, 'swarms', 50, (n) => Number.isInteger(n) && n >= 1, 'an integer >= 1'),
    agents: parseNumber(args, 'agents', 5, (n) => Number.isInteger(n) && n >= 1 && n <= 15, 'an integer 1..15'),
    windowS: parseNumber(args, 'window', 30, (n) => n > 0, 'seconds > 0'),
    settleS: parseNumber(args, 'settle', 5, (n) => n >= 0, 'seconds >= 0'),
    durability,
    cpuprof: args.cpuprof ?? null,
  };
}

/** Counts timer arms and live timers by wrapping the globals (every module resolves them at call time). */
class TimerCounter {
  arms = 0;
  immediates = 0;
  private readonly live = new Set<unknown>();
  private readonly saved = { setTimeout, clearTimeout, setInterval, clearInterval, setImmediate };

  install(): void {
    const s = this.saved;
    const g = globalThis as unknown as Record<string, unknown>;
    g.setTimeout = ((fn: (...a: unknown[]) => void, ms?: number, ...rest: unknown[]) => {
      this.arms++;
      const t = s.setTimeout(
        (...a: unknown[]) => {
          this.live.delete(t);
          fn(...a);
        },
        ms,
        ...rest,
      );
      this.live.add(t);
      return t;
    }) as unknown;
    g.setInterval = ((fn: (...a: unknown[]) => void, ms?: number, ...rest: unknown[]) => {
      this.arms++;
      const t = s.setInterval(fn, ms, ...rest);
      this.live.add(t);
      return t;
    }) as unknown;
    const clear = (orig: (t: never) => void) => (t: unknown) => {
      this.live.delete(t);
      orig(t as never);
    };
    g.clearTimeout = clear(s.clearTimeout as (t: never) => void);
    g.clearInterval = clear(s.clearInterval as (t: never) => void);
    g.setImmediate = ((fn: (...a: unknown[]) => void, ...rest: unknown[]) => {
      this.immediates++;
      return s.setImmediate(fn, ...rest);
    }) as unknown;
  }

  uninstall(): void {
    Object.assign(globalThis, this.saved);
  }

  get liveCount(): number {
    return this.live.size;
  }
}

interface Totals {
  held: number;
  messages: number;
  heartbeats: number;
  syncs: number;
  bytes: number;
}

function totals(swarms: Swarm[]): Totals {
  const t: Totals = { held: 0, messages: 0, heartbeats: 0, syncs: 0, bytes: 0 };
  for (const s of swarms) {
    const net = s.cluster.network;
    if (net instanceof InProcNetwork) t.held += net.heartbeatsHeld;
    for (const h of s.cluster.hosts.values()) {
      const m = h.metrics();
      t.messages += m.messagesOut;
      t.heartbeats += m.heartbeatsOut ?? 0;
      t.syncs += m.storage.syncs;
      t.bytes += m.storage.bytesWritten;
    }
  }
  return t;
}

function elections(swarms: Swarm[]): number {
  let n = 0;
  for (const s of swarms) n += s.localMachine()?.machine.electionTotals.elections ?? 0;
  return n;
}

async function run(args: BenchArgs, log: (m: string) => void): Promise<Record<string, unknown>> {
  const o = parseOptions(args);
  // Every timer of the swarms is unref'd: while a spawn waits for a commit that only the tick
  // wheel's timer will bring, nothing else may hold the loop, and the process would exit (0)
  // mid-run. One referenced timer (set before counting starts) keeps it up until the end.
  const keepAlive = setInterval(() => {}, 1 << 30);
  const timers = new TimerCounter();
  timers.install();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-bench-idle-'));
  const rssBefore = process.memoryUsage().rss;
  const coord = new Coordinator({ dataDir: dir, durability: o.durability });
  try {
    const t0 = performance.now();
    const swarms: Swarm[] = [];
    for (let i = 0; i < o.swarms; i++) {
      const { swarm } = coord.init({ name: `idle-${i}`, max_agents: o.agents });
      for (let a = 0; a < o.agents; a++) await spawnAgent(swarm, {});
      await swarm.waitForLeader(30_000);
      swarms.push(swarm);
      if ((i + 1) % 10 === 0) log(`${i + 1} swarms up (${round((performance.now() - t0) / 1000, 1)} s)`);
    }
    const upS = (performance.now() - t0) / 1000;
    log(`${o.swarms} swarms x ${o.agents} agents up after ${round(upS, 1)} s; settling ${o.settleS} s`);
    await sleep(o.settleS * 1000);
    for (const s of swarms) await s.waitForLeader(30_000);

    const electionsBefore = elections(swarms);
    const before = totals(swarms);
    const armsBefore = timers.arms;
    const firedBefore = processTickWheel().fired;
    const immBefore = timers.immediates;
    const prof = o.cpuprof ? await startProfile() : null;
    const elu0 = performance.eventLoopUtilization();
    const cpu0 = process.cpuUsage();
    const w0 = performance.now();
    log(`measuring ${o.windowS} s of idle`);
    await sleep(o.windowS * 1000);
    const cpu = process.cpuUsage(cpu0);
    const wallS = (performance.now() - w0) / 1000;
    const elu = performance.eventLoopUtilization(elu0);
    if (prof && o.cpuprof) {
      const file = path.join(o.cpuprof, `idle-${o.swarms}x${o.agents}-${Date.now()}.cpuprofile`);
      fs.mkdirSync(o.cpuprof, { recursive: true });
      fs.writeFileSync(file, JSON.stringify((await prof.post('Profiler.stop')).profile));
      prof.disconnect();
      log(`CPU profile of the window in ${file}`);
    }
    const after = totals(swarms);
    const rss = process.memoryUsage().rss;
    const leaders = swarms.filter((s) => s.cluster.leader() !== undefined).length;
    const cpuPct = ((cpu.user + cpu.system) / 1e6 / wallS) * 100;
    const perS = (n: number) => round(n / wallS, 1);
    return {
      bench: 'idle',
      swarms: o.swarms,
      agents: o.agents,
      members: o.swarms * o.agents,
      durability: o.durability,
      window_s: round(wallS, 1),
      cpu_pct_of_core: round(cpuPct, 2),
      cpu_user_pct: round((cpu.user / 1e6 / wallS) * 100, 2),
      cpu_system_pct: round((cpu.system / 1e6 / wallS) * 100, 2),
      event_loop_utilization: round(elu.utilization, 4),
      rss_mb: round(rss / (1 << 20), 1),
      rss_before_mb: round(rssBefore / (1 << 20), 1),
      timers: timers.liveCount,
      timer_arms_per_s: perS(timers.arms - armsBefore),
      immediates_per_s: perS(timers.immediates - immBefore),
      // Wakeups of the process's one tick timer (every member's ticks share it).
      tick_wheel_wakes_per_s: perS(processTickWheel().fired - firedBefore),
      heartbeats_per_s: perS(after.heartbeats - before.heartbeats),
      messages_per_s: perS(after.messages - before.messages),
      // Heartbeats that asked no answer, held for their follower's next read (no wake of their own).
      held_heartbeats_per_s: perS(after.held - before.held),
      fsyncs_per_s: perS(after.syncs - before.syncs),
      bytes_written_per_s: perS(after.bytes - before.bytes),
      elections_during_window: elections(swarms) - electionsBefore,
      swarms_with_leader: leaders,
      startup_s: round(upS, 1),
      // Idle cost per swarm, and how many such swarms make one core busy just idling.
      cpu_pct_per_swarm: round(cpuPct / o.swarms, 4),
      swarms_per_core_extrapolated: cpuPct > 0 ? Math.floor((100 / cpuPct) * o.swarms) : null,
      targets: TARGETS,
      meets_targets: cpuPct < TARGETS.cpu_pct_of_core_max && rss / (1 << 20) < TARGETS.rss_mb_max,
      // 1-minute load average at the end: this machine is shared, and a starved process's
      // timers fire late (fewer wakeups, missed heartbeats, elections).
      loadavg_1m: round(os.loadavg()[0] as number, 2),
      node: process.version,
      cpus: os.cpus().length,
    };
  } finally {
    coord.close();
    timers.uninstall();
    clearInterval(keepAlive);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function startProfile(): Promise<Session> {
  const s = new Session();
  s.connect();
  await s.post('Profiler.enable');
  await s.post('Profiler.setSamplingInterval', { interval: 500 });
  await s.post('Profiler.start');
  return s;
}

export const bench: BenchModule = {
  description:
    'Many idle swarms in one process (Coordinator, in-process transport, SQLite in a temp dir): CPU % of one core over the window once every swarm has a leader, RSS, live timers, timer arms/s, heartbeats/s',
  options: {
    swarms: { description: 'swarms in the process', default: '50' },
    agents: { description: 'agents (Raft members) per swarm', default: '5' },
    window: { description: 'measured idle window, seconds', default: '30' },
    settle: { description: 'wait after the last leader before measuring, seconds', default: '5' },
    durability: { description: 'SQLite durability: full, normal or off', default: 'full' },
    cpuprof: { description: 'directory for a V8 CPU profile of the window', default: '(none)' },
  },
  run,
};
