// Status figures follow what the leader observes, not only whether processes run: a
// partitioned agent's process still runs, but the swarm is degraded and the agent unreachable,
// and its last round-trip figure is reported with its age.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listAgents } from '../../src/service/agents.js';
import { swarmStatus } from '../../src/service/consensus.js';
import type { Coordinator } from '../../src/service/coordinator.js';
import { networkDiagnose, networkHeal, networkPartition } from '../../src/service/network.js';
import type { Swarm } from '../../src/swarm/swarm.js';
import { removeDir, sleep, swarmWithAgents, tempDataDir, waitUntil } from './service-util.js';

let dir: string;
let coordinator: Coordinator;
let swarm: Swarm;
beforeAll(async () => {
  dir = tempDataDir('status-honesty');
  ({ coordinator, swarm } = await swarmWithAgents(dir, { agents: 3 }));
});
afterAll(() => {
  coordinator?.close();
  removeDir(dir);
});

describe('status under a partition', () => {
  it('degraded swarm, unreachable agent, aging round trip; active again after heal', async () => {
    await waitUntil(() => swarmStatus(swarm).status === 'active', 5_000, 'a healthy swarm');
    const leader = swarm.cluster.leader()!.id;
    const victim = swarm.activeMembers().find((a) => a !== leader)!;
    await sleep(200); // some heartbeat round trips to the victim
    await networkPartition(swarm, { isolate: victim });
    await waitUntil(() => swarmStatus(swarm).status === 'degraded', 5_000, 'status degraded while an agent is cut off');
    expect(swarmStatus(swarm).agents_running).toBe(3); // every process still runs
    expect(listAgents(swarm).find((a) => a.agent_id === victim)!.status).toBe('unreachable');
    const link = () => (networkDiagnose(swarm).links as Array<{ from: string; to: string; rtt_age_ms: number | null }>).find((l) => l.from === leader && l.to === victim)!;
    const age0 = link().rtt_age_ms!;
    await sleep(300);
    expect(link().rtt_age_ms!).toBeGreaterThanOrEqual(age0 + 250);
    await networkHeal(swarm);
    await waitUntil(() => swarmStatus(swarm).status === 'active', 5_000, 'active after heal');
    expect(listAgents(swarm).find((a) => a.agent_id === victim)!.status).toBe('active');
  });
});
