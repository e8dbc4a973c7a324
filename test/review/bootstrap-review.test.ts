// bootstrap_expect under hostile sequences: the group forms once bootstrap_expect agents
// exist, never twice, and never becomes unable to form.

import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { spawnAgent, terminateAgent } from '../../src/service/agents.js';
import { Coordinator } from '../../src/service/coordinator.js';
import { memoryStore } from '../../src/service/memory.js';
import { SwarmRegistry } from '../../src/swarm/registry.js';
import { testResources, waitUntil } from '../service/service-util.js';

const res = testResources();
type Rec = Record<string, unknown>;

function open(dir: string): Coordinator {
  return res.keep(new Coordinator({ dataDir: dir, durability: 'off' }));
}

describe('bootstrap_expect, hostile sequences', () => {
  it('swarm_init cannot leave waiting agents that can never form the group', async () => {
    const c = open(res.dir('boot-stuck'));
    const swarm = c.init({ name: 's', max_agents: 3, bootstrap_expect: 3 }).swarm;
    await spawnAgent(swarm, { name: 'a' });
    await spawnAgent(swarm, { name: 'b' });
    // max_agents 2 (bootstrap_expect follows it to 2): two agents wait, none may be added, so
    // nothing would ever form the group. Refused, naming the field.
    expect(() => c.init({ name: 's', max_agents: 2 })).toThrow(/max_agents=2 is not valid/);
    // bootstrap_expect at or below the agents already waiting: no spawn reaches it exactly.
    expect(() => c.init({ name: 's', max_agents: 3, bootstrap_expect: 2 })).toThrow(/bootstrap_expect=2 is not valid.*2 agents already wait/);
    expect(swarm.data.max_agents).toBe(3);
    expect(swarm.bootstrapExpect).toBe(3);
    const formed = (await spawnAgent(swarm, { name: 'c' })) as Rec & { bootstrap: Rec };
    expect(formed.bootstrap.voters).toEqual(['a', 'b', 'c']);
  });

  it('a registry that lost bootstrapped_at (hand-edited) never forms a second group beside the first', async () => {
    const dir = res.dir('boot-edited');
    let c = open(dir);
    let swarm = c.init({ name: 'e', max_agents: 7, bootstrap_expect: 3 }).swarm;
    for (const n of ['a1', 'a2', 'a3']) await spawnAgent(swarm, { name: n });
    await swarm.waitForLeader(10_000);
    c.close();
    const reg = SwarmRegistry.load(`${dir}/swarms/e`);
    delete reg.data.bootstrapped_at;
    reg.save();

    c = open(dir);
    swarm = c.swarm('e');
    await swarm.waitForLeader(10_000);
    // The group that ran is still the group: writes go through, a new agent joins it.
    await memoryStore(swarm, { key: 'k', value: 1 });
    const joined = (await spawnAgent(swarm, { name: 'b1' })) as Rec;
    expect(joined).toMatchObject({ status: 'active', joined_as: 'learner, then promoted to voter' });
    await waitUntil(() => swarm.cluster.leader()?.status().conf.voters.length === 4, 10_000, 'b1 promoted');
    // Never two leaders at once (a second group would elect its own).
    const leaders = swarm.cluster.running().filter((h) => h.core.role === 'leader');
    expect(leaders).toHaveLength(1);
  });

  it('a truncated swarm.json is refused naming the file', async () => {
    const dir = res.dir('boot-trunc');
    const c = open(dir);
    const swarm = c.init({ name: 't', max_agents: 3, bootstrap_expect: 1 }).swarm;
    await spawnAgent(swarm, { name: 'a' });
    c.close();
    const file = `${dir}/swarms/t/swarm.json`;
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').slice(0, 40));
    expect(() => open(dir)).toThrow(file);
  });

  it('concurrent spawns at the threshold form one group; a name reused while waiting counts once (held)', async () => {
    const c = open(res.dir('boot-race'));
    const swarm = c.init({ name: 'r', max_agents: 5, bootstrap_expect: 3 }).swarm;
    await spawnAgent(swarm, { name: 'a' });
    await spawnAgent(swarm, { name: 'b' });
    // b leaves and comes back under the same name while the group waits.
    await terminateAgent(swarm, 'b', 'graceful');
    expect((await spawnAgent(swarm, { name: 'b' })) as Rec).toMatchObject({ status: 'waiting_for_bootstrap', agents_spawned: 2 });
    const out = (await Promise.all(['c', 'd', 'e'].map((name) => spawnAgent(swarm, { name })))) as Array<Rec & { bootstrap?: Rec }>;
    const formations = out.filter((r) => r.bootstrap !== undefined);
    expect(formations).toHaveLength(1);
    expect(formations[0]!.bootstrap!.voters).toEqual(['a', 'b', 'c']);
    expect(out.filter((r) => r.joined_as === 'learner, then promoted to voter').map((r) => r.agent_id).sort()).toEqual(['d', 'e']);
    await waitUntil(() => swarm.cluster.leader()?.status().conf.voters.length === 5, 10_000, 'five voters');
    expect(swarm.cluster.running().filter((h) => h.core.role === 'leader')).toHaveLength(1);
    expect(swarm.data.bootstrap_voters).toEqual(['a', 'b', 'c']);
  });
});
