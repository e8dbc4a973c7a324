import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import type { ClusterBackend } from '../host/cluster-backend.js';
import { PROCESS_TURN_BUDGET } from '../host/turn-budget.js';
import { LocalCluster } from '../host/local-cluster.js';
import type { NodeHost, RoleChange, StateMachine } from '../host/node-host.js';
import { CoordinationMachine, type OpResult } from '../machine/coordination-machine.js';
import { parseTaskId } from '../machine/task-table.js';
import { DEFAULT_SWARM_CONFIG, type CompleteGroup, type CompleteItem, type ElectionCause, type Op, type SwarmConfig } from '../machine/types.js';
import { majority } from '../raft/quorum.js';
import type { ConfState, RaftConfig } from '../raft/types.js';
import type { CheckpointMode, SqliteStorage, Durability } from '../storage/sqlite-storage.js';
import { RealClock } from '../util/clock.js';
import { TickWheel } from '../util/tick-wheel.js';
import { logger } from '../util/logger.js';
import { Prng } from '../util/prng.js';
import { UserError } from '../util/errors.js';
import { openMemberStorage } from './member-storage.js';
import { Proposer, pause, type ProposeOptions } from './proposer.js';
import { SwarmRegistry, type RegistryData } from './registry.js';
import { Scheduler } from './scheduler.js';
import { AgentWorker } from './worker.js';

/**
 * Milliseconds per Raft tick. 2 ms gives 75 distinct election timeouts in 150-300 ms, so two
 * followers rarely time out in the same tick: such a tie can split the vote and cost a whole
 * extra election timeout (it was the failover p99 tail at 10 ms ticks).
 */
export const TICK_MS = 2;

/**
 * Tick timer period of an embedded member: ticks still follow elapsed time at TICK_MS
 * resolution, counted before every message and at each due heartbeat or election timeout;
 * the timer only bounds how long an idle member sleeps. NodeHost caps it below its catch-up
 * limit (64 ms at the default 150 ms minimum election timeout), so this asks for that cap.
 * At TICK_MS, 250 idle members in one process woke it 125,000 times a second.
 */
export const EMBEDDED_TICK_TIMER_MS = 1000;
/**
 * A leader's heartbeat and an idle member's bookkeeping may wake up to this late, on a
 * 10 ms grid shared by every swarm: their rounds then run in the same turns of the event loop
 * (a few per grid point for the whole process, not a few per swarm). Election timeouts keep
 * their TICK_MS resolution.
 */
export const EMBEDDED_TICK_SLACK_MS = 10;

/**
 * Embedded members' WAL checkpoints run on the worker thread: inline, SQLite checkpoints
 * inside the commit that crosses 1000 pages, holding the loop every member shares. Measured
 * (100 x 1 MiB memory_store, load 1.5-2.1, alternating runs): loop delay max 76-85 ms and p99
 * 57-60 ms, against 137-144 and 103-109 ms inline; 50 idle swarms: the same CPU (8.2, 8.4 %
 * against 7.7, 8.0 %) and 0 elections either way. Cluster members keep 'inline' (see
 * CheckpointMode).
 */
const EMBEDDED_CHECKPOINT: CheckpointMode = 'worker';

/** One timer wheel for every embedded member of every swarm in this process. */
let sharedTickWheel: TickWheel | null = null;
/** The process's tick wheel (benchmarks read its wakeups: `fired`). */
export function processTickWheel(): TickWheel {
  sharedTickWheel ??= new TickWheel(new RealClock(), TICK_MS, EMBEDDED_TICK_SLACK_MS);
  return sharedTickWheel;
}

export interface SwarmOptions {
  durability?: Durability;
  /** Cluster mode: the one member this process runs; its peers run in other processes. */
  backend?: (machineFor: (id: string) => StateMachine) => ClusterBackend;
  /** Idle timeout this process's client session asks for (one-shot CLI runs ask for less). */
  sessionTimeoutMs?: number;
}

/** Kinds of change Swarm.onChange reports. */
export type SwarmChange = 'role' | 'election' | 'membership';

/** Cause of the next election, when this process caused it (step-down, transfer, ...). */
interface ExpectedCause {
  cause: ElectionCause;
  until: number;
}

/**
 * One swarm = one Raft group of agents, embedded in this process: members, their SQLite
 * files, the replicated machines, the leader-side scheduler and each agent's worker.
 */
