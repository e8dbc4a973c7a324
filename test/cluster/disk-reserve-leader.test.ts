// Cluster mode: a member whose disk is below the free-space reserve is made leader. It refuses
// writes (disk_full) and hands its leadership to a follower, so a client's write goes through
// (forwarded to the new leader) instead of every write of the cluster being refused while that
// one member leads (test/service/disk-full.test.ts covers the embedded swarm).

import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterClient } from '../../src/cluster/cluster-client.js';
import { clientKey } from '../../src/transport/auth.js';
import { killAll, type MemberProc, startCluster, waitFor } from './procs.js';

const IDS = ['d1', 'd2', 'd3'];
let dir: string;
let procs: MemberProc[];
let client: ClusterClient;

beforeAll(async () => {
  const c = await startCluster('dr', IDS);
  ({ dir, procs } = c);
  client = new ClusterClient({ members: procs.map((p) => p.addr), clientKey: clientKey(c.secret), name: 'reserve-test', timeoutMs: 15_000 });
}, 60_000);

afterAll(async () => {
  client?.close();
  if (procs) await killAll(procs);
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

async function leaderId(): Promise<string> {
  return waitFor('one leader all follow', 20_000, async () => {
    const all = await Promise.all(procs.map((p) => client.status(p.addr).catch(() => null)));
    const l = all.find((s) => s?.role === 'leader');
    return l && all.every((s) => s?.leader === l.id) ? l.id : null;
  });
}

describe('a cluster leader below the free-space reserve', () => {
  it('hands its leadership on, and writes go through', async () => {
    const first = await client.callTool('memory_store', { key: 'before', value: 1 });
    expect(first.isError, JSON.stringify(first.content)).toBeFalsy();
    const leader = await leaderId();
    const short = procs.find((p) => p.id !== leader)!;
    // Restarted with a reserve larger than any disk: it runs, but refuses to append.
    await short.kill9();
    short.start({ CONCORD_DISK_RESERVE_MB: '100000000' });
    await short.waitListening(20_000);
    await waitFor('it catches up', 20_000, async () => (await client.status(short.addr)).applied! >= (await client.status(procs.find((p) => p.id === leader)!.addr)).commit!);
    // Retried until the leader counts it as a running voter again (it just restarted).
    // Once only: a second transfer to it within DISK_HANDOFF_EVERY_MS would find it may not hand
    // on again yet.
    await waitFor('the step-down to it', 20_000, async () => {
      const r = await client.callTool('consensus_step_down', { successor: short.id });
      return !(r.isError && /successor=.*is not valid/.test(JSON.stringify(r.content)));
    });
    // Before: every write refused with disk_full while it led.
    const put = await client.callTool('memory_store', { key: 'during', value: 2 });
    expect(put.isError, JSON.stringify(put.content)).toBeFalsy();
    // It won and handed on (the step-down's answer may already name its successor: its first
    // proposal, the election record, was refused and it handed on at once).
    await waitFor('it to lead and hand on', 10_000, () => /short of disk space: handing leadership to a follower/.test(fs.readFileSync(short.logPath, 'utf8')));
    const now = await leaderId();
    expect(now).not.toBe(short.id);
    const got = await client.callTool('memory_retrieve', { key: 'during' });
    expect(got.structuredContent).toMatchObject({ found: true, value: 2, version: 1 });
    for (const p of procs) expect(p.unexpectedExits()).toEqual([]);
  }, 90_000);
});
