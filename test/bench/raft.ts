// Raft bench: a 5-member LocalCluster on the real clock, one SqliteStorage per member (WAL,
// durability full with the fsync on the libuv threadpool, like the product) in a fresh temp dir.
// Timing is the product's: tick TICK_MS from swarm.ts, election 150-300 ms, heartbeat 50 ms. Measures time to the first leader,
// closed-loop commit throughput and latency (1 and 256 proposals in flight) and leader
// failover (crash the leader, time until a new leader commits a proposal).
//
// Everything runs in one process on one event loop, exactly like the embedded product, so
// every member's fsyncs and CPU share a thread: numbers are for the whole cluster.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { LocalCluster } from '../../src/host/local-cluster.js';
import type { NodeHost, RoleChange, StateMachine } from '../../src/host/node-host.js';
import type { Entry, NodeId } from '../../src/raft/types.js';
import { raftTiming, TICK_MS } from '../../src/swarm/swarm.js';
import { SqliteStorage, type Durability, type FsyncMode } from '../../src/storage/sqlite-storage.js';
import { RealClock } from '../../src/util/clock.js';
import { Prng } from '../../src/util/prng.js';
import { median, parseNumber, percentile, round, sleep } from './stats.js';
import type { BenchArgs, BenchModule } from './types.js';

const TARGETS = {
  inflight256_entries_per_s_min: 50_000,
  inflight1_p50_ms_max: 2,
  failover_p50_ms_max: 200,
  failover_p99_ms_max: 300,
};

// The product's timing (swarm defaults, ticks of TICK_MS), so the failover figures are the product's.
const PRODUCT = raftTiming(undefined);
const RAFT = { electionTicksMin: PRODUCT.electionTicksMin!, electionTicksMax: PRODUCT.electionTicksMax!, heartbeatTicks: PRODUCT.heartbeatTicks! };
const IDS: NodeId[] = ['n1', 'n2', 'n3', 'n4', 'n5'];

/** Counts applied commands; snapshots are tiny so compaction cost stays out of the way. */
class CountingMachine implements StateMachine {
  count = 0;
  apply(e: Entry): unknown {
    if (e.type === 'normal') this.count++;
    return undefined;
  }
  snapshot(): string {
    return String(this.count);
  }
  restore(data: string): void {
    this.count = data ? Number(data) : 0;
  }
}

interface Options {
  seconds: number;
  warmup: number;
  trials: number;
  durability: Durability;
  fsync: FsyncMode;
  inflight: number[];
  payload: number;
  seed: number;
}

function parseOptions(args: BenchArgs): Options {
  const durability = (args.durability ?? 'full') as Durability;
  if (!['full', 'normal', 'off'].includes(durability)) throw new Error(`--durability=${durability}: expected full, normal or off`);
  const inflight = (args.inflight ?? '1,256').split(',').map((s) => Number(s));
  if (inflight.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`--inflight=${args.inflight}: expected a comma list of integers >= 1`);
  return {
    seconds: parseNumber(args, 'seconds', 5, (n) => n > 0, 'a number of seconds > 0'),
    warmup: parseNumber(args, 'warmup', 1, (n) => n >= 0, 'a number of seconds >= 0'),
    trials: parseNumber(args, 'trials', 20, (n) => Number.isInteger(n) && n >= 0, 'an integer >= 0'),
    durability,
    fsync: parseFsync(args.fsync),
    inflight,
    payload: parseNumber(args, 'payload', 64, (n) => Number.isInteger(n) && n >= 0, 'an integer >= 0'),
    seed: parseNumber(args, 'seed', 1, (n) => Number.isInteger(n), 'an integer'),
  };
}

function parseFsync(v: string | undefined): FsyncMode {
  const f = v ?? 'threadpool';
  if (f !== 'inline' && f !== 'threadpool') throw new Error(`--fsync=${f}: expected inline or threadpool`);
  return f;
}

/** Tracks the current leader from role-change events, so the hot loop never calls status(). */
class LeaderWatch {
  leaderId: NodeId | null = null;
  /** The latest "became leader" event (carries the election's start and duration). */
  lastElected: RoleChange | null = null;
  private waiters: Array<() => void> = [];

