// etcd-compare bench: Concord's cluster mode (`concord node` processes, SQLite durability full)
// against etcd 3.4 (Debian's etcd-server, fsync on every commit) on loopback, 5 members and 3
// members, under the same load from the same generator (loadgen.ts), in one run, alternating
// systems.
//
//   npm run bench -- etcd-compare [--only etcd|concord] [--members 5,3] [--seconds 5] [--trials 5] ...
//
// Measures, per cluster size and system:
// - closed-loop writes/s and p50/p99 latency at 1, 64 and 256 writes in flight (16-byte keys,
//   256-byte values, distinct keys), a warm-up before each measured window. etcd over its
//   native gRPC KV API (KV.Put with the `etcd3` client on @grpc/grpc-js: one HTTP/2 channel to
//   the leader, as etcd's own benchmark tool with --conns 1), and beside it over its JSON gateway
//   (POST /v3/kv/put from Node's HTTP client, keep-alive, a socket per request in flight);
//   Concord: ClusterClient.callTool('memory_store'), which finds the leader itself. The goals
//   are judged against gRPC.
// - crash failover: kill -9 the leader (at a random phase of its heartbeat), time from the kill
//   to the first acknowledged write (--fault freeze: SIGSTOP instead; the leader's connections
//   stay open, as when a machine hangs). Each write attempt has a short timeout (--attempt-timeout).
//   The same writer for both: it starts another attempt every --retry-every ms while one is
//   pending (up to attempt-timeout / retry-every + 8 pending), or at once after a failure, so
//   the figure is not quantized to the attempt timeout. etcd's attempts are gRPC puts that
//   rotate over every member's channel (the dead one fails at once; a follower forwards to the
//   leader once it knows one); Concord's are callTool on the load's first ClusterClient with
//   timeoutMs = --attempt-timeout (the client finds the leader itself). Then the killed member
//   is restarted and we wait until it is healthy and caught up (recover_ms). With
//   CONCORD_FAILOVER_TRACE=1 each Concord trial is also broken down into its steps
//   (failover-breakdown.ts: detection, pre-vote, vote, first commit, the client's write).
// - restart to healthy: kill -9 a follower, write 20 entries while it is down and leave it down
//   --restart-down-ms in all (so the leader's redial backoff grows as it would), then, with a
//   light writer committing one write every 20 ms, restart it on its data dir and time from the
//   spawn to the first status probe (every 5 ms, one dial per probe, no backoff) that finds it
//   answering, following the leader, and having applied everything the leader had committed
//   when asked just before. The same definition, probe and load for both. For Concord also the
//   member's own start-up marks (CONCORD_STARTUP_TRACE), relative to the spawn, among them its
//   first acknowledged append.
// - a latency breakdown of one Concord write at 1 in flight (write-breakdown.ts): a separate
//   cluster of the first size with CONCORD_WRITE_TRACE=1, --breakdown writes back to back.
//
// Both clusters of a size run for all of that size's measurements (the idle one only
// heartbeats), so the order alternates without restarting anything. The load generator runs in
// this process. One JSON line on stdout: each size's figures for both systems, the ratios
// (concord / etcd gRPC), the goals and whether each holds (judged on the first size).
//
// Every child process is SIGKILLed and every temp dir removed on exit, error, SIGINT or SIGTERM.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Prng } from '../../src/util/prng.js';
import type { ConcordCluster } from './concord-cluster.js';
import { EtcdCluster, ensureEtcd, killAllChildrenSync, type EtcdMember } from './etcd-cluster.js';
import { closedLoop, KEY_BYTES, KvGen, type KvTarget, type LoopResult, mergeLoops, type RetryOptions, steadyWriter, VALUE_BYTES, writeUntilSuccess } from './loadgen.js';
import { median, parseNumber, percentile, round, sleep } from './stats.js';
import type { BenchArgs, BenchModule } from './types.js';
import { analyzeBreakdown, type Breakdown, type ClientWrite } from './write-breakdown.js';
import { analyzeFailover, type FailoverTrace, summarizeFailoverTraces } from './failover-breakdown.js';

type SystemName = 'etcd' | 'concord';

/** The goals of issue 13, judged against etcd over gRPC. */
const GOALS = {
  failover_p50_ratio_max: 1.0,
  inflight_1_ratio_min: 1.0,
  inflight_256_ratio_min: 1.5,
  concord_restart_p50_ms_max: 500,
};

interface Options {
  only: SystemName[];
  members: number[];
  gateway: boolean;
  seconds: number;
  warmup: number;
  interleave: boolean;
  inflight: number[];
  trials: number;
  restartTrials: number;
  restartDownMs: number;
  breakdown: number;
  preload: number;
  preloadSerial: number;
  heartbeat: number;
  election: number;
  /** How the failover trials take the leader down. */
  fault: 'kill' | 'freeze';
  retry: RetryOptions;
  seed: number;
  keep: boolean;
}

