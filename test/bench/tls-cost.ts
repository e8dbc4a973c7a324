// What mutual TLS costs in cluster mode: the same `concord node` cluster (built CLI, fresh
// data dirs, durability full) started with and without --cert/--key/--ca, driven by one
// ClusterClient with memory_store writes: sequentially (1 in flight: median and p99 latency,
// writes/s) and with N in flight for a fixed time (writes/s). Rounds alternate plain and TLS
// (ABAB...) so drifting machine load hits both alike. CPU time per write (members and
// client) is reported too: on a busy machine it moves far less than latency. One JSON line on
// stdout.
//
//   npm run build && npx tsx test/bench/tls-cost.ts [--members 3] [--writes 1000]
//        [--seconds 8] [--inflight 256] [--rounds 2]
//   npx tsx test/bench/tls-cost.ts --echo 1 [--writes 5000] [--seconds 3] [--rounds 3]
//        the transport alone, in this process: a member port answering at once (no Raft,
//        no fsync), plain against TLS: round trip p50, requests/s, CPU per request.

import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { ClusterClient } from '../../src/cluster/cluster-client.js';
import { clientKey } from '../../src/transport/auth.js';
import { TcpClient } from '../../src/transport/tcp-client.js';
import { TcpTransport } from '../../src/transport/tcp-transport.js';
import { loadTls } from '../../src/transport/tls.js';
import { freePorts, killAll, MemberProc, requireBuild } from '../cluster/procs.js';
import { TestPki } from '../transport/tls-certs.js';

interface Args {
  echo: number;
  members: number;
  writes: number;
  seconds: number;
  inflight: number;
  rounds: number;
}

function parse(argv: string[]): Args {
  const a: Args = { echo: 0, members: 3, writes: 1000, seconds: 8, inflight: 256, rounds: 2 };
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i]!.replace(/^--/, '') as keyof Args;
    const v = Number(argv[i + 1]);
    if (!(k in a) || !Number.isInteger(v) || v < 1) throw new Error(`usage: tls-cost.ts [--echo 1] [--members N] [--writes N] [--seconds N] [--inflight N] [--rounds N] (bad ${argv[i]} ${argv[i + 1]})`);
    a[k] = v;
  }
  return a;
}

/** CPU time (user + system, ms) a process has used, from /proc (Linux); null elsewhere. */
function cpuMs(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 (utime, stime), in clock ticks (100 per second on Linux).
    return ((Number(rest[11]) + Number(rest[12])) * 1000) / 100;
  } catch {
    return null;
  }
}

/** CPU ms used by the members and by this (client) process so far. */
function cpuNow(procs: MemberProc[]): { members: number; client: number } {
  const u = process.cpuUsage();
  return { members: procs.reduce((s, p) => s + (cpuMs(p.pid) ?? NaN), 0), client: (u.user + u.system) / 1000 };
}

const pct = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const r2 = (x: number): number => Math.round(x * 100) / 100;

interface Run {
  tls: boolean;
  seq_p50_ms: number;
  seq_p99_ms: number;
  seq_writes_per_s: number;
  inflight_writes_per_s: number;
  inflight_p50_ms: number;
  /** CPU time per write (ms), all members together and the client, per phase: moves far less with machine load than latency does. */
  seq_member_cpu_ms_per_write: number;
  seq_client_cpu_ms_per_write: number;
  inflight_member_cpu_ms_per_write: number;
  inflight_client_cpu_ms_per_write: number;
  errors: number;
}

