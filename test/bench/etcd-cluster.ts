// An n-member etcd 3.4 cluster on loopback for the etcd-compare bench: Debian's etcd-server
// (installed with apt-get when missing), fresh temp data dirs, static --initial-cluster, client
// and peer ports picked free, default fsync behaviour (etcd fsyncs its WAL on every Ready that
// carries entries or a hard-state change). Writes go through etcd's native gRPC KV API (the
// `etcd3` npm client over @grpc/grpc-js, one HTTP/2 channel per member, its retry and circuit
// breaker policies off so the bench's own writer decides what is retried), or for comparison
// through its v3 JSON gateway (`POST /v3/kv/put`, base64 key and value) over keep-alive HTTP/1.1.
// Status probes use the gateway (a probe's path does not matter to what is measured).
//
// The process helpers at the top (free ports, member processes with a log file each, a
// registry that kills every child on exit) are shared with concord-cluster.ts.

import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Etcd3, type IOptions } from 'etcd3';
import type { KvTarget } from './loadgen.js';
import { sleep } from './stats.js';

// ---------------------------------------------------------------------------------------------
// Process helpers (shared with concord-cluster.ts)

/** Every child process the bench started and that has not exited yet. */
const liveChildren = new Set<ChildProcess>();

/** SIGKILLs every child still running. Synchronous, so it works in an 'exit' handler. */
export function killAllChildrenSync(): number {
  let n = 0;
  for (const c of liveChildren) {
    try {
      if (c.pid !== undefined) process.kill(c.pid, 'SIGKILL');
      n++;
    } catch {
      // already gone
    }
  }
  liveChildren.clear();
  return n;
}

/** `count` distinct free TCP ports on 127.0.0.1 (held open together, then released). */
export async function freePorts(count: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < count; i++) {
      const s = net.createServer();
      servers.push(s);
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(0, '127.0.0.1', () => resolve());
      });
      ports.push((s.address() as net.AddressInfo).port);
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}

/** One member process: the command is fixed, so `start()` after a kill restarts it as it was. */
export class MemberProcess {
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  /** How the last run ended (null while running or before the first start). */
  lastExit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  starts = 0;
  /** performance.now() just before the last spawn. */
  spawnedAt = 0;
  /** The signal this bench sent to the current run, if any (to tell a foreign kill apart). */
  private sent: NodeJS.Signals | null = null;

  constructor(
    readonly name: string,
    private readonly command: string,
    private readonly args: readonly string[],
    /** stdout and stderr of every run are appended here. */
    readonly logPath: string,
    private readonly env: NodeJS.ProcessEnv = process.env,
    private readonly cwd: string = process.cwd(),
  ) {}

