// Scale bench (issue 12): how cost per task grows with the task count, what task retention
// gives back, and whether large values stall the event loop.
//
// Tasks: per count, a fresh embedded swarm (Coordinator, 5 agents, SQLite durability full, fsync
// on the threadpool), one orchestration of N noop tasks polled with task_status until finished.
// Reported per count: tasks/s (log clock), CPU us, bytes written and fsyncs per task (all five
// members), peak RSS (sampled every 50 ms) broken down at the peak and every 5 s into V8 heap,
// external / array buffers and native (mem-sampler.ts), each member's SQLite cache settings,
// and per member the task records held and the
// database bytes (file + WAL) before and after retention (consensus_config
// task_retention_orchestrations=0, applied through the log; records counted on every replica),
// with pages and free pages of each file, and again once every member has checkpointed (and
// compacted its log) since retention and released free pages: clock entries are driven until
// each member's checkpoint count moved (at most 4,000 entries or 120 s; members that did not
// are listed), and the entries it took are reported.
// With --crash-at F the leader is crashed (agent_terminate, mode crash) once F of the tasks
// completed and restarted after the run; lost, duplicates and executions come from every
// replica's counters, failover from the wall clock and the new leader's election record; the
// restart's event-loop stall and leader changes; a failed restart or retention step names every
// member's raft state instead of hanging.
//
// Burst: a fresh 5-agent swarm, then `burst` sequential memory_store calls of a `value_kib`
// string value (distinct keys). Reported: elections (leader changes seen) during the burst, the
// event loop's max and p99 delay (perf_hooks.monitorEventLoopDelay, 1 ms resolution) against the
// heartbeat interval, and memory_store latency p50/p99/max. Beside it, the same delay figures
// of an idle Node process running meanwhile (a child doing nothing): what the machine's load
// alone costs a loop, the floor under the burst's figures.
//
// With --lagging 1 a follower is crashed (agent_terminate, mode crash) before the orchestration
// and restarted after it: the leader has compacted far past it, so it installs the state as a
// snapshot (issue 12). Reported: the install's size (characters, parts), the time from the
// restart to installed and to caught up, its restore time, and elections meanwhile.
// Measured 2026-12-01 (2-core VM, load 9-15, --retention 0): 100,000 tasks: 37.6 M characters
// in 1 part (v3), installed 3.3 s after the restart (restore 378 ms); 1,000,000 tasks: 378.5 M
// characters in 10 parts of <= 64 Mi, installed 37.2 s after the restart (restore 1.8 s),
// caught up at the same time; 0 elections and 0 term changes in both. Since the v5 parts (tasks
// as block rows), 19:40 (load 4.8-5.8): 1,000,000 tasks 18.6 M characters in 4 parts, caught up
// 0.87 s after the restart (restore 1 ms), peak RSS 402 MiB (v4 the same day: 12.1 s, 1,625 MiB).
//
// Idle: `swarms` swarms of 5 agents in one process (one Coordinator), nothing proposed; CPU of
// the whole process over `idle_s` seconds as % of one core, RSS, and elections meanwhile.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import Database from 'better-sqlite3';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type { Orchestration } from '../../src/machine/types.js';
import { restartAgent, spawnAgent, terminateAgent } from '../../src/service/agents.js';
import { configure } from '../../src/service/consensus.js';
import { Coordinator } from '../../src/service/coordinator.js';
import { memoryStore } from '../../src/service/memory.js';
import type { Swarm } from '../../src/swarm/swarm.js';
import { orchestrate, taskStatus } from '../../src/service/tasks.js';
import { memSampler } from './mem-sampler.js';
import { parseNumber, percentile, round, sleep } from './stats.js';
import type { BenchArgs, BenchModule } from './types.js';

const AGENTS = 5;
const POLL_MS = 20;
const TARGETS = { burst_elections_max: 0, cost_growth_max: 1.5, idle_cpu_pct_max: 5, idle_rss_mib_max: 500 };

interface Options {
  counts: number[];
  /** Crash the leader (agent_terminate mode crash) once this fraction of the tasks completed; null: no crash. */
  crashAt: number | null;
  /** Crash a follower before the orchestration and restart it after: it installs a snapshot. */
  lagging: boolean;
  /** Measure retention after each run (--retention 0 skips it). */
  retention: boolean;
  burst: number;
  valueKib: number;
  timeoutS: number;
  only: 'all' | 'tasks' | 'burst' | 'idle';
  swarms: number;
  idleS: number;
}

function parseOptions(args: BenchArgs): Options {
  const counts = (args.counts ?? '1000,10000,100000').split(',').map((s) => Number(s));
  if (counts.some((n) => !Number.isInteger(n) || n < 2)) throw new Error(`--counts=${args.counts}: expected a comma list of integers >= 2`);
  const only = (args.only ?? 'all') as Options['only'];
  if (!['all', 'tasks', 'burst', 'idle'].includes(only)) throw new Error(`--only=${only}: expected all, tasks, burst or idle`);
  return {
    counts,
    crashAt: args['crash-at'] === undefined ? null : parseNumber(args, 'crash-at', 0.5, (n) => n > 0 && n < 1, 'a fraction in (0, 1)'),
    lagging: args.lagging === '1' || args.lagging === 'true',
    retention: args.retention !== '0',
    burst: parseNumber(args, 'burst', 100, (n) => Number.isInteger(n) && n >= 1, 'an integer >= 1'),
    valueKib: parseNumber(args, 'value-kib', 1024, (n) => Number.isInteger(n) && n >= 1 && n <= 1024, 'an integer 1..1024'),
    timeoutS: parseNumber(args, 'timeout', 900, (n) => n > 0, 'seconds > 0'),
    only,
    swarms: parseNumber(args, 'swarms', 50, (n) => Number.isInteger(n) && n >= 1, 'an integer >= 1'),
    idleS: parseNumber(args, 'idle-s', 30, (n) => n > 0, 'seconds > 0'),
  };
}

