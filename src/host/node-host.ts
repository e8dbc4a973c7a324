import { Raft, type RaftStatus } from '../raft/raft.js';
import {
  HEARTBEAT_NO_ANSWER,
  DEFAULT_CONFIG,
  ProposalError,
  snapshotChars,
  type ConfChange,
  type ConfState,
  type Entry,
  type Message,
  type NodeId,
  type RaftConfig,
  type Ready,
  type Role,
  type SnapshotData,
} from '../raft/types.js';
import type { CheckpointReader, CheckpointTable, LogStorage, StorageStats, TableChanges } from '../storage/types.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import { BucketHistogram, DISK_BUCKETS_S, type HistogramSnapshot } from '../util/histogram.js';
import { Prng } from '../util/prng.js';
import { logger } from '../util/logger.js';
import { asLocalDamage, type LocalStateDamage } from '../util/local-damage.js';
import { refusePeerMessage, type PeerInputContext } from './peer-input.js';
import type { QuorumProbeResult } from './quorum-probe.js';
import type { Transport } from './transport.js';
import type { TurnBudget } from './turn-budget.js';
import { RoundTrips, type RoundTrip } from './round-trips.js';

/** The deterministic application the log drives. */
export interface StateMachine {
  /** Apply one committed entry (normal, conf or noop); the result goes to the proposer. */
  apply(entry: Entry): unknown;
  snapshot(): string;
  /** The state to send a follower, when it may be too large for snapshot()'s one string:
   * bounded parts (see SnapshotData). The host uses it instead of snapshot() when present. */
  snapshotData?(): SnapshotData;
  /** snapshotData() in steps (see CoordinationMachine.snapshotSteps): a large state is
   * serialized over several turns, applies held. */
  snapshotSteps?(): Generator<void, SnapshotData>;
  restore(data: SnapshotData): void;
  /**
   * Part i of a multi-part snapshot still arriving from a peer (`parts` fills in as it does and
   * is the data checkSnapshot gets later): check and parse it now, so the check of the whole
   * parses nothing. `dropSnapshotParts`: that transfer is gone.
   */
  prepareSnapshotPart?(parts: readonly string[], i: number): void;
  dropSnapshotParts?(parts: readonly string[]): void;
  /** Rough size of snapshot() in bytes, cheap to compute: paces compaction of large state. */
  sizeHint?(): number;
  /** Why snapshot data received from a peer cannot be restored, or null (checked before the core takes it). */
  checkSnapshot?(data: SnapshotData): string | null;
  /**
   * Incremental snapshots (all four or none): with a storage that keeps checkpoints, the host
   * compacts by writing the rows changed since the last checkpoint (takeCheckpoint) instead of
   * snapshot(), restarts from them (restoreCheckpoint), and calls snapshot() only when a
   * follower needs one. dirtyRows: what the next checkpoint would write (paces them).
   * markCheckpointLost: the last takeCheckpoint() was not stored; rewrite everything next.
   */
  takeCheckpoint?(): { meta: string; tables: Record<CheckpointTable, TableChanges> };
  /**
   * takeCheckpoint() in steps (see CoordinationMachine.checkpointSteps): each next() builds a
   * bounded slice of rows; the state must not change until it returns (the host holds applies).
   * One dropped before it returns is followed by markCheckpointLost.
   */
  checkpointSteps?(): Generator<unknown, { meta: string; tables: Record<CheckpointTable, TableChanges> }>;
  restoreCheckpoint?(c: CheckpointReader): void;
  dirtyRows?(): number;
  markCheckpointLost?(): void;
}

/**
 * Rows past which a checkpoint is taken before the entry threshold (times the same jitter and
 * leader factor): one checkpoint's write, and the event loop's pause for it, stays bounded.
 * Rows are memory records, sessions and orchestrations (an orchestration's row holds all its
 * task columns as bytes: measured 1.3 MB and ~14 ms to take and write for 100k tasks, 14 MB
 * and ~145 ms for 1M; test/bench/checkpoint-cost.ts). An entry that changes more rows at once
 * still makes one checkpoint.
 */
export const CHECKPOINT_MAX_DIRTY_ROWS = 50_000;
/**
 * Characters of applied entries past which a checkpoint is taken before the entry threshold
 * (same jitter and leader factor): with large values the rows a checkpoint rewrites are about
 * the entries' size, and storing them holds the loop 8-25 ms per MiB (a 1 MiB burst in the
 * embedded swarm, 2026-12-02). At 4 Mi characters (4-6 MiB of rows on a follower, 8-12 on a
 * leader) one checkpoint held the loop 70-175 ms; at 512 Ki each member stores the row of
 * each 1 MiB value on its own (loop delay max 36-44 ms against 150-204, with
 * deferHeavyCheckpoint and one heavy item per iteration); 100,000 noop tasks ran alike.
 */
export const CHECKPOINT_MAX_APPLIED_CHARS = 512 << 10;
/** Taking a checkpoint's rows this long (ms, all its turns) is logged (see checkpoint). */
const TAKE_CHECKPOINT_LOG_MS = 100;

/** How the state machine was rebuilt at the last start(), and the log replayed on top of it. */
export interface StartState {
  from: 'checkpoint' | 'snapshot' | 'log';
  /** Index of the checkpoint or snapshot (0 from the log alone). */
  index: number;
  /** Entries in the log after it (the committed ones among them are replayed). */
  logEntries: number;
  /** Wall time of the rebuild before replay (storage load and machine restore), ms. */
  restoreMs: number;
}

export interface NodeHostOptions {
  id: NodeId;
  clock: Clock;
  transport: Transport;
  storage: LogStorage;
  machine: StateMachine;
  /** Membership used when storage holds none (a fresh cluster). */
  initialConf: ConfState;
  seed: number;
  /** Milliseconds per Raft tick. */
  tickMs?: number;
  /**
   * Period of the tick timer (default tickMs). Ticks follow elapsed time, so a coarser timer
   * keeps the tick's resolution in time while waking an idle process less often.
   */
  tickTimerMs?: number;
  /**
   * Clock for the tick timer only (default: clock). Many members in one process share one
   * TickWheel here, so their ticks cost one wakeup per slot rather than one per member.
   */
  tickClock?: Clock;
  /**
   * How late (ms) a tick timer may fire when it is not a follower's election deadline (a
   * leader's heartbeat, an idle member's bookkeeping), so that the tick clock can wake many
   * members at once. Default 0. Bounded by a fifth of the heartbeat interval.
   */
  tickSlackMs?: number;
  /**
   * Put idle wakes on a grid shared by every member in the process: multiples of the
   * heartbeat interval on the host clock (needs tickTimerMs > tickMs). A leader's heartbeats
   * fall on it (the first one after it takes the lead may come early, once), a follower's
   * bookkeeping wakes too; election deadlines keep their exact times. Many idle swarms then
   * wake the process once per heartbeat interval instead of at every slack grid point.
   * Default false.
   */
  alignTicks?: boolean;
  raft?: Partial<Omit<RaftConfig, 'id' | 'seed'>>;
  /** Snapshot and compact once this many entries were applied since the last snapshot. */
  compactionThreshold?: number;
  /** Compact only once the log since the last snapshot reaches this fraction of its size. */
  compactionLogToSnapshotRatio?: number;
  /** Default deadline for proposals and reads, ms. */
  requestTimeoutMs?: number;
  /**
   * Proposals are refused (disk_full) while the storage's filesystem has less free space than
   * this, so the log never fills the disk and heartbeats, elections and reads keep working
   * (etcd's space quota, by free space). 0 disables the check. Default 64 MiB.
   */
  diskReserveBytes?: number;
  /**
   * Shared with the other members on this event loop (real clocks only): a follower's heavy
   * Ready runs in a loop iteration of its own, one member's after another (see TurnBudget).
   */
  turnBudget?: TurnBudget;
  /**
   * Make a light Ready durable on the event-loop thread (storage.save, whose fsync is inline)
   * rather than on the threadpool (saveAsync), when nothing else needs the loop meanwhile:
   * see syncInline. For a process that hosts one member (cluster mode): the threadpool's
   * callback costs a loop wake-up per write, and while a Ready waits for its fsync the host
   * takes no further Ready anyway. Off by default: members sharing a loop would queue behind
   * each other's fsyncs.
   */
  inlineLightSyncs?: boolean;
  /**
   * A leader holds an append that carries only a new commit index (no entries) for up to this
   * long, per follower, and drops it if an append with entries goes to that follower first
   * (it carries the same or a newer commit index). Raft tolerates delayed and lost messages,
   * so this is a cost choice, not a safety one: at one write in flight the next write's append
   * follows within about a millisecond, and each commit-only notice otherwise costs every
   * follower a wake-up, a Ready and an answer, and the leader four more of each, on the path
   * of the next write. Followers learn a commit this much later when writes stop (heartbeats
   * carry it too). Default 0: sent at once.
   */
  commitNoticeDelayMs?: number;
  /**
   * Delay between the steps of a checkpoint's rows taken over several turns (see
   * takeCheckpointLater). Default 0: the next timer turn. The simulator sets a few ms so that
   * messages, installs and crashes land between steps (at 0 a virtual clock runs them all first).
   */
  checkpointStepDelayMs?: number;
}

/**
 * The most entries a Ready may write, and a member may have in flight (appended, not yet
 * committed), for its fsync to run inline (inlineLightSyncs); and the most entry data (UTF-16
 * length). Above them other writes are in flight, and the loop keeps taking their requests
 * and appends while the disk works (threadpool).
 */
const INLINE_SYNC_MAX_ENTRIES = 2;
const INLINE_SYNC_MAX_CHARS = 64 << 10;

/**
 * A Ready carrying at least this much entry data goes through the loop's turn budget (see
 * TurnBudget); lighter ones (heartbeats, votes, task batches) are handled at once. At 64 KiB,
 * followers deferred busy task traffic too (100,000 noop tasks: 2,769-12,713 tasks/s against
 * 9,865-15,926 before, loaded machine); at 512 KiB the two measured alike.
 */
const HEAVY_READY_BYTES = 512 << 10;

/** Entry data a Ready writes and applies (UTF-16 length: a cheap, monotone size). */
function readyBytes(rd: Ready): number {
  let n = rd.snapshot ? snapshotChars(rd.snapshot.data) : 0;
  for (const e of rd.entries) n += e.data.length;
  return n + appliedBytes(rd);
}

function appliedBytes(rd: Ready): number {
  let n = rd.snapshot ? snapshotChars(rd.snapshot.data) : 0;
  for (const e of rd.committedEntries) n += e.data.length;
  return n;
}

/** Retry period while a write fails for lack of disk space (the Ready waits, nothing is lost). */
const DISK_FULL_RETRY_MS = 250;
export const DEFAULT_DISK_RESERVE_BYTES = 64 << 20;
/**
 * A leader short of space hands its leadership away at most this often (handOffForSpace), so
 * that with every disk short leadership moves at that pace, not at every refused write. Below
 * the proposer's DISK_FAILOVER_MS: a write refused by a member that became leader again soon
 * after handing on (a crash elsewhere, an operator's transfer) still sees it hand on in time.
 */
const DISK_HANDOFF_EVERY_MS = 1_000;

/** A write cannot be made durable for lack of space: refused now, accepted once space returns. */
export class DiskFullError extends Error {
  readonly code = 'disk_full' as const;
  constructor(message: string) {
    super(message);
    this.name = 'DiskFullError';
  }
}

