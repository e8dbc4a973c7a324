import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import type { Coordinator } from '../src/service/coordinator.js';
import { PRIORITIES, STRATEGIES } from '../src/machine/types.js';
import { RESULT_FORMATS, RESULT_ROWS_MAX, claimTasks, completeTask, orchestrate, taskResults, taskStatus } from '../src/service/tasks.js';
import { input, output, run, swarmArg } from './result.js';

const WAIT_MAX_MS = 600_000;

export function registerTaskTools(server: McpServer, coord: Coordinator): void {
  server.registerTool(
    'task_orchestrate',
    {
      title: 'Orchestrate tasks',
      description:
        'Create `count` tasks through the replicated log and return an orchestration id at once; agents execute them in the background. The completion of each task is committed exactly once (epoch-fenced); execution is at least once (a task may run again after a crash, partition or lease expiry), so side effects must deduplicate by the idempotency key of the task. wait=true blocks until done, sending progress notifications when the client gave a progress token; cancelling the request stops the wait (tasks keep running).',
      inputSchema: input({
        swarm: swarmArg,
        task: z.string().min(1).max(4096).describe('What the tasks do, e.g. "Process API requests"'),
        count: z.number().int().min(1).max(1_000_000).optional().describe('Number of tasks, 1..1000000 (default 1)'),
        priority: z.enum(PRIORITIES).optional().describe('low | medium | high | critical (default medium)'),
        strategy: z.enum(STRATEGIES).optional().describe('sequential (one agent at a time) | parallel (all agents, least-loaded first) | adaptive (currently the same as parallel)'),
        max_agents: z.number().int().min(1).max(15).optional().describe('Most agents to use (default: swarm max_agents)'),
        executor: z
          .object({
            kind: z.enum(['noop', 'sleep', 'http', 'external']).describe('noop | sleep | http | external (claimed by other agents via task_claim)'),
            sleep_ms: z.number().int().min(0).max(600_000).optional().describe('For sleep: ms per task'),
            http: z
              .object({ method: z.enum(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD']), url: z.string().url(), body: z.string().max(65_536).optional() })
              .optional()
              .describe('For http: request sent with Idempotency-Key: <task id> (the same on every run of the task) and Concord-Epoch: <epoch> (the assignment, a fencing token)'),
          })
          .optional()
          .describe('How agents execute each task (default noop)'),
        payload: z.unknown().optional().describe('JSON payload given to every task'),
        idempotency_key: z.string().min(1).max(256).optional().describe('Repeat-safe submit: the same key returns the same orchestration'),
        wait: z.boolean().optional().describe('Wait until all tasks finish (progress notifications, cancellable)'),
        wait_timeout_ms: z.number().int().min(1).max(WAIT_MAX_MS).optional().describe('Max wait (default 120000)'),
      }),
      outputSchema: output({ orchestration_id: z.string(), total_tasks: z.number(), status: z.string() }),
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true },
    },
    (a, extra) =>
      run(async () => {
        const swarm = coord.swarm(a.swarm);
        const created = await orchestrate(swarm, a);
        if (!a.wait) return created;
        const id = created.orchestration_id as string;
        const token = extra._meta?.progressToken;
        const deadline = Date.now() + (a.wait_timeout_ms ?? 120_000);
        let last = -1;
        for (;;) {
          const st = await taskStatus(swarm, id);
          const done = (st.completed as number) + (st.failed as number);
          if (token !== undefined && done !== last) {
            last = done;
            await extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress: done, total: st.total_tasks as number, message: `${done}/${st.total_tasks} tasks finished` } });
          }
          if (st.status === 'finished') return { ...created, ...st, status: 'finished' };
          if (extra.signal.aborted) return { ...created, ...st, status: 'running', note: 'wait cancelled by the client; tasks keep running' };
          if (Date.now() > deadline) return { ...created, ...st, status: 'running', note: 'wait timed out; tasks keep running (task_status)' };
          await new Promise((r) => setTimeout(r, 50));
        }
      }),
  );

  server.registerTool(
    'task_status',
    {
      title: 'Task status',
      description: 'Progress of one orchestration (pending, assigned, completed, failed, progress %) or of the 20 most recent. Linearizable read.',
      inputSchema: input({ swarm: swarmArg, orchestration_id: z.string().optional().describe('e.g. "orch-42"; default recent orchestrations') }),
      outputSchema: output({}),
      annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    },
    (a) => run(() => taskStatus(coord.swarm(a.swarm), a.orchestration_id)),
  );

  server.registerTool(
    'task_results',
    {
      title: 'Task results summary',
      description:
        'Summary counted from replicated state at apply time: total_tasks, completed, failed; duplicates = sum over tasks of (completions applied - 1), counted even if the log were applied twice, must be 0; executions_started = runs of tasks reported to the log (every completion or failure report, applied or refused, with the runs it covers; a run whose worker died before reporting is not counted), so executions_started - completed shows re-execution (at-least-once); stale_completions_refused = reports refused by the epoch fence (a late worker after a reassignment, a repeated task_complete: expected after crashes, not an error); tasks_recovered = assigned tasks taken back and reassigned (dead holder, expired lease, new leader); leader_failures, elections; execution_guarantee states the contract.',
      inputSchema: input({
        swarm: swarmArg,
        orchestration_id: z.string().optional().describe('One orchestration; default all tasks of the swarm'),
        format: z.enum(RESULT_FORMATS).optional().describe('summary (default): the aggregates; detailed: also per-orchestration rows and per-task rows (bounded by limit); json: also the full task records (results included), bounded by limit'),
        limit: z.number().int().min(1).max(RESULT_ROWS_MAX).optional().describe(`detailed / json: most task rows (1..${RESULT_ROWS_MAX}, default 100); tasks_truncated says when more exist`),
        include_tasks: z.number().int().min(0).max(1000).optional().describe('Also return the first N task records (with results) of the orchestration'),
      }),
      outputSchema: output({
        total_tasks: z.number(),
        completed: z.number(),
        failed: z.number(),
        duplicates: z.number(),
        executions_started: z.number(),
        stale_completions_refused: z.number(),
        leader_failures: z.number(),
        elections: z.number(),
        execution_guarantee: z.string(),
      }),
      annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    },
    (a) => run(() => taskResults(coord.swarm(a.swarm), a.orchestration_id, { format: a.format, limit: a.limit, includeTasks: a.include_tasks })),
  );

  server.registerTool(
    'task_claim',
    {
      title: 'Claim tasks (external agent)',
      description: 'For AI agents outside the swarm: claim up to `count` tasks of orchestrations with executor "external". Each claim carries an epoch (fencing token), a lease and the idempotency_key to give side effects (the same if the task is claimed again); pass the epoch to task_complete.',
      inputSchema: input({
        swarm: swarmArg,
        agent_id: z.string().min(1).max(128).describe('Your agent id'),
        count: z.number().int().min(1).max(1000).optional().describe('Max tasks to claim (default 1)'),
        orchestration_id: z.string().optional().describe('Only from this orchestration'),
        lease_ms: z.number().int().min(1000).max(3_600_000).optional().describe('Lease; unfinished tasks become claimable again after it (default 60000)'),
      }),
      outputSchema: output({ agent_id: z.string(), tasks: z.array(z.record(z.string(), z.unknown())) }),
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
    },
    (a) => run(() => claimTasks(coord.swarm(a.swarm), a)),
  );

  server.registerTool(
    'task_complete',
    {
      title: 'Complete a claimed task',
      description: 'Report a result for a claimed task (one run: counted in executions_started). Applied only if the epoch is still current and the task is yours; otherwise refused and counted in stale_completions_refused (a result is never committed twice).',
      inputSchema: input({
        swarm: swarmArg,
        task_id: z.string().min(1).describe('Task id from task_claim'),
        agent_id: z.string().min(1).describe('Your agent id (as used in task_claim)'),
        epoch: z.number().int().min(1).describe('Epoch from task_claim'),
        result: z.unknown().optional().describe('JSON result to store'),
        success: z.boolean().optional().describe('false reports a failed attempt (retried up to 3 times)'),
      }),
      outputSchema: output({ task_id: z.string(), accepted: z.boolean(), status: z.string() }),
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    },
    (a) => run(() => completeTask(coord.swarm(a.swarm), a)),
  );
}
