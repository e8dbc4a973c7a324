// An n-process Concord cluster on loopback for the etcd-compare bench: one `concord node` per
// member (node dist/src/cli/main.js node ...), a fresh data dir each, a shared HMAC secret file
// in the temp dir, ports picked free, the product's defaults (durability full, election
// 150-300 ms, heartbeat 50 ms). Writes go through ClusterClient.callTool('memory_store').

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { ClusterClient } from '../../src/cluster/cluster-client.js';
import type { MemberStatus } from '../../src/cluster/protocol.js';
import { loadSecret } from '../../src/transport/auth.js';
import { DEFAULT_LIMITS } from '../../src/transport/limits.js';
import { TcpClient } from '../../src/transport/tcp-client.js';
import { freePorts, MemberProcess } from './etcd-cluster.js';
import type { KvTarget, RetryOptions } from './loadgen.js';
import { sleep } from './stats.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
// CONCORD_BENCH_MAIN: another build's main.js, to measure a before/after pair with one bench.
const MAIN = process.env.CONCORD_BENCH_MAIN ? path.resolve(process.env.CONCORD_BENCH_MAIN) : path.join(ROOT, 'dist', 'src', 'cli', 'main.js');
const SWARM = 'bench';

/** The members run the built CLI: it must exist (and should not be older than src/). */
export function checkBuild(log: (m: string) => void): void {
  if (!fs.existsSync(MAIN)) {
    throw new Error(`${path.relative(process.cwd(), MAIN) || MAIN} not found: the Concord members run the built CLI; run \`npm run build\` first`);
  }
  const built = fs.statSync(MAIN).mtimeMs;
  let newest = 0;
  let newestFile = '';
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) {
        const t = fs.statSync(p).mtimeMs;
        if (t > newest) {
          newest = t;
          newestFile = p;
        }
      }
    }
  };
  for (const d of ['src', 'tools']) if (fs.existsSync(path.join(ROOT, d))) walk(path.join(ROOT, d));
  if (newest > built) log(`warning: ${path.relative(ROOT, newestFile)} is newer than the build in dist/; run \`npm run build\` to measure the current code`);
}

/** One CONCORD_WRITE_TRACE event: absolute ms (time origin + now), what, the entry index when there is one, the peer. */
export interface WriteTraceEvent {
  t: number;
  ev: string;
  idx?: number;
  peer?: string;
  /** Failover trace: a vote message's term, an answer's refusal. */
  term?: number;
  reject?: boolean;
}

export interface ConcordMember {
  id: string;
  addr: string;
  proc: MemberProcess;
}

/** Text of an MCP CallToolResult, for error messages. */
function resultText(r: { content?: unknown }): string {
  const c = r.content;
  if (Array.isArray(c)) {
    return c
      .map((x: unknown) => (x && typeof x === 'object' && 'text' in x ? String((x as { text: unknown }).text) : JSON.stringify(x)))
      .join(' ')
      .slice(0, 300);
  }
  return JSON.stringify(r).slice(0, 300);
}

export class ConcordCluster {
  /** The cluster's heartbeat (ms): its config when it answered consensus_config, else the product's default. */
  get heartbeatMs(): number {
    const h = this.config?.heartbeat_interval;
    return typeof h === 'number' ? h : 50;
  }
  private config: Record<string, unknown> | null = null;
  /** Variables removed from the members' environment (see start). */
  droppedEnv: string[] = [];
  /** Client connections for the load: clients[0] is `client`. */
  private readonly clients: ClusterClient[];
  private readonly perClient = DEFAULT_LIMITS.maxClientInflight;
  private maxClients = 1;
  private readonly probes = new Map<string, TcpClient>();

  private constructor(
    readonly members: ConcordMember[],
    readonly dir: string,
    private readonly secret: Buffer,
    /** The load's client (finds the leader, follows redirects). */
    readonly client: ClusterClient,
  ) {
    this.clients = [client];
  }

  get addrs(): string {
    return this.members.map((m) => m.addr).join(',');
  }

