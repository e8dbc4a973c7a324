// etcd-compare bench: Concord's cluster mode (5 `concord node` processes, SQLite durability
// full) against etcd 3.4 (5 members, Debian's etcd-server, fsync on every commit) on loopback,
// under the same load from the same generator (loadgen.ts), in one run, alternating systems.
//
//   npm run bench -- etcd-compare [--only etcd|concord] [--seconds 5] [--trials 5] ...
//
// Measures, per system:
// - closed-loop writes/s and p50/p99 latency at 1, 64 and 256 writes in flight (16-byte keys,
//   256-byte values, distinct keys), a warm-up before each measured window. etcd: POST
//   /v3/kv/put on its JSON gateway, sent to the leader (found with /v3/maintenance/status) over
//   keep-alive HTTP; Concord: ClusterClient.callTool('memory_store'), which finds the leader itself.
// - crash failover: kill -9 the leader (at a random phase of its heartbeat), time from the kill
//   to the first acknowledged write. Each write attempt has a short timeout (--attempt-timeout).
//   The same writer for both: it starts another attempt every --retry-every ms while one is
//   pending (up to attempt-timeout / retry-every + 8 pending), or at once after a failure, so the figure is not quantized to
//   the attempt timeout (an etcd put forwarded to the dead leader hangs until its timeout; a
//   ClusterClient call on the dead leader's address waits there up to its connect timeout).
//   etcd's attempts rotate over all 5 client URLs (the dead one refuses at once; a follower
//   forwards to the leader once it knows one). Concord's are callTool on the load's first
//   ClusterClient with timeoutMs = --attempt-timeout (the client finds the leader itself).
//   Then the killed member is restarted and we wait until it is healthy and caught up
//   (recover_ms). Systems alternate trial by trial.
//
// Both clusters run for the whole bench (the idle one only heartbeats), so the order of the
// measurements alternates without restarting anything. The load generator runs in this process.
// One JSON line on stdout: both systems' figures, the ratios (concord / etcd), the settings and
// the goals (Concord's 256-in-flight throughput >= etcd's, Concord's failover median <= etcd's).
//
// Every child process is SIGKILLed and every temp dir removed on exit, error, SIGINT or SIGTERM.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Prng } from '../../src/util/prng.js';
import type { ConcordCluster } from './concord-cluster.js';
import { EtcdCluster, ensureEtcd, killAllChildrenSync } from './etcd-cluster.js';
import { closedLoop, KEY_BYTES, KvGen, type KvTarget, type LoopResult, type RetryOptions, VALUE_BYTES, writeUntilSuccess } from './loadgen.js';
import { median, parseNumber, percentile, round, sleep } from './stats.js';
import type { BenchArgs, BenchModule } from './types.js';

type SystemName = 'etcd' | 'concord';

interface Options {
  only: SystemName[];
  seconds: number;
  warmup: number;
  inflight: number[];
  trials: number;
  heartbeat: number;
  election: number;
  retry: RetryOptions;
  seed: number;
  keep: boolean;
}