  get running(): boolean {
    return this.child !== null;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  start(): void {
    if (this.child) throw new Error(`${this.name} is already running`);
    const fd = fs.openSync(this.logPath, 'a');
    fs.writeSync(fd, `\n===== start #${++this.starts} at ${new Date().toISOString()}: ${this.command} ${this.args.join(' ')}\n`);
    let child: ChildProcess;
    try {
      this.spawnedAt = performance.now();
      child = spawn(this.command, this.args, { stdio: ['ignore', fd, fd], env: this.env, cwd: this.cwd });
    } finally {
      fs.closeSync(fd);
    }
    this.child = child;
    this.lastExit = null;
    this.sent = null;
    liveChildren.add(child);
    this.exited = new Promise<void>((resolve) => {
      const done = (code: number | null, signal: NodeJS.Signals | null): void => {
        liveChildren.delete(child);
        if (this.child === child) this.child = null;
        this.lastExit = { code, signal };
        resolve();
      };
      child.once('exit', done);
      child.once('error', (e) => {
        fs.appendFileSync(this.logPath, `spawn error: ${e.message}\n`);
        done(null, null);
      });
    });
  }

  /** kill -9 and wait until the process is gone. */
  async kill9(): Promise<void> {
    const c = this.child;
    if (!c) return;
    this.sent = 'SIGKILL';
    c.kill('SIGKILL');
    await this.exited;
  }

  /**
   * SIGSTOP: the process stops answering but its sockets stay open, like a machine that hangs
   * (no refused connection tells its peers). kill9() ends it afterwards.
   */
  freeze(): void {
    this.child?.kill('SIGSTOP');
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 5_000): Promise<void> {
    const c = this.child;
    if (!c) return;
    this.sent = 'SIGTERM';
    c.kill('SIGTERM');
    const t = setTimeout(() => {
      this.sent = 'SIGKILL';
      c.kill('SIGKILL');
    }, graceMs);
    await this.exited;
    clearTimeout(t);
  }

  /** The last `lines` lines of the log, for error messages. */
  logTail(lines = 20): string {
    try {
      const all = fs.readFileSync(this.logPath, 'utf8').trimEnd().split('\n');
      return all.slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  /** Throws with the log tail when the process has exited. */
  assertRunning(what: string): void {
    if (this.child) return;
    const e = this.lastExit;
    let how = e ? `exited (code ${e.code}, signal ${e.signal})` : 'not running';
    if (e?.signal && e.signal !== this.sent) how += ` - a signal this bench did not send: another process on this machine killed it`;
    else if (e && !e.signal && this.sent === null) how += ' on its own (this bench sent no signal; a graceful exit may be a SIGTERM/SIGINT from another process, e.g. a `pkill -f`)';
    throw new Error(`${this.name} ${how} while ${what}; last lines of ${this.logPath}:\n${this.logTail()}`);
  }
}

// ---------------------------------------------------------------------------------------------
// etcd install

function etcdVersion(): string | null {
  const r = spawnSync('etcd', ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return null;
  const m = /etcd Version:\s*(\S+)/.exec(r.stdout);
  return m ? (m[1] as string) : r.stdout.trim().split('\n')[0] ?? 'unknown';
}

/**
 * `etcd --version`; when etcd is missing, installs Debian's etcd-server with apt-get (as root,
 * or through sudo when available). Throws a clear error when that is not possible.
 */
export function ensureEtcd(log: (m: string) => void): string {
  const have = etcdVersion();
  if (have) return have;
  log('etcd not found; installing Debian package etcd-server (apt-get update && apt-get install -y etcd-server)');
  const isRoot = process.getuid?.() === 0;
  const hasSudo = !isRoot && spawnSync('sudo', ['-n', 'true'], { stdio: 'ignore' }).status === 0;
  if (!isRoot && !hasSudo) {
    throw new Error(
      'etcd is not installed and this user can neither run apt-get (not root) nor sudo without a password. ' +
        'Install it with `sudo apt-get update && sudo apt-get install -y etcd-server` (Debian) or put an etcd 3.4 binary on PATH.',
    );
  }
  const run = (args: string[]): void => {
    const cmd = hasSudo ? 'sudo' : args[0] as string;
    const argv = hasSudo ? ['-n', 'env', 'DEBIAN_FRONTEND=noninteractive', ...args] : args.slice(1);
    try {
      execFileSync(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, maxBuffer: 64 << 20 });
    } catch (e) {
      const err = e as { stderr?: Buffer; message: string };
      throw new Error(`\`${args.join(' ')}\` failed: ${err.stderr?.toString().trim().split('\n').slice(-5).join('\n') || err.message}`);
    }
  };
  try {
    run(['apt-get', 'update']);
    run(['apt-get', 'install', '-y', 'etcd-server']);
  } catch (e) {
    throw new Error(`could not install etcd (Debian package etcd-server): ${(e as Error).message}`);
  }
  const v = etcdVersion();
  if (!v) throw new Error('apt-get installed etcd-server but `etcd --version` still fails; is /usr/bin on PATH?');
  log(`installed etcd ${v}`);
  return v;
}

// ---------------------------------------------------------------------------------------------
// HTTP (JSON gateway)

export interface HttpReply {
  status: number;
  body: string;
}

/** One HTTP request; rejects on a network error or when `timeoutMs` passes (request destroyed). */
export function httpRequest(
  agent: http.Agent,
  method: 'GET' | 'POST',
  host: string,
  port: number,
  urlPath: string,
  body: string | null,
  timeoutMs?: number,
): Promise<HttpReply> {
  return new Promise<HttpReply>((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = {};
    if (body !== null) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = Buffer.byteLength(body);
    }
    let timer: NodeJS.Timeout | undefined;
    const req = http.request({ agent, method, host, port, path: urlPath, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        if (timer) clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') });
      });
      res.on('error', (e) => {
        if (timer) clearTimeout(timer);
        reject(e);
      });
    });
    req.on('error', (e) => {
      if (timer) clearTimeout(timer);
      reject(e);
    });
    if (timeoutMs !== undefined) {
      timer = setTimeout(() => req.destroy(new Error(`timeout after ${timeoutMs} ms`)), timeoutMs);
    }
    req.end(body ?? undefined);
  });
}

/**
 * A fault-handling policy that runs each call once: etcd3 only calls execute() on it. (Its
 * defaults retry and open a circuit breaker; cockatiel's own no-op policy is not a declared
 * dependency here.)
 */
const NO_RETRY = {
  execute: async <T>(fn: (ctx: { signal: AbortSignal }) => T | Promise<T>): Promise<T> => fn({ signal: new AbortController().signal }),
} as unknown;

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

// ---------------------------------------------------------------------------------------------
// The cluster

export interface EtcdSettings {
  heartbeatMs: number;
  electionMs: number;
}

