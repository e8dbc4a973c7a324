// A/B of one write in flight: Concord build A, Concord build B and etcd (gRPC), 5 members
// each, all started once and preloaded, then measured in short closed loops that rotate
// through the three systems round after round, so each round compares them in the same
// seconds of a machine whose load drifts (other work shares the cores).
//   npx tsx test/bench/ab-write.ts --a dist/src/cli/main.js --b /path/to/old/main.js [--c third/main.js] [--rounds 8] [--seconds 3] [--inflight 1]
//   --a-env / --b-env / --c-env K=V[,K=V]: environment for that build's members (A/B of a setting
//   on one build: --b dist/src/cli/main.js --b-env CONCORD_COMMIT_NOTICE_DELAY_MS=2).
// Prints each round and the medians: writes/s, p50, leader fsync mean, ratios to etcd.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConcordCluster } from './concord-cluster.js';
import { EtcdCluster, ensureEtcd } from './etcd-cluster.js';
import { closedLoop, KvGen, type KvTarget } from './loadgen.js';
import { median, round } from './stats.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? (process.argv[i + 1] as string) : dflt;
}

interface Sys {
  name: string;
  targets(k: number): Promise<(w: number) => KvTarget>;
  fsyncs(): Promise<{ count: number; sumMs: number } | null>;
  close(): Promise<void>;
}

async function main(): Promise<void> {
  const a = path.resolve(arg('a', 'dist/src/cli/main.js'));
  const b = path.resolve(arg('b', ''));
  const c = arg('c', '');
  const rounds = Number(arg('rounds', '8'));
  const seconds = Number(arg('seconds', '3'));
  const inflight = Number(arg('inflight', '1'));
  const preload = Number(arg('preload', '5000'));
  const log = (m: string): void => void process.stderr.write(`[ab] ${m}\n`);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-ab-'));
  const systems: Sys[] = [];
  try {
    ensureEtcd(log);
    const envOf = (name: string): Record<string, string> => {
      const spec = arg(`${name.toLowerCase()}-env`, '');
      const env: Record<string, string> = {};
      for (const kv of spec.split(',').filter((x) => x !== '')) {
        const eq = kv.indexOf('=');
        if (eq <= 0) throw new Error(`--${name.toLowerCase()}-env: expected K=V[,K=V], got ${JSON.stringify(spec)}`);
        env[kv.slice(0, eq)] = kv.slice(eq + 1);
      }
      return env;
    };
    const concord = async (name: string, main: string): Promise<Sys> => {
      const dir = path.join(root, name);
      fs.mkdirSync(dir);
      const c = await ConcordCluster.start(dir, log, 5, envOf(name), main);
      return {
        name,
        targets: async (k) => c.loadTargets(k),
        fsyncs: async () => c.fsyncs(await c.leader()).catch(() => null),
        close: () => c.close(),
      };
    };
    systems.push(await concord('A', a), await concord('B', b));
    if (c !== '') systems.push(await concord('C', path.resolve(c)));
    const edir = path.join(root, 'etcd');
    fs.mkdirSync(edir);
    const e = await EtcdCluster.start(edir, { heartbeatMs: 25, electionMs: 150 }, log, 5);
    systems.push({
      name: 'etcd',
      targets: async () => {
        const t = e.grpcTarget(await e.leader());
        return () => t;
      },
      fsyncs: async () => e.walFsyncs(await e.leader()).catch(() => null),
      close: () => e.close(),
    });
    const gens = new Map(systems.map((s, i) => [s.name, new KvGen(s.name === 'etcd' ? 'etcd' : `cnc${s.name.toLowerCase()}`, 1 + i)]));
    for (const s of systems) {
      const t = await s.targets(64);
      const g = gens.get(s.name) as KvGen;
      let left = preload;
      await Promise.all(Array.from({ length: 64 }, async (_, w) => {
        while (left-- > 0) {
          const { key, value } = g.next();
          await t(w).put(key, value).catch(() => undefined);
        }
      }));
      log(`${s.name}: preloaded`);
    }
    const rows: Record<string, Array<{ per_s: number; p50: number; fsync: number | null }>> = Object.fromEntries(systems.map((s) => [s.name, []]));
    for (let r = 0; r < rounds; r++) {
      // Rotate which goes first.
      const order = systems.map((_, i) => systems[(i + r) % systems.length] as Sys);
      const line: string[] = [];
      for (const s of order) {
        const t = await s.targets(inflight);
        const f0 = await s.fsyncs();
        const res = await closedLoop(t, gens.get(s.name) as KvGen, inflight, seconds, 0.5);
        const f1 = await s.fsyncs();
        const fsync = f0 && f1 && f1.count > f0.count ? round((f1.sumMs - f0.sumMs) / (f1.count - f0.count), 3) : null;
        (rows[s.name] as Array<{ per_s: number; p50: number; fsync: number | null }>).push({ per_s: res.mean_per_s, p50: res.p50_ms, fsync });
        line.push(`${s.name} ${res.mean_per_s}/s p50 ${res.p50_ms} fsync ${fsync}`);
      }
      log(`round ${r + 1} (load ${os.loadavg()[0]?.toFixed(1)}): ${line.join(' | ')}`);
    }
    const med = (name: string, k: 'per_s' | 'p50' | 'fsync'): number => round(median((rows[name] ?? []).map((x) => x[k]).filter((x): x is number => x !== null)), 3);
    const ratio = (x: string): number[] => (rows[x] ?? []).map((row, i) => round(row.per_s / ((rows.etcd ?? [])[i]?.per_s ?? NaN), 3));
    const out = {
      inflight,
      seconds,
      rounds,
      medians: Object.fromEntries(systems.map((s) => [s.name, { per_s: med(s.name, 'per_s'), p50_ms: med(s.name, 'p50'), leader_fsync_ms: med(s.name, 'fsync') }])),
      ratio_to_etcd_per_round: Object.fromEntries(systems.filter((s) => s.name !== 'etcd').map((s) => [s.name, ratio(s.name)])),
      ratio_to_etcd_median: Object.fromEntries(systems.filter((s) => s.name !== 'etcd').map((s) => [s.name, round(median(ratio(s.name)), 3)])),
      a_over_b_per_round: (rows.A ?? []).map((row, i) => round(row.per_s / ((rows.B ?? [])[i]?.per_s ?? NaN), 3)),
    };
    process.stdout.write(`${JSON.stringify(out)}\n`);
  } finally {
    for (const s of systems) await s.close().catch(() => undefined);
    fs.rmSync(root, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