function parseOptions(args: BenchArgs): Options {
  const only = args.only ?? 'both';
  if (!['both', 'etcd', 'concord'].includes(only)) throw new Error(`--only=${only}: expected etcd, concord or both`);
  const list = (key: string, dflt: string, ok: (n: number) => boolean, accepted: string): number[] => {
    const raw = args[key] ?? dflt;
    const v = raw.split(',').filter((x) => x !== '').map((x) => Number(x));
    if (v.some((n) => !ok(n))) throw new Error(`--${key}=${raw}: expected ${accepted}`);
    return v;
  };
  const inflight = list('inflight', '1,64,256', (n) => Number.isInteger(n) && n >= 1, 'a comma list of integers >= 1');
  const members = list('members', '5,3', (n) => Number.isInteger(n) && n >= 3 && n <= 7 && n % 2 === 1, 'a comma list of odd member counts 3..7');
  if (members.length === 0) throw new Error('--members: give at least one cluster size');
  const heartbeat = parseNumber(args, 'heartbeat', 25, (n) => Number.isInteger(n) && n >= 1, 'an integer number of ms >= 1');
  const election = parseNumber(args, 'election', 150, (n) => Number.isInteger(n) && n >= 5 * heartbeat, `an integer number of ms >= 5 x heartbeat (etcd requires it)`);
  const attemptTimeoutMs = parseNumber(args, 'attempt-timeout', 250, (n) => n >= 10, 'ms >= 10');
  const retryEveryMs = parseNumber(args, 'retry-every', 10, (n) => n >= 1, 'ms >= 1');
  return {
    only: only === 'both' ? ['etcd', 'concord'] : [only as SystemName],
    members,
    gateway: (args.gateway ?? 'true') !== 'false',
    seconds: parseNumber(args, 'seconds', 5, (n) => n > 0, 'a number of seconds > 0'),
    warmup: parseNumber(args, 'warmup', 1, (n) => n >= 0, 'a number of seconds >= 0'),
    interleave: (() => {
      const v = args.interleave ?? 'true';
      if (v !== 'true' && v !== 'false') throw new Error(`--interleave ${v}: accepted: true or false`);
      return v === 'true';
    })(),
    inflight,
    trials: parseNumber(args, 'trials', 5, (n) => Number.isInteger(n) && n >= 0, 'an integer >= 0'),
    restartTrials: parseNumber(args, 'restart-trials', 5, (n) => Number.isInteger(n) && n >= 0, 'an integer >= 0'),
    restartDownMs: parseNumber(args, 'restart-down-ms', 1_000, (n) => n >= 0, 'ms >= 0'),
    breakdown: parseNumber(args, 'breakdown', 300, (n) => Number.isInteger(n) && n >= 0, 'an integer >= 0'),
    preload: parseNumber(args, 'preload', 5_000, (n) => Number.isInteger(n) && n >= 0, 'an integer >= 0'),
    preloadSerial: parseNumber(args, 'preload-serial', 10, (n) => n >= 0, 'a number of seconds >= 0'),
    heartbeat,
    election,
    fault: parseFault(args.fault),
    retry: {
      attemptTimeoutMs,
      retryEveryMs,
      // Enough that the writer never stalls on attempts hanging until their timeout.
      maxPending: Math.min(1_000, Math.ceil(attemptTimeoutMs / retryEveryMs) + 8),
      giveUpMs: 30_000,
    },
    seed: parseNumber(args, 'seed', 1, (n) => Number.isInteger(n), 'an integer'),
    keep: (args.keep ?? 'false') !== 'false',
  };
}

function parseFault(raw: string | undefined): 'kill' | 'freeze' {
  const f = raw ?? 'kill';
  if (f !== 'kill' && f !== 'freeze') throw new Error(`--fault=${f}: expected kill (kill -9: the leader's port refuses connections) or freeze (SIGSTOP: its connections stay open)`);
  return f;
}

/** What the bench drives on each system. */
interface System {
  name: SystemName;
  members: number;
  /** Every member up, a leader, every member caught up with the leader's commit. */
  waitReady(timeoutMs: number): Promise<void>;
  /** Closed-loop targets by write path (etcd: grpc and gateway; Concord: its client). */
  paths(): string[];
  /** Each closed-loop worker's target, for `inflight` workers (pointed at the current leader for etcd). */
  loadTargets(path: string, inflight: number): Promise<(worker: number) => KvTarget>;
  /** Name of the current leader. */
  leader(): Promise<string>;
  /** Running members other than `leader`. */
  followers(leader: string): string[];
  /** Sends SIGKILL now; resolves when the process is gone. */
  kill9(member: string): Promise<void>;
  /** Sends SIGSTOP now (kill9 ends it later). */
  freeze(member: string): void;
  /** The failover writer's target for each attempt. */
  failoverTarget(): (attempt: number) => KvTarget;
  restart(member: string): void;
  /** performance.now() at the member's last spawn. */
  spawnedAt(member: string): number;
  /** See the header: answering, following `leader`, applied >= what `leader` committed. */
  caughtUp(member: string, leader: string): Promise<boolean>;
  /**
   * The member's fsyncs so far (count, total ms): etcd's WAL fsync histogram (the syscall),
   * Concord's storage counters (write start to durable, off-thread fsync included).
   */
  fsyncs(member: string): Promise<{ count: number; sumMs: number }>;
  /**
   * Concord with CONCORD_FAILOVER_TRACE=1: where the failover from killing `old` at `killAt` to
   * the write acknowledged at `ackAt` went (absolute ms); null otherwise.
   */
  failoverTrace(killAt: number, ackAt: number, old: string): FailoverTrace | null;
  /** The member's start-up marks of its last start, ms after its spawn (Concord only). */
  startupMarks(member: string): Record<string, number> | null;
  /** The failover writer's pacing for this system. */
  retry: RetryOptions;
  /** Heartbeat, before the kill, for a random kill phase. */
  heartbeatMs: number;
  /** Reported at the end (some are learned during the run). */
  settings(): Record<string, unknown>;
  close(): Promise<void>;
}

