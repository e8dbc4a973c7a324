// bootstrap_expect (as Consul's): agents spawned before the expected number exist wait; then
// all of them start as the initial voters and hold a real election, so the first leader is
// voted in by a majority, not by itself alone. The group forms once, across restarts too.

import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { listAgents, spawnAgent, terminateAgent } from '../../src/service/agents.js';
import { configure, electionHistory, swarmStatus } from '../../src/service/consensus.js';
import { Coordinator } from '../../src/service/coordinator.js';
import { memoryStore } from '../../src/service/memory.js';
import { SwarmRegistry } from '../../src/swarm/registry.js';
import type { Swarm } from '../../src/swarm/swarm.js';
import { testResources, waitUntil } from './service-util.js';

const res = testResources();

type Rec = Record<string, unknown>;

function open(dir: string): Coordinator {
  return res.keep(new Coordinator({ dataDir: dir, durability: 'off' }));
}

function elections(swarm: Swarm): Rec[] {
  return (electionHistory(swarm, 100).elections as Rec[]).slice().reverse();
}

async function waitForFirstRecord(swarm: Swarm): Promise<Rec> {
  await waitUntil(() => elections(swarm).length > 0, 5_000, 'the first election record');
  return elections(swarm)[0]!;
}

describe('bootstrap_expect', () => {
  it('five agents, bootstrap_expect 5: four wait, then one election with a majority of the five voting', async () => {
    const c = open(res.dir('boot5'));
    const { swarm } = c.init({ name: 'b', max_agents: 5, bootstrap_expect: 5 });
    for (let i = 1; i <= 4; i++) {
      const r = (await spawnAgent(swarm, { name: `a${i}`, capabilities: ['voting'] })) as Rec;
      expect(r).toMatchObject({ agent_id: `a${i}`, status: 'waiting_for_bootstrap', agents_spawned: i, bootstrap_expect: 5 });
      // Nothing runs, nothing is elected while the group has not formed.
      expect(swarm.cluster.running()).toHaveLength(0);
    }
    expect(swarmStatus(swarm)).toMatchObject({ status: 'waiting_for_bootstrap', bootstrap_expect: 5, leader_id: null });
    expect(listAgents(swarm).map((a) => a.status)).toEqual(Array(4).fill('waiting_for_bootstrap'));
    // A write cannot be served yet, and says why instead of timing out.
    await expect(memoryStore(swarm, { key: 'k', value: 1 })).rejects.toThrow(/waiting for bootstrap: 4 of bootstrap_expect=5/);

    const fifth = (await spawnAgent(swarm, { name: 'a5' })) as Rec & { bootstrap: Rec };
    expect(fifth.status).toBe('active');
    expect(fifth.bootstrap.voters).toEqual(['a1', 'a2', 'a3', 'a4', 'a5']);
    expect(swarm.cluster.leader()!.status().conf.voters).toEqual(['a1', 'a2', 'a3', 'a4', 'a5']);

    const first = await waitForFirstRecord(swarm);
    const votedBy = first.voted_by as string[];
    // A real election among five voters: a majority voted, the winner among them.
    expect(votedBy.length).toBeGreaterThanOrEqual(3);
    expect(votedBy).toContain(first.new_leader);
    expect(new Set(votedBy).size).toBe(votedBy.length);
    expect(first).toMatchObject({ old_leader: null, cause: 'startup', failover_ms: null, detection_ms: null });
    expect(first.timing_note).toMatch(/not measurable/);
    expect(electionHistory(swarm).total_elections).toBe(1);
    // The waiting agents' labels were registered once the group had a leader.
    expect(listAgents(swarm).find((a) => a.agent_id === 'a1')).toMatchObject({ status: 'active', capabilities: ['voting'] });
  });

  it('default is the quorum of max_agents; later agents join as learners and are promoted', async () => {
    const c = open(res.dir('boot-default'));
    const { swarm } = c.init({ name: 'd', max_agents: 5 });
    expect(swarm.data.bootstrap_expect).toBe(3);
    expect((await spawnAgent(swarm, {})) as Rec).toMatchObject({ status: 'waiting_for_bootstrap', agents_spawned: 1, bootstrap_expect: 3 });
    expect((await spawnAgent(swarm, {})) as Rec).toMatchObject({ status: 'waiting_for_bootstrap', agents_spawned: 2 });
    // Configuration given while agents wait is kept and committed when the group forms.
    expect((await configure(swarm, { heartbeat_interval: 40 })).applied).toMatch(/stored; committed .* as soon as the group forms/);
    const third = (await spawnAgent(swarm, {})) as Rec & { bootstrap: Rec };
    expect(third.bootstrap.voters).toEqual(['raft-agent-1', 'raft-agent-2', 'raft-agent-3']);
    const first = await waitForFirstRecord(swarm);
    expect((first.voted_by as string[]).length).toBeGreaterThanOrEqual(2); // a majority of 3
    expect(swarm.config().heartbeat_interval).toBe(40);
    expect(swarm.data.pending_config).toBeUndefined();
    const fourth = (await spawnAgent(swarm, {})) as Rec;
    expect(fourth).toMatchObject({ status: 'active', joined_as: 'learner, then promoted to voter' });
    await spawnAgent(swarm, {});
    expect(swarm.cluster.leader()!.status().conf.voters).toHaveLength(5);
    expect(electionHistory(swarm).total_elections).toBe(1);
  });

  it('bootstrap_expect outside 1..max_agents is refused naming field, value and range; fixed once formed', async () => {
    const c = open(res.dir('boot-bad'));
    expect(() => c.init({ name: 'x', max_agents: 5, bootstrap_expect: 6 })).toThrow('bootstrap_expect=6 is not valid; accepted: an integer 1..5 (max_agents)');
    expect(() => c.init({ name: 'x', max_agents: 3, bootstrap_expect: 0 })).toThrow('bootstrap_expect=0 is not valid; accepted: an integer 1..3');
    const { swarm } = c.init({ name: 'y', max_agents: 3, bootstrap_expect: 1 });
    // One agent with bootstrap_expect 1 forms the group at once (a group of one).
    expect((await spawnAgent(swarm, {})) as Rec).toMatchObject({ status: 'active' });
    expect(() => c.init({ name: 'y', max_agents: 3, bootstrap_expect: 2 })).toThrow(/bootstrap_expect=2 is not valid; accepted: 1 \(unchanged\): swarm y already formed/);
  });

  it('a restart before the group formed keeps the waiting agents; a terminated one no longer counts', async () => {
    const dir = res.dir('boot-restart');
    let c = open(dir);
    let swarm = c.init({ name: 'r', max_agents: 5 }).swarm;
    await spawnAgent(swarm, { name: 'w1', type: 'worker' });
    await spawnAgent(swarm, { name: 'w2' });
    c.close();

    c = open(dir);
    swarm = c.swarm('r');
    expect(swarm.cluster.running()).toHaveLength(0);
    expect(swarm.waitingMembers()).toEqual(['w1', 'w2']);
    expect(await terminateAgent(swarm, 'w2')).toMatchObject({ status: 'terminated', was_leader: false });
    expect(swarm.waitingMembers()).toEqual(['w1']);
    expect((await spawnAgent(swarm, { name: 'w3' })) as Rec).toMatchObject({ status: 'waiting_for_bootstrap', agents_spawned: 2 });
    const formed = (await spawnAgent(swarm, { name: 'w4' })) as Rec & { bootstrap: Rec };
    // w1 waited across the restart (its file made when it was spawned); w2 left before.
    expect(formed.bootstrap.voters).toEqual(['w1', 'w3', 'w4']);
    expect(listAgents(swarm).find((a) => a.agent_id === 'w1')).toMatchObject({ status: 'active', type: 'worker' });
  });

  it('a process stopped after recording the formation but before starting the voters starts them at reopen', async () => {
    const dir = res.dir('boot-midway');
    let c = open(dir);
    const swarm = c.init({ name: 'm', max_agents: 3, bootstrap_expect: 3 }).swarm;
    await spawnAgent(swarm, { name: 'p1' });
    await spawnAgent(swarm, { name: 'p2' });
    c.close();
    // What bootstrapGroup saves before it starts anyone, as if the process died right after:
    // the files hold only the identities written when the agents were spawned.
    const reg = SwarmRegistry.load(`${dir}/swarms/m`);
    reg.data.bootstrapped_at = new Date().toISOString();
    reg.data.bootstrap_voters = ['p1', 'p2'];
    for (const id of ['p1', 'p2']) Object.assign(reg.data.members[id]!, { bootstrap: true, state: 'active' });
    reg.save();

    c = open(dir);
    const again = c.swarm('m');
    await again.waitForLeader(5_000);
    expect(again.cluster.leader()!.status().conf.voters).toEqual(['p1', 'p2']);
    expect((await waitForFirstRecord(again)).voted_by).toEqual(['p1', 'p2']);
  });

  it('a formed group never forms again: a restart reopens the same group and a new agent joins it', async () => {
    const dir = res.dir('boot-once');
    let c = open(dir);
    let swarm = c.init({ name: 'o', max_agents: 5 }).swarm;
    for (let i = 0; i < 3; i++) await spawnAgent(swarm, {});
    await waitForFirstRecord(swarm);
    await memoryStore(swarm, { key: 'before', value: 1 });
    const formedAt = swarm.data.bootstrapped_at;
    expect(formedAt).toBeDefined();
    c.close();

    const saved = SwarmRegistry.load(`${dir}/swarms/o`).data;
    expect(saved).toMatchObject({ bootstrapped_at: formedAt, bootstrap_voters: ['raft-agent-1', 'raft-agent-2', 'raft-agent-3'] });

    c = open(dir);
    swarm = c.swarm('o');
    await swarm.waitForLeader(5_000);
    expect(swarm.data.bootstrapped_at).toBe(formedAt);
    const joined = (await spawnAgent(swarm, {})) as Rec;
    expect(joined).toMatchObject({ agent_id: 'raft-agent-4', status: 'active', joined_as: 'learner, then promoted to voter' });
    expect(swarm.cluster.leader()!.status().conf.voters).toEqual(['raft-agent-1', 'raft-agent-2', 'raft-agent-3', 'raft-agent-4']);
    // Same group: what it committed before the restart is still there.
    const m = swarm.localMachine()!.machine;
    await waitUntil(() => m.memory.get('default', 'before', m.clock) !== undefined, 5_000, 'the replicated key');
    expect(fs.existsSync(`${dir}/swarms/o/raft-agent-4.db`)).toBe(true);
  });
});