/** SQLite's and the OS's words for "no space left". */
export function isDiskFull(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return code === 'SQLITE_FULL' || code === 'ENOSPC' || code === 'disk_full';
}

export interface RoleChange {
  id: NodeId;
  at: number;
  term: number;
  role: Role;
  leader: NodeId | null;
  previousRole: Role;
  previousLeader: NodeId | null;
  /** Set when this node just became leader: who voted for it and how long it took. */
  election?: {
    votedBy: NodeId[];
    durationMs: number;
    startedAt: number;
    transfer: boolean;
    /** Last message from the previous leader to the start of this campaign (null: none known). */
    detectionMs: number | null;
  };
}

export interface HostMetrics {
  id: NodeId;
  messagesIn: number;
  /** Peer messages refused because they would violate an invariant (logged at warn). */
  refusedMessages: number;
  messagesOut: number;
  /** MsgHeartbeat sent (a subset of messagesOut): the idle cost of leading. */
  heartbeatsOut: number;
  readies: number;
  applied: number;
  snapshotsTaken: number;
  snapshotsInstalled: number;
  /** The last snapshot installed from a leader: its index, parts, size (UTF-16 characters), restore
   * wall time, and how many of its parts the machine checked as they arrived (prepareSnapshotPart). */
  lastInstall: { index: number; parts: number; chars: number; restoreMs: number; partsCheckedOnArrival: number } | null;
  /** Of snapshotsTaken, checkpoints (changed rows written, no snapshot serialized), and the rows they wrote. */
  checkpointsTaken: number;
  checkpointRows: number;
  /** Snapshots serialized because a follower needed one (checkpointing hosts only). */
  snapshotsForFollowers: number;
  /** How this life's state was rebuilt (null before the first start). */
  startState: StartState | null;
  /** The storage's own counters: since it was opened, which may span several lives of the
   * member (an embedded restart reuses the storage object). */
  storage: StorageStats;
  /** The storage's counters since this life of the member started (start()). */
  storageThisLife: { bytesWritten: number; syncs: number; syncMsTotal: number };
  // The fields below count since this host object was created (it spans embedded restarts).
  /** Times this member saw the leader change to a known leader (etcd leader_changes_seen). */
  leaderChangesSeen: number;
  /** Proposals refused at once or rejected later (timeout, superseded, lost leadership, stop). */
  proposalsFailed: number;
  /** Proposals made here and not yet answered. */
  proposalsPending: number;
  /** Proposal to apply on this member, for those that committed (host clock). */
  commitSeconds: HistogramSnapshot;
  /** Local snapshots taken (state serialized and the log compacted), wall time each. */
  snapshotSeconds: HistogramSnapshot;
  /** Heartbeat round trips measured as leader, per peer, over every term it led. */
  rttSeconds: Map<NodeId, HistogramSnapshot>;
}

interface PendingProposal {
  term: number;
  /** Clock time of the proposal, for the commit latency histogram. */
  at: number;
  resolve: (v: { index: number; result: unknown }) => void;
  reject: (e: Error) => void;
  timer: TimerHandle;
}

interface PendingRead {
  resolve: (index: number) => void;
  reject: (e: Error) => void;
  timer: TimerHandle;
  /** Known once the ReadState arrives; then we wait for applied >= index. */
  index: number | null;
}

interface PendingProbe {
  startedAt: number;
  term: number;
  voters: NodeId[];
  timeoutMs: number;
  /** Voter -> measured round trip (ms) of the heartbeat it answered. */
  answered: Map<NodeId, number>;
  /** When the core released the round's ReadState: a quorum acknowledged this leader. */
  confirmedAt: number | null;
  timer: TimerHandle | null;
  resolve: (r: QuorumProbeResult) => void;
  reject: (e: Error) => void;
}

export class RequestTimeoutError extends Error {
  constructor(what: string, ms: number) {
    super(`${what} timed out after ${ms} ms (no quorum reachable, or leadership changed)`);
    this.name = 'RequestTimeoutError';
  }
}

/**
 * Drives one Raft core: owns its clock, storage, transport and apply loop, and runs the
 * ready cycle in the order etcd prescribes: persist, send, apply, advance.
 */
export class NodeHost {
  readonly id: NodeId;
  private raft!: Raft;
  private readonly opts: Required<Omit<NodeHostOptions, 'raft'>> & { raft: NodeHostOptions['raft'] };
  private readonly raftConfig: RaftConfig;
  private tickTimer: TimerHandle | null = null;
  /** The time (host clock) the armed tick timer's wake was planned for: a grid point when aligned. */
  private tickWakeAt = 0;
  private readonly tickClock: Clock;
  private readonly peerInput: PeerInputContext;
  /** In [1, 1.5), from the seed: staggers members' compactions (see maybeCompact). */
  private readonly compactionJitter: number;
  /** Tick-clock time the ticks so far account for (see tickAheadMs). */
  private lastTickAt = 0;
  /** The tick clock's stalledMs() when ticks were last counted (see catchUpTicks). */
  private stalledAtLastTick = 0;
  /** The stalled ticks the count before a held message found (see advanceTicksAfterHeld). */
  private lastStallTicks = 0;
  /**
   * How far this member's tick clock runs ahead of the host clock, ms. Only a leader aligning
   * its heartbeats (alignTicks) moves it, forward and by less than one heartbeat interval
   * each time; every timeout is a difference of this clock, so a constant lead changes none.
   */
  private tickAheadMs = 0;
  private processScheduled = false;
  private running = false;
  /**
   * A Ready's batch is being fsynced off-thread (storage.saveAsync). Until it is durable that
   * Ready is not acted on (no send, apply or advance) and no further Ready is taken; step()
   * and tick() go on, and what they produce waits for the next Ready.
   */
  private persisting = false;
  /** Clock time the first write failed for lack of space; null while writes succeed. */
  private diskFullSince: number | null = null;
  /** When this leader last handed its leadership away for lack of disk space (handOffForSpace). */
  private lastDiskHandoffAt: number | null = null;
  private diskFullMessage = '';
  /** Why this member stopped itself (see failStop); null while it has not. */
  private stoppedFault: string | null = null;
  /** Term and vote known durable (for sending a leader's appends before its own write). */
  private durableTerm = -1;
  private durableVote: NodeId | null = null;
  private proposals = new Map<number, PendingProposal>();
  private reads = new Map<string, PendingRead>();
  private readSeq = 0;
  /** Distinguishes this life's read contexts from an earlier life's (set at each start). */
  private readNonce = '';
  private starts = 0;
  private listeners: Array<(c: RoleChange) => void> = [];
  private role: Role = 'follower';
  private leader: NodeId | null = null;
  /** When this member last heard from the leader it followed (clock time). */
  private lastLeaderContactAt: number | null = null;
  private campaignLastLeaderContactAt: number | null = null;
  /** The current leadership's timing (see leadership()). */
  private leadershipTiming: { lastContactAt: number | null; startedAt: number; wonAt: number; firstApplyAt: number | null } | null = null;
  /** Callers of whenLeaderTermApplied, answered at the first apply of their term or its end. */
  private termAppliedWaiters: Array<{ term: number; resolve: (applied: boolean) => void }> = [];
  /** When the current campaign started (election timeout fired), for election_duration_ms. */
  private campaignStartedAt: number | null = null;
  private campaignIsTransfer = false;
  private appliedBytesSinceSnapshot = 0;
  /** Heavy Readies (or their applies, or checkpoints) this member ran through the turn budget. */
  private yields = 0;
  /** A heavy checkpoint waits for its turn (see deferHeavyCheckpoint). */
  private checkpointDeferred = false;
  private lastSnapshotBytes = 0;
  private messagesIn = 0;
  /** Peer messages refused by refusePeerMessage or because stepping them threw. */
  private refusedMessages = 0;
  private messagesOut = 0;
  private heartbeatsOut = 0;
  private readies = 0;
  private snapshotsTaken = 0;
  private snapshotsInstalled = 0;
  private lastInstall: HostMetrics['lastInstall'] = null;
  private checkpointsTaken = 0;
  /** Highest commit index in a leader's append since start() (see knownCommit). */
  private leaderCommitSeen = 0;
  private checkpointRows = 0;
  private snapshotsForFollowers = 0;
  private startState: StartState | null = null;
  /** Index of the state the storage holds (checkpoint, or snapshot installed or loaded). */
  private storedStateIndex = 0;
  private leaderChangesSeen = 0;
  private proposalsFailed = 0;
  private readonly commitHistogram = new BucketHistogram(DISK_BUCKETS_S);
  private readonly snapshotHistogram = new BucketHistogram(DISK_BUCKETS_S);
  /** Storage counters when this life started: metrics report this life's share. */
  private storageAtStart = { bytesWritten: 0, syncs: 0, syncMsTotal: 0 };
  /** Heartbeat round trips to each peer (as leader). */
  private readonly trips = new RoundTrips();
  /** Quorum probes (consensus_verify_quorum) in flight, by read context. */
  private probes = new Map<string, PendingProbe>();
  /** (last index, time) of each batch this node appended as leader, for replication lag. */
  private appendTimes: Array<{ index: number; at: number }> = [];

  constructor(opts: NodeHostOptions) {
    this.id = opts.id;
    this.opts = {
      tickMs: 10,
      compactionThreshold: 1000,
      compactionLogToSnapshotRatio: 0,
      requestTimeoutMs: 5000,
      ...opts,
    } as NodeHost['opts'];
    this.opts.tickTimerMs = opts.tickTimerMs ?? this.opts.tickMs;
    this.tickClock = opts.tickClock ?? opts.clock;
    this.peerInput = { checkSnapshot: opts.machine.checkSnapshot?.bind(opts.machine), committed: () => this.raft.log.committed };
    this.compactionJitter = 1 + new Prng((opts.seed ^ 0x2545f491) >>> 0).next() / 2;
    this.raftConfig = { ...DEFAULT_CONFIG, ...opts.raft, id: opts.id, seed: opts.seed };
  }

  /** Load durable state, rebuild the state machine and start ticking. */
  start(): void {
    if (this.running) return;
    const atStart = this.opts.storage.stats();
    this.storageAtStart = { bytesWritten: atStart.bytesWritten, syncs: atStart.syncs, syncMsTotal: atStart.syncMsTotal };
    const t0 = performance.now();
    const state = this.opts.storage.load(this.opts.initialConf);
    const machine = this.opts.machine;
    if (state.checkpoint) {
      if (!machine.restoreCheckpoint) throw new Error(`${this.id}: storage holds a checkpoint but the state machine cannot restore one`);
      machine.restoreCheckpoint(state.checkpoint);
    } else if (state.snapshot) machine.restore(state.snapshotData ?? '');
    this.startState = {
      from: state.checkpoint ? 'checkpoint' : state.snapshot ? 'snapshot' : 'log',
      index: state.snapshot?.index ?? 0,
      logEntries: state.entries.length,
      restoreMs: performance.now() - t0,
    };
    this.raft = new Raft(this.raftConfig, state);
    this.storedStateIndex = state.snapshot?.index ?? 0;
    this.durableTerm = state.hardState.term;
    this.durableVote = state.hardState.vote;
    this.readNonce = `${(this.opts.seed >>> 0).toString(36)}.${++this.starts}.${state.hardState.term}`;
    this.leaderCommitSeen = 0;
    this.stoppedFault = null;
    this.role = 'follower';
    this.leader = null;
    this.lastLeaderContactAt = null;
    this.leadershipTiming = null;
    this.persisting = false;
    this.serializing = null;
    this.takingCheckpoint = null;
    this.running = true;
    this.opts.transport.onMessage((m, arrivedAt) => this.receive(m, arrivedAt));
    this.opts.transport.onArrivingSnapshot?.({ part: (p, i) => this.prepareSnapshotPart(p, i), drop: (p) => this.dropSnapshotParts(p) });
    this.lastTickAt = this.opts.clock.now();
    this.stalledAtLastTick = this.tickClock.stalledMs?.(this.lastTickAt) ?? 0;
    this.scheduleTick();
    this.process();
  }