async function freshSwarm(tag: string): Promise<{ coord: Coordinator; swarm: Swarm; dir: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `concord-bench-scale-${tag}-`));
  const coord = new Coordinator({ dataDir: dir, durability: 'full' });
  const { swarm } = coord.init({ name: 'bench', max_agents: AGENTS });
  for (let i = 0; i < AGENTS; i++) await spawnAgent(swarm, {});
  await swarm.waitForLeader(10_000);
  return { coord, swarm, dir };
}

function counters(swarm: Swarm): { syncs: number; bytes: number } {
  const c = { syncs: 0, bytes: 0 };
  for (const h of swarm.cluster.hosts.values()) {
    const m = h.metrics();
    c.syncs += m.storage.syncs;
    c.bytes += m.storage.bytesWritten;
  }
  return c;
}

function cpuUs(): number {
  const c = process.cpuUsage();
  return c.user + c.system;
}

/** Database file plus WAL of each member, in bytes. */
function dbBytes(swarm: Swarm): number[] {
  return [...swarm.cluster.hosts.keys()].map((id) => {
    const f = swarm.registry.memberFile(id);
    let n = 0;
    for (const p of [f, `${f}-wal`]) if (fs.existsSync(p)) n += fs.statSync(p).size;
    return n;
  });
}

/** Each member file's pages, free pages and WAL size, read through a second (read-only) connection. */
function dbPages(swarm: Swarm): Array<{ pages: number; free: number; wal_mib: number }> {
  return [...swarm.cluster.hosts.keys()].map((id) => {
    const f = swarm.registry.memberFile(id);
    const db = new Database(f, { readonly: true, fileMustExist: true });
    try {
      const pages = db.pragma('page_count', { simple: true }) as number;
      const free = db.pragma('freelist_count', { simple: true }) as number;
      const wal = fs.existsSync(`${f}-wal`) ? fs.statSync(`${f}-wal`).size : 0;
      return { pages, free, wal_mib: mib(wal) };
    } finally {
      db.close();
    }
  });
}

const mib = (b: number): number => round(b / (1 << 20), 1);

/**
 * Each member's raft position (leader: its peers' progress), and whether its host is
 * serializing a snapshot for a follower (applies held meanwhile: NodeHost.serializeLater) or
 * waiting for a write to become durable (private fields, read for diagnosis only).
 */
/** Upper bound (ms) of the highest histogram bucket with an observation, and observations past 1 s. */
function slowestFsync(h: { bounds_s: readonly number[]; cumulative: number[] } | undefined): string {
  if (!h) return '?';
  let max = 0;
  let prev = 0;
  h.cumulative.forEach((c, k) => {
    if (c > prev) max = (h.bounds_s[k] ?? Number.POSITIVE_INFINITY) * 1000;
    prev = c;
  });
  const k1 = h.bounds_s.findIndex((b) => b >= 1);
  const over1s = k1 < 0 ? 0 : (h.cumulative[h.cumulative.length - 1] ?? 0) - (h.cumulative[k1] ?? 0);
  return `slowest fsync <= ${max} ms (${over1s} over 1 s)`;
}

/** The kernel's dirty / writeback page cache and I/O pressure (Linux): what a slow fsync waits behind. */
function systemIo(): string {
  try {
    const mi = fs.readFileSync('/proc/meminfo', 'utf8');
    const kb = (k: string): string => `${round(Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(mi)?.[1] ?? Number.NaN) / 1024, 1)} MiB`;
    const p = fs.existsSync('/proc/pressure/io') ? fs.readFileSync('/proc/pressure/io', 'utf8').trim().replace(/\n/g, ' | ') : 'n/a';
    return `dirty ${kb('Dirty')}, writeback ${kb('Writeback')}, io pressure ${p}`;
  } catch {
    return 'n/a';
  }
}

/** Pending async resources of this process by type (FSReqCallback: fs calls on the threadpool). */
function activeResources(): string {
  const n = new Map<string, number>();
  for (const r of process.getActiveResourcesInfo()) n.set(r, (n.get(r) ?? 0) + 1);
  return [...n].map(([k, v]) => `${k} ${v}`).join(', ');
}

