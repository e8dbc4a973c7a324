// The simulator's cluster: LocalCluster's member management (start from storage, crash,
// restart, join), except that each member runs on its own NodeClock (drift, offset, pauses)
// behind a PausableTransport. LocalCluster hands every member the one shared clock, so the
// simulator cannot reuse it for per-member time faults; this mirrors its start() closely.

import { InProcNetwork } from '../../src/host/inproc-network.js';
import { NodeHost, type RoleChange, type StateMachine } from '../../src/host/node-host.js';
import type { ConfState, Message, NodeId, RaftConfig } from '../../src/raft/types.js';
import type { LogStorage } from '../../src/storage/types.js';
import type { Prng } from '../../src/util/prng.js';
import type { VirtualClock } from '../../src/util/virtual-clock.js';
import { NodeClock, PausableTransport } from './node-clock.js';
import { TickWheel } from '../../src/util/tick-wheel.js';

export interface FaultClusterOptions {
  ids: NodeId[];
  clock: VirtualClock;
  prng: Prng;
  /** The member's clock, created once per id (it survives restarts: same machine). */
  clockFor: (id: NodeId) => NodeClock;
  /** Called once per id: a restart reuses the storage the crash left behind. */
  storageFor: (id: NodeId, clock: NodeClock) => LogStorage;
  machineFor: (id: NodeId) => StateMachine;
  /** Stream snapshots in parts of this many characters (InProcNetwork.snapshotChunkChars); 0: whole. */
  snapshotChunkChars: number;
  /**
   * The embedded swarm's timing: a 1 s tick timer on a stall-measuring TickWheel per member
   * (over its own clock), wakes aligned to the heartbeat grid, and heartbeats that ask no
   * answer held for their receiver's next read (InProcNetwork holdIdleHeartbeats).
   */
  embeddedTiming?: boolean;
  /** InProcNetwork.snapshotResendAfterMs (default 0 here: every resend streams again). */
  snapshotResendAfterMs?: number;
  /** Sees every message a member's process hands to its transport. */
  onSend?: (m: Message) => void;
  tickMs: number;
  raft: Partial<Omit<RaftConfig, 'id' | 'seed'>>;
  compactionThreshold: number;
  requestTimeoutMs: number;
  /** NodeHostOptions.inlineLightSyncs. */
  inlineLightSyncs?: boolean;
  /** NodeHostOptions.commitNoticeDelayMs. */
  commitNoticeDelayMs?: number;
  /** NodeHostOptions.checkpointStepDelayMs. */
  checkpointStepDelayMs?: number;
}

export class FaultCluster {
  readonly network: InProcNetwork;
  readonly hosts = new Map<NodeId, NodeHost>();
  readonly clocks = new Map<NodeId, NodeClock>();
  private readonly storages = new Map<NodeId, LogStorage>();
  private readonly machines = new Map<NodeId, StateMachine>();
  private readonly seeds = new Map<NodeId, number>();
  private readonly startConfs = new Map<NodeId, ConfState>();
  private listeners: Array<(c: RoleChange) => void> = [];
  private readonly initialConf: ConfState;

  constructor(private readonly opts: FaultClusterOptions) {
    this.network = new InProcNetwork({ clock: opts.clock, prng: opts.prng.fork(), serialize: true, snapshotChunkChars: opts.snapshotChunkChars, snapshotWindowParts: 3, snapshotResendAfterMs: opts.snapshotResendAfterMs ?? 0, holdIdleHeartbeats: opts.embeddedTiming === true });
    this.initialConf = { voters: [...opts.ids], learners: [] };
    for (const id of opts.ids) this.seeds.set(id, Math.floor(opts.prng.next() * 2 ** 32));
  }

  get ids(): NodeId[] {
    return [...this.seeds.keys()];
  }

  clockOf(id: NodeId): NodeClock {
    let c = this.clocks.get(id);
    if (!c) this.clocks.set(id, (c = this.opts.clockFor(id)));
    return c;
  }

  start(id: NodeId, initialConf: ConfState = this.initialConf): NodeHost {
    const existing = this.hosts.get(id);
    if (existing?.isRunning) return existing;
    if (!this.seeds.has(id)) this.seeds.set(id, Math.floor(this.opts.prng.next() * 2 ** 32));
    if (!this.startConfs.has(id)) this.startConfs.set(id, initialConf);
    const clock = this.clockOf(id);
    let storage = this.storages.get(id);
    if (!storage) {
      storage = this.opts.storageFor(id, clock);
      this.storages.set(id, storage);
    }
    const machine = this.opts.machineFor(id);
    this.machines.set(id, machine);
    const host = new NodeHost({
      id,
      clock,
      transport: new PausableTransport(this.network.endpoint(id), clock, this.opts.onSend),
      storage,
      machine,
      initialConf,
      seed: ((this.seeds.get(id) as number) + (existing ? 7919 : 0)) >>> 0,
      tickMs: this.opts.tickMs,
      ...(this.opts.embeddedTiming ? { tickTimerMs: 1000, tickClock: new TickWheel(clock, this.opts.tickMs, 10), tickSlackMs: 10, alignTicks: true } : {}),
      raft: this.opts.raft,
      compactionThreshold: this.opts.compactionThreshold,
      requestTimeoutMs: this.opts.requestTimeoutMs,
      inlineLightSyncs: this.opts.inlineLightSyncs,
      commitNoticeDelayMs: this.opts.commitNoticeDelayMs,
      checkpointStepDelayMs: this.opts.checkpointStepDelayMs,
    });
    if (existing) this.seeds.set(id, ((this.seeds.get(id) as number) + 7919) >>> 0);
    host.onRoleChange((c) => {
      for (const l of this.listeners) l(c);
    });
    this.hosts.set(id, host);
    host.start();
    return host;
  }

  startJoining(id: NodeId): NodeHost {
    return this.start(id, { voters: [], learners: [] });
  }

  /** Abrupt stop; a paused process dies with whatever it had queued. */
  crash(id: NodeId): void {
    this.hosts.get(id)?.stop(`${id} crashed`);
    this.clocks.get(id)?.reset();
  }

  restart(id: NodeId): NodeHost {
    this.crash(id);
    return this.start(id, this.startConfs.get(id) ?? this.initialConf);
  }

  close(): void {
    for (const h of this.hosts.values()) h.stop('cluster closed');
    for (const s of this.storages.values()) s.close();
  }

  machine(id: NodeId): StateMachine | undefined {
    return this.machines.get(id);
  }

  onRoleChange(fn: (c: RoleChange) => void): void {
    this.listeners.push(fn);
  }
}