  /**
   * Crash-stop: timers and transport stop at once; nothing further is written. Whatever the
   * core held that was not yet persisted is lost, as in a real crash.
   */
  stop(reason = 'node stopped'): void {
    if (!this.running) return;
    this.running = false;
    if (this.takingCheckpoint !== null) {
      // Its rows are dropped: the machine's tracking of changes was partly taken.
      this.takingCheckpoint = null;
      this.opts.machine.markCheckpointLost?.();
    }
    if (this.tickTimer) this.tickClock.clearTimeout(this.tickTimer);
    this.tickTimer = null;
    // start() counts ticks from the host clock again.
    this.tickAheadMs = 0;
    this.heldNotices.clear();
    this.opts.transport.close();
    this.failAll(new ProposalError('not_leader', `${this.id}: ${reason}`, null));
    this.settleTermWaiters(false);
  }

  get isRunning(): boolean {
    return this.running;
  }

  onRoleChange(fn: (c: RoleChange) => void): () => void {
    this.listeners.push(fn);
    return () => {
      this.listeners = this.listeners.filter((l) => l !== fn);
    };
  }

  // ---- requests --------------------------------------------------------------------------

  /** Propose a command; resolves with the apply result once committed and applied here. */
  propose(data: string, timeoutMs = this.opts.requestTimeoutMs): Promise<{ index: number; result: unknown }> {
    return this.track(() => this.raft.propose(data), timeoutMs, 'proposal');
  }

  proposeConfChange(cc: ConfChange, timeoutMs = this.opts.requestTimeoutMs): Promise<{ index: number; result: unknown }> {
    return this.track(() => this.raft.proposeConfChange(cc), timeoutMs, 'membership change');
  }

  /** Linearizable read barrier: resolves with an index once applied here up to it. */
  readIndex(timeoutMs = this.opts.requestTimeoutMs): Promise<number> {
    this.assertRunning();
    // The context must be unique across restarts too: the leader deduplicates queued reads
    // by context, and a response to a previous life's read must not answer this one.
    const context = `${this.id}:${this.readNonce}:${++this.readSeq}`;
    return new Promise<number>((resolve, reject) => {
      const timer = this.opts.clock.setTimeout(() => {
        this.reads.delete(context);
        reject(new RequestTimeoutError('read', timeoutMs));
      }, timeoutMs);
      this.reads.set(context, { resolve, reject, timer, index: null });
      try {
        this.raft.readIndex(context);
      } catch (e) {
        this.opts.clock.clearTimeout(timer);
        this.reads.delete(context);
        reject(e as Error);
        return;
      }
      this.scheduleProcess();
    });
  }

  transferLeadership(to: NodeId): void {
    this.assertRunning();
    this.raft.transferLeadership(to);
    this.scheduleProcess();
  }

  /**
   * Run one ReadIndex round from this leader: a heartbeat carrying a fresh read context goes
   * to every member, and each voter that answers within timeoutMs is recorded with the round
   * trip of the heartbeat it answered (host clock). Resolves once every voter answered and
   * the core confirmed the round, or at the timeout with whoever answered by then.
   */
  probeQuorum(timeoutMs: number): Promise<QuorumProbeResult> {
    this.assertRunning();
    if (this.raft.role !== 'leader') throw new ProposalError('not_leader', `${this.id} is not the leader`, this.raft.lead);
    const context = `${this.id}:${this.readNonce}:probe:${++this.readSeq}`;
    return new Promise<QuorumProbeResult>((resolve, reject) => {
      const p: PendingProbe = {
        startedAt: this.opts.clock.now(),
        term: this.raft.term,
        voters: this.raft.confState().voters,
        timeoutMs,
        answered: new Map([[this.id, 0]]),
        confirmedAt: null,
        timer: null,
        resolve,
        reject,
      };
      this.probes.set(context, p);
      p.timer = this.opts.clock.setTimeout(() => this.finishProbe(context), timeoutMs);
      try {
        this.raft.readIndex(context);
      } catch (e) {
        this.opts.clock.clearTimeout(p.timer);
        this.probes.delete(context);
        reject(e as Error);
        return;
      }
      this.scheduleProcess();
    });
  }

  /** Start an election now (the trigger-election command). */
  campaign(): void {
    this.assertRunning();
    this.raft.campaign();
    this.noteCampaignStart(false);
    this.scheduleProcess();
  }

  /**
   * `peer`'s process is gone (its address refused a connection): if it led, its lease ends
   * now (see Raft.leaderUnreachable) and the tick timer is re-armed for the nearer deadline.
   */
  leaderUnreachable(peer: NodeId): void {
    if (!this.running || this.raft.role !== 'follower' || this.raft.lead !== peer) return;
    this.advanceTicks();
    this.raft.leaderUnreachable(peer);
    if (this.tickTimer) this.tickClock.clearTimeout(this.tickTimer);
    this.scheduleTick();
  }

  status(): RaftStatus {
    this.assertRunning();
    return this.raft.status();
  }

  metrics(): HostMetrics {
    const storage = this.opts.storage.stats();
    const base = this.storageAtStart;
    return {
      id: this.id,
      messagesIn: this.messagesIn,
      refusedMessages: this.refusedMessages,
      messagesOut: this.messagesOut,
      heartbeatsOut: this.heartbeatsOut,
      readies: this.readies,
      applied: this.raft ? this.raft.log.applied : 0,
      snapshotsTaken: this.snapshotsTaken,
      snapshotsInstalled: this.snapshotsInstalled,
      lastInstall: this.lastInstall,
      checkpointsTaken: this.checkpointsTaken,
      checkpointRows: this.checkpointRows,
      snapshotsForFollowers: this.snapshotsForFollowers,
      startState: this.startState,
      storage,
      storageThisLife: {
        bytesWritten: storage.bytesWritten - base.bytesWritten,
        syncs: storage.syncs - base.syncs,
        syncMsTotal: storage.syncMsTotal - base.syncMsTotal,
      },
      leaderChangesSeen: this.leaderChangesSeen,
      proposalsFailed: this.proposalsFailed,
      proposalsPending: this.proposals.size,
      commitSeconds: this.commitHistogram.snapshot(),
      snapshotSeconds: this.snapshotHistogram.snapshot(),
      rttSeconds: this.trips.histograms(),
    };
  }

  /**
   * A part of a snapshot arriving from a peer: the storage stages it (written in steps, so the
   * install's save only commits it: see LogStorage.stageSnapshotPart) and the machine checks
   * and parses it (see StateMachine.prepareSnapshotPart).
   */
  prepareSnapshotPart(parts: readonly string[], i: number): void {
    if (!this.running) return;
    this.opts.storage.stageSnapshotPart?.(parts, i, this.deferStep);
    if (!this.opts.machine.prepareSnapshotPart) return;
    this.opts.machine.prepareSnapshotPart(parts, i);
    // Two transfers may interleave (see CoordinationMachine.preparing): the last two are counted.
    const n = this.arriving.get(parts) ?? 0;
    if (n === 0 && this.arriving.size >= 2) this.arriving.delete(this.arriving.keys().next().value!);
    this.arriving.set(parts, n + 1);
  }

  dropSnapshotParts(parts: readonly string[]): void {
    // Not forgotten in `arriving`: called right after delivery, before the install's Ready.
    this.opts.machine.dropSnapshotParts?.(parts);
    // Staged parts stay for the save of a snapshot the core took; any other transfer's go.
    if (this.raft?.log.pendingSnapshot?.data !== parts) this.opts.storage.dropStagedSnapshot?.(parts);
  }

  /** Runs fn on a later turn of this host's clock (the storage's staging steps). */
  private readonly deferStep = (fn: () => void): void => {
    if (this.opts.clock.defer) this.opts.clock.defer(fn);
    else this.opts.clock.setTimeout(fn, 0);
  };

  /** Parts handed to prepareSnapshotPart, by snapshot arriving (for lastInstall). */
  private arriving = new Map<readonly string[], number>();

  /** Snapshot counters alone (cheap, for a member's status; metrics() also reads storage). */
  snapshotCounts(): { taken: number; installed: number; lastInstall: HostMetrics['lastInstall'] } {
    return { taken: this.snapshotsTaken, installed: this.snapshotsInstalled, lastInstall: this.lastInstall };
  }

  /** Since this member last heard from the leader it follows (ms); null: none heard this life. */
  leaderContactAgeMs(): number | null {
    if (this.role === 'leader') return 0;
    return this.lastLeaderContactAt === null ? null : this.opts.clock.now() - this.lastLeaderContactAt;
  }

  /** The core, for observers (simulator checks, status). Drive it only through the host. */
  get core(): Raft {
    return this.raft;
  }

  get tickMs(): number {
    return this.opts.tickMs;
  }

  /** How far this member's tick clock runs ahead of the host clock, ms (alignTicks; for tests). */
  get tickClockLeadMs(): number {
    return this.tickAheadMs;
  }

  get config(): RaftConfig {
    return this.raftConfig;
  }

  /** Entries applied between snapshots; takes effect at the next apply. */
  setCompactionThreshold(entries: number): void {
    if (!(Number.isInteger(entries) && entries >= 1)) throw new Error(`compaction threshold ${entries}: accepted: integer >= 1`);
    this.opts.compactionThreshold = entries;
  }

  /** Tunables that take effect live (electionTicks*, heartbeatTicks, limits). */
  reconfigure(patch: Partial<Omit<RaftConfig, 'id' | 'seed'>>): void {
    Object.assign(this.raftConfig, patch);
    if (this.running) this.raft.updateConfig(patch);
    // A shorter timeout or heartbeat interval is due before the wake armed for the old one.
    this.retimeTick('always');
  }

  // ---- loop ------------------------------------------------------------------------------

  private assertRunning(): void {
    if (!this.running) throw new ProposalError('not_leader', `${this.id} is not running`, null);
  }

  private track(
    fn: () => { index: number; term: number },
    timeoutMs: number,
    what: string,
  ): Promise<{ index: number; result: unknown }> {
    let index: number;
    let term: number;
    try {
      this.assertRunning();
      this.assertDiskSpace();
      ({ index, term } = fn());
    } catch (e) {
      this.proposalsFailed++;
      throw e;
    }
    this.scheduleProcess();
    return new Promise((resolve, rejectOnce) => {
      let failed = false;
      const reject = (e: Error): void => {
        if (!failed) this.proposalsFailed++;
        failed = true;
        rejectOnce(e);
      };
      // An older proposal at this index (from an earlier term of ours) was truncated away:
      // it can never commit, and it must not shadow this one.
      const older = this.proposals.get(index);
      if (older) {
        this.opts.clock.clearTimeout(older.timer);
        older.reject(new ProposalError('not_leader', `proposal at index ${index} was superseded (term ${older.term} -> ${term}); retry`, this.raft.lead));
      }
      const p: PendingProposal = {
        term,
        at: this.opts.clock.now(),
        resolve,
        reject,
        timer: this.opts.clock.setTimeout(() => {
          if (this.proposals.get(index) === p) this.proposals.delete(index);
          reject(new RequestTimeoutError(what, timeoutMs));
        }, timeoutMs),
      };
      this.proposals.set(index, p);
    });
  }