  constructor(private readonly cluster: LocalCluster) {
    cluster.onRoleChange((c) => {
      if (c.role === 'leader') {
        this.leaderId = c.id;
        this.lastElected = c;
      }
      else if (c.id === this.leaderId) this.leaderId = null;
      const w = this.waiters;
      this.waiters = [];
      for (const f of w) f();
    });
  }

  /** The running leader, if one is known. */
  get(): NodeHost | undefined {
    if (this.leaderId === null) return undefined;
    const h = this.cluster.hosts.get(this.leaderId);
    return h?.isRunning ? h : undefined;
  }

  /** Resolves at the next role change anywhere, or after `ms`. */
  change(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  async waitLeader(timeoutMs: number): Promise<NodeHost> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const h = this.get();
      if (h) return h;
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`no leader within ${timeoutMs} ms`);
      await this.change(Math.min(left, 50));
    }
  }
}

interface ClusterCounters {
  syncs: number;
  syncMs: number;
  loopMs: number;
  messages: number;
}

function counters(cluster: LocalCluster): ClusterCounters {
  const c: ClusterCounters = { syncs: 0, syncMs: 0, loopMs: 0, messages: 0 };
  for (const h of cluster.hosts.values()) {
    const m = h.metrics();
    c.syncs += m.storage.syncs;
    c.syncMs += m.storage.syncMsTotal;
    c.loopMs += m.storage.loopMsTotal ?? m.storage.syncMsTotal;
    c.messages += m.messagesOut;
  }
  return c;
}

/** Closed loop: `inflight` workers, each proposes, awaits the commit, proposes again. */
async function closedLoop(
  cluster: LocalCluster,
  watch: LeaderWatch,
  inflight: number,
  o: Options,
  log: (m: string) => void,
): Promise<Record<string, unknown>> {
  const payload = 'x'.repeat(o.payload);
  const warmupMs = o.warmup * 1000;
  const measureMs = o.seconds * 1000;
  const start = performance.now();
  const mStart = start + warmupMs;
  const mEnd = mStart + measureMs;
  const windows = new Array<number>(Math.ceil(o.seconds)).fill(0);
  const latencies: number[] = [];
  let committed = 0;
  let errors = 0;
  let before: ClusterCounters | null = null;
  let cpuBefore: NodeJS.CpuUsage | null = null;
  let eluBefore: ReturnType<typeof performance.eventLoopUtilization> | null = null;
  const markStart = (): void => {
    if (before) return;
    before = counters(cluster);
    cpuBefore = process.cpuUsage();
    eluBefore = performance.eventLoopUtilization();
  };
  // Take the "before" snapshot exactly when the measured window opens.
  const startTimer = setTimeout(markStart, warmupMs);

  const worker = async (): Promise<void> => {
    for (;;) {
      const t0 = performance.now();
      if (t0 >= mEnd) return;
      const h = watch.get();
      if (!h) {
        await watch.change(10);
        continue;
      }
      try {
        await h.propose(payload);
      } catch {
        errors++;
        await sleep(1);
        continue;
      }
      const t1 = performance.now();
      if (t1 >= mStart && t1 < mEnd) {
        committed++;
        const w = Math.floor((t1 - mStart) / 1000);
        if (w < windows.length) windows[w] = (windows[w] as number) + 1;
        if (t0 >= mStart) latencies.push(t1 - t0);
      }
    }
  };
  await Promise.all(Array.from({ length: inflight }, worker));
  clearTimeout(startTimer);
  markStart();
  const after = counters(cluster);
  const cpu = process.cpuUsage(cpuBefore as unknown as NodeJS.CpuUsage);
  const elu = performance.eventLoopUtilization(eluBefore as unknown as ReturnType<typeof performance.eventLoopUtilization>);
  const b = before as unknown as ClusterCounters;
  // Full one-second windows only; a trailing partial window would understate the rate.
  const full = windows.slice(0, Math.floor(o.seconds));
  const perWindow = full.length > 0 ? full : [committed / o.seconds];
  const res = {
    inflight,
    per_s: round(median(perWindow), 1),
    mean_per_s: round(committed / o.seconds, 1),
    per_s_windows: perWindow,
    p50_ms: round(percentile(latencies, 50)),
    p99_ms: round(percentile(latencies, 99)),
    max_ms: round(percentile(latencies, 100)),
    committed,
    errors,
    // Durable storage commits (each one fsync under durability 'full'), the share of wall time
    // the event loop spent in storage calls (transactions, inline fsyncs), and the mean time
    // from a durable write's start until it was durable (off-thread fsync included).
    storage_commits_per_entry: round((after.syncs - b.syncs) / Math.max(1, committed), 3),
    storage_commit_ms_share: round((after.loopMs - b.loopMs) / measureMs, 3),
    storage_sync_ms_mean: round((after.syncMs - b.syncMs) / Math.max(1, after.syncs - b.syncs), 3),
    messages_per_entry: round((after.messages - b.messages) / Math.max(1, committed), 3),
    cpu_us_per_entry: round((cpu.user + cpu.system) / Math.max(1, committed), 2),
    event_loop_utilization: round(elu.utilization, 3),
  };
  log(`inflight=${inflight}: ${res.per_s}/s (median of ${perWindow.length} windows), p50 ${res.p50_ms} ms, p99 ${res.p99_ms} ms, errors ${errors}`);
  return res;
}

