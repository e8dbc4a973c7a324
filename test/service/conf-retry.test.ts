// A membership change whose proposal timed out although it committed is retried; the retry
// finds the change already applied and must succeed instead of reporting a conflict.

import { afterAll, describe, expect, it } from 'vitest';
import { RequestTimeoutError, type NodeHost } from '../../src/host/node-host.js';
import { spawnAgent, terminateAgent } from '../../src/service/agents.js';
import { removeDir, swarmWithAgents, tempDataDir } from './service-util.js';

const dir = tempDataDir('conf-retry');
afterAll(() => removeDir(dir));

/** The leader's next membership change commits, but its caller sees a timeout. */
function timeOutAfterCommit(leader: NodeHost): string[] {
  const seen: string[] = [];
  const original = leader.proposeConfChange.bind(leader);
  leader.proposeConfChange = (cc, timeoutMs = 3_000) => {
    leader.proposeConfChange = original;
    seen.push(`${cc.type} ${cc.node}`);
    return original(cc, timeoutMs).then(() => {
      throw new RequestTimeoutError('membership change', timeoutMs);
    });
  };
  return seen;
}

describe('membership change retried after a timeout that hid its commit', () => {
  it('agent_spawn (addLearner, then addVoter) succeeds', async () => {
    const { coordinator, swarm } = await swarmWithAgents(dir, { name: 'join', agents: 3, maxAgents: 4 });
    try {
      const joined = timeOutAfterCommit(swarm.cluster.leader()!);
      const spawned = (await spawnAgent(swarm, { name: 'late' })) as { agent_id: string; voters: string[] };
      expect(joined).toEqual(['addLearner late']);
      expect(spawned.voters).toContain('late');
    } finally {
      coordinator.close();
    }
  });

  it('graceful agent_terminate (removeNode) succeeds', async () => {
    const { coordinator, swarm } = await swarmWithAgents(dir, { name: 'leave', agents: 3 });
    try {
      const leader = swarm.cluster.leader()!;
      const victim = swarm.activeMembers().find((a) => a !== leader.id)!;
      const removed = timeOutAfterCommit(leader);
      const t = (await terminateAgent(swarm, victim, 'graceful')) as { status: string };
      expect(removed).toEqual([`removeNode ${victim}`]);
      expect(t.status).toBe('terminated');
      expect(swarm.cluster.leader()!.status().conf.voters).not.toContain(victim);
    } finally {
      coordinator.close();
    }
  });
});
