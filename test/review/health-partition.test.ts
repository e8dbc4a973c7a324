// /health when the leader is cut off with a minority: once the majority has elected a newer
// leader, /health must never answer from the deposed leader's view, and while nobody holds a
// quorum for longer than an election timeout it must say unavailable.
import { describe, expect, it } from 'vitest';
import { spawnAgent } from '../../src/service/agents.js';
import { swarmHealth } from '../../src/service/health.js';
import { networkHeal, networkPartition } from '../../src/service/network.js';
import { sleep, testResources, waitUntil } from '../service/service-util.js';

const res = testResources();

describe('/health under a partition of the leader with a minority', () => {
  it('answers from the newer leader, never the deposed one, and 503 while no side has a quorum', async () => {
    const c = res.coordinatorOn(res.dir('health-part'));
    const swarm = c.init({ name: 'h', max_agents: 5 }).swarm;
    for (let i = 0; i < 5; i++) await spawnAgent(swarm, {});
    const old = await swarm.waitForLeader(10_000);
    const oldTerm = old.core.term;
    const ids = swarm.activeMembers();
    const buddy = ids.find((id) => id !== old.id)!;
    await networkPartition(swarm, { groups: [[old.id, buddy], ids.filter((id) => id !== old.id && id !== buddy)] });
    const samples: Array<{ healthy: boolean; leader: string | null; term: number | null; newer: boolean }> = [];
    const end = performance.now() + 4_000;
    while (performance.now() < end) {
      const h = swarmHealth(swarm);
      const newer = swarm.cluster.running().some((x) => x.core.role === 'leader' && x.core.term > oldTerm);
      samples.push({ healthy: h.healthy, leader: h.leader, term: h.term, newer });
      await sleep(5);
    }
    // A newer leader existed at some point, and from then on no answer came from the old one.
    expect(samples.some((s) => s.newer)).toBe(true);
    for (const s of samples.filter((x) => x.newer)) expect(s.leader === old.id && s.term === oldTerm, JSON.stringify(s)).toBe(false);
    expect(samples.at(-1)!.healthy).toBe(true);

    // Now no side has a quorum: 2 | 2 | 1. After an election timeout and more, always 503.
    await networkHeal(swarm);
    await waitUntil(() => swarmHealth(swarm).healthy, 10_000, 'healthy after heal');
    await networkPartition(swarm, { groups: [ids.slice(0, 2), ids.slice(2, 4)] });
    await sleep(swarm.config().election_timeout_max * 3);
    const after: boolean[] = [];
    for (let i = 0; i < 100; i++) {
      after.push(swarmHealth(swarm).healthy);
      await sleep(10);
    }
    expect(after.filter(Boolean)).toEqual([]);
    await networkHeal(swarm);
  }, 60_000);
});
