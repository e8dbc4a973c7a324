// A member's identity is never reused for different state (issue: amnesiac voter). A graceful
// terminate removes the member and its file; a later spawn of the same name must be a new
// member with a new file that it really writes to, so after a process restart it still holds
// what it acknowledged. And a member whose file was lost or replaced refuses to start instead
// of voting with an empty log.

import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { listAgents, restartAgent, spawnAgent, terminateAgent } from '../../src/service/agents.js';
import { memoryRetrieve, memoryStore } from '../../src/service/memory.js';
import type { Swarm } from '../../src/swarm/swarm.js';
import { testResources, waitUntil } from './service-util.js';

const res = testResources();
const coordinatorOn = res.coordinatorOn;

/** Every leader seen per term, from role changes: election safety says at most one. */
function watchLeaders(swarm: Swarm, leadersByTerm: Map<number, Set<string>>): void {
  swarm.onRoleChangeEvent((c) => {
    if (c.role !== 'leader') return;
    let s = leadersByTerm.get(c.term);
    if (!s) leadersByTerm.set(c.term, (s = new Set()));
    s.add(c.id);
  });
}

describe('member identity (a removed agent re-spawned under its name is a new member)', () => {
  it('keeps a write acknowledged by a majority that includes the re-spawned member, across a process restart', async () => {
    const dir = res.dir('identity');
    const first = coordinatorOn(dir);
    const swarm = first.init({ name: 'id', max_agents: 5 }).swarm;
    for (let i = 0; i < 5; i++) await spawnAgent(swarm, {});
    await swarm.waitForLeader(5_000);
    await memoryStore(swarm, { key: 'before', value: 1 });

    // X leaves gracefully; a plain spawn picks its freed name and re-adds it.
    const leader0 = swarm.cluster.leader()!.id;
    const x = swarm.activeMembers().find((a) => a !== leader0)!;
    await terminateAgent(swarm, x, 'graceful');
    const again = (await spawnAgent(swarm, {})) as { agent_id: string };
    expect(again.agent_id).toBe(x);

    // Commit a write on exactly {L, X, Y}: the other two are down, so X's ack is needed.
    const l = swarm.cluster.leader()!.id;
    const others = swarm.activeMembers().filter((a) => a !== l && a !== x);
    const [y, z, w] = others as [string, string, string];
    await terminateAgent(swarm, z, 'crash');
    await terminateAgent(swarm, w, 'crash');
    await memoryStore(swarm, { key: 'acked', value: 'must survive' });

    // The process stops and starts again on the same data directory.
    first.close();
    const second = coordinatorOn(dir);
    const s2 = second.swarm('id');
    const leadersByTerm = new Map<number, Set<string>>();
    watchLeaders(s2, leadersByTerm);
    const xView = listAgents(s2).find((a) => a.agent_id === x)!;
    expect(xView.status).toBe('active');

    // L and Y fail; the two members that never saw the write come back. A majority now
    // needs X's vote, and X (which acknowledged the write) must not vote for a stale log.
    await terminateAgent(s2, l, 'crash');
    await terminateAgent(s2, y, 'crash');
    await restartAgent(s2, z);
    await restartAgent(s2, w);
    await s2.waitForLeader(10_000);
    const got = (await memoryRetrieve(s2, { key: 'acked' })) as { value: unknown };
    expect(got.value).toBe('must survive');
    for (const [term, ids] of leadersByTerm) expect([term, [...ids]]).toEqual([term, [...ids].slice(0, 1)]);
  });

  it('refuses to start a member whose database was lost; agent_restart re-adds it as a new member', async () => {
    const dir = res.dir('identity-lost');
    const first = coordinatorOn(dir);
    const swarm = first.init({ name: 'lost', max_agents: 3 }).swarm;
    for (let i = 0; i < 3; i++) await spawnAgent(swarm, {});
    await swarm.waitForLeader(5_000);
    await memoryStore(swarm, { key: 'k', value: 'v' });
    const victim = swarm.activeMembers().find((a) => a !== swarm.cluster.leader()!.id)!;
    const file = swarm.registry.memberFile(victim);
    first.close();
    for (const f of [file, `${file}-wal`, `${file}-shm`]) fs.rmSync(f, { force: true });

    const second = coordinatorOn(dir);
    const s2 = second.swarm('lost');
    const v = listAgents(s2).find((a) => a.agent_id === victim)!;
    expect(v.status).toBe('crashed');
    // It did not come back as an empty voter (and the file was not recreated for it).
    expect(s2.cluster.hosts.get(victim)?.isRunning ?? false).toBe(false);
    // The other two still form a majority and serve the write.
    await s2.waitForLeader(10_000);
    expect(((await memoryRetrieve(s2, { key: 'k' })) as { value: unknown }).value).toBe('v');
    // agent_restart on a missing file re-adds it as a new member, which catches up.
    const incBefore = s2.data.members[victim]!.incarnation;
    const r = (await restartAgent(s2, victim)) as { replaced?: string };
    expect(r.replaced).toMatch(/new member/);
    expect(s2.data.members[victim]!.incarnation).not.toBe(incBefore);
    await waitUntil(() => s2.cluster.hosts.get(victim)?.isRunning === true, 10_000, 'the new member to run');
    await waitUntil(() => (s2.machines.get(victim)?.memory.get('default', 'k', Number.MAX_SAFE_INTEGER)?.value ?? null) === 'v', 10_000, 'the new member to catch up');
    expect(s2.cluster.leader()!.status().conf.voters).toContain(victim);
  });

  it('marks a member whose database is damaged crashed, naming the file; the others keep serving', async () => {
    const dir = res.dir('identity-corrupt');
    const first = coordinatorOn(dir);
    const swarm = first.init({ name: 'bad', max_agents: 3 }).swarm;
    for (let i = 0; i < 3; i++) await spawnAgent(swarm, {});
    await swarm.waitForLeader(5_000);
    for (let i = 0; i < 200; i++) await memoryStore(swarm, { key: `k${i % 10}`, value: 'x'.repeat(500) });
    const victim = swarm.activeMembers().find((a) => a !== swarm.cluster.leader()!.id)!;
    const file = swarm.registry.memberFile(victim);
    first.close();
    // Garbage over every page but the first (the header stays valid, the b-trees do not).
    const size = fs.statSync(file).size;
    expect(size).toBeGreaterThan(8192);
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, Buffer.alloc(size - 4096, 0x5a), 0, size - 4096, 4096);
    fs.closeSync(fd);

    const second = coordinatorOn(dir);
    const s2 = second.swarm('bad');
    expect(listAgents(s2).find((a) => a.agent_id === victim)!.status).toBe('crashed');
    await s2.waitForLeader(10_000);
    expect(((await memoryRetrieve(s2, { key: 'k9' })) as { value: unknown }).value).toBe('x'.repeat(500));
    const err = await restartAgent(s2, victim).then(() => null, (e: Error) => e.message);
    expect(err).toContain(`${file} is damaged`);
    // The operator moves the file away; agent_restart re-adds the agent as a new member.
    for (const f of [file, `${file}-wal`, `${file}-shm`]) fs.rmSync(f, { force: true });
    await restartAgent(s2, victim);
    await waitUntil(() => (s2.machines.get(victim)?.memory.get('default', 'k9', Number.MAX_SAFE_INTEGER)?.value ?? null) === 'x'.repeat(500), 10_000, 'the new member to catch up');
  });
});