function parseOptions(args: BenchArgs): Options {
  const only = args.only ?? 'both';
  if (!['both', 'etcd', 'concord'].includes(only)) throw new Error(`--only=${only}: expected etcd, concord or both`);
  const inflight = (args.inflight ?? '1,64,256').split(',').map((s) => Number(s));
  if (inflight.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`--inflight=${args.inflight}: expected a comma list of integers >= 1`);
  const heartbeat = parseNumber(args, 'heartbeat', 25, (n) => Number.isInteger(n) && n >= 1, 'an integer number of ms >= 1');
  const election = parseNumber(args, 'election', 150, (n) => Number.isInteger(n) && n >= 5 * heartbeat, `an integer number of ms >= 5 x heartbeat (etcd requires it)`);
  const attemptTimeoutMs = parseNumber(args, 'attempt-timeout', 250, (n) => n >= 10, 'ms >= 10');
  const retryEveryMs = parseNumber(args, 'retry-every', 10, (n) => n >= 1, 'ms >= 1');
  return {
    only: only === 'both' ? ['etcd', 'concord'] : [only as SystemName],
    seconds: parseNumber(args, 'seconds', 5, (n) => n > 0, 'a number of seconds > 0'),
    warmup: parseNumber(args, 'warmup', 1, (n) => n >= 0, 'a number of seconds >= 0'),
    inflight,
    trials: parseNumber(args, 'trials', 5, (n) => Number.isInteger(n) && n >= 0, 'an integer >= 0'),
    heartbeat,
    election,
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

/** What the bench drives on each system. */
interface System {
  name: SystemName;
  /** Every member up, a leader, every member caught up with the leader's commit. */
  waitReady(timeoutMs: number): Promise<void>;
  /** Each closed-loop worker's target, for `inflight` workers (pointed at the current leader for etcd). */
  loadTargets(inflight: number): Promise<(worker: number) => KvTarget>;
  /** Name of the current leader. */
  leader(): Promise<string>;
  /** Sends SIGKILL now; resolves when the process is gone. */
  kill9(member: string): Promise<void>;
  /** The failover writer's target for each attempt. */
  failoverTarget(): (attempt: number) => KvTarget;
  restart(member: string): void;
  /** The failover writer's pacing for this system. */
  retry: RetryOptions;
  /** Heartbeat, before the kill, for a random kill phase. */
  heartbeatMs: number;
  /** Reported at the end (some are learned during the run). */
  settings(): Record<string, unknown>;
  close(): Promise<void>;
}

function etcdSystem(c: EtcdCluster, version: string, o: Options): System {
  const byName = (n: string) => {
    const m = c.members.find((x) => x.name === n);
    if (!m) throw new Error(`no etcd member ${n}`);
    return m;
  };
  return {
    name: 'etcd',
    waitReady: (ms) => c.waitHealthy(ms),
    loadTargets: async () => {
      const t = c.target(await c.leader());
      return () => t;
    },
    leader: async () => (await c.leader()).name,
    kill9: (n) => c.kill9(byName(n)),
    // Like a client configured with every endpoint: it does not know which member died (an
    // attempt on the dead one is refused at once).
    failoverTarget: () => {
      const all = c.members.map((m) => c.target(m, c.probeAgent));
      return (attempt) => all[attempt % all.length] as KvTarget;
    },
    restart: (n) => c.restart(byName(n)),
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
      write_path: 'POST /v3/kv/put (JSON gateway, base64) to the leader, keep-alive HTTP/1.1 agent',
      failover_writer: {
        targets: 'round robin over all 5 client URLs (the dead one refuses at once; a follower forwards to the leader once it knows one; a put forwarded to the dead leader hangs until its timeout, hence the hedging)',
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
    waitReady: (ms) => c.waitHealthy(ms),
    loadTargets: async (n) => c.loadTargets(n),
    leader: async () => c.leader(),
    kill9: (n) => c.kill9(n),
    failoverTarget: () => {
      const t = c.target(0);
      return () => t;
    },
    restart: (n) => c.restart(n),
    // The same writer as etcd's. ClusterClient also retries inside each call (lost connection ->
    // next member -> not_leader redirect, 25 ms pause), but a call that is on the dead leader's
    // address waits there up to its connect timeout, so hedged calls keep the figure from being
    // quantized to the attempt timeout, as for etcd.
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
}

interface Trial {
  ms: number;
  attempts: number;
  recoverMs: number;
  lastError: string | null;
}

async function failoverTrial(s: System, gen: KvGen, o: Options, prng: Prng, trial: number, log: (m: string) => void): Promise<Trial> {
  await s.waitReady(30_000);
  const old = await s.leader();
  const target = s.failoverTarget();
  // Kill at a random phase of the leader's heartbeat cycle.
  await sleep(prng.int(0, Math.max(1, s.heartbeatMs)));
  const t0 = performance.now();
  const gone = s.kill9(old);
  const r = await writeUntilSuccess(target, gen, t0, s.retry);
  await gone;
  await r.settled;
  const t1 = performance.now();
  s.restart(old);
  await s.waitReady(60_000);
  const recoverMs = performance.now() - t1;
  log(`${s.name} failover ${trial + 1}/${o.trials}: killed ${old}, first write acknowledged after ${round(r.ms, 1)} ms (${r.attempts} attempts); restarted, healthy after ${round(recoverMs, 0)} ms`);
  return { ms: r.ms, attempts: r.attempts, recoverMs, lastError: r.lastError };
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
  };
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

async function run(args: BenchArgs, log: (m: string) => void): Promise<Record<string, unknown>> {
  const o = parseOptions(args);
  // Other work on the machine skews both systems (everything shares the cores): reported.
  const loadBefore = os.loadavg();
  const cleanup = new Cleanup();
  cleanup.install();
  const prng = new Prng(o.seed);
  const systems: System[] = [];
  try {
    // Check/prepare both before starting either, so a missing build fails fast.
    let concordMod: typeof import('./concord-cluster.js') | null = null;
    if (o.only.includes('concord')) {
      concordMod = await import('./concord-cluster.js');
      concordMod.checkBuild(log);
    }
    let etcdVersion: string | null = null;
    if (o.only.includes('etcd')) etcdVersion = ensureEtcd(log);

    for (const name of o.only) {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), `concord-bench-${name}-`));
      cleanup.dirs.push(dir);
      log(`${name}: data dir ${dir}`);
      if (name === 'etcd') {
        const c = await EtcdCluster.start(dir, { heartbeatMs: o.heartbeat, electionMs: o.election }, log);
        const s = etcdSystem(c, etcdVersion as string, o);
        cleanup.systems.push(s);
        systems.push(s);
      } else {
        const c = await (concordMod as typeof import('./concord-cluster.js')).ConcordCluster.start(dir, log);
        const s = concordSystem(c, o);
        cleanup.systems.push(s);
        systems.push(s);
      }
    }

    // The same generator and seed for both: the same values, keys differing only in a 4-char tag.
    const gens = new Map<SystemName, KvGen>(systems.map((s) => [s.name, new KvGen(s.name === 'etcd' ? 'etcd' : 'cncd', o.seed)]));
    const results = new Map<SystemName, Record<string, unknown>>(systems.map((s) => [s.name, {}]));

    // Closed loops, alternating which system goes first at each level.
    for (let li = 0; li < o.inflight.length; li++) {
      const n = o.inflight[li] as number;
      const order = li % 2 === 0 ? systems : [...systems].reverse();
      for (const s of order) {
        await s.waitReady(60_000);
        const targets = await s.loadTargets(n);
        const r: LoopResult = await closedLoop(targets, gens.get(s.name) as KvGen, n, o.seconds, o.warmup);
        (results.get(s.name) as Record<string, unknown>)[`inflight_${n}`] = r;
        log(`${s.name} inflight=${n}: ${r.per_s} writes/s (median of ${r.per_s_windows.length} 1-s windows), p50 ${r.p50_ms} ms, p99 ${r.p99_ms} ms, errors ${r.errors}${r.first_error ? ` (first: ${r.first_error})` : ''}`);
      }
    }

    // Failover trials, alternating which system goes first.
    const trials = new Map<SystemName, Trial[]>(systems.map((s) => [s.name, []]));
    for (let t = 0; t < o.trials; t++) {
      const order = t % 2 === 0 ? systems : [...systems].reverse();
      for (const s of order) {
        (trials.get(s.name) as Trial[]).push(await failoverTrial(s, gens.get(s.name) as KvGen, o, prng, t, log));
      }
    }
    for (const s of systems) {
      (results.get(s.name) as Record<string, unknown>).failover = o.trials > 0 ? summarize(trials.get(s.name) as Trial[]) : null;
    }

    // Ratios and goals (null when a side was not run).
    const e = results.get('etcd');
    const c = results.get('concord');
    const perS = (r: Record<string, unknown> | undefined, n: number): number | undefined => (r?.[`inflight_${n}`] as LoopResult | undefined)?.per_s;
    const foP50 = (r: Record<string, unknown> | undefined): number | undefined => (r?.failover as FailoverResult | null | undefined)?.p50_ms;
    const ratio = (a: number | undefined, b: number | undefined): number | null => (a === undefined || b === undefined || b === 0 ? null : round(a / b, 3));
    const ratios: Record<string, number | null> = {};
    for (const n of o.inflight) ratios[`throughput_inflight_${n}`] = ratio(perS(c, n), perS(e, n));
    ratios.failover_p50 = ratio(foP50(c), foP50(e));
    const tputGoal = perS(c, 256) !== undefined && perS(e, 256) !== undefined ? (perS(c, 256) as number) >= (perS(e, 256) as number) : null;
    const foGoal = foP50(c) !== undefined && foP50(e) !== undefined ? (foP50(c) as number) <= (foP50(e) as number) : null;

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
        key_bytes: KEY_BYTES,
        value_bytes: VALUE_BYTES,
        inflight: o.inflight,
        seconds: o.seconds,
        warmup_seconds: o.warmup,
        trials: o.trials,
        seed: o.seed,
        ...Object.fromEntries(systems.map((s) => [s.name, s.settings()])),
      },
      etcd: e ?? null,
      concord: c ?? null,
      ratios_concord_over_etcd: ratios,
      goals: {
        concord_throughput_256_ge_etcd: tputGoal,
        concord_failover_p50_le_etcd: foGoal,
      },
      pass: tputGoal === null || foGoal === null ? null : tputGoal && foGoal,
    };
  } finally {
    await cleanup.run(o.keep, log);
  }
}

