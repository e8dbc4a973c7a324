import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import type { Coordinator } from '../src/service/coordinator.js';
import { memberAdd, memberList, memberRemove } from '../src/service/members.js';
import { input, output, run, swarmArg } from './result.js';

/** Cluster mode's runtime membership (embedded mode changes members with agent_spawn/agent_terminate). */
export function registerMemberTools(server: McpServer, coord: Coordinator): void {
  server.registerTool(
    'member_list',
    {
      title: 'List cluster members',
      description:
        'Cluster mode: the members in the replicated configuration (voters and learners), their addresses from the replicated address book, how far each has caught up (measured by the leader), and the removed ids (never reused).',
      inputSchema: input({ swarm: swarmArg }),
      outputSchema: output({ members: z.array(z.record(z.string(), z.unknown())) }),
      annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    },
    (a) => run(() => memberList(coord.swarm(a.swarm))),
  );

  server.registerTool(
    'member_add',
    {
      title: 'Add a cluster member',
      description:
        'Cluster mode: add a member as a learner at HOST:PORT (a conf change carrying its address, so every member learns it from the log). Then start `concord node --id ID --listen HOST:PORT --join MEMBER` on an empty data directory: it catches up and the leader promotes it to voter. One change at a time; a removed id is refused (ids are never reused).',
      inputSchema: input({
        swarm: swarmArg,
        id: z.string().min(1).max(64).describe('New member id (never one that was removed)'),
        address: z.string().min(3).max(300).describe('HOST:PORT the other members dial'),
      }),
      outputSchema: output({ id: z.string(), role: z.string() }),
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    },
    (a) => run(() => memberAdd(coord.swarm(a.swarm), a)),
  );

  server.registerTool(
    'member_remove',
    {
      title: 'Remove a cluster member',
      description:
        'Cluster mode: remove a member from the configuration (a leader first hands leadership to the most caught-up voter). Its id is never reused; the removed process is refused by the others and exits.',
      inputSchema: input({ swarm: swarmArg, id: z.string().min(1).max(64).describe('Member id to remove') }),
      outputSchema: output({ id: z.string(), removed: z.boolean() }),
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
    },
    (a) => run(() => memberRemove(coord.swarm(a.swarm), a)),
  );
}