/** Every running member has applied what the leader has committed. */
async function waitCaughtUp(cluster: LocalCluster, watch: LeaderWatch, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const l = watch.get();
    if (l && cluster.running().length === IDS.length) {
      const target = l.core.log.committed;
      if (cluster.running().every((h) => h.core.log.applied >= target)) return;
    }
    if (performance.now() > deadline) throw new Error(`cluster did not catch up within ${timeoutMs} ms`);
    await sleep(5);
  }
}

async function failover(
  cluster: LocalCluster,
  watch: LeaderWatch,
  o: Options,
  prng: Prng,
  log: (m: string) => void,
): Promise<Record<string, unknown>> {
  const samples: number[] = [];
  const attempts: number[] = [];
  // Phases of each trial: crash -> winner's campaign starts (detection), campaign -> leader
  // (election), leader -> first commit answered.
  const detect: number[] = [];
  const elect: number[] = [];
  const commitAfter: number[] = [];
  for (let trial = 0; trial < o.trials; trial++) {
    await waitCaughtUp(cluster, watch, 10_000);
    // Crash at a random phase of the heartbeat cycle.
    await sleep(prng.int(0, RAFT.heartbeatTicks * TICK_MS));
    const old = (await watch.waitLeader(5_000)).id;
    const t0 = performance.now();
    cluster.crash(old);
    let tries = 0;
    for (;;) {
      if (performance.now() - t0 > 10_000) throw new Error(`trial ${trial}: no commit within 10 s after crashing ${old}`);
      const h = watch.get();
      if (!h || h.id === old) {
        await watch.change(50);
        continue;
      }
      tries++;
      try {
        // A short deadline: if this leader is deposed, move on to the next one.
        await h.propose(`failover-${trial}`, 250);
        break;
      } catch {
        await sleep(1);
      }
    }
    const t1 = performance.now();
    const ms = t1 - t0;
    samples.push(ms);
    attempts.push(tries);
    const won = watch.lastElected;
    if (won?.election && won.at >= t0) {
      detect.push(won.election.startedAt - t0);
      elect.push(won.election.durationMs);
      commitAfter.push(t1 - won.at);
    }
    log(`failover trial ${trial + 1}/${o.trials}: crashed ${old}, new leader ${watch.leaderId} committed after ${round(ms, 1)} ms`);
    cluster.start(old);
  }
  await waitCaughtUp(cluster, watch, 10_000);
  return {
    trials: samples.length,
    p50_ms: round(percentile(samples, 50), 1),
    p99_ms: round(percentile(samples, 99), 1),
    max_ms: round(percentile(samples, 100), 1),
    min_ms: round(percentile(samples, 0), 1),
    samples_ms: samples.map((s) => round(s, 1)),
    // Medians of the phases (trials where the winner's campaign start was observed).
    phase_p50_ms: {
      detect: round(median(detect), 1),
      elect: round(median(elect), 1),
      commit: round(median(commitAfter), 1),
    },
    phase_max_ms: {
      detect: round(percentile(detect, 100), 1),
      elect: round(percentile(elect, 100), 1),
      commit: round(percentile(commitAfter, 100), 1),
    },
    propose_attempts_max: attempts.length ? Math.max(...attempts) : 0,
  };
}

