// Backup and restore in cluster mode: `concord snapshot save` with CONCORD_CLUSTER goes to the
// leader's process and writes the file on the client's side; `snapshot restore --id --peers`
// per member builds a new cluster (new ports, new data directories, new incarnations) that
// elects a leader and serves the saved state.

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ClusterClient } from '../../src/cluster/cluster-client.js';
import { SwarmRegistry } from '../../src/swarm/registry.js';
import { freePorts, killAll, MAIN, memberProcs, requireBuild, type MemberProc } from './procs.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-cluster-snapshot-'));
const procs: MemberProc[] = [];
const clients: ClusterClient[] = [];
afterAll(async () => {
  for (const c of clients) c.close();
  await killAll(procs);
  fs.rmSync(tmp, { recursive: true, force: true });
});

const IDS = ['n1', 'n2', 'n3'];

function run(args: string[], env: Record<string, string> = {}): { code: number | null; out: string; err: string } {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CONCORD_')));
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', env: { ...clean, CONCORD_LOG_LEVEL: 'warn', ...env }, timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

async function cluster(tag: string, secretFile: string): Promise<{ members: MemberProc[]; peers: string; dir: string }> {
  const ports = await freePorts(IDS.length);
  const dir = path.join(tmp, tag);
  fs.mkdirSync(dir);
  const members = memberProcs({ swarm: 'ops', ids: IDS, ports, dir, secretFile });
  procs.push(...members);
  return { members, peers: IDS.map((id, i) => `${id}=127.0.0.1:${ports[i]}`).join(','), dir };
}

async function call(c: ClusterClient, name: string, args: Record<string, unknown>): Promise<Record<string, unknown>> {
  const r = await c.callTool(name, args);
  if (r.isError) throw new Error(`${name}: ${JSON.stringify(r.content)}`);
  return r.structuredContent as Record<string, unknown>;
}

describe('snapshot in cluster mode', () => {
  it('saves through the leader of a running cluster and restores as a new cluster', async () => {
    requireBuild();
    const secretFile = path.join(tmp, 'secret');
    fs.writeFileSync(secretFile, randomBytes(32).toString('hex'), { mode: 0o600 });
    const secret = Buffer.from(fs.readFileSync(secretFile, 'utf8').trim());
    const a = await cluster('a', secretFile);
    for (const m of a.members) m.start();
    await Promise.all(a.members.map((m) => m.waitListening(30_000)));
    const ca = new ClusterClient({ members: a.members.map((m) => m.addr), secret, name: 'snap-test', timeoutMs: 20_000 });
    clients.push(ca);
    for (let i = 0; i < 20; i++) await call(ca, 'memory_store', { key: `cfg/${i}`, value: { i } });
    const orch = await call(ca, 'task_orchestrate', { task: 'batch', count: 40, wait: true });

    const file = path.join(tmp, 'ops.snapshot');
    const env = { CONCORD_CLUSTER: a.members.map((m) => m.addr).join(','), CONCORD_SECRET_FILE: secretFile };
    const saved = run(['snapshot', 'save', file], env);
    expect(saved.code, saved.err).toBe(0);
    const s = JSON.parse(saved.out) as Record<string, unknown>;
    expect(s.via).toMatch(/^cluster /);
    expect(s.swarm).toBe('ops');
    expect((s.counts as Record<string, number>).memory_keys).toBe(20);
    expect((s.counts as Record<string, number>).tasks_completed).toBe(40);
    expect((s.members as { voters: string[] }).voters).toEqual(IDS);
    // swarm_snapshot without inline writes on the serving member, inside its data directory.
    const onServer = await call(ca, 'swarm_snapshot', {});
    const leaderDir = path.join(a.dir, String(onServer.written_by));
    expect(path.dirname(String(onServer.path))).toBe(path.join(leaderDir, 'backups'));
    expect(fs.existsSync(String(onServer.path))).toBe(true);
    await killAll(a.members);

    // A new cluster: other ports, other directories, each member restored from the same file.
    const b = await cluster('b', secretFile);
    for (const m of b.members) {
      const r = run(['snapshot', 'restore', file, '--data-dir', path.join(b.dir, m.id), '--id', m.id, '--peers', b.peers]);
      expect(r.code, r.err).toBe(0);
      expect(JSON.parse(r.out)).toMatchObject({ restored: true, swarm: 'ops', index: s.index });
    }
    const oldInc = IDS.map((id) => SwarmRegistry.load(path.join(a.dir, id, 'swarms', 'ops')).data.members[id]!.incarnation);
    const newInc = IDS.map((id) => SwarmRegistry.load(path.join(b.dir, id, 'swarms', 'ops')).data.members[id]!.incarnation);
    for (const inc of newInc) expect(oldInc).not.toContain(inc);
    for (const m of b.members) m.start();
    await Promise.all(b.members.map((m) => m.waitListening(30_000)));
    const cb = new ClusterClient({ members: b.members.map((m) => m.addr), secret, name: 'snap-test-b', timeoutMs: 20_000 });
    clients.push(cb);
    for (let i = 0; i < 20; i++) expect((await call(cb, 'memory_retrieve', { key: `cfg/${i}` })).value).toEqual({ i });
    expect(await call(cb, 'task_results', { orchestration_id: orch.orchestration_id })).toMatchObject({ total_tasks: 40, completed: 40, duplicates: 0 });
    // And it takes writes.
    await call(cb, 'memory_store', { key: 'after', value: 1 });
    for (const m of b.members) expect(m.crashes(), m.logTail()).toEqual([]);
  }, 180_000);
});
