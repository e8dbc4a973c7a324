import type { RaftConfig, NodeId, ConfState } from '../raft/types.js';
import type { LogStorage } from '../storage/types.js';
import type { Clock } from '../util/clock.js';
import type { Prng } from '../util/prng.js';
import type { ClusterBackend } from './cluster-backend.js';
import { InProcNetwork } from './inproc-network.js';
import { NodeHost, type RoleChange, type StateMachine } from './node-host.js';
import type { TurnBudget } from './turn-budget.js';

/** 1 Mi characters per part: the TCP transport's part size. */
export const SNAPSHOT_PART_CHARS = 1 << 20;

export interface LocalClusterOptions {
  ids: NodeId[];
  clock: Clock;
  /** Seeds the network faults and each member's election timeouts. */
  prng: Prng;
  /** Called once per member life: a restart reuses the storage the crash left behind. */
  storageFor: (id: NodeId) => LogStorage;
  /** Called at every (re)start: the machine is rebuilt from snapshot + log replay. */
  machineFor: (id: NodeId) => StateMachine;
  tickMs?: number;
  /** See NodeHostOptions.tickTimerMs. */
  tickTimerMs?: number;
  /** See NodeHostOptions.tickClock: shared by every member (and by other clusters). */
  tickClock?: Clock;
  /** See NodeHostOptions.tickSlackMs. */
  tickSlackMs?: number;
  /** See NodeHostOptions.alignTicks. */
  alignTicks?: boolean;
  raft?: Partial<Omit<RaftConfig, 'id' | 'seed'>>;
  compactionThreshold?: number;
  /** See NodeHostOptions.compactionLogToSnapshotRatio. */
  compactionLogToSnapshotRatio?: number;
  requestTimeoutMs?: number;
  /** See NodeHostOptions.diskReserveBytes. */
  diskReserveBytes?: number;
  /** See NodeHostOptions.turnBudget: shared by the members of the cluster. */
  turnBudget?: TurnBudget;
  /** See NodeHostOptions.inlineLightSyncs (tests: members here share one loop). */
  inlineLightSyncs?: boolean;
  /** See NodeHostOptions.commitNoticeDelayMs. */
  commitNoticeDelayMs?: number;
  /** See NodeHostOptions.checkpointStepDelayMs. */
  checkpointStepDelayMs?: number;
  /**
   * Snapshots travel in parts of this many characters, acknowledged, a few in flight, as over
   * TCP, so a large one never holds the loop nor delays heartbeats; 0 hands them over whole.
   */
  snapshotChunkChars?: number;
  /** JSON round trip per message: proves serializability; off for speed in production. */
  serializeMessages?: boolean;
  /** See InProcNetworkOptions.holdIdleHeartbeats. */
  holdIdleHeartbeats?: boolean;
}

/**
 * N members in one process on an in-process network: the embedded product's cluster and
 * the simulator's. Members can crash, restart from their storage, join and leave.
 */
export class LocalCluster implements ClusterBackend {
  readonly mode = 'embedded' as const;
  readonly network: InProcNetwork;
  readonly hosts = new Map<NodeId, NodeHost>();
  private readonly storages = new Map<NodeId, LogStorage>();
  private readonly machines = new Map<NodeId, StateMachine>();
  private readonly seeds = new Map<NodeId, number>();
  private listeners: Array<(c: RoleChange) => void> = [];
  private initialConf: ConfState;
  /** The membership each member was first started with (bootstrap or empty for a joiner). */
  private readonly startConfs = new Map<NodeId, ConfState>();

  constructor(private readonly opts: LocalClusterOptions) {
    this.network = new InProcNetwork({
      clock: opts.clock,
      prng: opts.prng.fork(),
      serialize: opts.serializeMessages ?? true,
      snapshotChunkChars: opts.snapshotChunkChars ?? SNAPSHOT_PART_CHARS,
      holdIdleHeartbeats: opts.holdIdleHeartbeats,
    });
    this.initialConf = { voters: [...opts.ids], learners: [] };
    for (const id of opts.ids) this.seeds.set(id, Math.floor(opts.prng.next() * 2 ** 32));
  }

  get ids(): NodeId[] {
    return [...this.seeds.keys()];
  }

  canRun(): boolean {
    return true;
  }

  startAll(): void {
    for (const id of this.opts.ids) this.start(id);
  }

