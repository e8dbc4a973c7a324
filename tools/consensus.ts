import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import type { RoleChange } from '../src/host/node-host.js';
import {
  configure,
  electionHistory,
  leaderInfo,
  logStatus,
  stepDown,
  swarmStatus,
  triggerElection,
  verifyQuorum,
  VERIFY_QUORUM_TIMEOUT_MS,
} from '../src/service/consensus.js';
import type { Coordinator } from '../src/service/coordinator.js';
import { UserError } from '../src/util/errors.js';
import type { Swarm } from '../src/swarm/swarm.js';
import { awaitLeader, defaultLeaderWaitMs } from '../src/swarm/leader-wait.js';
import { memoryStore } from '../src/service/memory.js';
import { input, output, run, swarmArg } from './result.js';

const READ = { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false } as const;
const MAX_REPLICATED_FILE_BYTES = 1 << 20;
const waitMsArg = z
  .number()
  .int()
  .min(0)
  .max(60_000)
  .optional()
  .describe('Wait up to this many ms (0..60000) for a leader during an election; default 3 x election_timeout_max; 0 answers at once');

/** Leader-reading tools wait out an election in progress (bounded) instead of answering null. */
async function settled(swarm: Swarm, waitMs: number | undefined): Promise<Swarm> {
  await awaitLeader(swarm, waitMs ?? defaultLeaderWaitMs(swarm));
  return swarm;
}