function memberStates(swarm: Swarm): string {
  return `${systemIo()}; resources: ${activeResources()}; ` + [...swarm.cluster.hosts.entries()]
    .map(([id, h]) => {
      const st = h.isRunning ? h.status() : null;
      const held = (h as unknown as { serializing?: unknown }).serializing != null;
      const persisting = (h as unknown as { persisting?: boolean }).persisting === true;
      const peers = st && st.role === 'leader' ? ` peers [${st.peers.map((p) => `${p.id} ${p.state} match ${p.match} next ${p.next} silent ${p.ticksSinceResponse} ticks`).join(', ')}] quorum_active ${st.quorumActive} uncommitted ${st.uncommittedEntries}` : '';
      return `${id} ${st ? `${st.role} term ${st.term} last ${st.lastIndex} commit ${st.commit} applied ${st.applied}${peers}` : 'down'}${held ? ' SERIALIZING (applies held)' : ''}${persisting ? ' PERSISTING' : ''}, snapshots for followers ${h.metrics().snapshotsForFollowers}, fsyncs in flight ${(h as unknown as { opts: { storage: { syncsInFlight?: number } } }).opts.storage.syncsInFlight ?? '?'}, ${slowestFsync(h.metrics().storage.syncSeconds)}`;
    })
    .join('; ');
}

/**
 * Each member's SQLite memory settings, read on its own live connection (the storage's private
 * handle: a second connection would show its own defaults): cache_size (negative: KiB, positive:
 * pages), page_size, mmap_size, and the WAL file's size now.
 */
function sqliteSettings(swarm: Swarm): Array<{ id: string; cache_size: number; page_size: number; mmap_size: number; wal_mib: number }> {
  return [...swarm.cluster.hosts.entries()].map(([id, h]) => {
    const db = (h as unknown as { opts: { storage: { db?: Database.Database } } }).opts.storage.db;
    const f = swarm.registry.memberFile(id);
    const wal = fs.existsSync(`${f}-wal`) ? fs.statSync(`${f}-wal`).size : 0;
    if (!db) return { id, cache_size: Number.NaN, page_size: Number.NaN, mmap_size: Number.NaN, wal_mib: mib(wal) };
    return {
      id,
      cache_size: db.pragma('cache_size', { simple: true }) as number,
      page_size: db.pragma('page_size', { simple: true }) as number,
      mmap_size: db.pragma('mmap_size', { simple: true }) as number,
      wal_mib: mib(wal),
    };
  });
}

/**
 * Checkpoints of the current hosts (a restarted member counts from its restart): how many, rows
 * written, and the time each took on the event loop (take rows + store them; the host's
 * snapshot histogram: mean from its sum, max as the upper bound of the highest bucket hit).
 */
function checkpointFigures(swarm: Swarm): { count: number; rows_per_checkpoint: number; ms_mean: number; ms_max_bucket: number } {
  let count = 0;
  let rows = 0;
  let sumS = 0;
  let maxS = 0;
  for (const h of swarm.cluster.hosts.values()) {
    const m = h.metrics();
    count += m.checkpointsTaken;
    rows += m.checkpointRows;
    const s = m.snapshotSeconds;
    sumS += s.sum_s;
    let prev = 0;
    s.cumulative.forEach((c, k) => {
      if (c > prev) maxS = Math.max(maxS, s.bounds_s[k] ?? Number.POSITIVE_INFINITY);
      prev = c;
    });
  }
  return { count, rows_per_checkpoint: count ? round(rows / count, 1) : 0, ms_mean: count ? round((sumS / count) * 1000, 1) : 0, ms_max_bucket: round(maxS * 1000, 0) };
}

/**
 * The leader-crash variant of the tasks scenario: once `atCompleted` tasks completed, the leader
 * is crashed through the service call agent_terminate (mode crash) uses. Measured: wall time from
 * the crash to another member leading (new_leader_ms) and to the first completion committed
 * after it (progress_resumed_ms, on the new leader's replica), the new leader's own failover_ms
 * from its election record, and after the run the restart and catch-up of the crashed member.
 * Lost and duplicates come from every replica's orchestration counters (never assumed).
 */
class LeaderCrash {
  private crashed: { id: string; at: number; completed: number } | null = null;
  private newLeader: { id: string; ms: number } | null = null;
  private progressMs: number | null = null;

  constructor(
    private readonly swarm: Swarm,
    private readonly orchId: string,
    private readonly atCompleted: number,
  ) {}

  async poll(completed: number, log: (m: string) => void): Promise<void> {
    if (this.crashed || completed < this.atCompleted) return;
    const leader = this.swarm.cluster.leader();
    if (!leader) return;
    const at = performance.now();
    await terminateAgent(this.swarm, leader.id, 'crash');
    this.crashed = { id: leader.id, at, completed };
    log(`crashed leader ${leader.id} at ${completed} completed`);
  }

  /** Called every poll interval: notes the new leader and the first completion it commits. */
  watch(): void {
    if (!this.crashed) return;
    const l = this.swarm.cluster.leader();
    if (!this.newLeader && l && l.id !== this.crashed.id) this.newLeader = { id: l.id, ms: performance.now() - this.crashed.at };
    if (this.newLeader && this.progressMs === null) {
      const o = this.swarm.machines.get(this.newLeader.id)?.tasks.orchs.get(this.orchId);
      // Strictly more than any replica could have seen at the crash: committed under the new leader.
      if (o && o.counts.completed > this.maxCompletedAtCrash()) this.progressMs = performance.now() - this.crashed.at;
    }
  }