  /** Start (or restart after a crash) a member from its durable storage. */
  start(id: NodeId, initialConf: ConfState = this.initialConf): NodeHost {
    const existing = this.hosts.get(id);
    if (existing?.isRunning) return existing;
    if (!this.seeds.has(id)) this.seeds.set(id, Math.floor(this.opts.prng.next() * 2 ** 32));
    if (!this.startConfs.has(id)) this.startConfs.set(id, initialConf);
    let storage = this.storages.get(id);
    if (!storage) {
      storage = this.opts.storageFor(id);
      this.storages.set(id, storage);
    }
    const machine = this.opts.machineFor(id);
    this.machines.set(id, machine);
    const transport = this.network.endpoint(id);
    const host = new NodeHost({
      id,
      clock: this.opts.clock,
      transport,
      storage,
      machine,
      initialConf,
      // A restarted member draws fresh timeouts: reuse would replay the same collisions.
      seed: ((this.seeds.get(id) as number) + (existing ? 7919 : 0)) >>> 0,
      tickMs: this.opts.tickMs ?? 10,
      tickTimerMs: this.opts.tickTimerMs,
      tickClock: this.opts.tickClock,
      tickSlackMs: this.opts.tickSlackMs,
      alignTicks: this.opts.alignTicks,
      raft: this.opts.raft ?? {},
      compactionThreshold: this.opts.compactionThreshold ?? 1000,
      compactionLogToSnapshotRatio: this.opts.compactionLogToSnapshotRatio ?? 0,
      requestTimeoutMs: this.opts.requestTimeoutMs ?? 5000,
      diskReserveBytes: this.opts.diskReserveBytes,
      turnBudget: this.opts.turnBudget,
      inlineLightSyncs: this.opts.inlineLightSyncs,
      commitNoticeDelayMs: this.opts.commitNoticeDelayMs,
      checkpointStepDelayMs: this.opts.checkpointStepDelayMs,
    });
    if (existing) this.seeds.set(id, ((this.seeds.get(id) as number) + 7919) >>> 0);
    host.onRoleChange((c) => {
      for (const l of this.listeners) l(c);
    });
    this.hosts.set(id, host);
    try {
      host.start();
    } catch (e) {
      // It never ran (its stored state could not be rebuilt): free its endpoint, or the next
      // start of this member (agent_restart, even on a new file) would find it still open.
      transport.close();
      throw e;
    }
    return host;
  }

  /** A member joining an existing cluster starts with no membership and learns it. */
  startJoining(id: NodeId): NodeHost {
    return this.start(id, { voters: [], learners: [] });
  }

  /** Abrupt stop: no goodbye, unpersisted state lost. */
  crash(id: NodeId): void {
    this.hosts.get(id)?.stop(`${id} crashed`);
  }

  /**
   * The member left the group for good: stop it, close its storage and forget it. A later
   * member of the same name is a new member and must start from its own new storage; reusing
   * this (still open) one would give it the old member's term, vote and log.
   */
  remove(id: NodeId): void {
    this.hosts.get(id)?.stop(`${id} removed`);
    this.storages.get(id)?.close();
    this.storages.delete(id);
    this.hosts.delete(id);
    this.machines.delete(id);
    this.startConfs.delete(id);
    this.seeds.delete(id);
  }

  restart(id: NodeId): NodeHost {
    this.crash(id);
    // A joiner restarts as a joiner: its storage, not the bootstrap list, says what it is.
    return this.start(id, this.startConfs.get(id) ?? this.initialConf);
  }

  /** Close every member and its storage (process shutdown). */
  close(): void {
    for (const h of this.hosts.values()) h.stop('cluster closed');
    for (const s of this.storages.values()) s.close();
  }

  host(id: NodeId): NodeHost {
    const h = this.hosts.get(id);
    if (!h) throw new Error(`unknown member ${id}`);
    return h;
  }

  machine(id: NodeId): StateMachine | undefined {
    return this.machines.get(id);
  }

  storage(id: NodeId): LogStorage | undefined {
    return this.storages.get(id);
  }

  running(): NodeHost[] {
    return [...this.hosts.values()].filter((h) => h.isRunning);
  }

  /** The running leader with the highest term, if any. */
  leader(): NodeHost | undefined {
    // Reads the cores directly: status() builds per-peer views and this runs per request.
    let best: NodeHost | undefined;
    for (const h of this.hosts.values()) {
      if (!h.isRunning || h.core.role !== 'leader') continue;
      if (!best || h.core.term > best.core.term) best = h;
    }
    return best;
  }

  onRoleChange(fn: (c: RoleChange) => void): () => void {
    this.listeners.push(fn);
    return () => {
      this.listeners = this.listeners.filter((l) => l !== fn);
    };
  }
}