function etcdSystem(c: EtcdCluster, version: string, o: Options): System {
  const byName = (n: string): EtcdMember => {
    const m = c.members.find((x) => x.name === n);
    if (!m) throw new Error(`no etcd member ${n}`);
    return m;
  };
  return {
    name: 'etcd',
    members: c.members.length,
    waitReady: (ms) => c.waitHealthy(ms),
    paths: () => (o.gateway ? ['grpc', 'gateway'] : ['grpc']),
    loadTargets: async (p) => {
      const l = await c.leader();
      const t = p === 'grpc' ? c.grpcTarget(l) : c.target(l);
      return () => t;
    },
    leader: async () => (await c.leader()).name,
    followers: (leader) => c.members.filter((m) => m.proc.running && m.name !== leader).map((m) => m.name),
    kill9: (n) => c.kill9(byName(n)),
    freeze: (n) => byName(n).proc.freeze(),
    // Like a client configured with every endpoint: it does not know which member died (an
    // attempt on the dead one fails at once).
    failoverTarget: () => {
      const all = c.members.map((m) => c.grpcTarget(m));
      return (attempt) => all[attempt % all.length] as KvTarget;
    },
    restart: (n) => c.restart(byName(n)),
    spawnedAt: (n) => byName(n).proc.spawnedAt,
    caughtUp: (n, leader) => c.caughtUp(byName(n), byName(leader)),
    startupMarks: () => null,
    failoverTrace: () => null,
    fsyncs: (n) => c.walFsyncs(byName(n)),
    retry: o.retry,
    heartbeatMs: o.heartbeat,
    settings: () => ({
      version,
      members: c.members.length,
      heartbeat_ms: o.heartbeat,
      // etcd draws each election timeout in [election, 2 x election).
      election_timeout_ms: [o.election, 2 * o.election],
      pre_vote: false,
      fsync: 'default (WAL fsync on every Ready with entries or hard state)',
      write_path: {
        grpc: 'KV.Put over gRPC (etcd3 npm client 1.1.2 on @grpc/grpc-js, one HTTP/2 channel to the leader, client retries and circuit breaker off)',
        gateway: o.gateway ? 'POST /v3/kv/put (JSON gateway, base64) to the leader, keep-alive HTTP/1.1 agent' : 'not run',
      },
      failover_writer: {
        targets: `gRPC puts rotating over all ${c.members.length} members' channels (the dead one fails at once; a follower forwards to the leader once it knows one; a put forwarded to the dead leader hangs until its deadline, hence the hedging)`,
        attempt_timeout_ms: o.retry.attemptTimeoutMs,
        new_attempt_every_ms: o.retry.retryEveryMs,
        max_pending: o.retry.maxPending,
      },
    }),
    close: () => c.close(),
  };
}

function concordSystem(c: ConcordCluster, o: Options): System {
  return {
    name: 'concord',
    members: c.members.length,
    waitReady: (ms) => c.waitHealthy(ms),
    paths: () => ['client'],
    loadTargets: async (_p, n) => c.loadTargets(n),
    leader: async () => c.leader(),
    followers: (leader) => c.members.filter((m) => m.proc.running && m.id !== leader).map((m) => m.id),
    kill9: (n) => c.kill9(n),
    freeze: (n) => c.memberProcess(n).freeze(),
    failoverTarget: () => {
      const t = c.target(0);
      return () => t;
    },
    restart: (n) => c.restart(n),
    spawnedAt: (n) => c.memberProcess(n).spawnedAt,
    caughtUp: (n, leader) => c.caughtUp(n, leader),
    fsyncs: (n) => c.fsyncs(n),
    failoverTrace: (killAt, ackAt, old) => (process.env.CONCORD_FAILOVER_TRACE === '1' ? analyzeFailover(killAt, ackAt, old, c.writeTraces()) : null),
    startupMarks: (n) => {
      const spawnAbs = performance.timeOrigin + c.memberProcess(n).spawnedAt;
      return Object.fromEntries(Object.entries(c.startupMarks(n)).map(([k, t]) => [k, round(t - spawnAbs, 1)]));
    },
    // The same writer as etcd's. ClusterClient also retries inside each call: a lost or refused
    // connection marks that member down and the call goes to another, which holds it while the
    // leader it follows is one the client could not reach, then redirects it to the new leader.
    // Hedged calls keep the figure from being quantized to the attempt timeout, as for etcd.
    retry: o.retry,
    heartbeatMs: c.heartbeatMs,
    settings: () => c.settings(o.retry),
    close: () => c.close(),
  };
}