  /**
   * Commit index known to be reached cluster-wide: the highest a leader announced in an append
   * since this start, or this member's own. A replica applied below it is catching up (replay
   * after a restart, a follower behind): what it applies now was decided long ago.
   */
  get knownCommit(): number {
    return this.running ? Math.max(this.leaderCommitSeen, this.raft.log.committed) : 0;
  }

  /**
   * True while this member cannot tell whether it is behind: it restarted and has not yet had
   * an append from a leader (nor leads), so its own log may end far before the cluster's.
   */
  get commitUnknown(): boolean {
    return this.running && this.leaderCommitSeen === 0 && this.raft.role !== 'leader';
  }

  private receive(m: Message, arrivedAt?: number): void {
    if (!this.running) return;
    this.messagesIn++;
    const now = this.opts.clock.now();
    if (m.from === this.leader && this.role === 'follower') this.lastLeaderContactAt = arrivedAt ?? now;
    const rttMs = m.type === 'MsgHeartbeatResp' ? this.trips.answered(m.from, m.index, m.term, now) : null;
    // A vote is judged against the leader lease (time since the leader was last heard): count
    // the time elapsed since the last tick first, or a coarse tick timer makes a member that
    // already lost its leader refuse a pre-vote and delay the election by a whole timeout.
    // With a coarse tick timer, count them before every message: a heartbeat must reset an
    // election clock that is up to date, or the time before it would be counted after it
    // and a follower would time out up to a timer period early.
    // Not a leader's on other messages: its quorum check is judged at its tick timer, after it
    // read what already arrived (drainInbound), not at the first of several answers that
    // waited out a stall together (traced: a leader stepped down at its first queued answer).
    // A message read after it arrived (a heartbeat the network held): ticks up to its arrival
    // count before it, the rest after (advanceTicksAfterHeld), as if it was read on time.
    const held = arrivedAt !== undefined && arrivedAt < now && this.opts.tickTimerMs > this.opts.tickMs && this.raft.role !== 'leader';
    this.lastStallTicks = 0;
    if (m.type === 'MsgPreVote' || m.type === 'MsgVote' || (this.opts.tickTimerMs > this.opts.tickMs && this.raft.role !== 'leader')) this.advanceTicks(held ? arrivedAt : now);
    const before = this.raft.role;
    const why = refusePeerMessage(m, this.peerInput);
    if (why) return this.refuse(m, why);
    try {
      this.raft.step(m);
    } catch (e) {
      // Input the checks above did not foresee: refuse it rather than let a peer crash us.
      return this.refuse(m, (e as Error).message);
    }
    if (held && this.raft.role !== 'leader') this.advanceTicksAfterHeld(now);
    if (m.type === 'MsgHeartbeat' || m.type === 'MsgApp') this.retimeTick('later', now);
    if (m.type === 'MsgHeartbeatResp') this.noteReadAcks(rttMs);
    if (m.type === 'MsgHeartbeat') this.sendHeartbeatsNow();
    if (m.type === 'MsgApp') this.leaderCommitSeen = Math.max(this.leaderCommitSeen, m.commit, 1);
    if (before !== 'preCandidate' && before !== 'candidate' && this.raft.role === 'candidate') {
      // MsgTimeoutNow starts a campaign without an election timeout: a transfer.
      this.noteCampaignStart(true);
    }
    // Announce a won election at once, not after the Ready that carries it is durable: what
    // listeners propose then (the election record) joins the new leader's first append
    // instead of costing every follower one more fsync round before client writes.
    if (this.raft.role === 'leader' && this.role !== 'leader') this.onSoftState('leader', this.id, this.raft.term);
    // A heartbeat (its answer left above) or an answer that asks nothing more of the core (an
    // idle swarm's traffic): process() would find no Ready, so no round is scheduled for it.
    if ((m.type === 'MsgHeartbeat' || m.type === 'MsgHeartbeatResp') && !this.persisting && !this.raft.hasReady()) return;
    this.scheduleProcess();
  }

  /**
   * Send heartbeats and their answers now rather than with the next Ready: that Ready may
   * wait behind this member's own write or, in an embedded swarm, behind other members' turns
   * (TurnBudget), while followers' election clocks and the leader's quorum check run on.
   * Measured under CPU contention: a leader stepped down while its followers' answers waited
   * for their 100-150 ms writes of 1 MiB entries, and followers started pre-votes while the
   * leader's heartbeats waited for its own fsync. Only while the term they carry is durable.
   */
  private sendHeartbeatsNow(): void {
    if (this.raft.term !== this.durableTerm || (this.raft.role !== 'follower' && this.raft.role !== 'leader')) return;
    // A leader that cannot write its log holds every Ready behind that write: commits it
    // learns, reads and a transfer would all wait. Silent, it lets the followers elect a leader
    // that can write (and they still have what it sent before its write failed).
    if (this.raft.role === 'leader' && this.diskFullSince !== null) return;
    for (const r of this.raft.takeHeartbeats()) this.sendMessage(r);
  }

  private refuse(m: Message, why: string): void {
    this.refusedMessages++;
    logger.warn({ id: this.id, from: m.from, type: m.type, term: m.term, why }, 'refused a peer message that would violate an invariant');
    this.scheduleProcess();
  }

  /**
   * Ticks follow elapsed time, not timer firings: a busy process's timers fire late, and in
   * cluster mode a loaded leader that ticked per firing would heartbeat slower than its idle
   * followers' election clocks run (measured: an election every ~400 ms under client load).
   * Catch-up is capped below the election timeout so one long stall cannot by itself make
   * a member campaign or a leader step down before it reads what queued up meanwhile.
   */
  private scheduleTick(now = this.opts.clock.now(), plan = this.nextTickDelay(now)): void {
    const { delayMs, slackMs, at } = plan;
    const clock = this.tickClock;
    this.tickWakeAt = at ?? now + delayMs;
    const fire = this.onTickTimer;
    this.tickTimer = slackMs > 0 && clock.setTimeoutWithin ? clock.setTimeoutWithin(fire, delayMs, slackMs) : clock.setTimeout(fire, delayMs);
  }

  /**
   * Re-arm the tick timer when what is due moved, unless it is firing (it re-arms itself at
   * its end). 'sooner' (a role change): a non-leader's timer is kept if due no later, a
   * leader's wake is planned afresh (its plan may move its tick clock: planned once).
   * 'later' (a heartbeat or append a follower read): a follower's wake only watches its
   * election deadline (on a stall-measuring tick clock it need not count ticks between), so
   * it moves once the deadline moved past it; a healthy follower is then woken by its
   * leader's heartbeats only, in the rounds it reads them anyway, and its timer fires once
   * the leader falls silent. 'always' (new timeouts): planned afresh.
   */
  private retimeTick(move: 'sooner' | 'later' | 'always', now = this.opts.clock.now()): void {
    if (this.tickTimer === null || !this.running) return;
    let plan: ReturnType<NodeHost['nextTickDelay']> | undefined;
    if (move === 'later') {
      if (this.raft.role !== 'follower' || !this.tickClock.stalledMs || this.opts.tickTimerMs <= this.opts.tickMs) return;
      plan = this.nextTickDelay(now);
      if ((plan.at ?? now + plan.delayMs) <= this.tickWakeAt) return;
    } else if (move === 'sooner' && this.raft.role !== 'leader') {
      plan = this.nextTickDelay(now);
      if ((plan.at ?? now + plan.delayMs) >= this.tickWakeAt) return;
    }
    this.tickClock.clearTimeout(this.tickTimer);
    this.scheduleTick(now, plan);
  }

  private readonly onTickTimer = (): void => {
    // Fired: what runs below (a message read, retimeTick) must not move it; it is re-armed at the end.
    this.tickTimer = null;
    if (!this.running) return;
    // Read what already arrived before judging a timeout on elapsed time (see drainInbound).
    this.opts.transport.drainInbound?.();
    if (!this.running) return;
    const before = this.raft.role;
    // A wake planned for a grid point counts as at that point when it fires a little before
    // it: the loop's timers run on a millisecond clock coarser than ours (measured: an aligned
    // leader found its heartbeat a tick away at about one grid wake in four and woke the
    // process again 2 ms later for it, with every member it sends to).
    const clockNow = this.opts.clock.now();
    const now = clockNow < this.tickWakeAt && this.tickWakeAt - clockNow < 1 ? this.tickWakeAt : clockNow;
    this.advanceTicks(now);
    // A leader's heartbeats leave now, not with a Ready: an idle leader then needs no process
    // round at all (50 idle swarms: a thousand Readies a second, each touching state no
    // heartbeat needs).
    this.sendHeartbeatsNow();
    // Also checked with every Ready; an idle leader makes none (the install's answer may
    // have left nothing else to do).
    this.releaseDeliveredSnapshot();
    this.scheduleTick(now);
    // A follower's ticks make a Ready only by starting a campaign, which changes its role;
    // anything else that makes one schedules its own process round. With a coarse timer
    // most wakes of an idle follower are bookkeeping: skip the empty round.
    if (this.opts.tickTimerMs > this.opts.tickMs && before === 'follower' && this.raft.role === 'follower') return;
    if (!this.persisting && !this.raft.hasReady()) return;
    this.scheduleProcess();
  };

  /** Apply the ticks elapsed since the last ones accounted for (none if less than a tick). */
  private advanceTicks(now = this.opts.clock.now()): void {
    const tickMs = this.opts.tickMs;
    const t = now + this.tickAheadMs;
    const due = Math.floor((t - this.lastTickAt) / tickMs);
    if (due <= 0) return;
    const cap = this.catchUpTicks(due, tickMs);
    let n = Math.min(due, cap);
    const hb = this.raftConfig.heartbeatTicks;
    if (n < due && this.opts.alignTicks && this.raft.role === 'leader' && hb <= cap) {
      // A stalled aligned leader drops whole heartbeat intervals (still at most cap ticks
      // counted): its heartbeats stay on the grid, with no early one to realign them.
      n = due - Math.ceil((due - cap) / hb) * hb;
      this.lastTickAt += due * tickMs;
    } else {
      this.lastTickAt = n < due ? t : this.lastTickAt + n * tickMs;
    }
    this.countTicks(n);
  }

  private countTicks(n: number): void {
    // tickMany returns early after a role change, so a campaign start is noted at its tick.
    for (let left = n; left > 0 && this.running; ) {
      const before = this.raft.role;
      left -= this.raft.tickMany(left);
      const after = this.raft.role;
      if (before === 'follower' && (after === 'preCandidate' || after === 'candidate')) this.noteCampaignStart(false);
    }
  }

