// `concord node --metrics HOST:PORT`: each member process serves /metrics, /health and
// /readyz for its own member. Three real processes: a scrape shows that member's series only;
// after the leader is killed the survivors have seen a leader change and stay healthy; with
// two of three gone the last one reports 503 with its reason.

import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePrometheusText, samplesOf, valueOf, type Family } from '../helpers/prom-text.js';
import { freePorts, killAll, MemberProc, requireBuild, writeSecretFile } from './procs.js';

const IDS = ['m1', 'm2', 'm3'];
let tmp: string;
let procs: MemberProc[] = [];
const metricsPort = new Map<string, number>();

beforeAll(async () => {
  requireBuild();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-node-metrics-'));
  const { secretFile } = writeSecretFile(tmp);
  const ports = await freePorts(IDS.length * 2);
  const peers = IDS.map((id, i) => `${id}=127.0.0.1:${ports[i]}`).join(',');
  const env = { ...process.env, CONCORD_LOG_LEVEL: 'warn' };
  procs = IDS.map((id, i) => {
    const dataDir = path.join(tmp, id);
    fs.mkdirSync(dataDir, { recursive: true });
    metricsPort.set(id, ports[IDS.length + i]!);
    const args = ['node', '--swarm', 'obs', '--id', id, '--listen', `127.0.0.1:${ports[i]}`, '--peers', peers, '--data-dir', dataDir, '--secret-file', secretFile, '--metrics', `127.0.0.1:${ports[IDS.length + i]}`];
    return new MemberProc(id, `127.0.0.1:${ports[i]}`, args, path.join(tmp, `${id}.log`), env);
  });
  for (const p of procs) p.start();
  await Promise.all(procs.map((p) => p.waitListening(20_000)));
}, 60_000);

afterAll(async () => {
  await killAll(procs);
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function get(id: string, p: string): Promise<{ status: number; body: string }> {
  const r = await fetch(`http://127.0.0.1:${metricsPort.get(id)}${p}`);
  return { status: r.status, body: await r.text() };
}

async function scrape(id: string): Promise<Map<string, Family>> {
  const r = await get(id, '/metrics');
  expect(r.status).toBe(200);
  return parsePrometheusText(r.body);
}

async function until(pred: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('concord node --metrics', () => {
  it('serves each member its own metrics and health, through a failover and a lost quorum', async () => {
    await until(async () => (await Promise.all(IDS.map((id) => get(id, '/health?swarm=obs')))).every((r) => r.status === 200), 20_000, 'every member healthy');
    const first = new Map<string, Map<string, Family>>();
    for (const id of IDS) {
      const f = await scrape(id);
      first.set(id, f);
      // Only this process's member: its peers report from their own processes.
      expect(new Set(samplesOf(f, 'concord_has_leader').map((s) => s.labels.member))).toEqual(new Set([id]));
      expect(valueOf(f, 'concord_has_leader', { swarm: 'obs', member: id })).toBe(1);
    }
    const leaders = IDS.filter((id) => valueOf(first.get(id)!, 'concord_is_leader', { member: id }) === 1);
    expect(leaders).toHaveLength(1);
    const leader = leaders[0]!;
    const health = JSON.parse((await get(leader, '/health?swarm=obs')).body) as { leader: string; observed_by: string };
    expect(health).toMatchObject({ leader, observed_by: leader });

    await procs.find((p) => p.id === leader)!.kill9();
    const survivors = IDS.filter((id) => id !== leader);
    await until(
      async () => {
        for (const id of survivors) {
          const f = await scrape(id);
          if (valueOf(f, 'concord_leader_changes_seen_total', { member: id }) <= valueOf(first.get(id)!, 'concord_leader_changes_seen_total', { member: id })) return false;
          if (valueOf(f, 'concord_has_leader', { member: id }) !== 1) return false;
        }
        return true;
      },
      20_000,
      'the survivors to see the new leader',
    );
    await until(async () => (await Promise.all(survivors.map((id) => get(id, '/health')))).every((r) => r.status === 200), 20_000, 'survivors healthy');

    const [gone, last] = survivors as [string, string];
    await procs.find((p) => p.id === gone)!.kill9();
    await until(async () => (await get(last, '/health?swarm=obs')).status === 503, 20_000, 'the last member to report 503');
    const down = JSON.parse((await get(last, '/health?swarm=obs')).body) as { status: string; healthy: boolean; reason: string; observed_by: string };
    expect(down).toMatchObject({ status: 'unavailable', healthy: false, observed_by: last });
    expect(down.reason.length).toBeGreaterThan(0);
    expect((await get(last, '/readyz')).status).toBe(503);
    expect((await get(last, '/mcp')).status).toBe(404);
  });
});