interface FailoverResult {
  trials: number;
  p50_ms: number;
  max_ms: number;
  min_ms: number;
  samples_ms: number[];
  attempts: number[];
  recover_p50_ms: number;
  recover_max_ms: number;
  /** What the writer got during the outage (last error before the success), per trial. */
  last_errors: Array<string | null>;
  /** CONCORD_FAILOVER_TRACE=1 (Concord): medians of each step, and each trial's. */
  breakdown?: { p50_ms: Record<string, number | null>; trials: FailoverTrace[] };
}

interface Trial {
  ms: number;
  attempts: number;
  recoverMs: number;
  lastError: string | null;
  trace: FailoverTrace | null;
}

async function failoverTrial(s: System, gen: KvGen, o: Options, prng: Prng, trial: number, log: (m: string) => void): Promise<Trial> {
  await s.waitReady(30_000);
  const old = await s.leader();
  const target = s.failoverTarget();
  // Kill at a random phase of the leader's heartbeat cycle.
  await sleep(prng.int(0, Math.max(1, s.heartbeatMs)));
  const t0 = performance.now();
  let gone: Promise<void> = Promise.resolve();
  if (o.fault === 'kill') gone = s.kill9(old);
  else s.freeze(old);
  const r = await writeUntilSuccess(target, gen, t0, s.retry);
  await gone;
  if (o.fault === 'freeze') await s.kill9(old);
  await r.settled;
  const t1 = performance.now();
  s.restart(old);
  await s.waitReady(60_000);
  const recoverMs = performance.now() - t1;
  const trace = s.failoverTrace(performance.timeOrigin + t0, performance.timeOrigin + t0 + r.ms, old);
  log(`${s.name}/${s.members} failover ${trial + 1}/${o.trials}: killed ${old}, first write acknowledged after ${round(r.ms, 1)} ms (${r.attempts} attempts); restarted, healthy after ${round(recoverMs, 0)} ms${trace ? `; trace ${JSON.stringify(trace)}` : ''}`);
  return { ms: r.ms, attempts: r.attempts, recoverMs, lastError: r.lastError, trace };
}

function summarize(trials: Trial[]): FailoverResult {
  const ms = trials.map((t) => t.ms);
  const rec = trials.map((t) => t.recoverMs);
  return {
    trials: trials.length,
    p50_ms: round(median(ms), 1),
    max_ms: round(percentile(ms, 100), 1),
    min_ms: round(percentile(ms, 0), 1),
    samples_ms: ms.map((x) => round(x, 1)),
    attempts: trials.map((t) => t.attempts),
    recover_p50_ms: round(median(rec), 0),
    recover_max_ms: round(percentile(rec, 100), 0),
    last_errors: trials.map((t) => (t.lastError === null ? null : t.lastError.slice(0, 160))),
    ...breakdownOf(trials),
  };
}

function breakdownOf(trials: Trial[]): Pick<FailoverResult, 'breakdown'> {
  const traced = trials.map((t) => t.trace).filter((t): t is FailoverTrace => t !== null);
  return traced.length === 0 ? {} : { breakdown: { p50_ms: summarizeFailoverTraces(traced), trials: traced } };
}

interface RestartTrial {
  ms: number;
  marks: Record<string, number> | null;
}

/** See the header (restart to healthy). */
async function restartTrial(s: System, gen: KvGen, o: Options, trial: number, log: (m: string) => void): Promise<RestartTrial> {
  await s.waitReady(30_000);
  let leader = await s.leader();
  const followers = s.followers(leader);
  const victim = followers[trial % followers.length] as string;
  const [target] = await Promise.all([s.loadTargets(s.paths()[0] as string, 1).then((f) => f(0))]);
  const down = performance.now();
  await s.kill9(victim);
  for (let i = 0; i < 20; i++) {
    const { key, value } = gen.next();
    await target.put(key, value, 5_000);
  }
  await sleep(Math.max(0, o.restartDownMs - (performance.now() - down)));
  const writer = steadyWriter(target, gen, 20);
  try {
    s.restart(victim);
    const t0 = s.spawnedAt(victim);
    let lastLeaderCheck = performance.now();
    for (;;) {
      if (await s.caughtUp(victim, leader)) break;
      const now = performance.now();
      if (now - t0 > 30_000) throw new Error(`${s.name} member ${victim} not caught up 30 s after its restart`);
      // The leader may have changed meanwhile: ask again now and then.
      if (now - lastLeaderCheck > 2_000) {
        leader = await s.leader();
        lastLeaderCheck = now;
      }
      await sleep(5);
    }
    const ms = performance.now() - t0;
    const marks = s.startupMarks(victim);
    log(`${s.name}/${s.members} restart ${trial + 1}/${o.restartTrials}: ${victim} healthy and caught up ${round(ms, 1)} ms after its spawn${marks ? ` (marks ${JSON.stringify(marks)})` : ''}`);
    return { ms, marks };
  } finally {
    await writer.stop();
  }
}