export class Swarm {
  readonly cluster: ClusterBackend;
  readonly proposer: Proposer;
  readonly machines = new Map<string, CoordinationMachine>();
  readonly workers = new Map<string, AgentWorker>();
  readonly scheduler: Scheduler;
  private lastLeader: string | null = null;
  private expectedCause: ExpectedCause | null = null;
  private readonly roleListeners: Array<(c: RoleChange) => void> = [];
  private readonly changeListeners = new Set<(c: SwarmChange) => void>();
  private closed = false;
  /** Members being created by agent_spawn: the only ones allowed to start on a new file. */
  private readonly freshMembers = new Set<string>();
  private readonly durability: Durability;

  constructor(
    readonly registry: SwarmRegistry,
    opts: SwarmOptions = {},
  ) {
    this.durability = opts.durability ?? 'full';
    const machineFor = (id: string): CoordinationMachine => {
      const m = new CoordinationMachine({
        onAssigned: (items) => this.workerFor(id).enqueue(items),
        notifyAgent: id,
        onElectionRecorded: () => this.emitChange('election'),
        onConfig: (c) => {
          const host = this.cluster.hosts.get(id);
          host?.reconfigure(raftTiming(c));
          host?.setCompactionThreshold(c.log_compaction_threshold);
        },
      });
      // Any apply (or snapshot install) may create work for an idle, sleeping scheduler (not
      // yet constructed if a backend opens its member at once).
      const apply = m.apply.bind(m);
      const restore = m.restore.bind(m);
      m.apply = (e) => {
        const r = apply(e);
        this.scheduler?.wake();
        this.workers.get(id)?.applied();
        return r;
      };
      m.restore = (data) => {
        restore(data);
        this.scheduler?.wake();
      };
      this.machines.set(id, m);
      return m;
    };
    if (opts.backend) this.cluster = opts.backend(machineFor);
    else this.cluster = new LocalCluster({
      ids: [],
      clock: new RealClock(),
      prng: new Prng(Date.now() >>> 0),
      // fsync on the libuv threadpool: five members' fsyncs overlap instead of queueing on the loop.
      storageFor: (id) => this.openStorage(id, this.durability),
      machineFor,
      tickMs: TICK_MS,
      tickTimerMs: EMBEDDED_TICK_TIMER_MS,
      tickClock: processTickWheel(),
      tickSlackMs: EMBEDDED_TICK_SLACK_MS,
      // Every idle member of every swarm wakes on one grid of heartbeat intervals: 50 idle
      // swarms then wake the process 20 times a second, not at every 10 ms grid point.
      alignTicks: true,
      raft: raftTiming(undefined),
      compactionThreshold: 1000,
      // Only for a storage without checkpoints (which compacts by whole JSON snapshots): take
      // one once the log since the last is a quarter of the state's size. Member files keep
      // checkpoints, which cost the rows changed, not the state, and ignore this.
      compactionLogToSnapshotRatio: 0.25,
      serializeMessages: false,
      // An idle follower reads every other heartbeat (the ones that ask no answer) when it next
      // wakes, not at once: with followers sleeping until their deadline on the stall-measuring
      // wheel, each is woken every other heartbeat interval instead of every one.
      holdIdleHeartbeats: true,
      diskReserveBytes: diskReserveFromEnv(),
      // Heavy items (1 MiB writes, applies, checkpoints) one per loop iteration (see TurnBudget).
      turnBudget: PROCESS_TURN_BUDGET,
    });
    this.proposer = new Proposer(
      this.cluster,
      `concord-${randomUUID()}`,
      () => {
        if (this.activeMembers().length === 0) {
          throw new UserError('unavailable', `swarm ${this.name} has no agents yet; agent_spawn at least one (a majority must be running)`);
        }
        if (this.waitingForBootstrap()) throw new UserError('unavailable', this.bootstrapSummary());
      },
      opts.sessionTimeoutMs ?? null,
    );
    this.scheduler = new Scheduler(this);
    this.cluster.onRoleChange((c) => this.onRoleChange(c));
    registry.onSaved = () => this.emitChange('membership');
  }

  get name(): string {
    return this.registry.data.name;
  }

  get data(): RegistryData {
    return this.registry.data;
  }