async function run(args: BenchArgs, log: (m: string) => void): Promise<Record<string, unknown>> {
  const o = parseOptions(args);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-bench-raft-'));
  log(`data dir ${dir}, durability ${o.durability}`);
  // RealClock timers and immediates are unref'd: keep the process alive while we await them.
  const keepAlive = setInterval(() => {}, 1000);
  const prng = new Prng(o.seed);
  const cluster = new LocalCluster({
    ids: IDS,
    clock: new RealClock(),
    prng: prng.fork(),
    storageFor: (id) => SqliteStorage.open(path.join(dir, `${id}.db`), { durability: o.durability, fsync: o.fsync }),
    machineFor: () => new CountingMachine(),
    tickMs: TICK_MS,
    raft: RAFT,
    serializeMessages: false,
  });
  const watch = new LeaderWatch(cluster);
  try {
    const t0 = performance.now();
    cluster.startAll();
    const first = await watch.waitLeader(10_000);
    const firstLeaderMs = performance.now() - t0;
    await first.propose('first');
    const firstCommitMs = performance.now() - t0;
    log(`first leader ${first.id} after ${round(firstLeaderMs, 1)} ms, first commit after ${round(firstCommitMs, 1)} ms`);

    const loops: Record<string, unknown> = {};
    for (const n of o.inflight) {
      await waitCaughtUp(cluster, watch, 30_000);
      loops[`inflight_${n}`] = await closedLoop(cluster, watch, n, o, log);
    }
    const fo = o.trials > 0 ? await failover(cluster, watch, o, prng, log) : null;

    const get = (n: number, k: string): number | undefined => (loops[`inflight_${n}`] as Record<string, number> | undefined)?.[k];
    const tput = get(256, 'per_s');
    const p50 = get(1, 'p50_ms');
    return {
      bench: 'raft',
      at: new Date().toISOString(),
      node: process.version,
      cores: os.availableParallelism(),
      cpu: os.cpus()[0]?.model ?? 'unknown',
      config: {
        nodes: IDS.length,
        durability: o.durability,
        fsync: o.fsync,
        journal: 'wal',
        tick_ms: TICK_MS,
        election_ticks: [RAFT.electionTicksMin, RAFT.electionTicksMax],
        heartbeat_ticks: RAFT.heartbeatTicks,
        serialize_messages: false,
        payload_bytes: o.payload,
        seconds: o.seconds,
        warmup_seconds: o.warmup,
      },
      first_leader_ms: round(firstLeaderMs, 1),
      first_commit_ms: round(firstCommitMs, 1),
      ...loops,
      failover: fo,
      targets: TARGETS,
      meets: {
        inflight256_throughput: tput === undefined ? null : tput >= TARGETS.inflight256_entries_per_s_min,
        inflight1_p50: p50 === undefined ? null : p50 <= TARGETS.inflight1_p50_ms_max,
        failover_p50: fo ? (fo.p50_ms as number) <= TARGETS.failover_p50_ms_max : null,
        failover_p99: fo ? (fo.p99_ms as number) <= TARGETS.failover_p99_ms_max : null,
      },
    };
  } finally {
    cluster.close();
    clearInterval(keepAlive);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export const bench: BenchModule = {
  description:
    `Raft on a 5-member LocalCluster (RealClock, SqliteStorage per member, tick ${TICK_MS} ms, election ${RAFT.electionTicksMin}-${RAFT.electionTicksMax} ticks, heartbeat ${RAFT.heartbeatTicks} ticks, ` +
    'no message serialization): first leader, closed-loop commits/s and latency, leader-crash failover.',
  options: {
    seconds: { description: 'measured seconds per in-flight level', default: '5' },
    warmup: { description: 'warmup seconds before each measurement', default: '1' },
    trials: { description: 'leader-crash failover trials (0 skips)', default: '20' },
    durability: { description: 'SQLite durability: full | normal | off (normal/off are unsafe)', default: 'full' },
    fsync: { description: "where durability 'full' fsyncs: threadpool (the product's) | inline (on the event loop)", default: 'threadpool' },
    inflight: { description: 'comma list of closed-loop concurrency levels', default: '1,256' },
    payload: { description: 'bytes per proposed command', default: '64' },
    seed: { description: 'seed for member timeouts and crash timing', default: '1' },
  },
  run,
};