export const bench: BenchModule = {
  description:
    'Concord cluster mode (5 `concord node` processes, durability full) vs etcd 3.4 (5 members, Debian etcd-server, installed if missing) on loopback, same load ' +
    `(${KEY_BYTES}-byte keys, ${VALUE_BYTES}-byte values): closed-loop writes/s and p50/p99 at each in-flight level, kill -9 leader failover (kill to first acknowledged write), ` +
    'alternating systems. Needs `npm run build` first (the members run dist/src/cli/main.js).',
  options: {
    only: { description: 'run one system: etcd | concord | both', default: 'both' },
    seconds: { description: 'measured seconds per in-flight level', default: '5' },
    warmup: { description: 'warm-up seconds before each measured window', default: '1' },
    inflight: { description: 'comma list of closed-loop concurrency levels', default: '1,64,256' },
    trials: { description: 'leader kill -9 failover trials per system (0 skips)', default: '5' },
    heartbeat: { description: 'etcd --heartbeat-interval (ms)', default: '25' },
    election: { description: 'etcd --election-timeout (ms)', default: '150' },
    'attempt-timeout': { description: 'failover writer: per-attempt timeout (ms), both systems', default: '250' },
    'retry-every': { description: 'failover writer: start another attempt after this long while one is pending (ms), both systems', default: '10' },
    seed: { description: 'seed for keys/values and kill timing', default: '1' },
    keep: { description: 'keep the temp data dirs and member logs (processes are still killed)', default: 'false' },
  },
  run,
};