  /**
   * `env` adds to the members' environment (e.g. CONCORD_WRITE_TRACE=1); `main` is the CLI
   * they run (default dist/, or CONCORD_BENCH_MAIN): A/B runs start one cluster per build.
   */
  static async start(dir: string, log: (m: string) => void, n: number, extraEnv: Record<string, string> = {}, main: string = MAIN): Promise<ConcordCluster> {
    const secretFile = path.join(dir, 'secret');
    fs.writeFileSync(secretFile, `${crypto.randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    const secret = loadSecret(secretFile);
    const ports = await freePorts(n);
    const ids = Array.from({ length: n }, (_, i) => `n${i + 1}`);
    const addr = (i: number): string => `127.0.0.1:${ports[i]}`;
    const peers = ids.map((id, i) => `${id}=${addr(i)}`).join(',');
    // The start-up marks (a handful of lines per start) time each restart's phases.
    const env: NodeJS.ProcessEnv = { ...process.env, CONCORD_LOG_LEVEL: process.env.CONCORD_LOG_LEVEL ?? 'warn', CONCORD_STARTUP_TRACE: '1', ...extraEnv };
    // Node 20 builds its whole root certificate store at start-up when NODE_EXTRA_CA_CERTS is
    // set (this VM sets it for its package proxy): 60 ms more per start, measured (37 against
    // 98 ms for `node -e 0`). A member makes no outbound TLS to public hosts, and a deployment
    // does not inherit a build machine's proxy settings: the members start without it, unless
    // CONCORD_BENCH_KEEP_EXTRA_CA=1 (see settings().member_env).
    const dropped = process.env.CONCORD_BENCH_KEEP_EXTRA_CA !== '1' && env.NODE_EXTRA_CA_CERTS !== undefined && !('NODE_EXTRA_CA_CERTS' in extraEnv);
    if (dropped) delete env.NODE_EXTRA_CA_CERTS;
    const members: ConcordMember[] = ids.map((id, i) => {
      const dataDir = path.join(dir, id);
      fs.mkdirSync(dataDir, { recursive: true });
      const args = [main, 'node', '--swarm', SWARM, '--id', id, '--listen', addr(i), '--peers', peers, '--data-dir', dataDir, '--secret-file', secretFile];
      return { id, addr: addr(i), proc: new MemberProcess(`concord ${id}`, process.execPath, args, path.join(dir, `${id}.log`), env, ROOT) };
    });
    const client = new ClusterClient({ members: members.map((m) => m.addr).join(','), secret, name: 'bench', timeoutMs: 10_000 });
    const c = new ConcordCluster(members, dir, secret, client);
    c.droppedEnv = dropped ? ['NODE_EXTRA_CA_CERTS'] : [];
    try {
      const t0 = performance.now();
      for (const m of members) m.proc.start();
      await Promise.all(members.map((m) => c.waitListening(m, 30_000)));
      await c.waitHealthy(30_000);
      log(`concord: ${n} members healthy after ${Math.round(performance.now() - t0)} ms (${c.addrs})`);
      // Read the timing the cluster runs with (an empty consensus_config patch returns it).
      try {
        const r = await client.callTool('consensus_config', {});
        const sc = (r as { structuredContent?: { config?: Record<string, unknown> } }).structuredContent;
        if (!r.isError && sc?.config) c.config = sc.config;
      } catch {
        // reported as unknown
      }
      return c;
    } catch (e) {
      await c.close();
      throw e;
    }
  }

  /** Waits for the member's "concord node ID listening on" line in its log. */
  private async waitListening(m: ConcordMember, timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    const needle = `concord node ${m.id} listening on`;
    for (;;) {
      m.proc.assertRunning('starting');
      const log = fs.readFileSync(m.proc.logPath, 'utf8');
      // Only this run's part of the log (it is appended across restarts).
      const lastStart = log.lastIndexOf('===== start #');
      if (log.indexOf(needle, Math.max(0, lastStart)) >= 0) return;
      if (performance.now() > deadline) throw new Error(`${m.proc.name} did not print "${needle}" within ${timeoutMs} ms; log:\n${m.proc.logTail()}`);
      await sleep(10);
    }
  }

  private member(id: string): ConcordMember {
    const m = this.members.find((x) => x.id === id);
    if (!m) throw new Error(`no concord member ${id}`);
    return m;
  }

  async status(m: ConcordMember): Promise<MemberStatus> {
    return this.client.status(m.addr);
  }

  /**
   * Every running member answers status, one of them is leader (and the others agree), and
   * every member has applied the leader's commit index (a restarted member has caught up).
   */
  async waitHealthy(timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    let last = '';
    for (;;) {
      for (const m of this.members) m.proc.assertRunning('waiting for the cluster to become healthy');
      const st = await Promise.all(this.members.map((m) => this.status(m).catch((e: unknown) => (e as Error).message)));
      const ok = st.filter((s): s is MemberStatus => typeof s === 'object');
      const leader = ok.find((s) => s.role === 'leader');
      if (ok.length === this.members.length && leader && ok.every((s) => s.leader === leader.id && (s.applied ?? 0) >= (leader.commit ?? 0))) return;
      last = JSON.stringify(st);
      if (performance.now() > deadline) throw new Error(`concord cluster not healthy within ${timeoutMs} ms; last statuses: ${last}`);
      await sleep(20);
    }
  }

  /** Id of the current leader (the running member that says it leads, highest term first). */
  async leader(timeoutMs = 10_000): Promise<string> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const running = this.members.filter((m) => m.proc.running);
      const st = await Promise.all(running.map((m) => this.status(m).catch(() => null)));
      const leaders = st.filter((s): s is MemberStatus => s !== null && s.role === 'leader').sort((a, b) => (b.term ?? 0) - (a.term ?? 0));
      if (leaders[0]) return leaders[0].id;
      if (performance.now() > deadline) throw new Error(`no concord leader within ${timeoutMs} ms`);
      await sleep(10);
    }
  }

  /**
   * The closed loop's targets: a member accepts at most DEFAULT_LIMITS.maxClientInflight
   * requests in flight per client connection (64 when this was written, 1024 since), so
   * `inflight` workers are spread over ceil(inflight / limit) ClusterClients, `limit` workers
   * each (etcd's load uses one keep-alive socket per request in flight).
   */
  loadTargets(inflight: number): (worker: number) => KvTarget {
    const per = this.perClient;
    const need = Math.ceil(inflight / per);
    while (this.clients.length < need) {
      this.clients.push(new ClusterClient({ members: this.addrs, secret: this.secret, name: `bench-${this.clients.length}`, timeoutMs: 10_000 }));
    }
    this.maxClients = Math.max(this.maxClients, need);
    const targets = this.clients.slice(0, need).map((_, i) => this.target(i));
    return (w) => targets[Math.floor(w / per)] as KvTarget;
  }

  /**
   * memory_store through client `i` (0 is the one that also serves status). With a timeout (the
   * failover writer's attempts) it is the call's own timeoutMs: the client retries inside that
   * budget (leader discovery, redirects, lost connections) and then throws "unavailable: ...".
   */
  target(i: number): KvTarget {
    const client = this.clients[i] as ClusterClient;
    return {
      put: async (key, value, timeoutMs) => {
        const r = await client.callTool('memory_store', { key, value }, timeoutMs === undefined ? {} : { timeoutMs });
        if (r.isError) throw new Error(`memory_store failed: ${resultText(r)}`);
      },
    };
  }

  /**
   * A restarted member is back: it answers status, follows the leader `leaderId` names, and
   * has applied everything `leaderId` had committed when asked just before.
   */
  async caughtUp(id: string, leaderId: string): Promise<boolean> {
    try {
      const l = (await this.probe(leaderId).request({ kind: 'status' }, 500)) as MemberStatus;
      const s = (await this.probe(id).request({ kind: 'status' }, 500)) as MemberStatus;
      return l.role === 'leader' && s.leader === leaderId && (s.applied ?? 0) >= (l.commit ?? Infinity);
    } catch {
      return false;
    }
  }

  /**
   * Status probes for restart timing: one dial per attempt, no backoff (a client's redial
   * backoff would be measured instead of the member), like etcd's probes over HTTP.
   */
  private probe(id: string): TcpClient {
    let c = this.probes.get(id);
    if (!c) {
      const [host, port] = this.member(id).addr.split(':') as [string, string];
      c = new TcpClient({ host, port: Number(port), secret: this.secret, name: `probe-${id}`, failFast: true });
      this.probes.set(id, c);
    }
    return c;
  }

  /** Absolute time (performance.timeOrigin-based ms) of each start-up mark of the member's last start. */
  startupMarks(id: string): Record<string, number> {
    const m = this.member(id);
    const log = fs.readFileSync(m.proc.logPath, 'utf8');
    const part = log.slice(Math.max(0, log.lastIndexOf('===== start #')));
    const out: Record<string, number> = {};
    for (const x of part.matchAll(/^concord startup (\S+) at ([\d.]+) ms \(origin ([\d.]+)\)$/gm)) out[x[1] as string] = Number(x[3]) + Number(x[2]);
    return out;
  }

  /** Every write-trace event in the members' logs (CONCORD_WRITE_TRACE=1), by member id. */
  writeTraces(): Map<string, WriteTraceEvent[]> {
    const out = new Map<string, WriteTraceEvent[]>();
    for (const m of this.members) {
      const evs: WriteTraceEvent[] = [];
      for (const x of fs.readFileSync(m.proc.logPath, 'utf8').matchAll(/^concord trace (\{.*\})$/gm)) evs.push(JSON.parse(x[1] as string) as WriteTraceEvent);
      out.set(m.id, evs);
    }
    return out;
  }

  /** The member's fsyncs in this life (agent_metrics disk-io, answered by its own process: ask the leader). */
  async fsyncs(id: string): Promise<{ count: number; sumMs: number }> {
    const r = await this.client.callTool('agent_metrics', { agent_id: id, metric: 'disk-io' });
    const a = (r.structuredContent as { agents?: Array<{ 'disk-io'?: { fsync_count: number; fsync_ms_total: number } }> } | undefined)?.agents?.[0]?.['disk-io'];
    if (r.isError || !a) throw new Error(`agent_metrics ${id}: ${resultText(r)}`);
    return { count: a.fsync_count, sumMs: a.fsync_ms_total };
  }

  memberProcess(id: string): MemberProcess {
    return this.member(id).proc;
  }

  async kill9(id: string): Promise<void> {
    await this.member(id).proc.kill9();
  }

  restart(id: string): void {
    this.member(id).proc.start();
  }

  settings(retry: RetryOptions): Record<string, unknown> {
    let version = 'unknown';
    try {
      version = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    } catch {
      // unknown
    }
    const cfg = this.config;
    return {
      version,
      members: this.members.length,
      heartbeat_ms: this.heartbeatMs,
      election_timeout_ms: cfg ? [cfg.election_timeout_min, cfg.election_timeout_max] : [150, 300],
      config_from_cluster: cfg !== null,
      durability: 'full (default)',
      member_env: this.droppedEnv.length > 0 ? `the bench's environment without ${this.droppedEnv.join(', ')} (Node 20 parses its root certificates at every start when it is set: 60 ms on this VM)` : "the bench's environment",
      write_path: "ClusterClient.callTool('memory_store', { key, value }) (finds the leader itself)",
      load_clients: `ceil(inflight / ${this.perClient}) ClusterClients (members accept ${this.perClient} requests in flight per client connection); used up to ${this.maxClients}`,
      failover_writer: {
        targets: "callTool on the load's first ClusterClient (it knew the old leader; it finds the new one itself)",
        attempt_timeout_ms: retry.attemptTimeoutMs,
        new_attempt_every_ms: retry.retryEveryMs,
        max_pending: retry.maxPending,
      },
    };
  }

  async close(): Promise<void> {
    try {
      for (const cl of this.clients) cl.close();
      for (const p of this.probes.values()) p.close();
    } catch {
      // closing anyway
    }
    await Promise.all(this.members.map((m) => m.proc.stop(3_000)));
  }
}
