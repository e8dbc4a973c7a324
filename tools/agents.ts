import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { agentMetrics, listAgents, restartAgent, spawnAgent, terminateAgent } from '../src/service/agents.js';
import type { Coordinator } from '../src/service/coordinator.js';
import { input, output, run, swarmArg } from './result.js';

export function registerAgentTools(server: McpServer, coord: Coordinator): void {
  server.registerTool(
    'agent_spawn',
    {
      title: 'Spawn an agent (add a Raft member)',
      description:
        'Add an agent to the swarm. It is a real Raft member with its own SQLite log: it joins as a learner, catches up, then is promoted to voter through a membership change. Until the swarm has bootstrap_expect agents (swarm_init; default the quorum of max_agents) agents wait, not started (status "waiting_for_bootstrap"); the one that reaches the count starts them all as the initial voters, which elect a leader.',
      inputSchema: input({
        swarm: swarmArg,
        type: z.string().min(1).max(64).optional().describe('Agent type label, e.g. "coordinator"'),
        name: z.string().min(1).max(64).optional().describe('Agent id, e.g. "raft-agent-1"; default: next free raft-agent-N'),
        capabilities: z.array(z.string().max(64)).max(32).optional().describe('Capability labels, e.g. ["task-processing","log-replication","voting"]'),
      }),
      outputSchema: output({ agent_id: z.string(), status: z.string(), voters: z.array(z.string()), join_ms: z.number() }),
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
    },
    (a) => run(async () => (await spawnAgent(coord.swarm(a.swarm), a)) as Record<string, unknown>),
  );

  server.registerTool(
    'agent_list',
    {
      title: 'List agents',
      description: 'Agents of a swarm with their real status (active, crashed, terminated, unreachable, or waiting_for_bootstrap before the group formed) and Raft role (leader, follower, learner, candidate).',
      inputSchema: input({ swarm: swarmArg, filter: z.enum(['active', 'terminated', 'all']).optional().describe('Which agents; default all. "terminated" includes crashed ones') }),
      outputSchema: output({ agents: z.array(z.record(z.string(), z.unknown())) }),
      annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    },
    (a) => run(() => ({ agents: listAgents(coord.swarm(a.swarm), a.filter ?? 'all') })),
  );

  server.registerTool(
    'agent_terminate',
    {
      title: 'Terminate an agent',
      description:
        'Stop an agent. mode "crash" (default) kills it abruptly: no goodbye, the others detect it by missed heartbeats and, if it led, elect a new leader; agent_restart brings it back. mode "graceful" hands off leadership first, then removes it from the membership for good.',
      inputSchema: input({
        swarm: swarmArg,
        agent_id: z.string().min(1).describe('Agent to stop, e.g. "raft-agent-1"'),
        mode: z.enum(['crash', 'graceful']).optional().describe('crash (default) or graceful'),
      }),
      outputSchema: output({ agent_id: z.string(), mode: z.string(), status: z.string(), was_leader: z.boolean() }),
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: false },
    },
    (a) => run(async () => (await terminateAgent(coord.swarm(a.swarm), a.agent_id, a.mode ?? 'crash')) as Record<string, unknown>),
  );

  server.registerTool(
    'agent_restart',
    {
      title: 'Restart a crashed agent',
      description: 'Bring a crashed agent back from its own SQLite file: it recovers term, vote and log, then catches up from the leader (log or snapshot).',
      inputSchema: input({ swarm: swarmArg, agent_id: z.string().min(1).describe('Crashed agent to restart') }),
      outputSchema: output({ agent_id: z.string(), status: z.string(), recovered: z.record(z.string(), z.unknown()) }),
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
    },
    (a) => run(async () => (await restartAgent(coord.swarm(a.swarm), a.agent_id)) as Record<string, unknown>),
  );

  server.registerTool(
    'agent_metrics',
    {
      title: 'Agent metrics (measured)',
      description: 'Measured per-agent counters: log size, applied index, disk bytes, bytes written, fsync count and time, messages in/out, snapshots. metric narrows to one group, e.g. "disk-io".',
      inputSchema: input({
        swarm: swarmArg,
        agent_id: z.string().optional().describe('One agent; default all'),
        metric: z.enum(['disk-io', 'log', 'messages', 'snapshots', 'applied']).optional().describe('One metric group; default all'),
      }),
      outputSchema: output({ swarm: z.string(), agents: z.array(z.record(z.string(), z.unknown())) }),
      annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    },
    (a) => run(() => agentMetrics(coord.swarm(a.swarm), a.agent_id, a.metric) as Record<string, unknown>),
  );
}
