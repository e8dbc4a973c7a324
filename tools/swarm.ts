import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import type { Coordinator } from '../src/service/coordinator.js';
import { backupTarget, refuseLowSpace, snapshotBytes, summarize, takeSnapshot } from '../src/service/backup.js';
import { swarmStatus } from '../src/service/consensus.js';
import { UserError } from '../src/util/errors.js';
import { refuseExisting, writeSnapshotFile } from '../src/service/snapshot-write.js';
import { fail, input, output, run } from './result.js';

/** Largest snapshot returned inline (base64 in the result) rather than written on the server. */
export const MAX_INLINE_SNAPSHOT_BYTES = 64 << 20;

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

  server.registerTool(
    'swarm_snapshot',
    {
      title: 'Back up a swarm (consistent snapshot)',
      description:
        'Take a consistent snapshot of a swarm through its leader (the applied state at one log index, after a ReadIndex round) and write it with a header and SHA-256 hashes (of each part of the state and of the whole file) to <data dir>/backups/ on the serving process, part by part. Use before a risky step; `concord snapshot restore FILE --data-dir DIR` recreates it as a new swarm. path: a file name inside backups/ (no directories); an existing file is refused unless overwrite is true.',
      inputSchema: input({
        swarm: z.string().min(1).max(64).optional().describe('Swarm name; default "default"'),
        path: z.string().min(1).max(128).optional().describe('File name inside <data dir>/backups/ (no "/" or ".."); default <swarm>-<time>.snapshot'),
        overwrite: z.boolean().optional().describe('Replace an existing file of that name (default false: refused)'),
        inline: z.boolean().optional().describe('Return the file as content_base64 instead of writing it on the server (used by `concord snapshot save`; at most 64 MiB)'),
      }),
      outputSchema: output({
        path: z.string().nullable(),
        sha256: z.string(),
        index: z.number(),
        term: z.number(),
        bytes: z.number(),
        parts: z.number(),
        counts: z.record(z.string(), z.number()),
      }),
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
    },
    async (a) => {
      if (a.inline && (a.path !== undefined || a.overwrite !== undefined)) {
        return fail('invalid_argument: inline=true returns the file instead of writing it: path and overwrite do not apply');
      }
      if (!a.inline) {
        return run(async () => {
          const swarm = coord.swarm(a.swarm);
          const file = backupTarget(coord.dataDir, swarm.name, a.path);
          if (a.overwrite !== true) refuseExisting(file);
          const t = await takeSnapshot(swarm);
          refuseLowSpace(file, t.fileBytes);
          const written = await writeSnapshotFile(file, t.header, t.state, { overwrite: a.overwrite === true });
          return { ...summarize(t, file, written), written_by: t.header.leader };
        });
      }
      const r = await run(async () => {
        const t = await takeSnapshot(coord.swarm(a.swarm));
        if (t.fileBytes > MAX_INLINE_SNAPSHOT_BYTES) {
          throw new UserError('invalid_argument', `the snapshot is ${t.fileBytes} bytes, over the ${MAX_INLINE_SNAPSHOT_BYTES} bytes returned inline; call swarm_snapshot without inline (it writes to the server's backups directory)`, 'inline');
        }
        const b = snapshotBytes(t);
        return { ...summarize(t, null, { sha256: b.sha256, bytes: b.bytes.length }), content_base64: b.bytes.toString('base64') };
      });
      // The bytes only in structuredContent: the text mirror would double a large result.
      const sc = r.structuredContent as Record<string, unknown> | undefined;
      if (sc) r.content = [{ type: 'text', text: JSON.stringify({ ...sc, content_base64: `(${String(sc.content_base64).length} base64 characters in structuredContent)` }, null, 2) }];
      return r;
    },
  );
}
