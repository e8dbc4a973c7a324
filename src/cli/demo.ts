import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { RoleChange } from '../host/node-host.js';
import { connectTools, type ToolClient } from './tool-client.js';
import { formatTable } from './output.js';

const TASKS = 1000;
/** Each task sleeps this long (a stand-in for an API call): with instant tasks, progress jumps
 * by whole batches and "halfway" was seen at 80 %. */
const TASK_SLEEP_MS = 3;
/** Tasks per assignment: small batches spread completions over many log entries, so the
 * reading taken at halfway is close to 50 % (with the default 100 it came at 60-80 %). */
const DEMO_BATCH_SIZE = 10;

/**
 * The spec's eight steps end to end on a fresh embedded swarm: every figure printed comes
 * from the running cluster. Exits non-zero when the verdict fails.
 */
export async function runDemo(opts: { dataDir?: string; keep?: boolean }): Promise<number> {
  const dir = opts.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'concord-demo-'));
  // Promises awaiting cluster timers need a live handle: Raft timers are unref'd by design.
  const keepAlive = setInterval(() => undefined, 1000);
  const out = (title: string, data: unknown) => {
    process.stdout.write(`\n### ${title}\n${typeof data === 'string' ? data : JSON.stringify(data, null, 2)}\n`);
  };
  let tools: ToolClient | undefined;
  const checks: Array<[string, boolean]> = [];
  try {
    // In-process: the demo reads its own swarm's internals and deletes the directory after.
    tools = await connectTools(dir, undefined, { embedded: true });
    const call = async (name: string, args: Record<string, unknown> = {}) => {
      const r = await tools!.call(name, args);
      if (!r.ok) throw new Error(`${name} failed: ${r.text}`);
      return r.data;
    };
    process.stdout.write(`Concord demo: the spec's eight steps on a 5-agent embedded Raft swarm (data: ${dir})\n`);

    out('Step 1: swarm init --topology mesh --consensus raft --max-agents 5', await call('swarm_init', { topology: 'mesh', consensus: 'raft', max_agents: 5 }));
    out(
      'Step 2: consensus config (timeouts, heartbeat, compaction, quorum 3, max log entries, batch size)',
      await call('consensus_config', { election_timeout_min: 150, election_timeout_max: 300, heartbeat_interval: 50, log_compaction_threshold: 1000, quorum_size: 3, max_log_entries: 10_000, batch_size: DEMO_BATCH_SIZE }),
    );

    for (let i = 1; i <= 5; i++) {
      const a = await call('agent_spawn', { type: 'coordinator', name: `raft-agent-${i}`, capabilities: ['task-processing', 'log-replication', 'voting'] });
      process.stderr.write(`  spawned ${a.agent_id} (${a.joined_as}, ${a.join_ms} ms)\n`);
    }
    const agents = await call('agent_list', { filter: 'active' });
    out('Step 3: agent list --filter active', formatTable(agents.agents as Array<Record<string, unknown>>, ['agent_id', 'type', 'status', 'role', 'capabilities']));
    checks.push(['5 agents active', (agents.agents as unknown[]).length === 5]);
    const quorum = await call('consensus_verify_quorum');
    checks.push(['quorum of 3 of 5 reachable', quorum.quorum_size === 3 && quorum.has_quorum === true]);

    const leader = await call('consensus_leader');
    out('Step 4: consensus leader', leader);
    checks.push(['leader elected', typeof leader.leader_id === 'string']);

    // Step 5: submit, and crash the leader midway (step 7) while tasks are in flight.
    const orch = await call('task_orchestrate', { task: 'Process API requests with RAFT coordination', strategy: 'sequential', max_agents: 5, priority: 'high', count: TASKS, executor: { kind: 'sleep', sleep_ms: TASK_SLEEP_MS } });
    out('Step 5: task orchestrate --count 1000', orch);
    const id = orch.orchestration_id as string;
    const swarm = tools.coordinator!.swarm();
    let failover: RoleChange | undefined;
    // Only the election the crash causes: one seen before it (a slow start) is not the failover.
    const off = swarm.onRoleChangeEvent((c) => {
      if (c.election && !failover && crashedAt > 0) failover = c;
    });
    let crashedAt = 0;
    let oldLeader = '';
    let logStatusShown = false;
    for (;;) {
      const st = await call('task_status', { orchestration_id: id });
      const done = (st.completed as number) + (st.failed as number);
      process.stderr.write(`\r  progress: ${done}/${TASKS} tasks (${st.progress}%)   `);
      if (!logStatusShown && done >= TASKS / 2) {
        logStatusShown = true;
        process.stderr.write('\n');
        // Completions land in the log a batch at a time, so the first reading at or past 50 % is
        // shown with the progress it was taken at (measured, not rounded to "halfway").
        out(`Step 6: consensus log-status (halfway: taken at ${st.progress}% done)`, await call('consensus_log_status'));
        oldLeader = (await call('consensus_leader')).leader_id as string;
        crashedAt = performance.now();
        out(`Step 7: agent terminate --agent-id ${oldLeader} (crash)`, await call('agent_terminate', { agent_id: oldLeader, mode: 'crash' }));
      }
      if (st.status === 'finished') break;
      await new Promise((r) => setTimeout(r, 5));
    }
    process.stderr.write('\n');
    // Wait for the new leader's election record (it lands in the log right after winning).
    const deadline = performance.now() + 5_000;
    let rec: Record<string, unknown> | undefined;
    while (performance.now() < deadline) {
      const h = await call('consensus_election_history', { limit: 1 });
      rec = (h.elections as Array<Record<string, unknown>>)[0];
      if (rec && rec.old_leader === oldLeader) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    off();
    const failoverEvent = {
      event: 'leader_election',
      old_leader: oldLeader,
      new_leader: rec?.new_leader ?? failover?.id ?? null,
      term: rec?.term ?? failover?.term ?? null,
      election_duration_ms: rec?.election_duration_ms ?? null,
      failover_ms: failover ? Math.round(failover.at - crashedAt) : null,
      voted_by: rec?.voted_by ?? [],
      cause: rec?.cause ?? null,
      tasks_recovered: rec?.tasks_recovered ?? null,
    };
    out('Step 7: new leader elected after the crash (consensus status --watch)', failoverEvent);
    checks.push(['new leader elected after the crash', typeof failoverEvent.new_leader === 'string' && failoverEvent.new_leader !== oldLeader]);

    const results = await call('task_results', { orchestration_id: id });
    out('Step 8: task results --format summary', results);
    out(
      'Step 8: what the figures count',
      [
        '  duplicates                 completions applied more than once, counted per task at apply time (even a log entry applied twice would show): must be 0',
        '  executions_started         a lower bound: runs whose report reached the log (applied or refused); a run whose agent crashed before reporting is not counted',
        '  executions_started - completed   re-runs: execution is at-least-once, so side effects deduplicate by Idempotency-Key (the task id)',
        '  stale_completions_refused  late reports the epoch fence refused (e.g. from an agent whose task was reassigned): expected after a crash',
        '  tasks_recovered            assigned tasks taken back from a crashed holder and reassigned',
      ].join('\n'),
    );
    checks.push([`all ${TASKS} tasks completed`, results.completed === TASKS && results.failed === 0]);
    checks.push(['duplicates: 0 (counted at apply time)', results.duplicates === 0]);

    const history = await call('memory_retrieve', { key: 'coordination/raft/election-history' });
    out('Memory: memory retrieve --key coordination/raft/election-history', history);
    const stored = await call('memory_store', { key: 'coordination/raft/demo-run', value: { orchestration_id: id, completed: results.completed, leader_failures: results.leader_failures } });
    out('Memory: memory store --key coordination/raft/demo-run', stored);
    const commit = await call('memory_retrieve', { key: 'coordination/raft/log-state' });
    out('Memory: memory retrieve --key coordination/raft/log-state (system view: commit index, term, leader)', commit);
    checks.push(['replicated memory readable (linearizable)', history.found === true && commit.found === true]);

    const pass = checks.every(([, okk]) => okk);
    out('Verdict', { verdict: pass ? 'PASS' : 'FAIL', checks: Object.fromEntries(checks) });
    return pass ? 0 : 1;
  } finally {
    clearInterval(keepAlive);
    await tools?.close();
    if (!opts.keep && !opts.dataDir) fs.rmSync(dir, { recursive: true, force: true });
  }
}