  /**
   * After a held message was stepped (advanceTicks stopped at its arrival): count the ticks
   * since. A stall of the loop in that time is capped as advanceTicks caps one: the normal
   * path would have read the message after the stall, forgiving it. The stall the count up to
   * the arrival found may lie on either side of the arrival: it is capped here again, which
   * can only count less.
   */
  private advanceTicksAfterHeld(now: number): void {
    const tickMs = this.opts.tickMs;
    const due = Math.floor((now + this.tickAheadMs - this.lastTickAt) / tickMs);
    if (due <= 0) return;
    let stall = due; // without a stall-measuring clock any interval may hide one
    const stalledMs = this.tickClock.stalledMs;
    if (stalledMs) {
      const total = stalledMs.call(this.tickClock, now);
      stall = Math.ceil((total - this.stalledAtLastTick) / tickMs) + this.lastStallTicks;
      this.stalledAtLastTick = total;
    }
    stall = Math.min(due, stall);
    const n = due - stall + Math.min(stall, this.maxCatchUpTicks());
    this.lastTickAt = n < due ? now + this.tickAheadMs : this.lastTickAt + n * tickMs;
    this.countTicks(n);
  }

  private maxCatchUpTicks(): number {
    return Math.max(1, Math.floor(this.raftConfig.electionTicksMin / 2));
  }

  /**
   * How many of the `due` ticks since the last ones counted may be counted now. Only a stall
   * of the loop is capped (maxCatchUpTicks): a tick clock that measures stalls (TickWheel)
   * vouches for the rest, so a member may sleep past the cap, until its deadline, and still
   * count the whole time it slept. Without one, every interval may hide a stall: capped.
   */
  private catchUpTicks(due: number, tickMs: number): number {
    const max = this.maxCatchUpTicks();
    const stalledMs = this.tickClock.stalledMs;
    if (!stalledMs) return max;
    const total = stalledMs.call(this.tickClock, this.opts.clock.now());
    const stallTicks = Math.min(due, Math.ceil((total - this.stalledAtLastTick) / tickMs));
    this.stalledAtLastTick = total;
    this.lastStallTicks = stallTicks;
    return due - stallTicks + Math.min(stallTicks, max);
  }

  /**
   * The tick timer period, shortened to wake right when an election or heartbeat is due, and
   * how late it may fire: never for a follower's or candidate's election timeout (their
   * spread is what keeps elections from splitting), up to tickSlackMs otherwise.
   */
  private nextTickDelay(now: number): { delayMs: number; slackMs: number; at?: number } {
    const { tickMs } = this.opts;
    if (!this.running || this.opts.tickTimerMs <= tickMs) return { delayMs: tickMs, slackMs: 0 };
    const slackMs = Math.max(0, Math.min(this.opts.tickSlackMs ?? 0, Math.floor((this.raftConfig.heartbeatTicks * tickMs) / 5)));
    // A timely wake, slack included, never needs more ticks than advanceTicks catches up at
    // once: more would be dropped as if the process had stalled. Unless the tick clock
    // measures stalls (catchUpTicks): then an idle follower sleeps until its deadline.
    const tickTimerMs = this.tickClock.stalledMs ? this.opts.tickTimerMs : Math.min(this.opts.tickTimerMs, this.maxCatchUpTicks() * tickMs - slackMs);
    if (tickTimerMs <= tickMs) return { delayMs: tickMs, slackMs: 0 };
    const dueMs = this.raft.ticksUntilTimeout() * tickMs - (now + this.tickAheadMs - this.lastTickAt);
    if (this.opts.alignTicks) {
      const aligned = this.alignedWake(now, dueMs, tickTimerMs, slackMs);
      if (aligned) return aligned;
    }
    const delayMs = Math.min(tickTimerMs, Math.max(tickMs, Math.ceil(dueMs)));
    const electionDeadline = this.raft.role !== 'leader' && delayMs >= dueMs;
    return { delayMs, slackMs: electionDeadline ? 0 : slackMs };
  }

  /**
   * alignTicks: a wake on the grid of heartbeat intervals (host clock), or null when no grid
   * point fits (then the wake is planned as without alignment). A leader whose heartbeat would
   * miss the grid by more than the slack sends it early instead, at the grid point before:
   * its tick clock moves ahead by the difference (less than an interval), and from then on
   * its heartbeats are due on the grid. A follower's or candidate's wake moves to the last grid
   * point within its period and not after its election deadline (when none is left before
   * the deadline, it wakes at the deadline itself).
   */
  private alignedWake(now: number, dueMs: number, tickTimerMs: number, slackMs: number): { delayMs: number; slackMs: number; at: number } | null {
    const { tickMs } = this.opts;
    const gridMs = this.raftConfig.heartbeatTicks * tickMs;
    const dueAt = now + dueMs;
    if (this.raft.role === 'leader') {
      if (dueMs > tickTimerMs) return null;
      const after = Math.ceil(dueAt / gridMs) * gridMs;
      if (after - dueAt <= slackMs) return wakeAt(Math.max(after, now + tickMs), now);
      const before = after - gridMs;
      if (before - now < tickMs) return null; // that grid point is (nearly) past: next heartbeat
      this.tickAheadMs += dueAt - before;
      return wakeAt(before, now);
    }
    // The last grid point within its period, up to its deadline: an idle follower wakes on
    // the grid, where the heartbeats it had meanwhile have moved its deadline on.
    const at = Math.floor(Math.min(now + tickTimerMs, dueAt) / gridMs) * gridMs;
    if (at - now < tickMs) return null;
    return wakeAt(at, now);
  }

  private noteCampaignStart(transfer: boolean): void {
    if (this.campaignStartedAt === null || this.role === 'follower') {
      this.campaignStartedAt = this.opts.clock.now();
      this.campaignIsTransfer = transfer;
      this.campaignLastLeaderContactAt = this.lastLeaderContactAt;
    }
  }

  /**
   * This leader's measured failover, on its own clock: from the last message it had from the
   * previous leader, to its campaign (detection), to its win (election), to the first entry of
   * its term it applied (failover). Null fields were not observed (e.g. the first election).
   */
  leadership(): { detectionMs: number | null; electionMs: number; failoverMs: number | null } | null {
    const l = this.leadershipTiming;
    if (!l || this.raft.role !== 'leader') return null;
    return {
      detectionMs: l.lastContactAt === null ? null : l.startedAt - l.lastContactAt,
      electionMs: l.wonAt - l.startedAt,
      failoverMs: l.lastContactAt === null || l.firstApplyAt === null ? null : l.firstApplyAt - l.lastContactAt,
    };
  }

  /**
   * Resolves true once this node, leading `term`, has applied the first entry of that term
   * (its no-op committed: leadership() then has failoverMs when the previous leader was
   * heard); false if it stops leading that term first.
   */
  whenLeaderTermApplied(term: number): Promise<boolean> {
    if (!this.running || this.raft.term !== term || this.raft.role !== 'leader') return Promise.resolve(false);
    if (this.leadershipTiming?.firstApplyAt != null) return Promise.resolve(true);
    return new Promise((resolve) => this.termAppliedWaiters.push({ term, resolve }));
  }

  private settleTermWaiters(applied: boolean): void {
    if (this.termAppliedWaiters.length === 0) return;
    const waiters = this.termAppliedWaiters;
    this.termAppliedWaiters = [];
    const term = this.raft.term;
    for (const w of waiters) w.resolve(applied && w.term === term);
  }

  private scheduleProcess(): void {
    // While a Ready waits for its fsync there is nothing to do: its callback runs process().
    if (this.processScheduled || !this.running || this.persisting) return;
    this.processScheduled = true;
    if (this.opts.clock.defer) this.opts.clock.defer(this.runScheduledProcess);
    else this.opts.clock.setTimeout(this.runScheduledProcess, 0);
  }

  /** One function for every scheduleProcess (it runs per message received). */
  private readonly runScheduledProcess = (): void => {
    this.processScheduled = false;
    if (this.running) this.process();
  };

  /** Drain every ready: persist, then send, then apply, then advance. */
  private process(): void {
    let rounds = 0;
    while (this.running && !this.persisting && this.raft.hasReady()) {
      // Bound the loop so one node cannot starve the event loop; the rest runs next turn.
      if (++rounds > 64) {
        this.scheduleProcess();
        return;
      }
      const rd = this.raft.ready();
      this.readies++;
      this.sendReplicationEarly(rd);
      // A heavy Ready (large entries to write or apply) takes a loop iteration of its own,
      // after the other members' (the four followers of an embedded swarm get each append in
      // the same turn); light ones (heartbeats, votes, acks) never wait. A leader's too: its
      // appends left above, and its heartbeats leave at its ticks meanwhile (sendHeartbeatsNow).
      const budget = this.opts.turnBudget;
      if (budget && readyBytes(rd) >= HEAVY_READY_BYTES) {
        this.deferReady(rd, budget);
        return;
      }
      if (!this.persist(rd)) return; // handleReady(rd) runs once the batch is durable
      this.handleReady(rd);
    }
  }

  /**
   * Persist and handle `rd` in a loop iteration of its own (see TurnBudget); no other Ready is
   * taken meanwhile, so its messages (heartbeat responses included) wait with it.
   */
  private deferReady(rd: Ready, budget: TurnBudget): void {
    this.persisting = true;
    this.yields++;
    const life = this.starts;
    budget.defer(() => {
      if (!this.running || this.starts !== life) return;
      this.persisting = false;
      if (!this.persist(rd)) return;
      this.handleReady(rd);
      this.process();
    });
  }

  private sendMessage(m: Message): void {
    const delayMs = this.opts.commitNoticeDelayMs ?? 0;
    if (delayMs > 0 && m.type === 'MsgApp') {
      if (m.entries.length === 0 && this.raft.role === 'leader') return this.holdCommitNotice(m, delayMs);
      this.heldNotices.delete(m.to); // this append carries the commit index too
    }
    this.emit(m);
  }

  private emit(m: Message): void {
    this.messagesOut++;
    if (m.type === 'MsgHeartbeat') {
      this.heartbeatsOut++;
      // No answer is asked for: no round trip to time.
      if (m.context === HEARTBEAT_NO_ANSWER) return this.opts.transport.send(m);
      this.trips.sent(m.to, m.index, m.term, this.opts.clock.now());
    }
    this.opts.transport.send(m);
  }

  /** Commit-only appends a leader holds, newest per follower (see commitNoticeDelayMs). */
  private readonly heldNotices = new Map<NodeId, Message>();
  private noticeTimer: TimerHandle | null = null;

  private holdCommitNotice(m: Message, delayMs: number): void {
    this.heldNotices.set(m.to, m);
    if (this.noticeTimer !== null) return;
    const life = this.starts;
    this.noticeTimer = this.opts.clock.setTimeout(() => {
      this.noticeTimer = null;
      if (!this.running || this.starts !== life) return;
      const held = [...this.heldNotices.values()];
      this.heldNotices.clear();
      // Still the leader of the term they carry: else they are stale and Raft does without.
      if (this.raft.role !== 'leader') return;
      for (const h of held) if (h.term === this.raft.term) this.emit(h);
    }, delayMs);
  }