async function oneRun(tls: boolean, a: Args, pki: TestPki, log: (m: string) => void): Promise<Run> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `concord-tls-cost-${tls ? 'tls' : 'plain'}-`));
  const hex = crypto.randomBytes(32).toString('hex');
  const secretFile = path.join(dir, 'secret');
  fs.writeFileSync(secretFile, `${hex}\n`, { mode: 0o600 });
  const ids = Array.from({ length: a.members }, (_, i) => `b${i + 1}`);
  const addrs = (await freePorts(a.members)).map((p) => `127.0.0.1:${p}`);
  const peers = ids.map((id, i) => `${id}=${addrs[i]}`).join(',');
  const procs = ids.map((id, i) => {
    const dataDir = path.join(dir, id);
    fs.mkdirSync(dataDir);
    const args = ['node', '--swarm', 'bench', '--id', id, '--listen', addrs[i]!, '--peers', peers, '--data-dir', dataDir, '--secret-file', secretFile];
    if (tls) {
      const f = pki.leaf(id);
      args.push('--cert', f.cert, '--key', f.key, '--ca', f.ca);
    }
    return new MemberProc(id, addrs[i]!, args, path.join(dir, `${id}.log`), { ...process.env, CONCORD_LOG_LEVEL: 'warn' });
  });
  const client = new ClusterClient({ members: addrs, clientKey: clientKey(Buffer.from(hex)), tls: tls ? loadTls(pki.leaf('client:bench')) : undefined, name: 'bench', timeoutMs: 20_000 });
  try {
    for (const p of procs) p.start();
    await Promise.all(procs.map((p) => p.waitListening(30_000)));
    // Warm up: a leader, a session, a few writes.
    for (let i = 0; i < 50; i++) await client.callTool('memory_store', { key: `warm${i}`, value: i });
    const lat: number[] = [];
    let errors = 0;
    const cpu0 = cpuNow(procs);
    const t0 = performance.now();
    for (let i = 0; i < a.writes; i++) {
      const s = performance.now();
      const r = await client.callTool('memory_store', { key: `seq${i % 100}`, value: i });
      lat.push(performance.now() - s);
      if (r.isError) errors++;
    }
    const seqS = (performance.now() - t0) / 1000;
    const cpuSeq = cpuNow(procs);
    lat.sort((x, y) => x - y);
    const inflightLat: number[] = [];
    let done = 0;
    const end = performance.now() + a.seconds * 1000;
    const t1 = performance.now();
    await Promise.all(
      Array.from({ length: a.inflight }, async (_, w) => {
        for (let i = 0; performance.now() < end; i++) {
          const s = performance.now();
          const r = await client.callTool('memory_store', { key: `w${w}-${i % 10}`, value: i });
          inflightLat.push(performance.now() - s);
          if (r.isError) errors++;
          else done++;
        }
      }),
    );
    const parS = (performance.now() - t1) / 1000;
    const cpu1 = cpuNow(procs);
    inflightLat.sort((x, y) => x - y);
    const run: Run = {
      tls,
      seq_p50_ms: r2(pct(lat, 50)),
      seq_p99_ms: r2(pct(lat, 99)),
      seq_writes_per_s: Math.round(a.writes / seqS),
      inflight_writes_per_s: Math.round(done / parS),
      inflight_p50_ms: r2(pct(inflightLat, 50)),
      seq_member_cpu_ms_per_write: r2((cpuSeq.members - cpu0.members) / a.writes),
      seq_client_cpu_ms_per_write: r2((cpuSeq.client - cpu0.client) / a.writes),
      inflight_member_cpu_ms_per_write: Math.round(((cpu1.members - cpuSeq.members) / done) * 1000) / 1000,
      inflight_client_cpu_ms_per_write: Math.round(((cpu1.client - cpuSeq.client) / done) * 1000) / 1000,
      errors,
    };
    log(`${tls ? 'tls  ' : 'plain'}: 1 in flight p50 ${run.seq_p50_ms} ms p99 ${run.seq_p99_ms} ms ${run.seq_writes_per_s} writes/s; ${a.inflight} in flight ${run.inflight_writes_per_s} writes/s (p50 ${run.inflight_p50_ms} ms); CPU ms per write (members, client): 1 in flight ${run.seq_member_cpu_ms_per_write}, ${run.seq_client_cpu_ms_per_write}; ${a.inflight} in flight ${run.inflight_member_cpu_ms_per_write}, ${run.inflight_client_cpu_ms_per_write}; errors ${errors}`);
    return run;
  } finally {
    client.close();
    await killAll(procs);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

interface EchoRun {
  tls: boolean;
  seq_p50_ms: number;
  seq_p99_ms: number;
  inflight_requests_per_s: number;
  /** Both ends' CPU (this process) per request, at N in flight. */
  inflight_cpu_us_per_request: number;
}

async function echoRun(tls: boolean, a: Args, pki: TestPki): Promise<EchoRun> {
  const secret = crypto.randomBytes(32);
  const quiet = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };
  const t = new TcpTransport({ id: 'e1', secret, tls: tls ? loadTls(pki.leaf('e1')) : undefined, log: quiet });
  t.onClientRequest(async (req) => req);
  const { port } = await t.listen();
  const c = new TcpClient({ host: '127.0.0.1', port, clientKey: clientKey(secret), name: 'echo', tls: tls ? loadTls(pki.leaf('client:echo')) : undefined, log: quiet });
  try {
    for (let i = 0; i < 200; i++) await c.request({ i });
    const lat: number[] = [];
    for (let i = 0; i < a.writes; i++) {
      const s0 = performance.now();
      await c.request({ i, pad: 'x'.repeat(100) });
      lat.push(performance.now() - s0);
    }
    lat.sort((x, y) => x - y);
    let done = 0;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const end = t0 + a.seconds * 1000;
    await Promise.all(
      Array.from({ length: a.inflight }, async () => {
        while (performance.now() < end) {
          await c.request({ pad: 'x'.repeat(100) });
          done++;
        }
      }),
    );
    const secs = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const run: EchoRun = {
      tls,
      seq_p50_ms: Math.round(pct(lat, 50) * 1000) / 1000,
      seq_p99_ms: Math.round(pct(lat, 99) * 1000) / 1000,
      inflight_requests_per_s: Math.round(done / secs),
      inflight_cpu_us_per_request: r2((cpu.user + cpu.system) / done),
    };
    process.stderr.write(`echo ${tls ? 'tls  ' : 'plain'}: 1 in flight p50 ${run.seq_p50_ms} ms p99 ${run.seq_p99_ms} ms; ${a.inflight} in flight ${run.inflight_requests_per_s} requests/s, ${run.inflight_cpu_us_per_request} us CPU per request\n`);
    return run;
  } finally {
    c.close();
    t.close();
  }
}