  /**
   * Start every member that was running when the process last stopped. One that cannot start
   * (its file lost, replaced or unreadable) is marked crashed with the reason logged; the
   * others keep serving if they are a majority.
   */
  open(): void {
    for (const [id, m] of Object.entries(this.data.members)) {
      if (m.state !== 'active' || !this.cluster.canRun(id)) continue;
      try {
        this.startMember(id);
      } catch (e) {
        if (this.cluster.mode === 'tcp') throw e; // the process is the member: it cannot serve
        logger.error({ swarm: this.name, agent: id, file: this.registry.memberFile(id), err: (e as Error).message }, 'agent not started');
        m.state = 'crashed';
        this.registry.save();
      }
    }
  }

  /** Open a member's file, checking it is the one created for the member's incarnation. */
  private openStorage(id: string, durability: Durability): SqliteStorage {
    const entry = this.data.members[id];
    const fresh = this.freshMembers.delete(id);
    const { storage, incarnation } = openMemberStorage(this.registry.memberFile(id), id, { incarnation: entry?.incarnation, fresh, durability, checkpoint: EMBEDDED_CHECKPOINT });
    if (entry && entry.incarnation !== incarnation) {
      entry.incarnation = incarnation;
      this.registry.save();
    }
    return storage;
  }

  /**
   * The next start of `id` creates its member anew (agent_spawn): a new incarnation and a new,
   * empty file. Whatever a former member of that name left behind is deleted first.
   */
  prepareNewMember(id: string): void {
    this.cluster.remove(id);
    const file = this.registry.memberFile(id);
    for (const f of [file, `${file}-wal`, `${file}-shm`]) fs.rmSync(f, { force: true });
    this.freshMembers.add(id);
  }

  /**
   * A waiting agent's file, created now with its identity (then closed): the group starts it
   * later, possibly in another process life, and a member starts only on its own file.
   */
  createMemberFile(id: string): void {
    this.openStorage(id, this.durability).close();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.scheduler.stop();
    this.cluster.close();
  }

  // ---- membership ------------------------------------------------------------------------

  /**
   * The membership a member starts from when its log has none: the initial voters for one of
   * them (the same list for each, so no one can elect itself alone), nothing for a joiner.
   * Registries from before bootstrap_expect have one bootstrap member that started alone.
   */
  confFor(id: string): ConfState {
    if (!this.data.members[id]?.bootstrap) return { voters: [], learners: [] };
    return { voters: [...(this.data.bootstrap_voters ?? [id])], learners: [] };
  }

  /** Agents the group forms with; registries from before bootstrap_expect formed with one. */
  get bootstrapExpect(): number {
    return this.data.bootstrap_expect ?? 1;
  }

  /**
   * Whether the group has formed. Registries written before bootstrap_expect have no
   * bootstrapped_at: there the first spawned agent always bootstrapped at once, so any member
   * means it formed. Cluster mode: the group is the --peers list, formed by the processes.
   */
  get bootstrapped(): boolean {
    if (this.cluster.mode === 'tcp') return true;
    if (this.data.bootstrapped_at !== undefined) return true;
    // A member that ever started (a bootstrap voter, or one active or crashed) means a group
    // runs: a registry missing bootstrapped_at (edited, damaged) must never form a second one.
    if (Object.values(this.data.members).some((m) => m.bootstrap || m.state === 'active' || m.state === 'crashed')) return true;
    return this.data.bootstrap_expect === undefined && Object.keys(this.data.members).length > 0;
  }

  waitingForBootstrap(): boolean {
    return !this.bootstrapped && this.activeMembers().length > 0;
  }

  /** Agents spawned and waiting for the group to form. */
  waitingMembers(): string[] {
    return this.activeMembers().filter((id) => this.data.members[id]!.state === 'waiting');
  }

  bootstrapSummary(): string {
    const n = this.waitingMembers().length;
    const need = this.bootstrapExpect - n;
    return `swarm ${this.name} is waiting for bootstrap: ${n} of bootstrap_expect=${this.bootstrapExpect} agents spawned; agent_spawn ${need} more to form the group`;
  }

  startMember(id: string): NodeHost {
    const host = this.cluster.start(id, this.confFor(id));
    const cfg = this.machines.get(id)?.config;
    if (cfg) {
      host.reconfigure(raftTiming(cfg));
      host.setCompactionThreshold(cfg.log_compaction_threshold);
    }
    return host;
  }

