// consensus_verify_quorum runs a real round from the leader: what it reports is who answered,
// not what the fault-injection table or the process table says.

import { describe, expect, it } from 'vitest';
import type { InProcNetwork } from '../../src/host/inproc-network.js';
import { verifyQuorum } from '../../src/service/consensus.js';
import { swarmWithAgents, testResources } from './service-util.js';

const res = testResources();

async function threeAgents() {
  const dir = res.dir('verify-quorum');
  const { coordinator, swarm } = await swarmWithAgents(dir, { agents: 3 });
  res.keep(coordinator);
  const leader = swarm.cluster.leader()!;
  return { swarm, leader: leader.id, followers: swarm.activeMembers().filter((a) => a !== leader.id), net: swarm.cluster.network as InProcNetwork };
}

type Response = { agent_id: string; answered: boolean; rtt_ms: number | null };

describe('consensus_verify_quorum', () => {
  it('reports every voter answering, each with a measured round trip', async () => {
    const { swarm, leader } = await threeAgents();
    const q = await verifyQuorum(swarm, 5_000);
    expect(q).toMatchObject({ leader_id: leader, quorum_size: 2, has_quorum: true, unreachable: [], tolerates_failures: 1 });
    const responses = q.responses as Response[];
    expect(responses.map((r) => r.agent_id).sort()).toEqual(swarm.activeMembers().sort());
    for (const r of responses) {
      expect(r.answered).toBe(true);
      expect(r.rtt_ms).toBeGreaterThanOrEqual(0);
    }
  });

  it('a voter whose messages are silently lost is not answering, though the fault table calls it connected', async () => {
    const { swarm, leader, followers, net } = await threeAgents();
    const [victim, other] = followers as [string, string];
    net.setLinkFaults(leader, victim, { lossRate: 1 });
    expect(net.connected(leader, victim)).toBe(true);
    const q = await verifyQuorum(swarm, 300);
    expect(q.unreachable).toEqual([victim]);
    expect(q.has_quorum).toBe(true);
    const responses = q.responses as Response[];
    expect(responses.find((r) => r.agent_id === victim)).toMatchObject({ answered: false, rtt_ms: null });
    expect(responses.find((r) => r.agent_id === other)!.rtt_ms).toBeGreaterThanOrEqual(0);
    // It waited out the round for the silent voter (timers may fire a fraction of a ms early).
    expect(q.round_ms).toBeGreaterThanOrEqual(290);
  });

  it('a partitioned voter is not answering; with both followers silent there is no quorum', async () => {
    const { swarm, leader, followers, net } = await threeAgents();
    const [a, b] = followers as [string, string];
    net.isolate(a);
    let q = await verifyQuorum(swarm, 300);
    expect(q.unreachable).toEqual([a]);
    expect(q.reachable).toEqual([leader, b].sort());
    expect(q.has_quorum).toBe(true);
    net.setLinkFaults(leader, b, { lossRate: 1 });
    // Shorter than the election timeout: the leader has not stepped down yet (check-quorum).
    q = await verifyQuorum(swarm, 50);
    expect(q.reachable).toEqual([leader]);
    expect(q.has_quorum).toBe(false);
  });
});