async function echoMain(a: Args): Promise<void> {
  const pki = new TestPki();
  const runs: EchoRun[] = [];
  try {
    for (let r = 0; r < a.rounds; r++) for (const tls of r % 2 === 0 ? [false, true] : [true, false]) runs.push(await echoRun(tls, a, pki));
  } finally {
    pki.remove();
  }
  const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor((xs.length - 1) / 2)]!;
  const side = (tls: boolean) => {
    const rs = runs.filter((r) => r.tls === tls);
    return {
      seq_p50_ms: median(rs.map((r) => r.seq_p50_ms)),
      inflight_requests_per_s: median(rs.map((r) => r.inflight_requests_per_s)),
      inflight_cpu_us_per_request: median(rs.map((r) => r.inflight_cpu_us_per_request)),
    };
  };
  process.stdout.write(`${JSON.stringify({ bench: 'tls-cost-echo', requests_sequential: a.writes, inflight: a.inflight, seconds: a.seconds, plain: side(false), tls: side(true), load_average: os.loadavg().map(r2), runs })}\n`);
}

async function main(): Promise<void> {
  const a = parse(process.argv.slice(2));
  if (a.echo) return echoMain({ ...a, writes: process.argv.includes('--writes') ? a.writes : 5000, seconds: process.argv.includes('--seconds') ? a.seconds : 3, rounds: process.argv.includes('--rounds') ? a.rounds : 3 });
  requireBuild();
  const log = (m: string) => process.stderr.write(`${m}\n`);
  const pki = new TestPki();
  const runs: Run[] = [];
  try {
    for (let r = 0; r < a.rounds; r++) for (const tls of r % 2 === 0 ? [false, true] : [true, false]) runs.push(await oneRun(tls, a, pki, log));
  } finally {
    pki.remove();
  }
  const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor((xs.length - 1) / 2)]!;
  const side = (tls: boolean) => {
    const rs = runs.filter((r) => r.tls === tls);
    return {
      seq_p50_ms: median(rs.map((r) => r.seq_p50_ms)),
      seq_p99_ms: median(rs.map((r) => r.seq_p99_ms)),
      seq_writes_per_s: median(rs.map((r) => r.seq_writes_per_s)),
      inflight_writes_per_s: median(rs.map((r) => r.inflight_writes_per_s)),
      seq_member_cpu_ms_per_write: median(rs.map((r) => r.seq_member_cpu_ms_per_write)),
      seq_client_cpu_ms_per_write: median(rs.map((r) => r.seq_client_cpu_ms_per_write)),
      inflight_member_cpu_ms_per_write: median(rs.map((r) => r.inflight_member_cpu_ms_per_write)),
      inflight_client_cpu_ms_per_write: median(rs.map((r) => r.inflight_client_cpu_ms_per_write)),
      errors: rs.reduce((s, r) => s + r.errors, 0),
    };
  };
  const plain = side(false);
  const tlsSide = side(true);
  process.stdout.write(
    `${JSON.stringify({
      bench: 'tls-cost',
      members: a.members,
      writes_sequential: a.writes,
      inflight: a.inflight,
      seconds: a.seconds,
      rounds: a.rounds,
      plain,
      tls: tlsSide,
      ratio_tls_over_plain: {
        seq_p50: r2(tlsSide.seq_p50_ms / plain.seq_p50_ms),
        seq_writes_per_s: r2(tlsSide.seq_writes_per_s / plain.seq_writes_per_s),
        inflight_writes_per_s: r2(tlsSide.inflight_writes_per_s / plain.inflight_writes_per_s),
        seq_member_cpu_per_write: r2(tlsSide.seq_member_cpu_ms_per_write / plain.seq_member_cpu_ms_per_write),
        inflight_member_cpu_per_write: r2(tlsSide.inflight_member_cpu_ms_per_write / plain.inflight_member_cpu_ms_per_write),
      },
      load_average: os.loadavg().map(r2),
      runs,
    })}\n`,
  );
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`tls-cost: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
