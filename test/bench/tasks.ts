// Tasks bench: noop tasks through the real service layer, exactly as the MCP tools run them.
// A Coordinator on a fresh temp data dir, swarm_init, agent_spawn x5 (SQLite per agent,
// durability full, fsync on the threadpool), one task_orchestrate of N noop tasks, then
// task_status polled (linearizable reads) until the orchestration is finished.
//
// Per scenario: tasks/s, submit-to-complete latency per task, and exactly-once accounting
// (lost = total - completed, duplicates). The crash variant crashes the leader (agent_terminate
// mode=crash) once half of the tasks completed and measures the failover.
//
// Clocks: a task's completed_at and the orchestration's created_at are the replicated machine's
// log clock (ms since epoch: the max of proposers' Date.now() seen in the log), read from the
// leader's replica. completed_at is stamped when the completion was *proposed* by the agent's
// worker (its commit and apply come a few ms later). Latency is measured from Date.now() just
// before the orchestrate call, so it includes the orch.create commit.

import fs from 'node:fs';
import { Session } from 'node:inspector/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { RoleChange } from '../../src/host/node-host.js';
import type { Orchestration } from '../../src/machine/types.js';
import { spawnAgent, terminateAgent } from '../../src/service/agents.js';
import { Coordinator } from '../../src/service/coordinator.js';
import type { Swarm } from '../../src/swarm/swarm.js';
import { orchestrate, taskStatus } from '../../src/service/tasks.js';
import type { Durability } from '../../src/storage/sqlite-storage.js';
import { median, parseNumber, percentile, round, sleep } from './stats.js';
import type { BenchArgs, BenchModule } from './types.js';

const AGENTS = 5;
const TARGETS = { tasks_per_s_min: 25_000, lost_max: 0, duplicates_max: 0 };
const POLL_MS = 20;

interface Options {
  counts: number[];
  crash: boolean;
  repeat: number;
  durability: Durability;
  timeoutS: number;
  /** Directory for a V8 CPU profile of each scenario's measured window (orchestrate -> finished). */
  cpuprof: string | null;
}

function parseOptions(args: BenchArgs): Options {
  const durability = (args.durability ?? 'full') as Durability;
  if (!['full', 'normal', 'off'].includes(durability)) throw new Error(`--durability=${durability}: expected full, normal or off`);
  const counts = (args.counts ?? '1000,100000').split(',').map((s) => Number(s));
  if (counts.some((n) => !Number.isInteger(n) || n < 2)) throw new Error(`--counts=${args.counts}: expected a comma list of integers >= 2`);
  const crash = (args.crash ?? 'true') !== 'false';
  return {
    counts,
    crash,
    repeat: parseNumber(args, 'repeat', 1, (n) => Number.isInteger(n) && n >= 1, 'an integer >= 1'),
    durability,
    timeoutS: parseNumber(args, 'timeout', 300, (n) => n > 0, 'seconds > 0'),
    cpuprof: args.cpuprof ?? null,
  };
}

interface Counters {
  cpuUs: number;
  syncs: number;
  bytes: number;
  messages: number;
}

function clusterCounters(swarm: Swarm): Omit<Counters, 'cpuUs'> {
  const c = { syncs: 0, bytes: 0, messages: 0 };
  for (const h of swarm.cluster.hosts.values()) {
    const m = h.metrics();
    c.syncs += m.storage.syncs;
    c.bytes += m.storage.bytesWritten;
    c.messages += m.messagesOut;
  }
  return c;
}

