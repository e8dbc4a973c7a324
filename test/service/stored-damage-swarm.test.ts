// An embedded swarm whose follower has a damaged memory row in its file (found only when an
// overwrite of that key is applied, after a restart): that agent stops, agent_list names the
// file, the record and the way back; the other agents keep serving; moving the file away and
// agent_restart brings it back as a new member holding the overwrite.

import fs from 'node:fs';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { listAgents, restartAgent, spawnAgent } from '../../src/service/agents.js';
import { configure } from '../../src/service/consensus.js';
import { memoryRetrieve, memoryStore } from '../../src/service/memory.js';
import { CALM, testResources, waitUntil } from './service-util.js';

const res = testResources();

describe('a damaged memory row met by an apply (embedded swarm)', () => {
  it('stops that agent with the file and record named; the others serve; move the file away and agent_restart recovers it', async () => {
    const dir = res.dir('stored-damage');
    const first = res.coordinatorOn(dir);
    const swarm = first.init({ name: 'dmg', max_agents: 3 }).swarm;
    for (let i = 0; i < 3; i++) await spawnAgent(swarm, {});
    await swarm.waitForLeader(5_000);
    await configure(swarm, { ...CALM, log_compaction_threshold: 20 });
    for (let i = 0; i < 80; i++) await memoryStore(swarm, { key: `k${i}`, value: { i } });
    const victim = swarm.activeMembers().find((a) => a !== swarm.cluster.leader()!.id)!;
    await waitUntil(() => (swarm.cluster.hosts.get(victim)?.metrics().checkpointsTaken ?? 0) > 0, 10_000, 'a checkpoint on the follower');
    const file = swarm.registry.memberFile(victim);
    first.close();

    const db = new Database(file);
    const row = db.prepare(`SELECT ord, json FROM machine_memory WHERE json LIKE '{"key":"k3",%'`).get() as { ord: number; json: string };
    db.prepare('UPDATE machine_memory SET json = ? WHERE ord = ?').run(row.json.replace('"value":{', '"value":{{'), row.ord);
    db.close();

    const second = res.coordinatorOn(dir);
    const s2 = second.swarm('dmg');
    await s2.waitForLeader(10_000);
    expect(s2.isRunning(victim)).toBe(true);
    await memoryStore(s2, { key: 'k3', value: 'overwritten' });
    await waitUntil(() => !s2.isRunning(victim), 10_000, 'the damaged agent to stop');
    const view = listAgents(s2).find((a) => a.agent_id === victim)!;
    expect(view.status).toBe('crashed');
    expect(view.fault).toContain(`its stored state in ${file} is damaged`);
    expect(view.fault).toContain(`"default/k3" (checkpoint row ${row.ord}) is damaged`);
    expect(view.fault).toContain(`move ${file} away`);
    // The two others form a majority and serve, the overwrite included.
    expect(((await memoryRetrieve(s2, { key: 'k3' })) as { value: unknown }).value).toBe('overwritten');
    await memoryStore(s2, { key: 'after', value: 1 });

    // Restarted on the same file it meets the damage again and stops (at once or on catching up).
    const again = await restartAgent(s2, victim).then(
      () => null,
      (e: Error) => e.message,
    );
    if (again !== null) expect(again).toContain(`"default/k3" (checkpoint row ${row.ord}) is damaged`);
    await waitUntil(() => !s2.isRunning(victim), 10_000, 'the damaged agent to stop again');

    for (const f of [file, `${file}-wal`, `${file}-shm`]) fs.rmSync(f, { force: true });
    const r = (await restartAgent(s2, victim)) as { replaced?: string };
    expect(r.replaced).toMatch(/new member/);
    await waitUntil(() => (s2.machines.get(victim)?.memory.get('default', 'k3', Number.MAX_SAFE_INTEGER)?.value ?? null) === 'overwritten', 10_000, 'the new member to catch up');
    expect(listAgents(s2).find((a) => a.agent_id === victim)!.fault).toBeUndefined();
  });

  it('a row the restart reads (a TTL record) damaged: the agent does not start, and agent_restart names the file and the way back', async () => {
    const dir = res.dir('stored-damage-open');
    const first = res.coordinatorOn(dir);
    const swarm = first.init({ name: 'dmg', max_agents: 3 }).swarm;
    for (let i = 0; i < 3; i++) await spawnAgent(swarm, {});
    await swarm.waitForLeader(5_000);
    await configure(swarm, { ...CALM, log_compaction_threshold: 20 });
    await memoryStore(swarm, { key: 'lease', value: { i: 1 }, ttl_s: 3600 });
    for (let i = 0; i < 80; i++) await memoryStore(swarm, { key: `k${i}`, value: { i } });
    const victim = swarm.activeMembers().find((a) => a !== swarm.cluster.leader()!.id)!;
    await waitUntil(() => (swarm.cluster.hosts.get(victim)?.metrics().checkpointsTaken ?? 0) > 0, 10_000, 'a checkpoint on the follower');
    const file = swarm.registry.memberFile(victim);
    first.close();

    const db = new Database(file);
    const row = db.prepare(`SELECT ord, json FROM machine_memory WHERE json LIKE '{"key":"lease",%'`).get() as { ord: number; json: string };
    db.prepare('UPDATE machine_memory SET json = ? WHERE ord = ?').run(row.json.replace('"value":{', '"value":{{'), row.ord);
    db.close();

    const second = res.coordinatorOn(dir);
    const s2 = second.swarm('dmg');
    expect(s2.isRunning(victim)).toBe(false);
    expect(listAgents(s2).find((a) => a.agent_id === victim)!.status).toBe('crashed');
    await s2.waitForLeader(10_000);
    expect(((await memoryRetrieve(s2, { key: 'lease' })) as { value: unknown }).value).toEqual({ i: 1 });
    const err = await restartAgent(s2, victim).then(
      () => null,
      (e: Error) => e.message,
    );
    expect(err).toContain(`memory checkpoint row ${row.ord} is damaged`);
    expect(err).toContain(file);
    expect(err).toContain('agent_restart');
    // As told: the file moved away, agent_restart re-adds it as a new member, which catches up.
    for (const f of [file, `${file}-wal`, `${file}-shm`]) fs.rmSync(f, { force: true });
    const r = (await restartAgent(s2, victim)) as { replaced?: string };
    expect(r.replaced).toMatch(/new member/);
    await waitUntil(() => (s2.machines.get(victim)?.memory.get('default', 'lease', 0)?.value ?? null) !== null, 10_000, 'the new member to catch up');
    expect(s2.machines.get(victim)!.memory.get('default', 'lease', 0)!.value).toEqual({ i: 1 });
  });
});