  private completedAtCrash: number | null = null;
  private maxCompletedAtCrash(): number {
    if (this.completedAtCrash === null) {
      // The crashed replica's machine stops applying at the crash: its count is what was applied there.
      const m = this.swarm.machines.get((this.crashed as { id: string }).id);
      this.completedAtCrash = m?.tasks.orchs.get(this.orchId)?.counts.completed ?? (this.crashed as { completed: number }).completed;
    }
    return this.completedAtCrash;
  }

  async finish(timeoutMs: number, log: (m: string) => void): Promise<Record<string, unknown>> {
    if (!this.crashed) throw new Error('--crash-at: the run finished before the leader was crashed');
    const { id } = this.crashed;
    // What the restart costs the other members: the event loop's longest stall (five members
    // share it) and leader changes while it catches up.
    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    const termBefore = this.swarm.cluster.leader()?.core.term ?? null;
    let leaderChanges = 0;
    const off = this.swarm.onRoleChangeEvent((c) => {
      if (c.role === 'leader') leaderChanges++;
    });
    const t0 = performance.now();
    // Every 2 s until a leader is known after the catch-up: what each member is doing.
    const watch = setInterval(() => log(`restart of ${id}, ${round(performance.now() - t0, 0)} ms: loop stalled up to ${round(loop.max / 1e6, 0)} ms so far, heap ${mib(process.memoryUsage().heapUsed)} MiB; ${memberStates(this.swarm)}`), 2000).unref();
    let termAfter: number;
    let catchUpMs: number;
    try {
      await restartAgent(this.swarm, id);
      // Caught up: its replica applied the orchestration's end.
      for (;;) {
        const o = this.swarm.machines.get(id)?.tasks.orchs.get(this.orchId);
        if (o?.finished_at != null) break;
        if (performance.now() - t0 > timeoutMs) throw new Error(`crashed leader ${id}: not caught up ${timeoutMs} ms after its restart`);
        await sleep(POLL_MS);
      }
      catchUpMs = performance.now() - t0;
      termAfter = (await this.swarm.waitForLeader(10_000)).core.term;
    } catch (e) {
      throw new Error(`restart of crashed leader ${id} (${round(performance.now() - t0, 0)} ms after it; event loop stalled up to ${round(loop.max / 1e6, 0)} ms, ${leaderChanges} leader changes; ${memberStates(this.swarm)}): ${(e as Error).message}`);
    } finally {
      clearInterval(watch);
      loop.disable();
      off();
    }
    const perMember = [...this.swarm.machines.entries()].map(([mid, m]) => {
      const o = m.tasks.orchs.get(this.orchId) as Orchestration;
      return { id: mid, completed: o.counts.completed, failed: o.counts.failed, duplicates: o.counts.duplicates, executions_started: o.counts.executions_started, stale_completions_refused: o.counts.stale_completions_refused, recovered: o.counts.recovered };
    });
    const newLeaderId = this.newLeader?.id ?? null;
    const rec = newLeaderId ? [...(this.swarm.machines.get(newLeaderId)?.elections ?? [])].reverse().find((e) => e.new_leader === newLeaderId) : undefined;
    log(`restarted ${id}, caught up in ${round(catchUpMs, 0)} ms (event loop stalled up to ${round(loop.max / 1e6, 0)} ms, ${leaderChanges} leader changes meanwhile)`);
    return {
      crashed_leader: id,
      crashed_at_completed: this.crashed.completed,
      new_leader: newLeaderId,
      new_leader_ms: this.newLeader ? round(this.newLeader.ms, 0) : null,
      progress_resumed_ms: this.progressMs === null ? null : round(this.progressMs, 0),
      election_failover_ms: rec?.failover_ms ?? null,
      election_cause: rec?.cause ?? null,
      restart_catch_up_ms: round(catchUpMs, 0),
      restart_loop_delay_max_ms: round(loop.max / 1e6, 0),
      restart_leader_changes: leaderChanges,
      restart_term_change: termBefore === null ? null : termAfter - termBefore,
      // How the restarted member caught up: from the log, or from a JSON snapshot of the whole
      // state made on demand (the others' checkpoints had compacted past its log).
      restart_from: this.swarm.cluster.hosts.get(id)?.metrics().startState?.from ?? null,
      restart_snapshots_installed: this.swarm.cluster.hosts.get(id)?.metrics().snapshotsInstalled ?? null,
      snapshots_for_followers: [...this.swarm.cluster.hosts.values()].reduce((a, h) => a + h.metrics().snapshotsForFollowers, 0),
      members_agree: perMember.every((p) => JSON.stringify({ ...p, id: '' }) === JSON.stringify({ ...perMember[0], id: '' })),
      per_member: perMember,
    };
  }
}

/**
 * Restart the follower crashed before the run and time its snapshot install (the leader has
 * compacted past it) and catch-up: wall time from agent_restart; size and restore time from its
 * host's record of the install; elections from the replicated history's total.
 */