async function scenario(n: number, crash: boolean, o: Options, log: (m: string) => void): Promise<Record<string, unknown>> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-bench-tasks-'));
  const coord = new Coordinator({ dataDir: dir, durability: o.durability });
  const label = `${n} tasks${crash ? ', leader crash at 50%' : ''}`;
  try {
    const { swarm } = coord.init({ name: 'bench', max_agents: AGENTS });
    const tSpawn = performance.now();
    for (let i = 0; i < AGENTS; i++) await spawnAgent(swarm, {});
    await swarm.waitForLeader(5_000);
    log(`${label}: ${AGENTS} agents up after ${round(performance.now() - tSpawn, 0)} ms`);

    // Role changes: the first new leader after the crash ends the failover.
    let crashAt: number | null = null;
    let crashedId: string | null = null;
    let elected: RoleChange | null = null;
    const off = swarm.onRoleChangeEvent((c) => {
      if (crashAt !== null && elected === null && c.role === 'leader' && c.id !== crashedId && c.at >= crashAt) elected = c;
    });

    const indexBefore = swarm.cluster.leader()!.core.log.lastIndex();
    const before: Counters = { ...clusterCounters(swarm), cpuUs: cpuUs() };
    const prof = o.cpuprof ? await startProfile() : null;
    const elu0 = performance.eventLoopUtilization();
    const submitWall = Date.now();
    const t0 = performance.now();
    const res = await orchestrate(swarm, { task: 'bench noop', count: n, executor: { kind: 'noop' } });
    const orchId = res.orchestration_id as string;
    const tSubmitted = performance.now();

    // Crash trigger: watch the leader's replica (cheap, local) for half of the tasks done.
    let crashInfo: Record<string, unknown> | null = null;
    const crashWatch = crash
      ? (async () => {
          for (;;) {
            const l = swarm.cluster.leader();
            const orch = l ? swarm.machines.get(l.id)?.tasks.orchs.get(orchId) : undefined;
            if (orch && orch.counts.completed >= n / 2) {
              crashedId = l!.id;
              crashAt = performance.now();
              const completedAtCrash = orch.counts.completed;
              await terminateAgent(swarm, crashedId, 'crash');
              crashInfo = { crashed: crashedId, completed_at_crash: completedAtCrash };
              return;
            }
            if (performance.now() - t0 > o.timeoutS * 1000) return;
            await sleep(1);
          }
        })()
      : Promise.resolve();

    // Completion: task_status, a linearizable read through the leader, polled.
    // A client retries a read that found no quorum in time (counted: a sign of loop stalls).
    let polls = 0;
    let pollErrors = 0;
    for (;;) {
      if (performance.now() - t0 > o.timeoutS * 1000) throw new Error(`${label}: not finished after ${o.timeoutS} s`);
      let st: Record<string, unknown>;
      try {
        st = await taskStatus(swarm, orchId);
      } catch (e) {
        if ((e as { code?: string }).code !== 'unavailable') throw e;
        pollErrors++;
        log(`${label}: task_status failed (${(e as Error).message}); retrying`);
        continue;
      }
      polls++;
      if (st.status === 'finished') break;
      await sleep(POLL_MS);
    }
    const tDone = performance.now();
    if (prof && o.cpuprof) {
      const file = path.join(o.cpuprof, `tasks-${n}${crash ? '-crash' : ''}-${Date.now()}.cpuprofile`);
      fs.mkdirSync(o.cpuprof, { recursive: true });
      fs.writeFileSync(file, JSON.stringify((await prof.post('Profiler.stop')).profile));
      prof.disconnect();
      log(`${label}: CPU profile of the measured window in ${file}`);
    }
    await crashWatch;
    off();
    const elu = performance.eventLoopUtilization(elu0);
    const after: Counters = { ...clusterCounters(swarm), cpuUs: cpuUs() };

    // Final state from the (current) leader's replica.
    // The crash can land just as the last task finishes: wait for the next leader to read from.
    const leader = await swarm.waitForLeader(10_000);
    const m = swarm.machines.get(leader.id)!;
    const orch = m.tasks.orchs.get(orchId) as Orchestration;
    const lat: number[] = [];
    const completedAt: number[] = [];
    let multi = 0;
    for (let i = 1; i <= n; i++) {
      const t = m.tasks.tasks.get(`${orchId}-${i}`);
      if (!t) continue;
      if (t.completions_applied > 1) multi++;
      if (t.status === 'completed' && t.completed_at !== null) {
        lat.push(t.completed_at - submitWall);
        completedAt.push(t.completed_at);
      }
    }
    completedAt.sort((a, b) => a - b);
    let gap = 0;
    for (let i = 1; i < completedAt.length; i++) gap = Math.max(gap, (completedAt[i] as number) - (completedAt[i - 1] as number));
    const logMs = (orch.finished_at as number) - orch.created_at;
    const entries = leader.core.log.lastIndex() - indexBefore;
    const wallMs = tDone - t0;
    const out: Record<string, unknown> = {
      tasks: n,
      // Throughput on the log clock: orchestration created -> last task completed.
      tasks_per_s: round(n / (logMs / 1000), 0),
      // Wall clock: orchestrate call -> task_status reported finished (includes the poll interval).
      tasks_per_s_wall: round(n / (wallMs / 1000), 0),
      log_ms: logMs,
      wall_ms: round(wallMs, 1),
      submit_ms: round(tSubmitted - t0, 1),
      latency_p50_ms: percentile(lat, 50),
      latency_p99_ms: percentile(lat, 99),
      latency_max_ms: percentile(lat, 100),
      completed: orch.counts.completed,
      failed: orch.counts.failed,
      lost: n - orch.counts.completed - orch.counts.failed,
      duplicates: orch.counts.duplicates + 0,
      tasks_completed_more_than_once: multi,
      stale_completions_refused: orch.counts.stale_completions_refused,
      recovered: orch.counts.recovered,
      completion_gap_max_ms: gap,
      log_entries: entries,
      tasks_per_entry: round(n / Math.max(1, entries), 1),
      fsyncs_per_1k_tasks: round(((after.syncs - before.syncs) / n) * 1000, 2),
      bytes_written_per_task: round((after.bytes - before.bytes) / n, 1),
      messages_per_1k_tasks: round(((after.messages - before.messages) / n) * 1000, 1),
      cpu_us_per_task: round((after.cpuUs - before.cpuUs) / n, 1),
      event_loop_utilization: round(elu.utilization, 3),
      status_polls: polls,
      status_poll_errors: pollErrors,
    };
    if (crash) {
      const e = elected as RoleChange | null;
      out.crash = crashInfo;
      out.failover_ms = e && crashAt !== null ? round(e.at - crashAt, 1) : null;
      out.new_leader = e?.id ?? null;
      out.election_ms = e?.election ? round(e.election.durationMs, 1) : null;
    }
    log(
      `${label}: ${out.tasks_per_s} tasks/s (log clock), wall ${round(wallMs, 0)} ms, p50 ${out.latency_p50_ms} ms, p99 ${out.latency_p99_ms} ms, ` +
        `lost ${out.lost}, duplicates ${out.duplicates}${crash ? `, failover ${out.failover_ms} ms` : ''}`,
    );
    return out;
  } finally {
    coord.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function startProfile(): Promise<Session> {
  const s = new Session();
  s.connect();
  await s.post('Profiler.enable');
  await s.post('Profiler.setSamplingInterval', { interval: 500 });
  await s.post('Profiler.start');
  return s;
}

function cpuUs(): number {
  const c = process.cpuUsage();
  return c.user + c.system;
}

/** Median of each numeric field across repeats (other fields from the first run). */
function summarize(runs: Array<Record<string, unknown>>): Record<string, unknown> {
  if (runs.length === 1) return runs[0] as Record<string, unknown>;
  const out: Record<string, unknown> = { ...runs[0], repeats: runs.length };
  for (const k of Object.keys(runs[0] as object)) {
    const vs = runs.map((r) => r[k]);
    if (vs.every((v) => typeof v === 'number')) out[k] = median(vs as number[]);
  }
  out.samples = runs.map((r) => ({ tasks_per_s: r.tasks_per_s, latency_p99_ms: r.latency_p99_ms, failover_ms: r.failover_ms }));
  return out;
}

async function run(args: BenchArgs, log: (m: string) => void): Promise<Record<string, unknown>> {
  const o = parseOptions(args);
  // RealClock timers and the scheduler's interval are unref'd: keep the process alive.
  const keepAlive = setInterval(() => {}, 1000);
  const results: Record<string, unknown> = {};
  try {
    for (const n of o.counts) {
      for (const crash of o.crash ? [false, true] : [false]) {
        const runs: Array<Record<string, unknown>> = [];
        for (let r = 0; r < o.repeat; r++) runs.push(await scenario(n, crash, o, log));
        results[`n${n}${crash ? '_crash' : ''}`] = summarize(runs);
      }
    }
  } finally {
    clearInterval(keepAlive);
  }
  const all = Object.values(results) as Array<Record<string, number>>;
  const biggest = results[`n${Math.max(...o.counts)}`] as Record<string, number> | undefined;
  return {
    bench: 'tasks',
    at: new Date().toISOString(),
    node: process.version,
    cores: os.availableParallelism(),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    config: { agents: AGENTS, executor: 'noop', durability: o.durability, fsync: 'threadpool', status_poll_ms: POLL_MS, repeat: o.repeat },
    ...results,
    targets: TARGETS,
    meets: {
      tasks_per_s: biggest ? biggest.tasks_per_s! >= TARGETS.tasks_per_s_min : null,
      lost: all.every((r) => r.lost === 0),
      duplicates: all.every((r) => r.duplicates === 0 && r.tasks_completed_more_than_once === 0),
    },
  };
}

export const bench: BenchModule = {
  description:
    `Noop tasks through the service layer (Coordinator, swarm_init, agent_spawn x${AGENTS}, task_orchestrate, task_status polling) ` +
    'on SQLite (durability full): tasks/s, submit-to-complete latency, lost/duplicates, and the same with the leader crashed at 50%.',
  options: {
    counts: { description: 'comma list of task counts (one orchestration each)', default: '1000,100000' },
    crash: { description: 'also run each count with the leader crashed at 50% (true | false)', default: 'true' },
    repeat: { description: 'runs per scenario (numeric fields reported as medians)', default: '1' },
    durability: { description: 'SQLite durability: full | normal | off (normal/off are unsafe)', default: 'full' },
    timeout: { description: 'seconds before a scenario is declared stuck', default: '300' },
    cpuprof: { description: 'write a V8 CPU profile of each measured window into this directory', default: '(none)' },
  },
  run,
};