  activeMembers(): string[] {
    return Object.entries(this.data.members)
      .filter(([, m]) => m.state !== 'removed')
      .map(([id]) => id)
      .sort();
  }

  /** Embedded: the member runs. Cluster mode, for a peer's process: it answers our leader. */
  isRunning(id: string): boolean {
    const h = this.cluster.hosts.get(id);
    if (h) return h.isRunning;
    return this.cluster.mode === 'tcp' && this.liveAgents().has(id);
  }

  workerFor(id: string): AgentWorker {
    let w = this.workers.get(id);
    if (!w) {
      w = new AgentWorker(id, {
        machineOf: (a) => (this.isRunning(a) ? this.machines.get(a) : undefined),
        isRunning: (a) => this.isRunning(a),
        batchSize: () => this.config().batch_size,
        catchingUp: (a) => {
          const h = this.cluster.hosts.get(a);
          const m = this.machines.get(a);
          return h !== undefined && m !== undefined && h.isRunning && (h.commitUnknown || m.appliedIndex < h.knownCommit);
        },
        submitCompletions: async (items) => {
          await this.propose({ t: 'task.complete', groups: groupCompletions(items) }, undefined, { background: true });
        },
      });
      this.workers.set(id, w);
    }
    return w;
  }

  /** The leader's replica, falling back to any running one (for reads that allow staleness). */
  localMachine(): { id: string; machine: CoordinationMachine } | undefined {
    const leader = this.cluster.leader();
    const id = leader?.id ?? this.cluster.running()[0]?.id;
    if (!id) return undefined;
    const machine = this.machines.get(id);
    return machine ? { id, machine } : undefined;
  }

  config(): SwarmConfig {
    const m = this.localMachine()?.machine;
    return m ? m.config : new CoordinationMachine().config;
  }

  /**
   * Members the leader has heard from within an election timeout (so not presumed dead).
   * acked: only those that have also answered this leader, i.e. proven alive in its term.
   */
  liveAgents(opts: { acked?: boolean } = {}): Set<string> {
    const live = new Set<string>();
    const leader = this.cluster.leader();
    if (!leader) return live;
    const st = leader.status();
    const windowTicks = Math.ceil(this.config().election_timeout_min / TICK_MS);
    for (const p of st.peers) {
      // A new leader starts every peer's response age at zero: `acked` also asks that the peer
      // has acknowledged an append of this leader (match > 0), so a crashed old leader is not
      // handed new work during the first window after the election.
      if (p.id === leader.id || (p.ticksSinceResponse <= windowTicks && (!opts.acked || p.match > 0))) live.add(p.id);
    }
    return live;
  }

  // ---- proposals -------------------------------------------------------------------------

  async propose(op: Op, timeoutMs?: number, opts?: ProposeOptions): Promise<OpResult> {
    return this.proposer.propose(op, timeoutMs, opts);
  }

  /** Propose and turn a machine-level refusal into a user error. */
  async proposeOk(op: Op, timeoutMs?: number): Promise<unknown> {
    const r = await this.propose(op, timeoutMs);
    if (!r.ok) {
      const code = r.code === 'not_found' ? 'not_found' : r.code === 'version_mismatch' || r.code === 'duplicate' ? 'conflict' : 'invalid_argument';
      throw new UserError(code, r.message);
    }
    return r.value;
  }

