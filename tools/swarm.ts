import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import type { Coordinator } from '../src/service/coordinator.js';
import { swarmStatus } from '../src/service/consensus.js';
import { input, output, run } from './result.js';

export function registerSwarmTools(server: McpServer, coord: Coordinator): void {
  server.registerTool(
    'swarm_init',
    {
      title: 'Create a swarm (Raft group)',
      description:
        'Create a swarm: one Raft consensus group whose members are the agents you spawn next. Starts with no agents (status "initializing"); agent_spawn adds members. Like Consul\'s bootstrap_expect, the group forms once bootstrap_expect agents exist: those agents are its initial voters and hold a real election; later agents join as learners and are promoted. Idempotent for an existing name.',
      inputSchema: input({
        name: z.string().min(1).max(64).optional().describe('Swarm name, e.g. "critical-group"; default "default"'),
        topology: z.string().optional().describe('Only "mesh" is supported: Raft members talk all-to-all'),
        consensus: z.string().optional().describe('Only "raft" is supported'),
        max_agents: z.number().int().min(1).max(15).optional().describe('Most agents (Raft members) this swarm may have; default 5'),
        bootstrap_expect: z
          .number()
          .int()
          .optional()
          .describe('Agents the group forms with, 1..max_agents; default the quorum size of max_agents (3 of 5). Agents spawned before that many exist wait (status "waiting_for_bootstrap"). Fixed once the group formed'),
      }),
      outputSchema: output({ swarm_id: z.string(), topology: z.string(), consensus: z.string(), status: z.string(), agents: z.array(z.string()), created_at: z.string() }),
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    },
    (a) =>
      run(() => {
        const { swarm, created } = coord.init(a);
        return { ...swarmStatus(swarm), created };
      }),
  );

  server.registerTool(
    'swarm_status',
    {
      title: 'Swarm status',
      description: 'Status of one swarm: agents, running count, current leader and term. verbose adds per-member role/commit/applied and the configuration.',
      inputSchema: input({ swarm: z.string().optional().describe('Swarm name; default "default"'), verbose: z.boolean().optional().describe('Include per-member detail and configuration') }),
      outputSchema: output({ swarm_id: z.string(), status: z.string(), agents: z.array(z.string()), leader_id: z.string().nullable(), term: z.number().nullable() }),
      annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    },
    (a) => run(() => swarmStatus(coord.swarm(a.swarm), a.verbose ?? false)),
  );

  server.registerTool(
    'swarm_list',
    {
      title: 'List swarms',
      description: 'All swarms in this data directory with their status and leader.',
      inputSchema: input({}),
      outputSchema: output({ swarms: z.array(z.record(z.string(), z.unknown())), data_dir: z.string() }),
      annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    },
    () => run(() => ({ swarms: coord.names().map((n) => swarmStatus(coord.swarm(n))), data_dir: coord.dataDir })),
  );

  server.registerTool(
    'swarm_destroy',
    {
      title: 'Destroy a swarm',
      description: 'Stop every agent of a swarm and delete its files (log, snapshots, tasks, memory). Cannot be undone.',
      inputSchema: input({
        swarm: z.string().min(1).describe('Swarm name to destroy (required, no default, to avoid accidents)'),
        confirm: z.literal(true).describe('Must be true: confirms permanent deletion'),
      }),
      outputSchema: output({ destroyed: z.string(), files_removed: z.number() }),
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: false },
    },
    (a) => run(() => coord.destroy(a.swarm)),
  );
}