export interface EtcdMember {
  name: string;
  clientPort: number;
  peerPort: number;
  proc: MemberProcess;
  /** The member id etcd reports (decimal uint64 as a string, as the JSON gateway prints it). */
  memberId: string | null;
}

interface EtcdStatus {
  memberId: string;
  leader: string;
  raftIndex: number;
  raftAppliedIndex: number;
  raftTerm: number;
  version: string;
}

export class EtcdCluster {
  readonly members: EtcdMember[];
  /** Keep-alive agent for the load (unbounded sockets: one per request in flight). */
  readonly agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 1024 });
  /** Separate agent for status/health probes and the failover writer. */
  readonly probeAgent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
  /** gRPC clients by member name (one channel each), made on first use. */
  private readonly grpc = new Map<string, Etcd3>();

  private constructor(
    members: EtcdMember[],
    readonly dir: string,
    readonly settings: EtcdSettings,
  ) {
    this.members = members;
  }

  /** Starts `n` members in `dir` (created by the caller, removed by the caller) and waits until all are healthy. */
  static async start(dir: string, settings: EtcdSettings, log: (m: string) => void, n: number): Promise<EtcdCluster> {
    const ports = await freePorts(2 * n);
    const names = Array.from({ length: n }, (_, i) => `etcd${i + 1}`);
    const peerUrl = (i: number): string => `http://127.0.0.1:${ports[2 * i + 1]}`;
    const initialCluster = names.map((nm, i) => `${nm}=${peerUrl(i)}`).join(',');
    const token = `bench-${process.pid}-${Date.now()}`;
    const members: EtcdMember[] = names.map((name, i) => {
      const clientPort = ports[2 * i] as number;
      const clientUrl = `http://127.0.0.1:${clientPort}`;
      const args = [
        '--name', name,
        '--data-dir', path.join(dir, name),
        '--listen-client-urls', clientUrl,
        '--advertise-client-urls', clientUrl,
        '--listen-peer-urls', peerUrl(i),
        '--initial-advertise-peer-urls', peerUrl(i),
        '--initial-cluster', initialCluster,
        '--initial-cluster-state', 'new',
        '--initial-cluster-token', token,
        '--heartbeat-interval', String(settings.heartbeatMs),
        '--election-timeout', String(settings.electionMs),
        '--logger', 'zap',
        '--log-outputs', 'stderr',
        '--log-level', 'warn',
      ];
      const proc = new MemberProcess(name, 'etcd', args, path.join(dir, `${name}.log`));
      return { name, clientPort, peerPort: ports[2 * i + 1] as number, proc, memberId: null };
    });
    const c = new EtcdCluster(members, dir, settings);
    try {
      for (const m of members) m.proc.start();
      const t0 = performance.now();
      await c.waitHealthy(30_000);
      log(`etcd: ${n} members healthy after ${Math.round(performance.now() - t0)} ms (client ports ${members.map((m) => m.clientPort).join(',')})`);
      for (const m of members) m.memberId = (await c.status(m)).memberId;
      return c;
    } catch (e) {
      await c.close();
      throw e;
    }
  }

  /** The v3 maintenance status of one member. */
  async status(m: EtcdMember, timeoutMs = 1_000): Promise<EtcdStatus> {
    const r = await httpRequest(this.probeAgent, 'POST', '127.0.0.1', m.clientPort, '/v3/maintenance/status', '{}', timeoutMs);
    if (r.status !== 200) throw new Error(`${m.name} status: HTTP ${r.status} ${r.body}`);
    const j = JSON.parse(r.body) as { header?: { member_id?: string }; leader?: string; raftIndex?: string; raftAppliedIndex?: string; raftTerm?: string; version?: string };
    return {
      memberId: String(j.header?.member_id ?? ''),
      leader: String(j.leader ?? '0'),
      raftIndex: Number(j.raftIndex ?? 0),
      raftAppliedIndex: Number(j.raftAppliedIndex ?? 0),
      raftTerm: Number(j.raftTerm ?? 0),
      version: String(j.version ?? ''),
    };
  }

  /** GET /health of one member: true when it has a leader and can serve a linearizable read. */
  async healthy(m: EtcdMember, timeoutMs = 1_000): Promise<boolean> {
    try {
      const r = await httpRequest(this.probeAgent, 'GET', '127.0.0.1', m.clientPort, '/health', null, timeoutMs);
      return r.status === 200 && /"health"\s*:\s*"true"/.test(r.body);
    } catch {
      return false;
    }
  }

  /**
   * Waits until every running member (or `only`) answers /health with true and, when all
   * answered, every member has applied what the leader had committed (so a restarted member
   * has caught up).
   */
  async waitHealthy(timeoutMs: number, only?: EtcdMember[]): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    const targets = only ?? this.members;
    for (;;) {
      for (const m of targets) m.proc.assertRunning('waiting for etcd to become healthy');
      const ok = await Promise.all(targets.map((m) => this.healthy(m)));
      if (ok.every(Boolean)) {
        try {
          const st = await Promise.all(this.members.filter((m) => m.proc.running).map((m) => this.status(m)));
          const leader = st.find((s) => s.memberId === s.leader);
          if (leader && st.every((s) => s.raftAppliedIndex >= leader.raftIndex)) return;
        } catch {
          // retry
        }
      }
      if (performance.now() > deadline) {
        const bad = targets.filter((_, i) => !ok[i]).map((m) => m.name);
        throw new Error(`etcd not healthy within ${timeoutMs} ms (unhealthy: ${bad.join(', ') || 'none; a member lags the leader'})`);
      }
      await sleep(20);
    }
  }

  /** The current leader, asking the running members (a leader that itself says it is the leader). */
  async leader(timeoutMs = 10_000): Promise<EtcdMember> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const running = this.members.filter((m) => m.proc.running);
      const st = await Promise.all(running.map((m) => this.status(m, 500).catch(() => null)));
      for (let i = 0; i < running.length; i++) {
        const s = st[i];
        if (s && s.leader !== '0' && s.memberId === s.leader) return running[i] as EtcdMember;
      }
      if (performance.now() > deadline) throw new Error(`no etcd leader within ${timeoutMs} ms`);
      await sleep(10);
    }
  }

  /** A KvTarget that writes to one member's client port (a follower forwards to the leader). */
  target(m: EtcdMember, agent: http.Agent = this.agent): KvTarget {
    const port = m.clientPort;
    return {
      put: async (key, value, timeoutMs) => {
        const body = `{"key":"${b64(key)}","value":"${b64(value)}"}`;
        const r = await httpRequest(agent, 'POST', '127.0.0.1', port, '/v3/kv/put', body, timeoutMs);
        if (r.status !== 200 || !r.body.startsWith('{"header"')) throw new Error(`etcd put via ${m.name}: HTTP ${r.status} ${r.body.slice(0, 200)}`);
      },
    };
  }

  /**
   * A KvTarget that writes to one member over gRPC (KV.Put; a follower forwards to the leader).
   * With a timeout the call gets a gRPC deadline. The client's own retry and circuit-breaker
   * policies are off: a failed put fails, and the caller decides what to retry.
   */
  grpcTarget(m: EtcdMember): KvTarget {
    let client = this.grpc.get(m.name);
    if (!client) {
      client = new Etcd3({ hosts: `http://127.0.0.1:${m.clientPort}`, dialTimeout: 1_000, faultHandling: { host: () => NO_RETRY, global: NO_RETRY } as IOptions['faultHandling'] });
      this.grpc.set(m.name, client);
    }
    const c = client;
    return {
      put: async (key, value, timeoutMs) => {
        const b = c.put(key).value(value);
        if (timeoutMs !== undefined) b.options({ deadline: Date.now() + timeoutMs });
        await b.exec();
      },
    };
  }

  /**
   * A restarted member is back: it answers status, follows the leader `leader` names, and has
   * applied everything `leader` had committed when asked just before.
   */
  async caughtUp(m: EtcdMember, leader: EtcdMember): Promise<boolean> {
    try {
      const l = await this.status(leader, 500);
      const s = await this.status(m, 500);
      return s.leader === l.memberId && s.raftAppliedIndex >= l.raftIndex;
    } catch {
      return false;
    }
  }

  /** The member's WAL fsyncs so far, from its Prometheus /metrics (etcd_disk_wal_fsync_duration_seconds). */
  async walFsyncs(m: EtcdMember): Promise<{ count: number; sumMs: number }> {
    const r = await httpRequest(this.probeAgent, 'GET', '127.0.0.1', m.clientPort, '/metrics', null, 2_000);
    const num = (name: string): number => {
      const x = new RegExp(`^${name} (\\S+)$`, 'm').exec(r.body);
      if (!x) throw new Error(`${m.name} /metrics has no ${name}`);
      return Number(x[1]);
    };
    return { count: num('etcd_disk_wal_fsync_duration_seconds_count'), sumMs: num('etcd_disk_wal_fsync_duration_seconds_sum') * 1000 };
  }

  async kill9(m: EtcdMember): Promise<void> {
    await m.proc.kill9();
  }

  /** Restarts a killed member with its data dir (the --initial-cluster flags are ignored then). */
  restart(m: EtcdMember): void {
    m.proc.start();
  }

  /** Stops every member (SIGTERM, then SIGKILL) and drops the HTTP agents. The caller removes `dir`. */
  async close(): Promise<void> {
    this.agent.destroy();
    this.probeAgent.destroy();
    for (const c of this.grpc.values()) c.close();
    this.grpc.clear();
    await Promise.all(this.members.map((m) => m.proc.stop(3_000)));
  }
}