function summarizeRestarts(trials: RestartTrial[]): Record<string, unknown> {
  const ms = trials.map((t) => t.ms);
  const out: Record<string, unknown> = {
    trials: trials.length,
    p50_ms: round(median(ms), 1),
    min_ms: round(percentile(ms, 0), 1),
    max_ms: round(percentile(ms, 100), 1),
    samples_ms: ms.map((x) => round(x, 1)),
  };
  const marked = trials.filter((t) => t.marks !== null).map((t) => t.marks as Record<string, number>);
  if (marked.length > 0) {
    const names = [...new Set(marked.flatMap((m) => Object.keys(m)))];
    out.startup_marks_p50_ms_after_spawn = Object.fromEntries(names.map((n) => [n, round(median(marked.filter((m) => n in m).map((m) => m[n] as number)), 1)]));
  }
  return out;
}

/** Temp dirs and clusters to clean up however the run ends. */
class Cleanup {
  dirs: string[] = [];
  systems: System[] = [];
  private done = false;
  private readonly onSignal = (sig: NodeJS.Signals): void => {
    process.stderr.write(`[bench etcd-compare] ${sig}: killing the clusters and removing temp dirs\n`);
    this.sync();
    process.exit(sig === 'SIGINT' ? 130 : 143);
  };
  private readonly onExit = (): void => this.sync();

  install(): void {
    process.on('SIGINT', this.onSignal);
    process.on('SIGTERM', this.onSignal);
    process.on('SIGHUP', this.onSignal);
    process.on('exit', this.onExit);
  }

