// System keys and user keys do not collide: Concord maintains a small, fixed set of read-only
// views (election history, log state) and never writes any other key, so a user's
// coordination/raft/commit-index stays what the user stored across elections.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stepDown } from '../../src/service/consensus.js';
import type { Coordinator } from '../../src/service/coordinator.js';
import { memoryDelete, memoryList, memoryRetrieve, memoryStore } from '../../src/service/memory.js';
import type { Swarm } from '../../src/swarm/swarm.js';
import { removeDir, swarmWithAgents, tempDataDir, waitUntil } from './service-util.js';

let dir: string;
let coordinator: Coordinator;
let swarm: Swarm;
beforeAll(async () => {
  dir = tempDataDir('syskeys');
  ({ coordinator, swarm } = await swarmWithAgents(dir, { agents: 3 }));
});
afterAll(() => {
  coordinator?.close();
  removeDir(dir);
});

describe('system keys', () => {
  it("keeps the user's coordination/raft/commit-index across elections", async () => {
    const mine = { commit_index: 1000, term: 5, timestamp: 'from the spec' };
    await memoryStore(swarm, { key: 'coordination/raft/commit-index', value: mine });
    const leader = swarm.cluster.leader()!;
    const term = leader.status().term;
    const follower = swarm.activeMembers().find((a) => a !== leader.id)!;
    await stepDown(swarm, leader.id, follower);
    await waitUntil(() => (swarm.cluster.leader()?.status().term ?? 0) > term, 5_000, 'a new term');
    // The new leader's background proposals (its election record) have committed.
    await waitUntil(async () => ((await memoryRetrieve(swarm, { key: 'coordination/raft/election-history' })).value as { elections: unknown[] }).elections.length >= 2, 5_000, 'the election record');
    const got = await memoryRetrieve(swarm, { key: 'coordination/raft/commit-index' });
    expect(got).toMatchObject({ value: mine, version: 1 });
    expect(got.system).toBeUndefined();
  });

  it('refuses writes and deletes of a system key, naming it', async () => {
    for (const key of ['coordination/raft/election-history', 'coordination/raft/log-state']) {
      await expect(memoryStore(swarm, { key, value: 'x' })).rejects.toThrow(`key ${key} is maintained by Concord`);
      await expect(memoryDelete(swarm, { key })).rejects.toThrow(`key ${key} is maintained by Concord`);
    }
    // The same key in another namespace is an ordinary user key.
    expect(await memoryStore(swarm, { key: 'coordination/raft/log-state', value: 1, namespace: 'mine' })).toMatchObject({ version: 1 });
  });

  it('serves log-state as a live view and lists system keys as such', async () => {
    const before = await memoryRetrieve(swarm, { key: 'coordination/raft/log-state' });
    await memoryStore(swarm, { key: 'some/key', value: 1 });
    const after = await memoryRetrieve(swarm, { key: 'coordination/raft/log-state' });
    const v0 = before.value as { commit_index: number; term: number; leader: string };
    const v1 = after.value as { commit_index: number; term: number; leader: string };
    expect(v1.commit_index).toBeGreaterThan(v0.commit_index);
    expect(v1.leader).toBe(swarm.cluster.leader()!.id);
    expect(after.system).toBe(true);
    const list = (await memoryList(swarm, { prefix: 'coordination/raft/' })).keys as Array<{ key: string; system: boolean }>;
    expect(list.map((k) => [k.key, k.system])).toEqual([
      ['coordination/raft/commit-index', false],
      ['coordination/raft/election-history', true],
      ['coordination/raft/log-state', true],
    ]);
  });
});