  /**
   * A leader may replicate in parallel with its own disk write (dissertation 10.2.1): its
   * appends and heartbeats depend only on its term, durable since it campaigned, and it counts
   * itself toward commit only after advance(). Everything else waits for the write. Only when
   * this Ready changes no term or vote, so the term those messages carry is already durable.
   */
  private sendReplicationEarly(rd: Ready): void {
    if (this.raft.role !== 'leader' || rd.messages.length === 0) return;
    if (rd.hardState && (rd.hardState.term !== this.durableTerm || rd.hardState.vote !== this.durableVote)) return;
    const later: Message[] = [];
    for (const m of rd.messages) {
      if (m.type === 'MsgApp' || m.type === 'MsgHeartbeat' || m.type === 'MsgSnap') this.sendMessage(m);
      else later.push(m);
    }
    rd.messages = later;
  }

  /**
   * Why proposals are refused for lack of disk space, if they are: a write that failed with
   * a full disk (its Ready waits and is retried), or free space below the reserve.
   */
  get diskFault(): string | null {
    if (this.diskFullSince !== null) return this.diskFullMessage;
    const reserve = this.opts.diskReserveBytes ?? DEFAULT_DISK_RESERVE_BYTES;
    const free = reserve > 0 ? (this.opts.storage.freeBytes?.() ?? null) : null;
    if (free === null || free >= reserve) return null;
    return `the disk holding ${this.id}'s log has ${mib(free)} MiB free, below the ${mib(reserve)} MiB reserve; free some space (writes resume by themselves; reads keep working)`;
  }

  private assertDiskSpace(): void {
    const fault = this.diskFault;
    if (fault === null) return;
    this.handOffForSpace();
    throw new DiskFullError(fault);
  }

  /**
   * A leader short of space hands its leadership to the follower furthest along, so one
   * member's disk does not stop every write of the swarm (the others may have space). At most
   * once per DISK_HANDOFF_EVERY_MS: when every disk is short, leadership would otherwise move
   * at every refused write. A leader whose log write failed (diskFullSince) also stops its
   * heartbeats (sendHeartbeatsNow), since the transfer's message waits behind that write.
   */
  private handOffForSpace(): void {
    if (this.raft.role !== 'leader') return;
    const now = this.opts.clock.now();
    if (this.lastDiskHandoffAt !== null && now - this.lastDiskHandoffAt < DISK_HANDOFF_EVERY_MS) return;
    let best: { id: NodeId; match: number } | null = null;
    for (const p of this.raft.status().peers) {
      if (p.id === this.id || p.isLearner) continue;
      if (!best || p.match > best.match) best = { id: p.id, match: p.match };
    }
    if (!best) return;
    this.lastDiskHandoffAt = now;
    logger.warn({ id: this.id, to: best.id }, 'short of disk space: handing leadership to a follower');
    this.raft.transferLeadership(best.id);
    this.scheduleProcess();
  }

  /**
   * The batch could not be written for lack of space (SQLite rolled it back). Nothing of it
   * was acknowledged by this member: hold the Ready and retry until space returns, refusing
   * new proposals meanwhile. The process keeps running. A leader's appends of it left before
   * its write (sendReplicationEarly), so its entries may still commit on the other members:
   * this leader falls silent (sendHeartbeatsNow) and they elect one that can write.
   */
  private waitForSpace(rd: Ready, e: Error): void {
    if (this.diskFullSince === null) {
      this.diskFullSince = this.opts.clock.now();
      this.diskFullMessage = `${this.id} cannot write its log: the disk is full (${e.message}); free some space (the write is retried every ${DISK_FULL_RETRY_MS} ms and nothing acknowledged is lost; other members take over the leadership meanwhile)`;
    }
    this.persisting = true;
    const life = this.starts;
    this.opts.clock.setTimeout(() => {
      if (!this.running || this.starts !== life) return;
      this.persisting = false;
      if (!this.persist(rd)) return; // still full, or the fsync calls back
      this.handleReady(rd);
      this.process();
    }, DISK_FULL_RETRY_MS);
  }

  /** Persist rd's durable part. True when durable now; false when saveAsync calls back. */
  private persist(rd: Ready): boolean {
    if (!rd.snapshot && rd.entries.length === 0 && !rd.hardState) return true;
    const batch = { snapshot: rd.snapshot, entries: rd.entries, hardState: rd.hardState };
    const storage = this.opts.storage;
    if (rd.snapshot && !this.stagedWritten(rd)) return false;
    const inline = storage.saveAsync !== undefined && this.syncInline(rd);
    // What this task sent (a leader's appends, sent before its own write) leaves before the
    // loop blocks on the disk, not after: else a heartbeat queued first in the same task
    // would hold the appends behind it in their batch until the fsync is done. Only when the
    // save will fsync: a commit-index-only one does not block, and its Ready's messages then
    // leave with the rest of the task (the client's answer among them).
    if (inline && this.mustSync(rd)) this.opts.transport.flush?.();
    if (!storage.saveAsync || inline) {
      try {
        storage.save(batch);
      } catch (e) {
        if (!isDiskFull(e)) throw e;
        this.waitForSpace(rd, e as Error);
        return false;
      }
      this.diskFullSince = null;
      this.noteDurable(rd);
      return true;
    }
    const life = this.starts;
    let durable: boolean;
    try {
      durable = storage.saveAsync(batch, (err) => {
        // Stopped (crash) or restarted meanwhile: a stopped host sends and applies nothing.
        if (!this.running || this.starts !== life) return;
        if (err) {
          this.persisting = false;
          // Like a failing synchronous save: the node must not act on state it could not persist.
          this.stop(`storage sync failed: ${err.message}`);
          throw err;
        }
        const finish = (): void => {
          if (!this.running || this.starts !== life) return;
          this.persisting = false;
          this.noteDurable(rd);
          this.handleReady(rd);
          this.process();
        };
        // Other members' callbacks land in the same loop phase: a heavy apply takes its own
        // iteration. Still persisting meanwhile, so no further Ready is taken.
        const budget = this.opts.turnBudget;
        if (budget && appliedBytes(rd) >= HEAVY_READY_BYTES) {
          this.yields++;
          budget.defer(finish);
        } else finish();
      });
    } catch (e) {
      if (!isDiskFull(e)) throw e;
      this.waitForSpace(rd, e as Error);
      return false;
    }
    this.diskFullSince = null;
    if (!durable) this.persisting = true; // done always runs later, never inside saveAsync
    else this.noteDurable(rd);
    return durable;
  }

  /**
   * An install whose parts the storage is still writing in steps (the last part arrives in
   * the same turn as the whole): its save waits for them, no Ready taken meanwhile, so the
   * save commits what is written instead of writing up to a part (64 MiB) in one turn.
   * Measured: one INSERT of 64 MiB held the loop ~500 ms. False: persist runs again later.
   */
  private stagedWritten(rd: Ready): boolean {
    const storage = this.opts.storage;
    if (!storage.stagedSnapshotWritten) return true;
    const life = this.starts;
    const written = storage.stagedSnapshotWritten(rd.snapshot!.data, () => {
      if (!this.running || this.starts !== life) return;
      this.persisting = false;
      if (!this.persist(rd)) return;
      this.handleReady(rd);
      this.process();
    });
    if (!written) this.persisting = true;
    return written;
  }

  /**
   * True when rd's fsync should run inline (see inlineLightSyncs): no snapshot, few and small
   * entries, and no more entries in flight (appended, not yet committed) than such a Ready
   * holds: one client write at a time. A follower learns the load this way too: under many
   * writes in flight its log runs ahead of the commit index it has heard, and it keeps its
   * loop free to decode the next appends while the disk works (without this check, 5 members
   * at 256 in flight: 3,269 writes/s against 4,007 with threadpool fsyncs only, medians of 6
   * rounds). The leader's appends left before this (see sendReplicationEarly), so the
   * followers' fsyncs run in parallel with the leader's.
   */
  private syncInline(rd: Ready): boolean {
    if (!this.opts.inlineLightSyncs || rd.snapshot || rd.entries.length > INLINE_SYNC_MAX_ENTRIES) return false;
    if (this.raft.log.lastIndex() - this.raft.log.committed > INLINE_SYNC_MAX_ENTRIES) return false;
    let chars = 0;
    for (const e of rd.entries) chars += e.data.length;
    return chars <= INLINE_SYNC_MAX_CHARS;
  }

  /** Whether persisting rd needs an fsync (entries, a snapshot, or a new term or vote). */
  private mustSync(rd: Ready): boolean {
    if (rd.snapshot || rd.entries.length > 0) return true;
    return rd.hardState !== null && (rd.hardState.term !== this.durableTerm || rd.hardState.vote !== this.durableVote);
  }

  private noteDurable(rd: Ready): void {
    if (!rd.hardState) return;
    this.durableTerm = rd.hardState.term;
    this.durableVote = rd.hardState.vote;
  }

  private handleReady(rd: Ready): void {
    if (rd.snapshot) {
      const t0 = performance.now();
      this.opts.machine.restore(rd.snapshot.data);
      const d = rd.snapshot.data;
      const onArrival = typeof d === 'string' ? 0 : (this.arriving.get(d) ?? 0);
      this.arriving.clear();
      this.lastInstall = { index: rd.snapshot.metadata.index, parts: typeof d === 'string' ? 1 : d.length, chars: snapshotChars(d), restoreMs: performance.now() - t0, partsCheckedOnArrival: onArrival };
      logger.info({ id: this.id, index: this.lastInstall.index, parts: this.lastInstall.parts, chars: this.lastInstall.chars, restore_ms: Math.round(this.lastInstall.restoreMs), parts_checked_on_arrival: onArrival }, 'snapshot installed');
      this.storedStateIndex = rd.snapshot.metadata.index;
      this.snapshotsInstalled++;
      this.failProposalsUpTo(rd.snapshot.metadata.index);
    }
    if (rd.entries.length > 0 && this.raft.role === 'leader') this.noteAppend(rd.entries[rd.entries.length - 1]!.index);
    for (const m of rd.messages) this.sendMessage(m);
    // Stopped on this member's damaged state: nothing further is applied or advanced.
    for (const e of rd.committedEntries) if (!this.applyEntry(e)) return;
    const appliedBefore = this.raft.log.applied;
    this.raft.advance(rd);
    if (rd.snapshot && this.checkpointing()) this.raft.releaseSnapshot();
    this.releaseDeliveredSnapshot();
    for (const rs of rd.readStates) {
      const r = this.reads.get(rs.context);
      if (r) r.index = rs.index;
      const p = this.probes.get(rs.context);
      if (p) {
        p.confirmedAt = this.opts.clock.now();
        this.maybeFinishProbe(rs.context, p);
      }
    }
    // Already announced when this node won its election (receive): announce only changes.
    if (rd.softState && (rd.softState.role !== this.role || rd.softState.leader !== this.leader)) {
      this.onSoftState(rd.softState.role, rd.softState.leader, rd.softState.term);
    }
    this.releaseReads();
    // A leader asks for a snapshot when a joining member needs one and none exists yet.
    const wanted = this.raft.takeSnapshotRequest();
    if (wanted || this.raft.log.applied !== appliedBefore) {
      if (!wanted && this.deferHeavyCheckpoint()) return;
      this.compactOrFailStop(wanted);
    }
  }

  /** A leader's snapshot, once a follower has it: the tables serialize again if another needs one. */
  private releaseDeliveredSnapshot(): void {
    if (this.checkpointing() && this.raft.releaseDeliveredSnapshot()) logger.debug({ id: this.id, index: this.raft.log.snapshotIndex }, 'snapshot data released after its install');
  }