async function laggingInstall(swarm: Swarm, id: string, orchId: string, timeoutMs: number, log: (m: string) => void): Promise<Record<string, unknown>> {
  const leader = await swarm.waitForLeader(10_000);
  // Compact past it: entries until the leader's in-memory log starts after what it applied
  // (checkpoints keep the last compaction-threshold entries for followers a little behind).
  const behindAt = swarm.machines.get(id)?.appliedIndex ?? 0;
  const tc = performance.now();
  let clockEntries = 0;
  while (leader.core.log.snapshotIndex <= behindAt && clockEntries < 50_000) {
    await swarm.proposeOk({ t: 'clock' });
    clockEntries++;
  }
  log(`lagging ${id} at ${behindAt}; leader compacted to ${leader.core.log.snapshotIndex} after ${clockEntries} clock entries (${round(performance.now() - tc, 0)} ms)`);
  const electionsBefore = swarm.machines.get(leader.id)!.electionTotals.elections;
  const termBefore = leader.core.term;
  const t0 = performance.now();
  await restartAgent(swarm, id);
  let installedMs: number | null = null;
  for (;;) {
    const h = swarm.cluster.hosts.get(id);
    if (installedMs === null && h && h.metrics().snapshotsInstalled > 0) installedMs = performance.now() - t0;
    // Caught up; without an install if the leader still held the entries it missed.
    if (swarm.machines.get(id)?.tasks.orchs.get(orchId)?.finished_at != null) break;
    if (performance.now() - t0 > timeoutMs) throw new Error(`lagging ${id}: not installed and caught up ${timeoutMs} ms after its restart`);
    await sleep(POLL_MS);
  }
  const caughtUpMs = performance.now() - t0;
  const inst = swarm.cluster.hosts.get(id)!.metrics().lastInstall ?? { chars: null, parts: null, restoreMs: null };
  const now = await swarm.waitForLeader(10_000);
  const out = {
    member: id,
    compacted_with_clock_entries: clockEntries,
    snapshot_chars: inst.chars,
    snapshot_parts: inst.parts,
    installed: installedMs !== null,
    restart_to_installed_ms: installedMs === null ? null : round(installedMs, 0),
    restart_to_caught_up_ms: round(caughtUpMs, 0),
    restore_ms: inst.restoreMs === null ? null : round(inst.restoreMs, 0),
    elections_during_install: swarm.machines.get(now.id)!.electionTotals.elections - electionsBefore,
    term_changes_during_install: now.core.term - termBefore,
  };
  log(`lagging ${id}: installed ${inst.chars} chars in ${inst.parts} parts, ${out.restart_to_installed_ms} ms after restart (restore ${out.restore_ms} ms), caught up at ${out.restart_to_caught_up_ms} ms, elections ${out.elections_during_install}`);
  return out;
}