export function registerConsensusTools(server: McpServer, coord: Coordinator): void {
  server.registerTool(
    'consensus_config',
    {
      title: 'Configure Raft parameters',
      description:
        'Change timing and limits. Goes through the replicated log and takes effect live on every member. quorum_size must be the strict majority (3 of 5): anything else is refused (split brain). max_log_entries bounds the uncommitted backlog in entries (and a fixed 64 MiB bounds it in bytes): beyond either, proposals fail with "backlog full".',
      inputSchema: input({
        swarm: swarmArg,
        election_timeout_min: z.number().int().optional().describe('ms, 10..60000 (default 150)'),
        election_timeout_max: z.number().int().optional().describe('ms, > min (default 300); timeouts are drawn in [min, max)'),
        heartbeat_interval: z.number().int().optional().describe('ms, at most half of election_timeout_min (default 50)'),
        log_compaction_threshold: z.number().int().optional().describe('Applied entries between snapshots (default 1000)'),
        quorum_size: z.number().int().optional().describe('Must equal the majority of voters; validated, not a free knob'),
        max_log_entries: z.number().int().optional().describe('Max uncommitted entries before proposals are refused (default 10000)'),
        batch_size: z.number().int().optional().describe('Tasks per assignment batch (an agent holds up to 4 batches at once) and entries per replication message, at least 64 (default 100)'),
        task_retention_orchestrations: z.number().int().optional().describe('Finished orchestrations whose per-task records are kept (0..1000000, default 100); older ones keep exact counts only'),
        task_retention_ms: z.number().int().optional().describe('Log time (ms) a finished orchestration keeps its per-task records (default 3600000); whichever retention limit comes first applies'),
      }),
      outputSchema: output({ swarm: z.string(), config: z.record(z.string(), z.unknown()) }),
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    },
    ({ swarm, ...patch }) => run(() => configure(coord.swarm(swarm), patch)),
  );

  server.registerTool(
    'consensus_status',
    {
      title: 'Consensus status (optionally watch)',
      description: 'Leader, term, members and health (waiting out an election in progress, up to wait_ms). With watch_ms, waits that long and also reports every leader election seen in the window (event, old_leader, new_leader, term, election_duration_ms, voted_by).',
      inputSchema: input({ swarm: swarmArg, watch_ms: z.number().int().min(0).max(60_000).optional().describe('Observe for this many ms (0..60000) and report elections seen'), wait_ms: waitMsArg }),
      outputSchema: output({ swarm_id: z.string(), leader_id: z.string().nullable(), term: z.number().nullable(), heartbeat_status: z.string() }),
      annotations: READ,
    },
    (a) =>
      run(async () => {
        const swarm = await settled(coord.swarm(a.swarm), a.wait_ms);
        const seen: Array<Record<string, unknown>> = [];
        if (a.watch_ms && a.watch_ms > 0) {
          // c.previousLeader is the winner's own view, null once it became a candidate: track
          // the swarm's leader instead (at the window start, then the last winner seen).
          let previous = swarm.cluster.leader()?.id ?? null;
          const off = swarm.onRoleChangeEvent((c: RoleChange) => {
            if (!c.election) return;
            seen.push({ event: 'leader_election', old_leader: c.previousLeader ?? previous, new_leader: c.id, term: c.term, election_duration_ms: Math.round(c.election.durationMs), voted_by: c.election.votedBy });
            previous = c.id;
          });
          await new Promise((r) => setTimeout(r, a.watch_ms));
          off();
        }
        const leader = leaderInfo(swarm);
        return { ...swarmStatus(swarm), heartbeat_status: leader.heartbeat_status as string, watched_ms: a.watch_ms ?? 0, elections_seen: seen };
      }),
  );

  server.registerTool(
    'consensus_leader',
    {
      title: 'Current leader',
      description: 'The elected leader (waiting out an election in progress, up to wait_ms): leader_id, term, voted_by (who granted it votes this term), election_duration_ms (from its election timeout to winning) and heartbeat_status (healthy when every voter answered within an election timeout).',
      inputSchema: input({ swarm: swarmArg, wait_ms: waitMsArg }),
      outputSchema: output({ leader_id: z.string().nullable(), term: z.number().nullable(), voted_by: z.array(z.string()), election_duration_ms: z.number().nullable(), heartbeat_status: z.string() }),
      annotations: READ,
    },
    (a) => run(async () => leaderInfo(await settled(coord.swarm(a.swarm), a.wait_ms))),
  );

  server.registerTool(
    'consensus_log_status',
    {
      title: 'Log replication status',
      description: "Leader's view of replication: per follower match_index, next_index and replication_lag_ms (age of the oldest entry it lacks; 0 when caught up), plus committed_entries, uncommitted_entries and uncommitted_bytes.",
      inputSchema: input({ swarm: swarmArg }),
      outputSchema: output({ leader: z.string().nullable(), followers: z.array(z.record(z.string(), z.unknown())), committed_entries: z.number().nullable(), uncommitted_entries: z.number().nullable() }),
      annotations: READ,
    },
    (a) => run(async () => logStatus(await settled(coord.swarm(a.swarm), undefined))),
  );

  server.registerTool(
    'consensus_step_down',
    {
      title: 'Leader steps down',
      description: 'Make the leader hand over leadership (Raft leadership transfer with TimeoutNow) to the most caught-up voter or to the named successor. Returns the resulting election.',
      inputSchema: input({
        swarm: swarmArg,
        agent: z.string().optional().describe('Expected current leader; refused if it is not the leader'),
        successor: z.string().optional().describe('Voter to take over; default the most caught-up one'),
      }),
      outputSchema: output({ old_leader: z.string(), event: z.string(), new_leader: z.string().nullable(), term: z.number().nullable() }),
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
    },
    (a) => run(() => stepDown(coord.swarm(a.swarm), a.agent, a.successor)),
  );

  server.registerTool(
    'consensus_trigger_election',
    {
      title: 'Trigger an election',
      description: 'Make a voter start an election now, as if its election timeout fired. With pre-vote and a healthy leader, the campaign usually fails and the leader stays: the result says so.',
      inputSchema: input({ swarm: swarmArg, agent: z.string().optional().describe('Voter that campaigns; default a running follower') }),
      outputSchema: output({ event: z.string(), new_leader: z.string().nullable(), term: z.number().nullable() }),
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
    },
    (a) => run(() => triggerElection(coord.swarm(a.swarm), a.agent)),
  );

  server.registerTool(
    'consensus_verify_quorum',
    {
      title: 'Verify quorum',
      description:
        'Runs one real ReadIndex round from the leader (a heartbeat with a read context through the Raft core) and reports which voters answered it within timeout_ms, the measured round trip of each (rtt_ms, leader clock; null = did not answer), and whether a quorum confirmed the round (has_quorum).',
      inputSchema: input({
        swarm: swarmArg,
        timeout_ms: z.number().int().min(10).max(30_000).optional().describe(`ms a voter has to answer the round, 10..30000 (default ${VERIFY_QUORUM_TIMEOUT_MS})`),
      }),
      outputSchema: output({ voters: z.array(z.string()), quorum_size: z.number(), reachable: z.array(z.string()), has_quorum: z.boolean(), responses: z.array(z.record(z.string(), z.unknown())) }),
      annotations: READ,
    },
    (a) => run(() => verifyQuorum(coord.swarm(a.swarm), a.timeout_ms)),
  );

  server.registerTool(
    'consensus_election_history',
    {
      title: 'Election history',
      description: 'Leader changes, newest first, from the replicated log: term, old_leader, new_leader, voted_by, election_duration_ms, cause (startup, leader crash, step-down, transfer, lost quorum, trigger-election), tasks_recovered.',
      inputSchema: input({ swarm: swarmArg, limit: z.number().int().min(1).max(1000).optional().describe('Most recent N (1..1000, default 10)') }),
      outputSchema: output({ total_elections: z.number(), leader_failures: z.number(), elections: z.array(z.record(z.string(), z.unknown())) }),
      annotations: READ,
    },
    (a) => run(() => electionHistory(coord.swarm(a.swarm), a.limit ?? 10)),
  );

  server.registerTool(
    'consensus_replicate',
    {
      title: 'Replicate a file',
      description:
        "Replicate a file's content to every agent through the log, stored in memory under key (default \"files/<path>\"). For post-edit hooks. Max 1 MiB. The caller reads the file and sends its content (the CLI does: concord consensus replicate --file PATH); the server never opens a path.",
      inputSchema: input({
        swarm: swarmArg,
        file: z.string().min(1).max(4096).optional().describe('Path of the file, as the caller names it: a label and the default key (never opened by the server)'),
        content: z.string().optional().describe("The file's content, read by the caller"),
        key: z.string().min(1).max(512).optional().describe('Memory key; default "files/<file>"'),
      }),
      outputSchema: output({ stored: z.boolean(), key: z.string(), version: z.number(), bytes: z.number() }),
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    },
    (a) =>
      run(async () => {
        // Reading a path named by a tool argument let any caller fetch any file the server could
        // read (/etc/shadow, /proc/self/environ, the cluster secret), and read the server's
        // file rather than the editor's when they run on different machines.
        if (a.content === undefined) {
          throw new UserError(
            'invalid_argument',
            `content=missing: send the file's content (the server never reads files${a.file ? `; read ${JSON.stringify(a.file)} yourself, or run concord consensus replicate --file PATH` : ''})`,
            'content',
          );
        }
        const bytes = Buffer.byteLength(a.content);
        if (bytes > MAX_REPLICATED_FILE_BYTES) throw new UserError('invalid_argument', `content is ${bytes} bytes; accepted: <= ${MAX_REPLICATED_FILE_BYTES} bytes`, 'content');
        const key = a.key ?? fileKey(a.file ?? 'inline');
        const r = await memoryStore(coord.swarm(a.swarm), { key, value: { file: a.file ?? null, content: a.content } });
        return { ...r, key, bytes };
      }),
  );
}

/** "files/" + the path without leading slashes: /tmp/x -> files/tmp/x (not files//tmp/x). */
export function fileKey(file: string): string {
  return `files/${file.replace(/^[/\\]+/, '')}`;
}
