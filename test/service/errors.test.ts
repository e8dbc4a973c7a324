// User errors must be clear (which field, what value, what is accepted), and refused requests
// must change nothing. Also: TTL expiry on a swarm with no other traffic.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configure } from '../../src/service/consensus.js';
import type { Coordinator } from '../../src/service/coordinator.js';
import { UserError } from '../../src/util/errors.js';
import { memoryRetrieve, memoryStore } from '../../src/service/memory.js';
import { networkHeal, networkPartition } from '../../src/service/network.js';
import type { Swarm } from '../../src/swarm/swarm.js';
import { removeDir, sleep, swarmWithAgents, tempDataDir, waitUntil } from './service-util.js';

async function userError(p: Promise<unknown> | (() => unknown)): Promise<UserError> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    expect(e).toBeInstanceOf(UserError);
    return e as UserError;
  }
  throw new Error('expected a UserError, but the call succeeded');
}

describe('clear errors, and TTL on an idle swarm (real swarm of 5)', () => {
  let dir: string;
  let coordinator: Coordinator;
  let swarm: Swarm;

  beforeAll(async () => {
    dir = tempDataDir('errors');
    ({ coordinator, swarm } = await swarmWithAgents(dir, { name: 'five', agents: 5 }));
  });
  afterAll(() => {
    coordinator?.close();
    removeDir(dir);
  });

  it('quorum_size 2 for 5 agents is refused as split brain; the majority (3) is accepted', async () => {
    const e = await userError(configure(swarm, { quorum_size: 2 }));
    expect(e.code).toBe('invalid_argument');
    expect(e.field).toBe('quorum_size');
    expect(e.message).toContain('quorum_size=2 is not valid');
    expect(e.message).toContain('3 for max_agents=5');
    expect(e.message).toMatch(/split brain/);
    expect(swarm.config().quorum_size).toBeNull();
    const big = await userError(configure(swarm, { quorum_size: 5 }));
    expect(big.message).toContain('quorum_size=5 is not valid');
    expect(await configure(swarm, { quorum_size: 3 })).toMatchObject({ config: { quorum_size: 3 } });
    expect(swarm.config().quorum_size).toBe(3);
  });

  it('other bad timing is refused naming the limit', async () => {
    const a = await userError(configure(swarm, { election_timeout_min: 300, election_timeout_max: 200 }));
    expect(a.message).toContain('election_timeout_max=200 is not valid; accepted: greater than election_timeout_min (300)');
    const b = await userError(configure(swarm, { heartbeat_interval: 100 }));
    expect(b.message).toContain('heartbeat_interval=100 is not valid; accepted: at most half of election_timeout_min (150)');
    const c = await userError(configure(swarm, { max_log_entries: 5 }));
    expect(c.message).toContain('max_log_entries=5 is not valid; accepted: an integer 10..10000000');
    expect(swarm.config()).toMatchObject({ election_timeout_min: 150, election_timeout_max: 300, heartbeat_interval: 50, max_log_entries: 10_000 });
  });

  it('max_log_entries reached while nothing commits: a clear "backlog full" error', async () => {
    await configure(swarm, { max_log_entries: 10 });
    const leader = await swarm.waitForLeader();
    expect(leader.config.maxUncommittedEntries).toBe(10);
    // Every agent alone: the leader can append but never commit.
    await networkPartition(swarm, { groups: swarm.activeMembers().map((id) => [id]) });
    const refused: UserError[] = [];
    const attempts = Array.from({ length: 25 }, (_, i) =>
      memoryStore(swarm, { key: `backlog-${i}`, value: i }).catch((e: unknown) => {
        if (e instanceof UserError && e.code === 'backlog_full') refused.push(e);
        throw e;
      }),
    );
    const settled = Promise.allSettled(attempts);
    // Refusals are immediate, while the network is still partitioned.
    await sleep(60);
    const refusedWhilePartitioned = refused.length;
    await networkHeal(swarm);
    const results = await settled;
    expect(refusedWhilePartitioned).toBe(refused.length);
    expect(refused.length).toBeGreaterThanOrEqual(25 - 10);
    expect(refused[0]!.message).toMatch(/^backlog full: 10 uncommitted entries, max_log_entries is 10; retry when replication catches up/);
    // The others were committed once the network healed, and nothing refused was stored.
    const stored = results.filter((r) => r.status === 'fulfilled').length;
    expect(stored).toBe(25 - refused.length);
    expect(stored).toBeGreaterThan(0);
    let found = 0;
    for (let i = 0; i < 25; i++) {
      found += await memoryRetrieve(swarm, { key: `backlog-${i}` }).then(
        () => 1,
        () => 0,
      );
    }
    expect(found).toBe(stored);
    await configure(swarm, { max_log_entries: 10_000 });
  });

  it('a key with a TTL is gone once its time passed, even when nothing else is written', async () => {
    const stored = await memoryStore(swarm, { key: 'ephemeral', value: 'soon gone', ttl_s: 1 });
    const expiresAt = Date.parse(stored.expires_at as string);
    expect(expiresAt - Date.now()).toBeGreaterThan(500);
    expect(await memoryRetrieve(swarm, { key: 'ephemeral' })).toMatchObject({ value: 'soon gone', version: 1 });
    await sleep(expiresAt - Date.now() + 100);
    // The swarm is idle: no entry advanced log time past expires_at on its own.
    const e = await userError(memoryRetrieve(swarm, { key: 'ephemeral' }));
    expect(e.code).toBe('not_found');
    expect(e.message).toContain('(never stored, deleted, or expired)');
    // Every replica agrees: log time moved through the log, and each dropped the key.
    await waitUntil(() => swarm.activeMembers().every((id) => swarm.machines.get(id)!.clock >= expiresAt), 2_000, 'every replica to apply the clock entry');
    for (const id of swarm.activeMembers()) expect(swarm.machines.get(id)!.memory.has('default', 'ephemeral')).toBe(false);
  });

  it('an unknown swarm is named, with the existing ones', async () => {
    const e = await userError(() => coordinator.swarm('nope'));
    expect(e.code).toBe('not_found');
    expect(e.field).toBe('swarm');
    expect(e.message).toBe('swarm="nope" does not exist; existing swarms: five; create it with swarm_init');
  });

  it('topology "star" is refused naming what is supported, and creates nothing', async () => {
    const e = await userError(() => coordinator.init({ name: 'starry', topology: 'star' }));
    expect(e.code).toBe('invalid_argument');
    expect(e.field).toBe('topology');
    expect(e.message).toContain('topology="star" is not valid; accepted: "mesh"');
    const p = await userError(() => coordinator.init({ name: 'starry', consensus: 'paxos' }));
    expect(p.message).toContain('consensus="paxos" is not valid; accepted: "raft"');
    const m = await userError(() => coordinator.init({ name: 'starry', max_agents: 16 }));
    expect(m.message).toContain('max_agents=16 is not valid; accepted: an integer 1..15');
    expect(coordinator.names()).toEqual(['five']);
  });
});