  /** Wait until some member leads and has committed an entry of its term. */
  async waitForLeader(timeoutMs = 5_000): Promise<NodeHost> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      const l = this.cluster.leader();
      if (l) {
        const log = l.core.log;
        if (log.term(log.committed) === l.core.term) return l;
      }
      await pause(5);
    }
    throw new UserError('unavailable', `no leader elected within ${timeoutMs} ms: ${this.quorumSummary()}`);
  }

  quorumSummary(): string {
    if (this.waitingForBootstrap()) return this.bootstrapSummary();
    const members = this.activeMembers();
    const running = members.filter((id) => this.isRunning(id));
    return `${running.length} of ${members.length} agents running, a majority needs ${majority(members.length)}`;
  }

  // ---- elections -------------------------------------------------------------------------

  expectElection(cause: ElectionCause, withinMs: number): void {
    this.expectedCause = { cause, until: performance.now() + withinMs };
  }

  /** The action expected to cause an election did not: later elections have their own cause. */
  clearExpectedElection(): void {
    this.expectedCause = null;
  }

  onRoleChangeEvent(fn: (c: RoleChange) => void): () => void {
    this.roleListeners.push(fn);
    return () => {
      const i = this.roleListeners.indexOf(fn);
      if (i >= 0) this.roleListeners.splice(i, 1);
    };
  }

  /**
   * What status and election-history readers see changed: a role or leader change in this
   * process, an election record applied, or a membership change saved. Synchronous; a
   * listener must be cheap (resource subscriptions only mark and coalesce).
   */
  onChange(fn: (c: SwarmChange) => void): () => void {
    this.changeListeners.add(fn);
    return () => this.changeListeners.delete(fn);
  }

  private emitChange(c: SwarmChange): void {
    for (const l of [...this.changeListeners]) {
      try {
        l(c);
      } catch (e) {
        logger.warn({ swarm: this.name, err: (e as Error).message }, 'swarm change listener failed');
      }
    }
  }

  private onRoleChange(c: RoleChange): void {
    // The scheduler acts only on a leader here; idle, its 2 ms timer would only cost wakeups.
    if (!this.closed && this.cluster.leader()) this.scheduler.start();
    else this.scheduler.stop();
    for (const l of this.roleListeners) l(c);
    this.emitChange('role');
    if (!c.election) return;
    // Cluster mode: this process saw only its own member's life; the replicated history
    // knows the leader before this one (another process's member, or ours before a restart).
    const old = this.lastLeader ?? (this.cluster.mode === 'tcp' ? this.lastRecordedLeader(c.id) : null);
    this.lastLeader = c.id;
    let cause: ElectionCause;
    if (this.expectedCause && this.expectedCause.until >= performance.now()) cause = this.expectedCause.cause;
    else if (c.election.transfer) cause = 'transfer';
    else if (old === null) cause = 'startup';
    else if (old === c.id) cause = 'unknown';
    // Another process's leader: we only know its heartbeats stopped reaching a majority.
    else if (this.cluster.mode === 'tcp' && !this.cluster.hosts.has(old)) cause = 'leader unreachable';
    else if (!this.isRunning(old)) cause = 'leader crash';
    else cause = 'lost quorum';
    this.expectedCause = null;
    const host = this.cluster.hosts.get(c.id);
    if (!host) return;
    const heardOld = c.election.detectionMs !== null;
    const record = {
      term: c.term,
      old_leader: old,
      new_leader: c.id,
      voted_by: c.election.votedBy,
      election_duration_ms: Math.round(c.election.durationMs),
      detection_ms: heardOld ? Math.round(c.election.detectionMs!) : null,
      failover_ms: null,
      timing_note: heardOld
        ? 'failover_ms: not measured yet; the new leader adds it once the first entry of its term is applied'
        : 'detection_ms and failover_ms: not measurable, the winner had heard no previous leader since it started (first election of the group, or of this process)',
      cause,
    };
    // Proposed by the new leader itself, so the record lands in its own term. Proposed at
    // once (with the no-op's append), before any task reassignment of the term counts into it.
    const data = JSON.stringify({ op: { t: 'election', record }, now: Date.now() });
    const notCommitted = (e: unknown): void => logger.debug({ err: (e as Error).message, term: c.term }, 'election record not committed');
    // propose() refuses some requests by throwing (a disk short of space: DiskFullError), and
    // this runs inside the message handler that won the election: thrown there, it cut that
    // handler short ("message handler threw") before it scheduled the new leader's first Ready.
    try {
      host.propose(data).catch(notCommitted);
    } catch (e) {
      notCommitted(e);
    }
    logger.info({ swarm: this.name, ...record }, 'leader elected');
    if (heardOld) void this.completeElectionRecord(host, c.term);
  }

  /**
   * failover_ms ends at the first entry of the new term applied, after the record was
   * proposed: the leader measures it then and adds it to its record through the log.
   */
  private async completeElectionRecord(host: NodeHost, term: number): Promise<void> {
    if (!(await host.whenLeaderTermApplied(term))) return; // lost the term first: nothing measured
    const failover = host.leadership()?.failoverMs;
    if (failover === null || failover === undefined || this.closed) return;
    const data = JSON.stringify({ op: { t: 'election.timing', term, failover_ms: Math.round(failover) }, now: Date.now() });
    try {
      await host.propose(data);
      logger.info({ swarm: this.name, term, failover_ms: Math.round(failover) }, 'failover measured');
    } catch (e) {
      logger.debug({ err: (e as Error).message, term }, 'election timing not committed');
    }
  }

  private lastRecordedLeader(id: string): string | null {
    const hist = this.machines.get(id)?.elections ?? [];
    return hist.length > 0 ? hist[hist.length - 1]!.new_leader : null;
  }
}