async function tasksScenario(n: number, o: Options, log: (m: string) => void): Promise<Record<string, unknown>> {
  const { coord, swarm, dir } = await freshSwarm(`n${n}`);
  try {
    let lagging: string | null = null;
    if (o.lagging) {
      const l = await swarm.waitForLeader(10_000);
      lagging = [...swarm.cluster.hosts.keys()].find((id) => id !== l.id)!;
      await terminateAgent(swarm, lagging, 'crash');
      log(`${n} tasks: follower ${lagging} crashed before the run`);
    }
    let phase = 'run';
    let completedSeen = 0;
    const mem = memSampler({ note: () => `${phase} ${completedSeen}` });
    const c0 = counters(swarm);
    const cpu0 = cpuUs();
    const t0 = performance.now();
    const res = await orchestrate(swarm, { task: 'scale noop', count: n, executor: { kind: 'noop' } });
    const orchId = res.orchestration_id as string;
    let pollErrors = 0;
    const crash = o.crashAt === null ? null : new LeaderCrash(swarm, orchId, Math.ceil(o.crashAt * n));
    for (;;) {
      if (performance.now() - t0 > o.timeoutS * 1000) throw new Error(`${n} tasks: not finished after ${o.timeoutS} s`);
      try {
        const st = await taskStatus(swarm, orchId);
        completedSeen = st.completed as number;
        if (st.status === 'finished') break;
        if (crash) await crash.poll(st.completed as number, log);
      } catch (e) {
        if ((e as { code?: string }).code !== 'unavailable') throw e;
        pollErrors++;
      }
      if (crash) crash.watch();
      await sleep(POLL_MS);
    }
    const wallMs = performance.now() - t0;
    const cpu = cpuUs() - cpu0;
    const c1 = counters(swarm);
    const leader = await swarm.waitForLeader(10_000);
    const orch = swarm.machines.get(leader.id)!.tasks.orchs.get(orchId) as Orchestration;
    const logMs = (orch.finished_at as number) - orch.created_at;
    // The crashed member comes back (agent_restart) and catches up before retention is measured.
    phase = crash ? 'restart' : phase;
    const crashOut = crash ? await crash.finish(o.timeoutS * 1000, log) : null;
    phase = lagging ? 'lagging' : phase;
    const laggingOut = lagging ? await laggingInstall(swarm, lagging, orchId, o.timeoutS * 1000, log) : null;
    const recordsBefore = [...swarm.machines.values()].map((m) => m.tasks.tasks.size);
    const dbBefore = dbBytes(swarm);
    const pagesBefore = dbPages(swarm);
    const memRun = mem.stop();
    log(`${n} tasks: peak RSS ${memRun.peak.rss_mib} MiB at ${memRun.peak.t_s} s (${memRun.peak.note}): heap ${memRun.peak.heap_used_mib}/${memRun.peak.heap_total_mib} MiB, external ${memRun.peak.external_mib} (array buffers ${memRun.peak.array_buffers_mib}), native ${memRun.peak.native_mib}; sqlite ${JSON.stringify(sqliteSettings(swarm)[0])} per member`);
    const checkpoints = checkpointFigures(swarm);
    if (!o.retention) {
      const out = { tasks: n, tasks_per_s: round(n / (logMs / 1000), 0), wall_ms: round(wallMs, 0), completed: orch.counts.completed, lost: n - orch.counts.completed - orch.counts.failed, duplicates: orch.counts.duplicates, peak_rss_mib: memRun.peak.rss_mib, memory: memRun, sqlite_per_member: sqliteSettings(swarm), ...(crashOut ? { leader_crash: crashOut } : {}), ...(laggingOut ? { lagging_install: laggingOut } : {}) };
      log(`${n} tasks: ${out.tasks_per_s} tasks/s (retention not measured: --retention 0)`);
      return out;
    }

    // Retention through the log: every replica drops the records (chunked over entries).
    const rss2 = memSampler();
    const tr = performance.now();
    const loopR = monitorEventLoopDelay({ resolution: 10 });
    loopR.enable();
    // A slow configure (seconds after a leader crash and restart): every member's raft state
    // each second while it waits, logged, so a stuck proposal shows where it is stuck.
    const watch = setInterval(() => log(`retention configure waiting ${round(performance.now() - tr, 0)} ms: ${memberStates(swarm)}`), 1000).unref();
    try {
      await configure(swarm, { task_retention_orchestrations: 0 });
    } catch (e) {
      loopR.disable();
      const l = swarm.cluster.leader();
      throw new Error(`${n} tasks: retention's configure failed after ${round(performance.now() - tr, 0)} ms (event loop stalled up to ${round(loopR.max / 1e6, 0)} ms meanwhile; leader now ${l?.id ?? 'none'}, term ${l?.core.term ?? '?'}; heap ${mib(process.memoryUsage().heapUsed)} MiB; ${memberStates(swarm)}): ${(e as Error).message}`);
    } finally {
      clearInterval(watch);
    }
    loopR.disable();
    const configureMs = performance.now() - tr;
    // Compaction moves one chunk per applied entry: keep entries coming (clock entries).
    while ([...swarm.machines.values()].some((m) => m.tasks.tasks.size > 0)) {
      if (performance.now() - tr > 120_000) throw new Error(`${n} tasks: retention not done after 120 s`);
      await swarm.proposeOk({ t: 'clock' });
    }
    const retentionMs = performance.now() - tr;
    await sleep(200);
    const recordsAfter = [...swarm.machines.values()].map((m) => m.tasks.tasks.size);
    const dbAfter = dbBytes(swarm);
    const pagesAfter = dbPages(swarm);
    const peakRetention = rss2.stop().peak.rss_mib;
    // A member checkpoints (and compacts its log) after 1,000-1,500 applied entries (seeded
    // jitter), the leader after twice that: drive entries until each took one after retention,
    // so every member's file holds the post-retention state, then let free pages go.
    const tc = performance.now();
    const takenAt = (h: { metrics(): { snapshotsTaken: number } }) => h.metrics().snapshotsTaken;
    const taken0 = new Map([...swarm.cluster.hosts].map(([id, h]) => [id, takenAt(h)]));
    const pending = () => [...swarm.cluster.hosts].filter(([id, h]) => takenAt(h) <= (taken0.get(id) ?? Infinity)).map(([id]) => id);
    let drivenEntries = 0;
    while (pending().length > 0 && drivenEntries < 4000 && performance.now() - tc < 120_000) {
      await swarm.proposeOk({ t: 'clock' });
      drivenEntries++;
    }
    const notCheckpointed = pending();
    await sleep(3000);
    const dbCompacted = dbBytes(swarm);
    const pagesCompacted = dbPages(swarm);
    const compactionMs = performance.now() - tc;
    const out = {
      tasks: n,
      tasks_per_s: round(n / (logMs / 1000), 0),
      wall_ms: round(wallMs, 0),
      completed: orch.counts.completed,
      lost: n - orch.counts.completed - orch.counts.failed,
      duplicates: orch.counts.duplicates,
      cpu_us_per_task: round(cpu / n, 1),
      bytes_written_per_task: round((c1.bytes - c0.bytes) / n, 1),
      fsyncs_per_1k_tasks: round(((c1.syncs - c0.syncs) / n) * 1000, 2),
      peak_rss_mib: memRun.peak.rss_mib,
      memory: memRun,
      sqlite_per_member: sqliteSettings(swarm),
      checkpoints,
      status_poll_errors: pollErrors,
      ...(crashOut ? { leader_crash: crashOut } : {}),
      ...(laggingOut ? { lagging_install: laggingOut } : {}),
      retention: {
        ms: round(retentionMs, 0),
        configure_ms: round(configureMs, 0),
        configure_loop_delay_max_ms: round(loopR.max / 1e6, 0),
        task_records_per_member_before: recordsBefore,
        task_records_per_member_after: recordsAfter,
        db_mib_per_member_before: dbBefore.map(mib),
        db_mib_per_member_after: dbAfter.map(mib),
        db_pages_per_member_before: pagesBefore,
        db_pages_per_member_after: pagesAfter,
        entries_until_every_member_checkpointed: drivenEntries,
        members_not_checkpointed_after_retention: notCheckpointed,
        db_mib_per_member_after_compaction: dbCompacted.map(mib),
        db_pages_per_member_after_compaction: pagesCompacted,
        compaction_wall_ms: round(compactionMs, 0),
        rss_mib_after: mib(process.memoryUsage.rss()),
        peak_rss_mib: peakRetention,
      },
    };
    log(`${n} tasks: ${out.tasks_per_s} tasks/s, ${out.cpu_us_per_task} CPU us/task, peak RSS ${out.peak_rss_mib} MiB, checkpoints ${checkpoints.count} of ${checkpoints.ms_mean} ms mean (max bucket ${checkpoints.ms_max_bucket} ms), records ${recordsBefore[0]} -> ${recordsAfter[0]} in ${out.retention.ms} ms`);
    if (crashOut) log(`${n} tasks, leader crashed at ${crashOut.crashed_at_completed} completed: lost ${out.lost}, duplicates ${out.duplicates}, new leader after ${crashOut.new_leader_ms} ms, progress after ${crashOut.progress_resumed_ms} ms`);
    return out;
  } finally {
    coord.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * An idle Node process measuring its own event-loop delay until told to stop: the delay the
 * machine's load alone causes (on the shared 2-core VM at load 20: tens to hundreds of ms).
 */
function idleLoopProbe(): { stop: () => Promise<{ max_ms: number; p99_ms: number } | null> } {
  const src = `const { monitorEventLoopDelay } = require('node:perf_hooks');
const h = monitorEventLoopDelay({ resolution: 1 }); h.enable();
process.stdin.on('data', () => { h.disable(); process.stdout.write(JSON.stringify({ max_ms: h.max / 1e6, p99_ms: h.percentile(99) / 1e6 })); process.exit(0); });
process.stdout.write('ready\\n');`;
  const child = spawn(process.execPath, ['-e', src], { stdio: ['pipe', 'pipe', 'ignore'] });
  let out = '';
  const ready = new Promise<void>((resolve) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.startsWith('ready\n')) resolve();
    });
    child.on('exit', () => resolve());
  });
  const done = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  return {
    stop: async () => {
      await ready;
      child.stdin.end('stop');
      await done;
      try {
        const r = JSON.parse(out.slice('ready\n'.length)) as { max_ms: number; p99_ms: number };
        return { max_ms: round(r.max_ms, 1), p99_ms: round(r.p99_ms, 1) };
      } catch {
        return null;
      }
    },
  };
}