  private compactOrFailStop(wanted: boolean): void {
    try {
      this.maybeCompact(wanted);
    } catch (err) {
      // A snapshot for a follower read a damaged stored record: thrown on, it would end
      // the process (every member of an embedded swarm), from a timer or an I/O callback.
      const local = asLocalDamage(err);
      if (!local) throw err;
      this.failStop(`while serializing a snapshot at log index ${this.raft.log.applied}`, local);
    }
  }

  /**
   * With a turn budget, a checkpoint due for its applied characters (large entries, rows about
   * their size: 8-25 ms per MiB stored, measured in a 1 MiB burst) is taken in a loop iteration
   * of its own rather than in the one that applied them. It is judged again when it runs
   * (nothing is held meanwhile: the rows are of the state at that time). True when deferred
   * (or already).
   */
  private deferHeavyCheckpoint(): boolean {
    const budget = this.opts.turnBudget;
    if (!budget || !this.checkpointing() || this.appliedBytesSinceSnapshot < CHECKPOINT_MAX_APPLIED_CHARS * this.checkpointFactor()) return false;
    if (this.checkpointDeferred) return true;
    this.checkpointDeferred = true;
    this.yields++;
    const life = this.starts;
    budget.defer(() => {
      this.checkpointDeferred = false;
      if (!this.running || this.starts !== life) return;
      this.compactOrFailStop(false);
      this.process();
    });
    return true;
  }

  /** False when this member fail-stopped on it (see failStop). */
  private applyEntry(e: Entry): boolean {
    this.appliedBytesSinceSnapshot += e.data.length;
    const lt = this.leadershipTiming;
    if (lt && lt.firstApplyAt === null && this.raft.role === 'leader' && e.term === this.raft.term) {
      lt.firstApplyAt = this.opts.clock.now();
      this.settleTermWaiters(true);
    }
    let result: unknown;
    try {
      result = this.opts.machine.apply(e);
    } catch (err) {
      const local = asLocalDamage(err);
      if (local) {
        this.failStop(`before applying log index ${e.index}`, local);
        return false;
      }
      // The machine is deterministic, so every replica fails the same way; report, not crash.
      result = { error: (err as Error).message };
    }
    const p = this.proposals.get(e.index);
    if (!p) return true;
    this.proposals.delete(e.index);
    this.opts.clock.clearTimeout(p.timer);
    if (p.term === e.term) {
      this.commitHistogram.observe((this.opts.clock.now() - p.at) / 1000);
      p.resolve({ index: e.index, result });
    } else p.reject(new ProposalError('not_leader', `proposal at index ${e.index} was superseded by a new leader (term ${e.term}); retry`, this.raft.lead));
    return true;
  }

  /**
   * This member's stored state is damaged where an entry being applied (or a snapshot being
   * serialized) reads it; the other replicas apply that entry. Recording it as failed here
   * would leave this replica's state unlike theirs from then on, and its checkpoints would
   * store that: stop instead (the machine, left mid-entry, is discarded with the host),
   * applying, acknowledging and storing nothing further. The other members of the process
   * keep running. A restart on the same file stops at the same entry again.
   */
  private failStop(when: string, err: LocalStateDamage): void {
    const file = this.opts.storage.file;
    this.stoppedFault = `${this.id} stopped ${when}: its stored state${file ? ` in ${file}` : ''} is damaged: ${err.message}. It stops rather than apply the log unlike the other members; they keep serving`;
    logger.error({ id: this.id, when, file, err: err.message }, 'member stopped: its stored state is damaged');
    this.stop(this.stoppedFault);
  }

  /** Why this member stopped itself (its stored state is damaged), or null. Kept until start(). */
  get fault(): string | null {
    return this.stoppedFault;
  }

  private failProposalsUpTo(index: number): void {
    for (const [i, p] of this.proposals) {
      if (i > index) continue;
      this.proposals.delete(i);
      this.opts.clock.clearTimeout(p.timer);
      // Installed from a snapshot: the entry was committed elsewhere but we cannot tell
      // whether it was ours, so the caller must retry with its session id (no duplicate).
      p.reject(new ProposalError('not_leader', `outcome of index ${i} unknown after snapshot install; retry`, this.raft.lead));
    }
  }

  private releaseReads(): void {
    if (this.reads.size === 0) return; // after every Ready: no iterator when nothing waits
    const applied = this.raft.log.applied;
    for (const [ctx, r] of this.reads) {
      if (r.index !== null && r.index <= applied) {
        this.reads.delete(ctx);
        this.opts.clock.clearTimeout(r.timer);
        r.resolve(r.index);
      }
    }
  }

  private onSoftState(role: Role, leader: NodeId | null, term: number): void {
    const change: RoleChange = {
      id: this.id,
      at: this.opts.clock.now(),
      // The Ready's term: with an asynchronous fsync the core may have moved on meanwhile.
      term,
      role,
      leader,
      previousRole: this.role,
      previousLeader: this.leader,
    };
    if (role === 'leader' && this.role !== 'leader') {
      this.appendTimes = [];
      this.trips.restart();
      const startedAt = this.campaignStartedAt ?? change.at;
      const lastContactAt = this.campaignStartedAt === null ? null : this.campaignLastLeaderContactAt;
      change.election = {
        votedBy: this.raft.status().votedBy,
        durationMs: change.at - startedAt,
        startedAt,
        transfer: this.campaignIsTransfer,
        detectionMs: lastContactAt === null ? null : startedAt - lastContactAt,
      };
      this.leadershipTiming = { lastContactAt, startedAt, wonAt: change.at, firstApplyAt: null };
    }
    if (role === 'follower') this.campaignStartedAt = null;
    if (role === 'leader') this.campaignStartedAt = null;
    if (this.role === 'leader' && role !== 'leader') {
      this.settleTermWaiters(false);
      // Reads queued at a deposed leader can never be confirmed: fail them now.
      for (const [ctx, r] of this.reads) {
        if (r.index === null) {
          this.reads.delete(ctx);
          this.opts.clock.clearTimeout(r.timer);
          r.reject(new ProposalError('not_leader', `${this.id} lost leadership before confirming the read; retry`, leader));
        }
      }
      for (const [ctx, p] of this.probes) {
        this.probes.delete(ctx);
        if (p.timer) this.opts.clock.clearTimeout(p.timer);
        p.reject(new ProposalError('not_leader', `${this.id} lost leadership during the quorum round; retry`, leader));
      }
    }
    if (leader !== null && leader !== this.leader) this.leaderChangesSeen++;
    // Another member leads: snapshots this one streamed as leader are stale (the new leader
    // sends its own). Not on a mere step-down: re-elected, it continues the same transfers.
    if (leader !== null && leader !== this.id && this.streamedAsLeader) {
      this.streamedAsLeader = false;
      this.opts.transport.abandonSnapshots?.();
    }
    if (role === 'leader') this.streamedAsLeader = true;
    const roleChanged = role !== this.role;
    this.role = role;
    this.leader = leader;
    // A follower's wake may be a whole election timeout away (retimeTick 'later'): a new
    // leader's first heartbeat, or a candidate's retry, must not wait for it.
    if (roleChanged) this.retimeTick('sooner');
    for (const l of this.listeners) l(change);
  }

  /** Led since another member was last known to lead (its snapshot transfers may be under way). */
  private streamedAsLeader = false;

  /** A snapshot being serialized over several turns (see serializeLater), or null. */
  private serializing: Generator<void, SnapshotData> | null = null;
  /** A checkpoint's rows being taken over several turns (see takeCheckpointLater), or null. */
  private takingCheckpoint: Generator<unknown, { meta: string; tables: Record<CheckpointTable, TableChanges> }> | null = null;

  private checkpointing(): boolean {
    return this.opts.storage.checkpoint !== undefined && this.opts.machine.takeCheckpoint !== undefined;
  }

  /**
   * Checkpointing hosts: every compactionThreshold entries, CHECKPOINT_MAX_APPLIED_CHARS of
   * applied entries or CHECKPOINT_MAX_DIRTY_ROWS changed rows, whichever comes first, both times a seeded jitter in [1, 1.5) and twice that on the
   * leader, so members (five in one process, embedded) do not all pause at once. `wanted`: a
   * follower needs a snapshot and none is held: serialize one now.
   */
  private maybeCheckpoint(wanted: boolean): void {
    const log = this.raft.log;
    // Applies are held: it checkpoints when done (a snapshot wanted meanwhile is asked again).
    if (this.serializing !== null || this.takingCheckpoint !== null) return;
    if (log.applied > log.stableIndex) return;
    // A snapshot received and stored but not applied yet: the machine's state is older than
    // the log's start (its index has no term any more); the snapshot's restore comes first.
    if (log.applied < log.snapshotIndex) return;
    const since = log.applied - this.storedStateIndex;
    const factor = this.checkpointFactor();
    const due =
      since > 0 &&
      (since >= this.opts.compactionThreshold * factor ||
        this.appliedBytesSinceSnapshot >= CHECKPOINT_MAX_APPLIED_CHARS * factor ||
        (this.opts.machine.dirtyRows?.() ?? 0) >= CHECKPOINT_MAX_DIRTY_ROWS * factor);
    if (!due && !wanted) return;
    const t0 = performance.now();
    const steps = wanted && log.snapshot === null ? this.opts.machine.snapshotSteps?.() : undefined;
    if (steps) {
      // First slice now; a state larger than one slice goes on over later turns (below).
      const r = steps.next();
      if (!r.done) {
        this.serializeLater(steps, t0);
        return;
      }
      this.finishCheckpoint(r.value, t0);
      return;
    }
    this.finishCheckpoint(wanted && log.snapshot === null ? this.serialize() : null, t0);
  }

  /** The seeded jitter, doubled on the leader (see maybeCheckpoint). */
  private checkpointFactor(): number {
    return this.compactionJitter * (this.raft.role === 'leader' ? 2 : 1);
  }

  private finishCheckpoint(json: SnapshotData | null, t0: number): void {
    if (json !== null) this.snapshotsForFollowers++;
    const since = this.raft.log.applied - this.storedStateIndex;
    // A checkpoint whose rows are taken over later turns observes its time when stored.
    if (since > 0 && !this.checkpoint(json, t0)) return;
    if (since <= 0 && json !== null) this.raft.compact(json); // held for sending; the rows are current
    this.snapshotHistogram.observe((performance.now() - t0) / 1000);
  }

  /**
   * Serialize a large state for a follower a slice per turn, applies held meanwhile (the state
   * must not change under it), so heartbeats and appends keep flowing: one call of 1 GiB held
   * the loop ~10-30 s, and the other followers elected a new leader.
   */
  private serializeLater(steps: Generator<void, SnapshotData>, t0: number): void {
    const life = this.starts;
    const at = this.raft.log.applied;
    const release = this.raft.holdApply();
    this.serializing = steps;
    const step = (): void => {
      if (!this.running || this.starts !== life || this.serializing !== steps) return void release();
      let r: IteratorResult<void, SnapshotData>;
      try {
        r = steps.next();
      } catch (err) {
        // A later slice read a damaged stored record: as for the first slice (handleReady),
        // stop this member rather than let a timer callback end the whole process.
        const local = asLocalDamage(err);
        if (!local) throw err;
        this.serializing = null;
        release();
        this.failStop(`while serializing a snapshot at log index ${at}`, local);
        return;
      }
      if (!r.done) return void this.laterStep(step, 0);
      this.serializing = null;
      release();
      // Only a snapshot of the state at `at` is one: an install meanwhile replaced it.
      if (this.raft.log.applied === at && this.raft.log.snapshot === null) this.finishCheckpoint(r.value, t0);
      this.process();
    };
    this.laterStep(step, 0);
  }