/** CONCORD_DISK_RESERVE_MB: free space (MiB) below which writes are refused; 0 turns it off. */
export function diskReserveFromEnv(env = process.env): number | undefined {
  const v = env.CONCORD_DISK_RESERVE_MB;
  if (v === undefined || v === '') return undefined;
  const mb = Number(v);
  if (!Number.isFinite(mb) || mb < 0) throw new UserError('invalid_argument', `CONCORD_DISK_RESERVE_MB=${JSON.stringify(v)}: accepted: a number of MiB >= 0 (0 turns the reserve off; default 64)`);
  return Math.round(mb * (1 << 20));
}

/**
 * Cluster mode's default NodeHostOptions.commitNoticeDelayMs: 0, sent at once. Held 2 ms, the
 * client's hops at one write in flight shortened in paired breakdowns, but etcd-compare pairs
 * did not move (2026-12-01): no measured gain to justify it yet.
 */
export const CLUSTER_COMMIT_NOTICE_DELAY_MS = 0;

/**
 * CONCORD_COMMIT_NOTICE_DELAY_MS: how long a cluster-mode leader holds a commit-only append
 * (NodeHostOptions.commitNoticeDelayMs); 0 sends them at once (for A/B runs).
 */
export function commitNoticeDelayFromEnv(env = process.env): number {
  const v = env.CONCORD_COMMIT_NOTICE_DELAY_MS;
  if (v === undefined || v === '') return CLUSTER_COMMIT_NOTICE_DELAY_MS;
  const ms = Number(v);
  if (!Number.isFinite(ms) || ms < 0 || ms > 50) throw new UserError('invalid_argument', `CONCORD_COMMIT_NOTICE_DELAY_MS=${JSON.stringify(v)}: accepted: a number of ms from 0 to 50 (0 sends commit notices at once; default ${CLUSTER_COMMIT_NOTICE_DELAY_MS})`);
  return ms;
}

/** Swarm timing (ms) to Raft ticks; unset config gives the defaults (150-300 ms, 50 ms). */
export function raftTiming(cfg: SwarmConfig | undefined): Partial<Omit<RaftConfig, 'id' | 'seed'>> {
  const c = cfg ?? DEFAULT_SWARM_CONFIG;
  const ticks = (ms: number) => Math.max(1, Math.round(ms / TICK_MS));
  return {
    electionTicksMin: ticks(c.election_timeout_min),
    electionTicksMax: Math.max(ticks(c.election_timeout_min) + 1, ticks(c.election_timeout_max)),
    heartbeatTicks: ticks(c.heartbeat_interval),
    maxUncommittedEntries: c.max_log_entries,
    maxEntriesPerMsg: Math.max(64, c.batch_size),
    // Bounds what one Ready applies: large values are applied one per Ready.
    maxCommittedBytesPerReady: 1 << 20,
  };
}

/** Worker completions in the compact log form: one group per (orchestration, agent, outcome). */
export function groupCompletions(items: CompleteItem[]): CompleteGroup[] {
  const groups = new Map<string, CompleteGroup>();
  for (const it of items) {
    const id = parseTaskId(it.task);
    if (!id) continue;
    const key = `${id.orch}|${it.agent}|${it.ok}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { orch: id.orch, agent: it.agent, seqs: [], epochs: [], ok: it.ok, results: [], starts: [] }));
    g.seqs.push(id.seq);
    g.epochs.push(it.epoch);
    g.results!.push(it.result);
    g.starts!.push(it.starts ?? 1);
  }
  for (const g of groups.values()) {
    if (g.results!.every((r) => r === null)) delete g.results;
    // Almost always one run per report: leave the list out of the log entry then.
    if (g.starts!.every((n) => n === 1)) delete g.starts;
  }
  return [...groups.values()];
}