  /** Synchronous last resort: SIGKILL every child, remove the dirs. */
  sync(): void {
    if (this.done) return;
    this.done = true;
    killAllChildrenSync();
    for (const d of this.dirs) {
      try {
        fs.rmSync(d, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
      } catch (e) {
        process.stderr.write(`[bench etcd-compare] could not remove ${d}: ${(e as Error).message}\n`);
      }
    }
  }

  /** Orderly: stop the clusters, then the synchronous part, then remove the handlers. */
  async run(keep: boolean, log: (m: string) => void): Promise<void> {
    for (const s of this.systems) {
      try {
        await s.close();
      } catch (e) {
        log(`closing ${s.name}: ${(e as Error).message}`);
      }
    }
    if (keep) {
      killAllChildrenSync();
      log(`kept temp dirs: ${this.dirs.join(' ')}`);
      this.dirs = [];
    }
    this.sync();
    process.off('SIGINT', this.onSignal);
    process.off('SIGTERM', this.onSignal);
    process.off('SIGHUP', this.onSignal);
    process.off('exit', this.onExit);
  }
}

/** `inflight` workers write until `total` writes are acknowledged (errors are counted, not retried). */
async function closedLoopCount(targetOf: (worker: number) => KvTarget, gen: KvGen, inflight: number, total: number): Promise<{ writes: number; errors: number }> {
  let started = 0;
  let writes = 0;
  let errors = 0;
  const worker = async (w: number): Promise<void> => {
    const t = targetOf(w);
    while (started < total) {
      started++;
      const { key, value } = gen.next();
      try {
        await t.put(key, value, 10_000);
        writes++;
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: inflight }, (_, w) => worker(w)));
  return { writes, errors };
}

/** Writes/s of one closed loop, or undefined. */
function perS(r: Record<string, unknown> | undefined, key: string): number | undefined {
  return (r?.[key] as LoopResult | undefined)?.per_s;
}

/** Ratios (Concord / etcd gRPC) and the goals for one cluster size. */
function judge(e: Record<string, unknown> | undefined, c: Record<string, unknown> | undefined, inflight: number[]): { ratios: Record<string, number | null>; goals: Record<string, boolean | null> } {
  const ratio = (a: number | undefined, b: number | undefined): number | null => (a === undefined || b === undefined || b === 0 ? null : round(a / b, 3));
  const ratios: Record<string, number | null> = {};
  for (const n of inflight) {
    ratios[`throughput_inflight_${n}`] = ratio(perS(c, `inflight_${n}`), perS(e, `grpc_inflight_${n}`));
    ratios[`throughput_inflight_${n}_vs_gateway`] = ratio(perS(c, `inflight_${n}`), perS(e, `gateway_inflight_${n}`));
  }
  const fo = (r: Record<string, unknown> | undefined): number | undefined => (r?.failover as FailoverResult | null | undefined)?.p50_ms;
  const rs = (r: Record<string, unknown> | undefined): number | undefined => (r?.restart as { p50_ms?: number } | null | undefined)?.p50_ms;
  ratios.failover_p50 = ratio(fo(c), fo(e));
  ratios.restart_p50 = ratio(rs(c), rs(e));
  const atMost = (x: number | null | undefined, max: number): boolean | null => (x === null || x === undefined ? null : x <= max);
  const atLeast = (x: number | null | undefined, min: number): boolean | null => (x === null || x === undefined ? null : x >= min);
  return {
    ratios,
    goals: {
      [`failover_p50_ratio_le_${GOALS.failover_p50_ratio_max}`]: atMost(ratios.failover_p50, GOALS.failover_p50_ratio_max),
      [`inflight_1_ratio_ge_${GOALS.inflight_1_ratio_min}`]: atLeast(ratios.throughput_inflight_1, GOALS.inflight_1_ratio_min),
      [`inflight_256_ratio_ge_${GOALS.inflight_256_ratio_min}`]: atLeast(ratios.throughput_inflight_256, GOALS.inflight_256_ratio_min),
      [`concord_restart_p50_lt_${GOALS.concord_restart_p50_ms_max}_ms`]: rs(c) === undefined ? null : (rs(c) as number) < GOALS.concord_restart_p50_ms_max,
    },
  };
}

/** One cluster size: start both, closed loops, failovers, restarts, stop both. */
async function runSize(n: number, o: Options, cleanup: Cleanup, prng: Prng, etcdVersion: string | null, concordMod: typeof import('./concord-cluster.js') | null, log: (m: string) => void): Promise<Record<string, unknown>> {
  const systems: System[] = [];
  for (const name of o.only) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `concord-bench-${name}${n}-`));
    cleanup.dirs.push(dir);
    log(`${name}/${n}: data dir ${dir}`);
    const s =
      name === 'etcd'
        ? etcdSystem(await EtcdCluster.start(dir, { heartbeatMs: o.heartbeat, electionMs: o.election }, log, n), etcdVersion as string, o)
        : concordSystem(await (concordMod as typeof import('./concord-cluster.js')).ConcordCluster.start(dir, log, n), o);
    cleanup.systems.push(s);
    systems.push(s);
  }
  try {
    // The same generator and seed for both: the same values, keys differing only in a 4-char tag.
    const gens = new Map<SystemName, KvGen>(systems.map((s) => [s.name, new KvGen(s.name === 'etcd' ? 'etcd' : 'cncd', o.seed + n)]));
    const results = new Map<SystemName, Record<string, unknown>>(systems.map((s) => [s.name, {}]));

    // Steady state before measuring: a fresh store's files are still growing, and on this ext4
    // disk an fdatasync after a write that extends a file costs 4-6x one that overwrites
    // (etcd preallocates its WAL segments; SQLite's WAL is reused in place once it has grown to
    // its checkpoint size, ~450 commits). Long-running clusters are past that: so is the bench.
    if (o.preload > 0) {
      for (const s of systems) {
        const t0 = performance.now();
        const r = await closedLoopCount(await s.loadTargets(s.paths()[0] as string, 64), gens.get(s.name) as KvGen, 64, o.preload);
        log(`${s.name}/${n}: preloaded ${r.writes} writes (${r.errors} errors) in ${Math.round(performance.now() - t0)} ms`);
      }
    }
    // And one write at a time for a while: a Node process runs a code path unoptimized until
    // the JIT has seen it often (CPU per write at 1 in flight halves after 15-25 s of load,
    // measured 2026-12-01); a long-running cluster is past that, and a Go binary never in it.
    // Both systems get the same, before any level is measured.
    if (o.preloadSerial > 0) {
      for (const s of systems) {
        const r = await closedLoop(await s.loadTargets(s.paths()[0] as string, 1), gens.get(s.name) as KvGen, 1, o.preloadSerial, 0);
        log(`${s.name}/${n}: preloaded ${o.preloadSerial} s at 1 in flight (${r.writes} writes, ${r.errors} errors)`);
      }
    }

    // Closed loops, alternating which system (and path) goes first at each level. With
    // --interleave (default) each system's measured seconds are 1-s slices taken in turn with
    // the other's (A B B A A B ...), so a few seconds of a slower disk or a busier machine fall
    // on both alike; otherwise one block of --seconds per system.
    const runs = systems.flatMap((s) => s.paths().map((p) => ({ s, p })));
    for (let li = 0; li < o.inflight.length; li++) {
      const k = o.inflight[li] as number;
      const slices = o.interleave ? Math.max(1, Math.round(o.seconds)) : 1;
      const sliceS = o.seconds / slices;
      const acc = new Map<typeof runs[number], { targets: (worker: number) => KvTarget; leader: string | null; before: { count: number; sumMs: number } | null; parts: LoopResult[]; lat: number[] }>();
      for (let si = 0; si < slices; si++) {
        for (const run of (li + si) % 2 === 0 ? runs : [...runs].reverse()) {
          const { s, p } = run;
          await s.waitReady(60_000);
          let a = acc.get(run);
          if (!a) {
            const targets = await s.loadTargets(p, k);
            // At 1 in flight the leader's fsyncs are most of a write: their mean during the loop.
            const leader = k === 1 ? await s.leader() : null;
            a = { targets, leader, before: leader ? await s.fsyncs(leader).catch(() => null) : null, parts: [], lat: [] };
            acc.set(run, a);
          }
          // The full warm-up before a system's first slice; later ones only restart the loop.
          a.parts.push(await closedLoop(a.targets, gens.get(s.name) as KvGen, k, sliceS, si === 0 ? o.warmup : Math.min(o.warmup, 0.25), a.lat));
        }
      }
      for (const run of li % 2 === 0 ? runs : [...runs].reverse()) {
        const { s, p } = run;
        const a = acc.get(run)!;
        const r: LoopResult & { leader_fsync?: unknown; slices?: number } = mergeLoops(a.parts, a.lat, o.seconds);
        r.slices = slices;
        const after = a.leader && a.before ? await s.fsyncs(a.leader).catch(() => null) : null;
        if (a.before && after && after.count > a.before.count) {
          const n1 = after.count - a.before.count;
          r.leader_fsync = { fsyncs: n1, mean_ms: round((after.sumMs - a.before.sumMs) / n1, 3), per_write: round(n1 / Math.max(1, r.writes), 2) };
        }
        const key = s.name === 'etcd' ? `${p}_inflight_${k}` : `inflight_${k}`;
        (results.get(s.name) as Record<string, unknown>)[key] = r;
        log(`${s.name}/${n}${s.name === 'etcd' ? ` ${p}` : ''} inflight=${k}: ${r.per_s} writes/s (median of ${r.per_s_windows.length} 1-s windows${slices > 1 ? `, in ${slices} slices alternating with the other system` : ''}), p50 ${r.p50_ms} ms, p99 ${r.p99_ms} ms, errors ${r.errors}${r.first_error ? ` (first: ${r.first_error})` : ''}${r.leader_fsync ? `, leader fsyncs ${JSON.stringify(r.leader_fsync)}` : ''}`);
      }
    }

    // Failover trials, then restart trials, alternating which system goes first.
    const trials = new Map<SystemName, Trial[]>(systems.map((s) => [s.name, []]));
    for (let t = 0; t < o.trials; t++) {
      for (const s of t % 2 === 0 ? systems : [...systems].reverse()) (trials.get(s.name) as Trial[]).push(await failoverTrial(s, gens.get(s.name) as KvGen, o, prng, t, log));
    }
    const restarts = new Map<SystemName, RestartTrial[]>(systems.map((s) => [s.name, []]));
    for (let t = 0; t < o.restartTrials; t++) {
      for (const s of t % 2 === 0 ? systems : [...systems].reverse()) (restarts.get(s.name) as RestartTrial[]).push(await restartTrial(s, gens.get(s.name) as KvGen, o, t, log));
    }
    for (const s of systems) {
      const r = results.get(s.name) as Record<string, unknown>;
      r.failover = o.trials > 0 ? summarize(trials.get(s.name) as Trial[]) : null;
      r.restart = o.restartTrials > 0 ? summarizeRestarts(restarts.get(s.name) as RestartTrial[]) : null;
    }
    const e = results.get('etcd');
    const c = results.get('concord');
    return {
      members: n,
      settings: Object.fromEntries(systems.map((s) => [s.name, s.settings()])),
      etcd: e ?? null,
      concord: c ?? null,
      ...judge(e, c, o.inflight),
    };
  } finally {
    for (const s of systems) {
      try {
        await s.close();
      } catch (err) {
        log(`closing ${s.name}/${n}: ${(err as Error).message}`);
      }
      cleanup.systems = cleanup.systems.filter((x) => x !== s);
    }
  }
}