  /**
   * Write the machine's changed rows at the applied index and drop the log up to it. The rows
   * are taken a slice per turn when the machine offers steps: the first slice now, and a large
   * take (a whole-state rewrite after an install) goes on over later turns, applies held:
   * false then (stored when done). `began`: when the checkpoint began (performance.now()).
   */
  private checkpoint(json: SnapshotData | null, began: number): boolean {
    const machine = this.opts.machine;
    const t0 = performance.now();
    if (!machine.checkpointSteps) {
      const rows = machine.takeCheckpoint!();
      const ms = performance.now() - t0;
      this.storeCheckpoint(rows, json, { turns: 1, ms, maxStepMs: ms });
      return true;
    }
    const steps = machine.checkpointSteps();
    let r: IteratorResult<unknown, { meta: string; tables: Record<CheckpointTable, TableChanges> }>;
    try {
      r = steps.next();
    } catch (err) {
      machine.markCheckpointLost?.();
      throw err;
    }
    const ms = performance.now() - t0;
    if (r.done) this.storeCheckpoint(r.value, json, { turns: 1, ms, maxStepMs: ms });
    else this.takeCheckpointLater(steps, json, ms, began);
    return r.done === true;
  }

  /**
   * The rest of a checkpoint's rows, a slice per turn (see checkpoint), applies held so they
   * are the state at one applied index; stored once the last slice is built. Dropped (and the
   * machine told: markCheckpointLost) if the member stops or a snapshot is installed meanwhile.
   */
  private takeCheckpointLater(steps: NonNullable<NodeHost['takingCheckpoint']>, json: SnapshotData | null, firstMs: number, began: number): void {
    const life = this.starts;
    const at = this.raft.log.applied;
    const installs = this.snapshotsInstalled;
    const release = this.raft.holdApply();
    this.takingCheckpoint = steps;
    const took = { turns: 1, ms: firstMs, maxStepMs: firstMs };
    const drop = (): void => {
      this.takingCheckpoint = null;
      release();
      this.opts.machine.markCheckpointLost?.();
    };
    const step = (): void => {
      // stop() dropped it already (and a later start() may have begun another).
      if (!this.running || this.starts !== life || this.takingCheckpoint !== steps) return void release();
      // An install replaced the state these rows were of: taking more would mix two states. A
      // snapshot past `at` the core already took (stored, not yet applied: applies are held)
      // drops them too: the log no longer has `at` to compact to (simulator seed 5763).
      if (this.snapshotsInstalled !== installs || this.raft.log.applied !== at || this.raft.log.snapshotIndex > at) {
        drop();
        this.process();
        return;
      }
      const t0 = performance.now();
      let r: IteratorResult<unknown, { meta: string; tables: Record<CheckpointTable, TableChanges> }>;
      try {
        r = steps.next();
      } catch (err) {
        // A stored record read for the rows is damaged (as in handleReady): stop this member
        // rather than let a timer callback end the whole process.
        drop();
        const local = asLocalDamage(err);
        if (!local) throw err;
        this.failStop(`while taking a checkpoint at log index ${at}`, local);
        return;
      }
      const ms = performance.now() - t0;
      took.turns++;
      took.ms += ms;
      took.maxStepMs = Math.max(took.maxStepMs, ms);
      if (!r.done) return void this.laterStep(step, this.opts.checkpointStepDelayMs ?? 0);
      this.takingCheckpoint = null;
      release();
      this.storeCheckpoint(r.value, json, took);
      // Wall time since the checkpoint began (turns between steps included), as serializeLater's.
      this.snapshotHistogram.observe((performance.now() - began) / 1000);
      this.process();
    };
    this.laterStep(step, this.opts.checkpointStepDelayMs ?? 0);
  }

  /**
   * Run the next step of a stepped take in a later turn. With a turn budget (the members of an
   * embedded swarm share one loop), in a loop iteration of its own: as zero-delay timers, the
   * five members' steps (each up to ~90 ms of rows stored, with 1 MiB values) ran back to back
   * in one timers phase, 250-450 ms during which no heartbeat left (a 1 MiB burst, 2026-12-02).
   */
  private laterStep(step: () => void, delayMs: number): void {
    const budget = this.opts.turnBudget;
    if (budget) budget.defer(step);
    else this.opts.clock.setTimeout(step, delayMs);
  }

  /** Store the rows taken (see checkpoint) at the applied index and drop the log up to it. */
  private storeCheckpoint(c: { meta: string; tables: Record<CheckpointTable, TableChanges> }, json: SnapshotData | null, took: { turns: number; ms: number; maxStepMs: number }): void {
    const machine = this.opts.machine;
    const { meta, tables } = c;
    // After an install the rows are the whole state (1.1 GB in the cluster bench): logged when
    // taking them was long, with the turns it took and the longest.
    if (took.ms >= TAKE_CHECKPOINT_LOG_MS) {
      let n = 0;
      for (const t of Object.values(tables)) n += t.put.length;
      logger.info({ id: this.id, index: this.raft.log.applied, rows: n, take_ms: Math.round(took.ms), turns: took.turns, longest_turn_ms: Math.round(took.maxStepMs) }, 'checkpoint rows taken');
    }
    // The storage drops its log up to the checkpoint; the core keeps compactionThreshold
    // entries in memory for followers a little behind.
    const snap = this.raft.compact(json, this.opts.compactionThreshold);
    let rows = 0;
    for (const t of Object.values(tables)) rows += t.put.length + t.del.length;
    let stored = false;
    try {
      // A whole-state checkpoint (the first after an install) may be written in steps.
      stored = this.opts.storage.checkpoint!({ metadata: snap.metadata, meta, tables }, this.deferStep);
    } catch (e) {
      // The rows taken are not stored: the next checkpoint rewrites every table.
      machine.markCheckpointLost?.();
      if (!isDiskFull(e)) throw e;
      logger.warn({ id: this.id, err: (e as Error).message }, 'checkpoint not written: disk full; the log is kept and the next checkpoint rewrites the state');
      return;
    }
    if (!stored) {
      machine.markCheckpointLost?.();
      return;
    }
    this.storedStateIndex = snap.metadata.index;
    this.snapshotsTaken++;
    this.checkpointsTaken++;
    this.checkpointRows += rows;
    this.appliedBytesSinceSnapshot = 0;
  }

  /** The machine's state for a snapshot: in parts when it offers them. */
  private serialize(): SnapshotData {
    const m = this.opts.machine;
    return m.snapshotData ? m.snapshotData() : m.snapshot();
  }

  private maybeCompact(force = false): void {
    if (this.checkpointing()) {
      this.maybeCheckpoint(force);
      return;
    }
    const log = this.raft.log;
    if (!force && log.applied - log.snapshotIndex < this.opts.compactionThreshold) return;
    // Amortize: a snapshot costs its size, so wait until the log since the last one holds a
    // set fraction of that size (off by default; the service uses it for large task tables).
    if (!force && this.opts.compactionLogToSnapshotRatio > 0) {
      const stateBytes = this.opts.machine.sizeHint?.() ?? this.lastSnapshotBytes;
      // Members at the same log position would all stall on their snapshots at once: each
      // waits a little longer (seeded jitter), and the leader, whose stall stalls every
      // commit, twice as long.
      const factor = this.compactionJitter * (this.raft.role === 'leader' ? 2 : 1);
      if (this.appliedBytesSinceSnapshot < stateBytes * this.opts.compactionLogToSnapshotRatio * factor) return;
    }
    if (log.applied <= log.snapshotIndex) return;
    if (log.applied > log.stableIndex) return;
    // Wall time (not the host clock): it measures work done, and decides nothing.
    const t0 = performance.now();
    const snap = this.raft.compact(this.serialize());
    this.opts.storage.compact(snap);
    this.snapshotsTaken++;
    this.snapshotHistogram.observe((performance.now() - t0) / 1000);
    this.lastSnapshotBytes = snapshotChars(snap.data);
    this.appliedBytesSinceSnapshot = 0;
  }

  /** Credit the voters that just answered a probe's heartbeat with their round trip. */
  private noteReadAcks(rttMs: number | null): void {
    for (const ack of this.raft.takeReadAcks()) {
      const p = this.probes.get(ack.context);
      if (!p || !p.voters.includes(ack.from) || p.answered.has(ack.from)) continue;
      // No matching send record (pruned): count from the probe's start, an upper bound.
      p.answered.set(ack.from, rttMs ?? this.opts.clock.now() - p.startedAt);
      this.maybeFinishProbe(ack.context, p);
    }
  }

  private maybeFinishProbe(context: string, p: PendingProbe): void {
    if (p.confirmedAt !== null && p.voters.every((v) => p.answered.has(v))) this.finishProbe(context);
  }

  private finishProbe(context: string): void {
    const p = this.probes.get(context);
    if (!p) return;
    this.probes.delete(context);
    if (p.timer) this.opts.clock.clearTimeout(p.timer);
    p.resolve({
      leader: this.id,
      term: p.term,
      voters: p.voters,
      answered: new Map(p.answered),
      quorumConfirmed: p.confirmedAt !== null,
      confirmMs: p.confirmedAt === null ? null : p.confirmedAt - p.startedAt,
      timeoutMs: p.timeoutMs,
      elapsedMs: this.opts.clock.now() - p.startedAt,
    });
  }

  /** Measured heartbeat round trips to each peer since this node started leading. */
  roundTrips(): Map<NodeId, RoundTrip> {
    return this.trips.figures(this.opts.clock.now());
  }

  private noteAppend(index: number): void {
    this.appendTimes.push({ index, at: this.opts.clock.now() });
    // Bounded: lag older than this many batches is reported from the oldest kept sample.
    if (this.appendTimes.length > 8192) this.appendTimes.splice(0, 4096);
  }

  /**
   * How long the oldest entry a follower lacks has been waiting (0 when it has everything):
   * measured from the time this leader appended it.
   */
  replicationLagMs(match: number): number {
    if (!this.raft || match >= this.raft.log.lastIndex()) return 0;
    for (const a of this.appendTimes) {
      if (a.index > match) return Math.max(0, this.opts.clock.now() - a.at);
    }
    return 0;
  }

  private failAll(err: Error): void {
    for (const p of this.proposals.values()) {
      this.opts.clock.clearTimeout(p.timer);
      p.reject(err);
    }
    this.proposals.clear();
    for (const r of this.reads.values()) {
      this.opts.clock.clearTimeout(r.timer);
      r.reject(err);
    }
    this.reads.clear();
    for (const p of this.probes.values()) {
      if (p.timer) this.opts.clock.clearTimeout(p.timer);
      p.reject(err);
    }
    this.probes.clear();
  }
}

/**
 * A tick timer for host-clock time `at` (a grid point): asked half a millisecond early with 1 ms
 * of slack, so a later reading of the clock by the timer wheel cannot round it one slot on.
 */
function wakeAt(at: number, now: number): { delayMs: number; slackMs: number; at: number } {
  return { delayMs: Math.max(0, at - now - 0.5), slackMs: 1, at };
}

function mib(bytes: number): number {
  return Math.round((bytes / (1 << 20)) * 10) / 10;
}