async function burstScenario(o: Options, log: (m: string) => void): Promise<Record<string, unknown>> {
  const { coord, swarm, dir } = await freshSwarm('burst');
  try {
    let leaderChanges = 0;
    const off = swarm.onRoleChangeEvent((c) => {
      if (c.role === 'leader') leaderChanges++;
    });
    const value = 'v'.repeat(o.valueKib * 1024 - 16);
    const h = monitorEventLoopDelay({ resolution: 1 });
    const probe = idleLoopProbe();
    const cpu0 = cpuUs();
    h.enable();
    const lat: number[] = [];
    let errors = 0;
    const t0 = performance.now();
    for (let i = 0; i < o.burst; i++) {
      const t = performance.now();
      try {
        await memoryStore(swarm, { key: `burst/${i}`, value });
      } catch (e) {
        errors++;
        log(`burst write ${i} failed: ${(e as Error).message}`);
      }
      lat.push(performance.now() - t);
    }
    const wallMs = performance.now() - t0;
    h.disable();
    off();
    const idle = await probe.stop();
    const out = {
      writes: o.burst,
      value_bytes: value.length + 2,
      errors,
      elections: leaderChanges,
      heartbeat_interval_ms: swarm.config().heartbeat_interval,
      election_timeout_min_ms: swarm.config().election_timeout_min,
      event_loop_delay_max_ms: round(h.max / 1e6, 1),
      event_loop_delay_p99_ms: round(h.percentile(99) / 1e6, 1),
      idle_process_loop_delay_max_ms: idle?.max_ms ?? null,
      idle_process_loop_delay_p99_ms: idle?.p99_ms ?? null,
      latency_p50_ms: round(percentile(lat, 50), 1),
      latency_p99_ms: round(percentile(lat, 99), 1),
      latency_max_ms: round(percentile(lat, 100), 1),
      writes_per_s: round(o.burst / (wallMs / 1000), 1),
      cpu_ms_per_write: round((cpuUs() - cpu0) / 1000 / o.burst, 1),
      load_average_1m: round(os.loadavg()[0] as number, 2),
    };
    log(
      `burst: ${o.burst} x ${o.valueKib} KiB, elections ${out.elections}, loop delay max ${out.event_loop_delay_max_ms} ms ` +
        `(an idle process meanwhile: ${out.idle_process_loop_delay_max_ms} ms), p99 latency ${out.latency_p99_ms} ms`,
    );
    return out;
  } finally {
    coord.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function idleScenario(o: Options, log: (m: string) => void): Promise<Record<string, unknown>> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-bench-scale-idle-'));
  const coord = new Coordinator({ dataDir: dir, durability: 'full' });
  try {
    const rss0 = process.memoryUsage.rss();
    const t0 = performance.now();
    const swarms: Swarm[] = [];
    for (let i = 0; i < o.swarms; i++) {
      const { swarm } = coord.init({ name: `idle-${i}`, max_agents: AGENTS });
      for (let a = 0; a < AGENTS; a++) await spawnAgent(swarm, {});
      await swarm.waitForLeader(30_000);
      swarms.push(swarm);
    }
    const setupMs = performance.now() - t0;
    log(`idle: ${o.swarms} swarms x ${AGENTS} agents up in ${round(setupMs / 1000, 1)} s`);
    // Let startup work (promotions, first snapshots) settle before measuring.
    await sleep(3_000);
    let elections = 0;
    const offs = swarms.map((s) =>
      s.onRoleChangeEvent((c) => {
        if (c.role === 'leader') elections++;
      }),
    );
    const rss = memSampler({ rssOnly: true });
    const cpu0 = cpuUs();
    const w0 = performance.now();
    await sleep(o.idleS * 1000);
    const cpuPct = ((cpuUs() - cpu0) / 1000 / (performance.now() - w0)) * 100;
    const peak = rss.stop().peak.rss_mib;
    for (const off of offs) off();
    const out = {
      swarms: o.swarms,
      members: o.swarms * AGENTS,
      setup_s: round(setupMs / 1000, 1),
      idle_s: o.idleS,
      cpu_pct_of_one_core: round(cpuPct, 1),
      cpu_pct_per_swarm: round(cpuPct / o.swarms, 3),
      rss_mib: mib(process.memoryUsage.rss()),
      peak_rss_mib: peak,
      rss_mib_before_swarms: mib(rss0),
      elections_while_idle: elections,
      load_average_1m: round(os.loadavg()[0] as number, 2),
    };
    log(`idle: ${out.cpu_pct_of_one_core} % of one core, RSS ${out.rss_mib} MiB, elections ${elections}`);
    return out;
  } finally {
    coord.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function run(args: BenchArgs, log: (m: string) => void): Promise<Record<string, unknown>> {
  const o = parseOptions(args);
  const keepAlive = setInterval(() => {}, 1000);
  const tasks: Record<string, unknown> = {};
  let burst: Record<string, unknown> | null = null;
  let idle: Record<string, unknown> | null = null;
  try {
    if (o.only === 'all' || o.only === 'tasks') for (const n of o.counts) tasks[`n${n}`] = await tasksScenario(n, o, log);
    if (o.only === 'all' || o.only === 'burst') burst = await burstScenario(o, log);
    if (o.only === 'all' || o.only === 'idle') idle = await idleScenario(o, log);
  } finally {
    clearInterval(keepAlive);
  }
  const runs = Object.values(tasks) as Array<{ cpu_us_per_task: number }>;
  const growth = runs.length >= 2 ? round(runs[runs.length - 1]!.cpu_us_per_task / runs[0]!.cpu_us_per_task, 2) : null;
  return {
    bench: 'scale',
    at: new Date().toISOString(),
    node: process.version,
    cores: os.availableParallelism(),
    load_average_1m_at_end: round(os.loadavg()[0] as number, 2),
    config: { agents: AGENTS, executor: 'noop', durability: 'full', fsync: 'threadpool' },
    tasks,
    cpu_per_task_growth: growth,
    burst,
    idle,
    targets: TARGETS,
    meets: {
      burst_elections: burst ? burst.elections === 0 : null,
      burst_loop_delay_below_heartbeat: burst ? (burst.event_loop_delay_max_ms as number) < (burst.heartbeat_interval_ms as number) : null,
      cost_growth: growth === null ? null : growth <= TARGETS.cost_growth_max,
      idle_cpu: idle ? (idle.cpu_pct_of_one_core as number) <= TARGETS.idle_cpu_pct_max : null,
      idle_rss: idle ? (idle.rss_mib as number) <= TARGETS.idle_rss_mib_max : null,
    },
  };
}

export const bench: BenchModule = {
  description:
    `Scale: noop tasks at growing counts on a ${AGENTS}-agent embedded swarm (tasks/s, CPU us, bytes and fsyncs per task, peak RSS, ` +
    'task records and database bytes per member before/after retention), then a burst of large memory_store writes ' +
    '(elections, event-loop max delay against the heartbeat interval, latency), then idle swarms in one process (CPU % of a core, RSS).',
  options: {
    counts: { description: 'comma list of task counts (one orchestration each, fresh swarm each)', default: '1000,10000,100000' },
    retention: { description: '0: skip the retention measurement after each task run', default: '1' },
    lagging: { description: '1: crash a follower before each orchestration, restart it after, time its snapshot install', default: '0' },
    'crash-at': { description: 'crash the leader (agent_terminate crash) once this fraction of the tasks completed; restarted after the run', default: '(no crash)' },
    burst: { description: 'memory_store writes in the burst', default: '100' },
    'value-kib': { description: 'size of each burst value in KiB (1..1024)', default: '1024' },
    only: { description: 'all | tasks | burst | idle', default: 'all' },
    swarms: { description: 'idle swarms of 5 agents in one process', default: '50' },
    'idle-s': { description: 'seconds the idle swarms are measured', default: '30' },
    timeout: { description: 'seconds before a task scenario is declared stuck', default: '900' },
  },
  run,
};