/** A separate Concord cluster with write tracing on: `writes` writes back to back at 1 in flight. */
async function runBreakdown(n: number, writes: number, o: Options, cleanup: Cleanup, concordMod: typeof import('./concord-cluster.js'), log: (m: string) => void): Promise<Breakdown & { members: number; leader: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `concord-bench-trace${n}-`));
  cleanup.dirs.push(dir);
  const c = await concordMod.ConcordCluster.start(dir, log, n, { CONCORD_WRITE_TRACE: '1' });
  const s = concordSystem(c, o);
  cleanup.systems.push(s);
  try {
    const gen = new KvGen('trce', o.seed);
    const target = c.target(0);
    // Steady state first, as for the closed loops; then a warm-up on the traced client.
    if (o.preload > 0) await closedLoopCount(c.loadTargets(64), gen, 64, o.preload);
    for (let i = 0; i < 50; i++) {
      const { key, value } = gen.next();
      await target.put(key, value);
    }
    const leader = await c.leader();
    const out: ClientWrite[] = [];
    for (let i = 0; i < writes; i++) {
      const { key, value } = gen.next();
      const t0 = performance.timeOrigin + performance.now();
      await target.put(key, value);
      out.push({ t0, t1: performance.timeOrigin + performance.now() });
    }
    if ((await c.leader()) !== leader) log('breakdown: the leader changed during the traced writes; figures may mix two leaders');
    await sleep(200); // the followers' last trace lines reach their logs
    const b = analyzeBreakdown(out, c.writeTraces(), leader);
    log(`concord/${n} latency breakdown (p50 ms over ${b.writes_traced} writes, total ${b.total_p50_ms}): ${JSON.stringify(b.p50_ms)}`);
    return { members: n, leader, ...b };
  } finally {
    await s.close();
    cleanup.systems = cleanup.systems.filter((x) => x !== s);
  }
}

