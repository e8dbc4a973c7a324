// agent_metrics says its counters count from the agent's latest start: after an embedded
// restart (which reuses the agent's storage object) the disk counters must start over too.

import { afterAll, describe, expect, it } from 'vitest';
import type { LocalCluster } from '../../src/host/local-cluster.js';
import { agentMetrics, restartAgent, terminateAgent } from '../../src/service/agents.js';
import { memoryStore } from '../../src/service/memory.js';
import { removeDir, swarmWithAgents, tempDataDir, waitUntil } from './service-util.js';

const dir = tempDataDir('agent-metrics');
afterAll(() => removeDir(dir));

type DiskIo = { bytes_written: number; fsync_count: number; fsync_ms_total: number };
type AgentOut = { agent_id: string; status: string; 'disk-io': DiskIo; messages: { in: number; out: number } };

function metricsOf(swarm: Parameters<typeof agentMetrics>[0], id: string): AgentOut {
  return ((agentMetrics(swarm, id) as { agents: AgentOut[] }).agents[0]!);
}

describe('agent_metrics counters after an agent restart', () => {
  it('disk-io and message counters count from the restart, as measured_since says', async () => {
    const { coordinator, swarm } = await swarmWithAgents(dir, { agents: 3, durability: 'full' }); // 'off' counts no fsync
    try {
      for (let i = 0; i < 20; i++) await memoryStore(swarm, { key: `k${i}`, value: i });
      const leader = swarm.cluster.leader()!.id;
      const victim = swarm.activeMembers().find((a) => a !== leader)!;
      const storage = (swarm.cluster as LocalCluster).storage(victim)!;
      const firstLife = metricsOf(swarm, victim);
      expect(firstLife['disk-io'].fsync_count).toBeGreaterThanOrEqual(20);

      await terminateAgent(swarm, victim, 'crash');
      const atRestart = storage.stats();
      await restartAgent(swarm, victim);
      await memoryStore(swarm, { key: 'after', value: 1 });
      await waitUntil(() => swarm.cluster.host(victim).status().applied >= swarm.cluster.leader()!.status().commit, 5_000, 'the restarted agent to catch up');

      const out = agentMetrics(swarm, victim) as { measured_since: string; agents: AgentOut[] };
      const now = storage.stats();
      const m = out.agents[0]!;
      // Exactly this life's share of the storage's own (cumulative) counters.
      expect(m['disk-io'].fsync_count).toBe(now.syncs - atRestart.syncs);
      expect(m['disk-io'].bytes_written).toBe(now.bytesWritten - atRestart.bytesWritten);
      expect(m['disk-io'].fsync_count).toBeGreaterThan(0);
      expect(m['disk-io'].fsync_count).toBeLessThan(now.syncs);
      const host = swarm.cluster.host(victim).metrics();
      expect(m.messages).toEqual({ in: host.messagesIn, out: host.messagesOut });
      expect(out.measured_since).toMatch(/latest start/);
    } finally {
      coordinator.close();
    }
  });
});
