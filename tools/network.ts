import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import type { Coordinator } from '../src/service/coordinator.js';
import { networkDiagnose, networkHeal, networkPartition } from '../src/service/network.js';
import { input, output, run, swarmArg } from './result.js';

export function registerNetworkTools(server: McpServer, coord: Coordinator): void {
  server.registerTool(
    'network_diagnose',
    {
      title: 'Network diagnose',
      description: 'Per-link figures between agents: connected, messages sent/delivered, dropped and loss rate, and heartbeat round-trip times measured by the leader.',
      inputSchema: input({ swarm: swarmArg }),
      outputSchema: output({ swarm: z.string(), links: z.array(z.record(z.string(), z.unknown())) }),
      annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    },
    (a) => run(() => networkDiagnose(coord.swarm(a.swarm))),
  );

  server.registerTool(
    'network_partition',
    {
      title: 'Partition the network (fault injection)',
      description: 'Cut links to try failover: isolate one agent, or split agents into groups that cannot talk across. A minority side cannot elect or commit; network_heal restores.',
      inputSchema: input({
        swarm: swarmArg,
        isolate: z.string().optional().describe('Agent to cut off from all others'),
        groups: z.array(z.array(z.string()).min(1)).optional().describe('Groups of agent ids; messages flow only within a group'),
      }),
      outputSchema: output({ note: z.string() }),
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
    },
    (a) => run(() => networkPartition(coord.swarm(a.swarm), a)),
  );

  server.registerTool(
    'network_heal',
    {
      title: 'Heal the network',
      description: 'Remove every partition, isolation and injected fault.',
      inputSchema: input({ swarm: swarmArg }),
      outputSchema: output({ healed: z.boolean() }),
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    },
    (a) => run(() => networkHeal(coord.swarm(a.swarm))),
  );
}