async function run(args: BenchArgs, log: (m: string) => void): Promise<Record<string, unknown>> {
  const o = parseOptions(args);
  // Other work on the machine skews both systems (everything shares the cores): reported.
  const loadBefore = os.loadavg();
  const cleanup = new Cleanup();
  cleanup.install();
  const prng = new Prng(o.seed);
  try {
    // Check/prepare both before starting either, so a missing build fails fast.
    let concordMod: typeof import('./concord-cluster.js') | null = null;
    if (o.only.includes('concord')) {
      concordMod = await import('./concord-cluster.js');
      concordMod.checkBuild(log);
    }
    const etcdVersion = o.only.includes('etcd') ? ensureEtcd(log) : null;

    const sizes: Record<string, unknown>[] = [];
    for (const n of o.members) sizes.push(await runSize(n, o, cleanup, prng, etcdVersion, concordMod, log));
    const breakdown = concordMod && o.breakdown > 0 ? await runBreakdown(o.members[0] as number, o.breakdown, o, cleanup, concordMod, log) : null;
    const main = sizes[0] as { goals: Record<string, boolean | null> };
    const verdicts = Object.values(main.goals);
    return {
      bench: 'etcd-compare',
      at: new Date().toISOString(),
      node: process.version,
      cores: os.availableParallelism(),
      cpu: os.cpus()[0]?.model ?? 'unknown',
      // 1-minute load average before the clusters started and at the end (this run adds ~2).
      loadavg_1m: { before: round(loadBefore[0] as number, 2), after: round(os.loadavg()[0] as number, 2) },
      settings: {
        systems: o.only,
        members: o.members,
        key_bytes: KEY_BYTES,
        value_bytes: VALUE_BYTES,
        inflight: o.inflight,
        seconds: o.seconds,
        warmup_seconds: o.warmup,
        interleave: o.interleave ? 'each system measured in 1-s slices alternating with the other (A B B A ...); full warm-up before its first slice, up to 0.25 s before each later one' : 'one block of --seconds per system',
        trials: o.trials,
        failover_fault: o.fault === 'kill' ? 'kill -9 (the port refuses connections at once)' : 'SIGSTOP (connections stay open), then kill -9 after the trial',
        restart_trials: o.restartTrials,
        restart_down_ms: o.restartDownMs,
        breakdown_writes: o.breakdown,
        preload_writes: o.preload,
        preload_serial_seconds: o.preloadSerial,
        seed: o.seed,
      },
      goals_judged_on: `${o.members[0]} members, etcd over gRPC`,
      goal_thresholds: GOALS,
      clusters: sizes,
      concord_write_breakdown: breakdown,
      goals: main.goals,
      pass: verdicts.some((v) => v === null) ? null : verdicts.every(Boolean),
    };
  } finally {
    await cleanup.run(o.keep, log);
  }
}

export const bench: BenchModule = {
  description:
    'Concord cluster mode (`concord node` processes, durability full) vs etcd 3.4 (Debian etcd-server, installed if missing) on loopback, 5 and 3 members, same load ' +
    `(${KEY_BYTES}-byte keys, ${VALUE_BYTES}-byte values): closed-loop writes/s and p50/p99 at each in-flight level (etcd over gRPC, and over its JSON gateway beside it), ` +
    'kill -9 leader failover (kill to first acknowledged write), kill -9 follower restart to healthy and caught up, and a latency breakdown of one Concord write; ' +
    'alternating systems. Needs `npm run build` first (the members run dist/src/cli/main.js).',
  options: {
    only: { description: 'run one system: etcd | concord | both', default: 'both' },
    members: { description: 'comma list of cluster sizes (odd, 3..7); goals are judged on the first', default: '5,3' },
    gateway: { description: "also measure etcd's JSON gateway (true | false)", default: 'true' },
    seconds: { description: 'measured seconds per in-flight level', default: '5' },
    warmup: { description: 'warm-up seconds before each measured window', default: '1' },
    interleave: { description: 'true: measure each level in 1-s slices alternating between the systems; false: one block of --seconds each', default: 'true' },
    inflight: { description: 'comma list of closed-loop concurrency levels (empty: none)', default: '1,64,256' },
    trials: { description: 'leader kill -9 failover trials per system and size (0 skips)', default: '5' },
    fault: { description: 'how failover trials take the leader down: kill (kill -9: its port refuses connections at once) | freeze (SIGSTOP: its connections stay open, as when a machine hangs; killed after the trial)', default: 'kill' },
    'restart-trials': { description: 'follower kill -9 restart-to-healthy trials per system and size (0 skips)', default: '5' },
    'restart-down-ms': { description: 'how long a restarted follower stays down (ms)', default: '1000' },
    breakdown: { description: 'traced back-to-back writes for the Concord latency breakdown (0 skips)', default: '300' },
    preload: { description: 'writes (64 in flight) to each fresh cluster before measuring, to reach steady state (0 skips)', default: '5000' },
    'preload-serial': { description: 'then seconds of writes at 1 in flight, both systems, so JIT-compiled paths are warm (0 skips)', default: '10' },
    heartbeat: { description: 'etcd --heartbeat-interval (ms)', default: '25' },
    election: { description: 'etcd --election-timeout (ms)', default: '150' },
    'attempt-timeout': { description: 'failover writer: per-attempt timeout (ms), both systems', default: '250' },
    'retry-every': { description: 'failover writer: start another attempt after this long while one is pending (ms), both systems', default: '10' },
    seed: { description: 'seed for keys/values and kill timing', default: '1' },
    keep: { description: 'keep the temp data dirs and member logs (processes are still killed)', default: 'false' },
  },
  run,
};
