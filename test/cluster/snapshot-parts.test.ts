// Issue 12 in cluster mode: three `concord node` processes, one stopped while ~3 MB of memory
// records are written and the others compact past it; restarted, it must install the state
// as a multi-part snapshot (parts forced to 64 KiB by CONCORD_SNAPSHOT_PART_CHARS, so the
// state spans dozens of parts) streamed over TCP, catch up, and hold every value.

import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ClusterClient } from '../../src/cluster/cluster-client.js';
import { CoordinationMachine } from '../../src/machine/coordination-machine.js';
import { SqliteStorage } from '../../src/storage/sqlite-storage.js';
import { parsePrometheusText, valueOf } from '../helpers/prom-text.js';
import { freePorts, killAll, MemberProc, requireBuild } from './procs.js';

const IDS = ['p1', 'p2', 'p3'];
const PART_CHARS = 64 << 10;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-snap-parts-'));
const procs: MemberProc[] = [];
const clients: ClusterClient[] = [];
afterAll(async () => {
  for (const c of clients) c.close();
  await killAll(procs);
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function until(pred: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await pred().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('multi-part snapshot install in cluster mode', () => {
  it('a member stopped while the others compact installs the state in parts and catches up', async () => {
    requireBuild();
    const secretFile = path.join(tmp, 'secret');
    const hex = crypto.randomBytes(32).toString('hex');
    fs.writeFileSync(secretFile, `${hex}\n`, { mode: 0o600 });
    const ports = await freePorts(IDS.length * 2);
    const peers = IDS.map((id, i) => `${id}=127.0.0.1:${ports[i]}`).join(',');
    const env = { ...process.env, CONCORD_LOG_LEVEL: 'info', CONCORD_SNAPSHOT_PART_CHARS: String(PART_CHARS) };
    const metricsPort = new Map<string, number>();
    const byId = new Map<string, MemberProc>();
    for (const [i, id] of IDS.entries()) {
      const dataDir = path.join(tmp, id);
      fs.mkdirSync(dataDir, { recursive: true });
      metricsPort.set(id, ports[IDS.length + i]!);
      const args = ['node', '--swarm', 'big', '--id', id, '--listen', `127.0.0.1:${ports[i]}`, '--peers', peers, '--data-dir', dataDir, '--secret-file', secretFile, '--metrics', `127.0.0.1:${ports[IDS.length + i]}`];
      const p = new MemberProc(id, `127.0.0.1:${ports[i]}`, args, path.join(tmp, `${id}.log`), env);
      procs.push(p);
      byId.set(id, p);
    }
    const metric = async (id: string, name: string): Promise<number> => {
      const r = await fetch(`http://127.0.0.1:${metricsPort.get(id)}/metrics`);
      return valueOf(parsePrometheusText(await r.text()), name);
    };
    for (const p of procs) p.start();
    await Promise.all(procs.map((p) => p.waitListening(30_000)));
    const c = new ClusterClient({ members: procs.map((p) => p.addr), secret: Buffer.from(hex), name: 'snap-parts', timeoutMs: 30_000 });
    clients.push(c);
    const call = async (name: string, args: Record<string, unknown>): Promise<Record<string, unknown>> => {
      const r = await c.callTool(name, args);
      if (r.isError) throw new Error(`${name}: ${JSON.stringify(r.content)}`);
      return r.structuredContent as Record<string, unknown>;
    };
    await call('consensus_config', { log_compaction_threshold: 20 });
    let leader = '';
    await until(async () => {
      leader = String((await call('consensus_leader', {})).leader_id ?? '');
      return leader !== '';
    }, 20_000, 'a leader');
    const lagging = IDS.find((id) => id !== leader)!;
    await byId.get(lagging)!.kill9();

    const value = (i: number): string => `${i}:`.padEnd(60_000, 'abcdefghij');
    for (let i = 0; i < 50; i++) await call('memory_store', { key: `big/${i}`, value: value(i) });
    for (let i = 0; i < 40; i++) await call('memory_store', { key: `small/${i}`, value: { i } });
    await until(async () => (await metric(leader, 'concord_snapshots_taken_total')) >= 1, 30_000, 'the leader to compact');

    const p = byId.get(lagging)!;
    p.start();
    await p.waitListening(30_000);
    await until(async () => (await metric(lagging, 'concord_snapshots_installed_total')) >= 1, 180_000, `${lagging} to install a snapshot`);
    const target = await metric(leader, 'concord_proposals_committed_total');
    await until(async () => (await metric(lagging, 'concord_proposals_applied_total')) >= target, 60_000, `${lagging} to catch up`);

    // The install, as the member logged it: many parts, none over the part size.
    const installs = fs.readFileSync(p.logPath, 'utf8').split('\n').filter((l) => l.includes('"snapshot installed"')).map((l) => JSON.parse(l.slice(l.indexOf('{'))) as { parts: number; chars: number });
    expect(installs.length).toBeGreaterThanOrEqual(1);
    expect(installs[0]!.parts).toBeGreaterThan(20);
    expect(installs[0]!.chars).toBeGreaterThan(3_000_000);
    for (const m of procs) expect(m.crashes(), m.logTail()).toEqual([]);

    // Its own disk holds every value (read offline once the members are stopped).
    await killAll(procs);
    const db = SqliteStorage.open(path.join(tmp, lagging, 'swarms', 'big', `${lagging}.db`));
    const st = db.load({ voters: [], learners: [] });
    const m = new CoordinationMachine();
    if (st.checkpoint) m.restoreCheckpoint(st.checkpoint);
    else m.restore(st.snapshotData ?? '');
    for (const e of st.entries) if (e.index <= st.hardState.commit && e.index > m.appliedIndex) m.apply(e);
    db.close();
    for (let i = 0; i < 50; i++) expect(m.memory.get('default', `big/${i}`, m.clock)?.value).toBe(value(i));
    for (let i = 0; i < 40; i++) expect(m.memory.get('default', `small/${i}`, m.clock)?.value).toEqual({ i });
  }, 420_000);
});
