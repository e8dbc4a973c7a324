// A member removed while cut off from the leader never gets the entry that removes it: the
// leader tells it over the request channel, and it stops. That notice is taken from the leader
// it follows or, cut off as here, when it follows no one (test/cluster/hostile.test.ts: from
// anyone else it is refused).

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterClient } from '../../src/cluster/cluster-client.js';
import { clientKey } from '../../src/transport/auth.js';
import { killAll, MAIN, type MemberProc, startCluster, waitFor } from './procs.js';

const IDS = ['r1', 'r2', 'r3'];
let dir: string;
let secretFile: string;
let procs: MemberProc[];
let client: ClusterClient;

beforeAll(async () => {
  const c = await startCluster('rn', IDS);
  ({ dir, secretFile, procs } = c);
  client = new ClusterClient({ members: procs.map((p) => p.addr), clientKey: clientKey(c.secret), name: 'removal-test', timeoutMs: 10_000 });
}, 60_000);

afterAll(async () => {
  client?.close();
  if (procs) await killAll(procs);
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('removal notice', () => {
  it('a member cut off from the leader and removed is told by that leader and stops', async () => {
    const leader = await waitFor('a leader', 20_000, async () => {
      const all = await Promise.all(procs.map((p) => client.status(p.addr).catch(() => null)));
      const l = all.find((s) => s?.role === 'leader');
      return l && all.every((s) => s?.leader === l.id) ? l.id : null;
    });
    const victim = procs.find((p) => p.id !== leader)!;
    const others = procs.filter((p) => p !== victim);
    // Its Raft traffic dropped both ways: it loses its leader and hears nothing more.
    await client.admin(victim.addr, { op: 'block', peers: others.map((p) => p.id) });
    for (const p of others) await client.admin(p.addr, { op: 'block', peers: [victim.id] });
    await waitFor('the victim to lose its leader', 15_000, async () => (await client.status(victim.addr)).leader === null);
    const rm = spawnSync(process.execPath, [MAIN, 'member', 'remove', '--id', victim.id, '--cluster', others.map((p) => p.addr).join(','), '--secret-file', secretFile], { encoding: 'utf8', timeout: 60_000 });
    expect(rm.status, rm.stderr).toBe(0);
    await waitFor(`${victim.id} to exit`, 15_000, () => victim.state === 'down');
    expect(victim.exits.at(-1)!.code).toBe(3);
    expect(fs.readFileSync(victim.logPath, 'utf8')).toContain(`member ${victim.id} was removed from the cluster configuration (${leader} reports it)`);
  }, 90_000);
});
