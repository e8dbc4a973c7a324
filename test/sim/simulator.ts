// Deterministic cluster simulator. One seed fixes everything: cluster size (3, 5 or 7), Raft
// tunables, the disk model, the members' clocks and a random schedule of proposals, ReadIndex
// reads, membership changes (joiners added as learners then promoted, voters and leaders
// removed), leadership transfers, elections and faults; small compaction thresholds make
// snapshots and InstallSnapshot routine. Time is virtual, so a seed replays identically and a
// failing seed is a reproducible bug report (`npm run sim -- --seed K --trace`).
//
// Fault model (each kind is counted in SimStats.faults and the CLI's JSON line):
//  - process: crash (kill -9), restart from storage, bounce (crash + immediate restart, often
//    mid-write), pause (the process stops running for 50-2500 ms: its timers and incoming
//    messages queue and run on waking, against the state it had, e.g. a leader that wakes
//    and keeps acting in its old term);
//  - disk (sim-storage.ts): synchronous, or asynchronous fsync of 1-50 ms. A process crash
//    leaves unsynced writes written but not durable (the kernel has them): the next open
//    reads them and, like SqliteStorage.open, fsyncs them. A power failure keeps a random
//    prefix of the unsynced batches and loses the rest, the batch at the cut torn and rolled
//    back whole (SQLite transactions); it strikes running members, members that are down,
//    members shortly after a restart that read unsynced data, and the whole cluster at once
//    (blackout). An fsync error drops every unsynced batch and the member must stop without
//    acting on the batch. A disk wipe: the member is removed from the configuration and
//    replaced by a new member under a new id (never restarted under its old id);
//  - time: each member's clock runs at a seeded rate (0.9-1.1) from a seeded offset;
//  - network: loss, duplication, delay, reordering, partitions, isolation, lossy links, slow
//    links (hundreds of ms late, reordered: stale-term traffic), total one-way partitions.
// A fault budget keeps a majority of every voter set that may be in force up and connected,
// so liveness stays defined.
//
// Checks (invariants.ts): after every clock event, election safety, leader append-only and
// the durability of each leader's commit index (on the disks of a quorum); after every step,
// log matching, leader completeness at every committed index, the committed prefix, and the
// durability of every acknowledged write on the disks of enough voters of every voter set in
// force; on every apply, state machine safety; as requests resolve, acknowledged writes, and
// reads and writes linearizable against the whole history (real-time order against every
// write acknowledged and every read completed before they were issued); and every 40-120
// steps a liveness check: with everything healed and restarted, or with the faults left in
// place when a majority is up and connected, a leader must commit a fresh write within
// LIVENESS_MS of virtual time, and every member that is up must then apply it, its state
// holding every acknowledged write.

import type { NodeHost } from '../../src/host/node-host.js';
import type { ConfChange, Entry, Message, NodeId, RaftConfig } from '../../src/raft/types.js';
import { Prng } from '../../src/util/prng.js';
import { VirtualClock } from '../../src/util/virtual-clock.js';
import { FaultCluster } from './fault-cluster.js';
import { InvariantChecker, SimMachine } from './invariants.js';
import { NodeClock } from './node-clock.js';
import { AsyncSimStorage, SimStorage } from './sim-storage.js';
import { CoordWorkload, coordWorkloadFor } from './coord-workload.js';

export interface SimOptions {
  /** Cluster size; when absent it is derived from the seed (3, 5 or 7). */
  nodes?: number;
  /** Random steps to run (default DEFAULT_STEPS). */
  steps?: number;
  /** Collect a human-readable event trace. */
  trace?: boolean;
  /** With trace: also log every message delivered (debugging aid; slow). */
  messages?: boolean;
  /** Planted bugs, for the checker's self-tests: the simulator must catch each. */
  plant?: PlantedBugs;
  /** Run the coordination workload (coord-workload.ts); when absent the seed decides. */
  coordWorkload?: boolean;
  /**
   * With the coordination workload, send followers its multi-part snapshots (SimMachine
   * partSteps: v5 parts forced small) instead of the one string, so parts travel, are stored,
   * checked and restored. Changes what travels, hence the trajectories of those seeds (off by
   * default: the string is then restored by way of the parts, see SimMachine.restoreV3).
   */
  snapshotPartsOnWire?: boolean;
  /**
   * InProcNetwork.snapshotResendAfterMs: a snapshot delivered whole is not streamed again on
   * its link for this long. Default 0 (always streamed again), which keeps recorded
   * trajectories; the CLI's --resend-after sets it.
   */
  snapshotResendAfterMs?: number;
  /**
   * Report leader-gone (a refused dial, Raft.leaderUnreachable) to followers of a crashed
   * leader and, now and then, spuriously (default true). Off replays a trajectory recorded
   * before these reports existed.
   */
  leaderGone?: boolean;
  /**
   * Leaders hold commit-only appends this long (NodeHost commitNoticeDelayMs); when absent the
   * seed decides (0, 2 or 25 ms). 0 replays a trajectory recorded before notices were held.
   */
  noticeDelayMs?: number;
  /** FaultCluster embeddedTiming (default false, which keeps recorded trajectories; the CLI's --embedded-timing). */
  embeddedTiming?: boolean;
}

export interface PlantedBugs {
  /** Storage does not fsync what it loads on open (SqliteStorage.open does). */
  noSyncOnOpen?: boolean;
  /** A member whose disk was wiped restarts under its old id, still a voter, with an empty
   * log (what the product's identity check at start-up refuses). */
  amnesiacRejoin?: boolean;
  /** With the coordination workload: a replica restoring a snapshot drops one memory record
   * (a lossy snapshot format), which the replica state hashes must catch. */
  coordLossyRestore?: boolean;
  /** The same, on a restart from checkpoint rows (the coordination machine's restoreCheckpoint). */
  coordLossyCheckpoint?: boolean;
}

/** Every kind of fault the simulator injects, counted per run (0 = silently off). */
export const FAULT_KINDS = [
  'crash',
  'restart',
  'power_failure',
  'unsynced_loss',
  'unsynced_survived_crash',
  'torn_batch',
  'power_failure_after_restart',
  'blackout',
  'fsync_error',
  'disk_wipe',
  'partition',
  'isolate',
  'one_way_partition',
  'lossy_link',
  'slow_link',
  'message_faults',
  'clock_skew',
  'pause',
  'leader_pause',
  'leader_gone',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];
export type FaultCounts = Record<FaultKind, number>;

export function zeroFaults(): FaultCounts {
  return Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as FaultCounts;
}

export interface SimStats {
  proposals: number;
  acked: number;
  reads: number;
  readsOk: number;
  crashes: number;
  restarts: number;
  /** Restarts that rebuilt the machine from checkpoint rows (incremental snapshots). */
  restartsFromCheckpoint: number;
  partitions: number;
  confChanges: number;
  transfers: number;
  snapshotsInstalled: number;
  snapshotsTaken: number;
  livenessChecks: number;
  leaderChanges: number;
  maxIndex: number;
  faults: FaultCounts;
  /** The coordination workload (coord-workload.ts): whether this run had it, replica state
   * hashes compared, and orchestrations whose task records retention removed (on any replica). */
  coordRuns: number;
  coordStateChecks: number;
  /** Snapshots restored from the coordination machine's multi-part form (v5 task block rows). */
  coordPartRestores: number;
  /** Checkpoints whose rows were taken over several turns (SimMachine.steppedTakes). */
  coordSteppedTakes: number;
  coordOrchsCompacted: number;
  /** Resends of a delivered snapshot the network did not stream again (snapshotResendAfterMs). */
  snapshotResendsSkipped: number;
  /** Heartbeats held for their receiver's next read (embeddedTiming). */
  heartbeatsHeld: number;
}

export interface SimResult {
  seed: number;
  nodes: number;
  steps: number;
  virtualMs: number;
  violations: string[];
  trace: string[];
  stats: SimStats;
}

export const DEFAULT_STEPS = 300;
/** Bounded virtual time in which a healed cluster must elect a leader and commit. */
export const LIVENESS_MS = 10_000;
/** Further bounded time in which every running member must catch up to that commit, plus
 * CATCHUP_MS_PER_ENTRY for each entry the furthest-behind member lacks (seeds with one entry
 * per message and one message in flight replicate one entry per round trip). */
export const CATCHUP_MS = 5_000;
export const CATCHUP_MS_PER_ENTRY = 100;
/** More events than this per virtual ms is a message or timer storm (a livelock). */
export const MAX_EVENTS_PER_MS = 2_000;

export function nodesForSeed(seed: number): number {
  return [3, 5, 7][((seed % 3) + 3) % 3] as number;
}

export async function runSeed(seed: number, opts: SimOptions = {}): Promise<SimResult> {
  return new Simulation(seed, opts).run();
}

const flush = (): Promise<void> => new Promise<void>((r) => setImmediate(r));

type Action = [weight: number, name: string, fn: () => string | null];

class Simulation {
  private readonly prng: Prng;
  /**
   * Draws for leader-gone reports (a refused dial to the leader, see Raft.leaderUnreachable),
   * apart so that they leave every other draw of a seed's trajectory where it was.
   */
  private readonly goneRng: Prng;
  private readonly leaderGone: boolean;
  private readonly n: number;
  private readonly stepsTarget: number;
  private readonly traceOn: boolean;
  private readonly trace: string[] = [];
  private readonly clock = new VirtualClock();
  private readonly checker = new InvariantChecker();
  private readonly cluster: FaultCluster;
  private readonly plant: PlantedBugs;
  /** Members run on skewed clocks (rate 0.9-1.1, random offset) in this run. */
  private readonly skewed: boolean;
  private readonly clockPrng: Prng;
  private readonly profile: 'balanced' | 'churn' | 'membership';
  /** null: synchronous storage; else fsyncs complete off-loop within this many ms. */
  private readonly maxSyncMs: number | null;
  /** Async-disk seeds: light Readies fsync inline (NodeHost inlineLightSyncs) in half of them. */
  private readonly inlineSyncs: boolean;
  /** Leaders hold commit-only appends this long (NodeHost commitNoticeDelayMs): 0 in half the seeds. */
  private readonly noticeDelayMs: number;
  private readonly storages = new Map<NodeId, SimStorage>();
  /** The coordination workload (see coord-workload.ts), or null: plain tokens. */
  private readonly workload: CoordWorkload | null;
  /** SimMachine.partRestores when this run began (the count is per process). */
  private readonly partRestoresBefore = SimMachine.partRestores;
  private readonly steppedTakesBefore = SimMachine.steppedTakes;
  private readonly params: {
    compactionThreshold: number;
    raft: Partial<Omit<RaftConfig, 'id' | 'seed'>>;
  };

  // ---- what the simulator knows about the cluster ----
  /** Membership as committed (applied by the first machine to reach each conf entry). */
  private voters = new Set<NodeId>();
  private learners = new Set<NodeId>();
  private modelApplied = 0;
  /** Every id ever started. */
  private started = new Set<NodeId>();
  /** Removed from the membership: never restarted; stopped at `retireAt` step. */
  private removed = new Set<NodeId>();
  private retireAt = new Map<NodeId, number>();
  private crashed = new Set<NodeId>();
  private joining: NodeId | null = null;
  private nextId: number;
  private pendingConf: { index: number; voters: Set<NodeId>; cc: ConfChange } | null = null;
  private groups: NodeId[][] | null = null;
  private isolated = new Set<NodeId>();
  /** Members one direction of whose links is cut (see actOneWay). */
  private oneWay: { links: Array<[NodeId, NodeId]>; nodes: Set<NodeId> } | null = null;
  /** Paused processes (see actPause): down, for the fault budget, until they wake. */
  private paused = new Set<NodeId>();
  /** Members whose disk was wiped: never restarted under that id; removed, then replaced. */
  private wiped = new Set<NodeId>();
  /** Members whose current life saw an fsync error (they must have stopped). */
  private fsyncFailed = new Set<NodeId>();
  /** Wiped voters removed and not yet replaced by a new voter. */
  private toReplace = 0;
  private proposalSeq = 0;
  private step = 0;
  private errorsSeen = 0;
  private stopped = false;
  private inLiveness = false;
  /** A node to crash or power-fail mid-step once its disk has writes in flight. */
  private armed: NodeId | null = null;
  private armedHow: 'power' | 'crash' | 'bounce' = 'power';
  /** Power-fail the whole cluster mid-step, once some disk has writes in flight. */
  private blackoutArmed = false;
  private readonly stats: SimStats = {
    proposals: 0,
    acked: 0,
    reads: 0,
    readsOk: 0,
    crashes: 0,
    restarts: 0,
    restartsFromCheckpoint: 0,
    partitions: 0,
    confChanges: 0,
    transfers: 0,
    snapshotsInstalled: 0,
    snapshotsTaken: 0,
    livenessChecks: 0,
    leaderChanges: 0,
    maxIndex: 0,
    faults: zeroFaults(),
    coordRuns: 0,
    coordStateChecks: 0,
    coordPartRestores: 0,
    coordSteppedTakes: 0,
    snapshotResendsSkipped: 0,
    heartbeatsHeld: 0,
    coordOrchsCompacted: 0,
  };

  constructor(
    readonly seed: number,
    opts: SimOptions,
  ) {
    this.prng = new Prng(seed);
    this.goneRng = new Prng((seed ^ 0x6f6e65) >>> 0);
    this.leaderGone = opts.leaderGone ?? true;
    // Burn a few draws: mulberry32's first outputs for adjacent small seeds are correlated.
    for (let i = 0; i < 4; i++) this.prng.next();
    this.n = opts.nodes ?? nodesForSeed(seed);
    this.stepsTarget = opts.steps ?? DEFAULT_STEPS;
    this.traceOn = opts.trace ?? false;
    this.plant = opts.plant ?? {};
    this.nextId = this.n + 1;

    const p = this.prng;
    const raft: Partial<Omit<RaftConfig, 'id' | 'seed'>> = {
      preVote: p.chance(0.8),
      checkQuorum: p.chance(0.8),
      maxInflightMsgs: p.pick([1, 2, 8, 256]),
      maxEntriesPerMsg: p.pick([1, 3, 64, 512]),
      maxBytesPerMsg: p.pick([64, 1 << 20]),
    };
    this.params = { compactionThreshold: p.pick([5, 10, 20, 50, 1000]), raft };
    // The schedule's flavour: balanced, leader churn (crash or cut off leaders mid-replication,
    // restart quickly: the Figure 8 family), or membership-heavy.
    this.profile = p.pick(['balanced', 'balanced', 'churn', 'membership'] as const);
    this.maxSyncMs = p.chance(0.5) ? null : p.pick([1, 5, 20, 50]);
    // From the seed's bits, not the PRNG, so every other draw (and each seed's schedule) is as before.
    this.inlineSyncs = this.maxSyncMs !== null && Math.imul(seed, 0x9e3779b1) >>> 31 === 1;
    // From the seed's bits, not the PRNG: every other draw of a seed stays as it was.
    this.noticeDelayMs = opts.noticeDelayMs ?? ([0, 0, 2, 25][Math.imul(seed, 0x85ebca6b) >>> 30] as number);
    const diskPrng = p.fork();
    this.skewed = p.chance(0.7);
    this.clockPrng = p.fork();

    const coordPrng = coordWorkloadFor(seed, opts.coordWorkload);
    this.workload = coordPrng ? new CoordWorkload(coordPrng) : null;

    const ids = Array.from({ length: this.n }, (_, i) => `n${i + 1}`);
    for (const id of ids) this.voters.add(id);
    this.checker.now = () => this.clock.now();
    this.checker.onViolation = (msg) => this.log(`VIOLATION ${msg}`);
    this.cluster = new FaultCluster({
      ids,
      clock: this.clock,
      // Snapshots travel as parts (as over TCP), each subject to the link's faults; the sim's
      // states are tens of bytes, so 4 characters a part makes most of them several parts.
      // With the coordination workload a state is a few KB: parts of 256 characters.
      snapshotChunkChars: this.workload ? 256 : 4,
      snapshotResendAfterMs: opts.snapshotResendAfterMs ?? 0,
      prng: p.fork(),
      clockFor: (id) => {
        if (!this.skewed) return new NodeClock(this.clock);
        this.stats.faults.clock_skew++;
        const rate = 0.9 + 0.2 * this.clockPrng.next();
        const offset = this.clockPrng.int(0, 1_000_000);
        this.log(`clock ${id}: rate ${rate.toFixed(3)}, offset ${offset} ms`);
        return new NodeClock(this.clock, rate, offset);
      },
      storageFor: (id, clock) => {
        const st = this.maxSyncMs === null ? new SimStorage(clock, diskPrng) : new AsyncSimStorage(clock, diskPrng, this.maxSyncMs);
        st.syncOnOpen = !this.plant.noSyncOnOpen;
        st.onFsyncError = () => this.onFsyncError(id);
        this.storages.set(id, st);
        return st;
      },
      machineFor: (id) => new SimMachine(id, this.checker, (node, e) => this.onApplied(node, e), this.workload !== null, this.plant.coordLossyRestore === true, this.plant.coordLossyCheckpoint === true, opts.snapshotPartsOnWire === true),
      onSend: (m) => {
        if (this.fsyncFailed.has(m.from)) this.checker.violation(`fsync error: ${m.from} sent ${m.type} to ${m.to} after its disk reported an fsync failure (it must stop)`);
        const st = this.storages.get(m.from);
        if (st) this.checker.checkSentDurable(m, st.durableImage);
      },
      tickMs: 10,
      embeddedTiming: opts.embeddedTiming === true,
      raft,
      compactionThreshold: this.params.compactionThreshold,
      inlineLightSyncs: this.inlineSyncs,
      commitNoticeDelayMs: this.noticeDelayMs,
      // Coordination runs take checkpoint rows in steps (SimMachine): a few ms apart, so
      // messages, installs and crashes land between them, as on a loaded member.
      checkpointStepDelayMs: this.workload !== null ? 3 : 0,
      requestTimeoutMs: 5000,
    });
    this.randomFaults();
    if (this.traceOn && opts.messages) this.traceMessages();
    this.cluster.onRoleChange((c) => {
      this.checker.onRoleChange(c);
      if (c.role === 'leader') this.stats.leaderChanges++;
      if (c.role === 'leader' && this.profile === 'churn' && !this.stopped && this.prng.chance(0.3)) {
        // Adversary: cut a fresh leader off within a few ms, typically before its first
        // appends land, leaving partly replicated logs behind (the Figure 8 family).
        const id = c.id;
        this.clock.setTimeout(() => this.cutOff(id), this.prng.int(0, 8));
      }
      if (this.traceOn) {
        this.log(`role ${c.id}: ${c.previousRole}->${c.role} term ${c.term} leader ${c.leader ?? '-'}`);
      }
    });
  }

  async run(): Promise<SimResult> {
    this.log(
      `seed ${this.seed}: ${this.n} nodes, ${this.profile} schedule, compactionThreshold ${this.params.compactionThreshold}, ${this.maxSyncMs === null ? 'sync disk' : `async fsync <= ${this.maxSyncMs} ms${this.inlineSyncs ? ', light Readies inline' : ''}`}${this.noticeDelayMs > 0 ? `, commit notices held ${this.noticeDelayMs} ms` : ''}, raft ${JSON.stringify(this.params.raft)}`,
    );
    for (const id of this.cluster.ids) {
      this.started.add(id);
      this.cluster.start(id);
    }
    let nextLiveness = this.prng.int(40, 120);
    for (this.step = 1; this.step <= this.stepsTarget && !this.failed(); this.step++) {
      if (this.step === nextLiveness) {
        await this.liveness();
        nextLiveness += this.prng.int(40, 120);
        if (this.failed()) break;
      }
      this.retire();
      const what = this.act();
      if (what !== null) this.log(`#${this.step} ${what}`);
      await this.advance(this.prng.int(1, this.profile === 'churn' ? 101 : 201));
      this.checkStep();
      if (this.traceOn) this.log(this.stateLine());
    }
    const steps = Math.min(this.step, this.stepsTarget + 1) - 1;
    if (!this.failed()) await this.liveness(true);
    this.stopped = true;
    this.cluster.close();
    for (const h of this.cluster.hosts.values()) {
      const m = h.metrics();
      this.stats.snapshotsInstalled += m.snapshotsInstalled;
      this.stats.snapshotsTaken += m.snapshotsTaken;
    }
    this.stats.maxIndex = this.checker.committedIndex;
    this.stats.snapshotResendsSkipped = this.cluster.network.snapshotResendsSkipped;
    this.stats.heartbeatsHeld = this.cluster.network.heartbeatsHeld;
    if (this.workload) {
      this.stats.coordRuns = 1;
      this.stats.coordStateChecks = this.checker.stateChecks;
      this.stats.coordPartRestores = SimMachine.partRestores - this.partRestoresBefore;
      this.stats.coordSteppedTakes = SimMachine.steppedTakes - this.steppedTakesBefore;
      for (const id of this.cluster.hosts.keys()) {
        const coord = (this.cluster.machine(id) as SimMachine | undefined)?.coord;
        let n = 0;
        for (const o of coord?.tasks.orchs.values() ?? []) if (o.compacted) n++;
        this.stats.coordOrchsCompacted = Math.max(this.stats.coordOrchsCompacted, n);
      }
    }
    return {
      seed: this.seed,
      nodes: this.n,
      steps,
      virtualMs: this.clock.now(),
      violations: [...this.checker.violations],
      trace: this.trace,
      stats: this.stats,
    };
  }

  /** Debugging aid: wrap the network's delivery to log each message that arrives. */
  private traceMessages(): void {
    type Wire = { kind: 'json' | 'clone' | 'part' | 'ack'; data: string | Message | Buffer; bytes: number };
    type Deliver = (ls: { from: NodeId; to: NodeId }, wire: Wire) => void;
    const net = this.cluster.network as unknown as { deliver: Deliver };
    const orig = net.deliver.bind(net);
    net.deliver = (ls, wire) => {
      const { from, to } = ls;
      if (wire.kind === 'part' || wire.kind === 'ack') {
        // A snapshot stream's part or acknowledgement: its JSON head says which bytes.
        const buf = wire.data as Buffer;
        const b = wire.kind === 'part' ? buf.subarray(4, 4 + buf.readUInt32BE(0)).toString() : buf.toString();
        const h = JSON.parse(b) as { index: number; offset?: number; received?: number; total?: number; rewind?: boolean };
        this.log(`${wire.kind === 'part' ? `snap-part ${h.index} @${h.offset}/${h.total}` : `snap-ack ${h.index} got ${h.received}${h.rewind ? ' REWIND' : ''}`} ${from}->${to}`);
        return orig(ls, wire);
      }
      const m = (wire.kind === 'json' ? JSON.parse(wire.data as string) : wire.data) as Message;
      const ents = m.entries.length > 0 ? ` ents ${m.entries[0]!.index}..${m.entries[m.entries.length - 1]!.index}` : '';
      const extra = m.snapshot ? ` snap ${m.snapshot.metadata.index}/${m.snapshot.metadata.term}` : '';
      const ok = this.cluster.network.connected(from, to) && this.cluster.hosts.get(to)?.isRunning ? '' : ' (dropped)';
      this.log(
        `msg ${m.type} ${from}->${to} t${m.term} i${m.index} lt${m.logTerm} c${m.commit}${m.reject ? ` REJ hint ${m.rejectHint}/${m.logTermHint}` : ''}${m.context ? ` ctx ${m.context}` : ''}${ents}${extra}${ok}`,
      );
      orig(ls, wire);
    };
  }

  private failed(): boolean {
    return this.checker.violations.length > 0;
  }

  private log(line: string): void {
    if (this.traceOn) this.trace.push(`[t=${this.clock.now()}] ${line}`);
  }

  // ---- time ------------------------------------------------------------------------------

  /** Run the clock event by event (checking election safety and leader append-only after
   * each), then let promise callbacks run so acknowledgements are seen before the next step. */
  private async advance(ms: number): Promise<void> {
    const target = this.clock.now() + ms;
    let events = 0;
    try {
      for (;;) {
        const t = this.clock.nextTime();
        if (t === undefined || t > target) break;
        if (++events > MAX_EVENTS_PER_MS * Math.max(ms, 1)) {
          this.checker.violation(`livelock: more than ${events - 1} events in ${ms} ms of virtual time at t=${this.clock.now()} (${this.stateLine()})`);
          // Not on to runUntil(target): its budget is the clock's 10 million events, which a
          // message storm that multiplies (duplicated copies) spends for minutes.
          await flush();
          return;
        }
        this.clock.step();
        for (const [id, h] of this.cluster.hosts) {
          if (!h.isRunning) continue;
          this.checker.observeEvent(id, h.core);
          if (h.core.role === 'leader') this.checker.checkCommitDurable(id, h.core, this.holds, this.wiped);
        }
        if (this.armed !== null && this.armedReady(this.storages.get(this.armed))) this.fireArmed();
        if (this.blackoutArmed && this.up().some((h) => (this.storages.get(h.id)?.unsynced ?? 0) > 0)) this.blackout();
      }
      this.clock.runUntil(target);
      if (this.armed !== null) this.fireArmed();
      if (this.blackoutArmed) this.blackout();
    } catch (e) {
      this.checker.violation(`exception at t=${this.clock.now()}: ${(e as Error).stack ?? String(e)}`);
    }
    await flush();
  }

  /** Acknowledged writes are on the disks of enough voters of every voter set in force. */
  private checkDurable(where: string): void {
    // The newest committed voter set: configurations take effect when applied, and a write
    // counted under the one before it is on a quorum of this one too (single-server changes).
    // Not a deposed leader's stale view, nor a proposed set not yet in force.
    this.checker.checkAckedDurable(where, [this.voters], this.holds, this.wiped);
  }

  private readonly holds = (id: NodeId, index: number, term: number): boolean => this.storages.get(id)?.durableImage.holds(index, term) ?? false;

  /** Members whose damage stop (NodeHost.fault) was reported. */
  private readonly faultsSeen = new Set<NodeId>();

  private checkStep(): void {
    this.checkDurable(`step ${this.step}`);
    for (const [id, h] of this.cluster.hosts) if (h.isRunning) this.checker.checkNode(id, h.core);
    for (const id of this.fsyncFailed) {
      if (this.cluster.hosts.get(id)?.isRunning) this.checker.violation(`fsync error: ${id} kept running after its disk reported an fsync failure`);
    }
    // The simulator never damages stored rows: a member that stopped on damaged state found
    // its own state inconsistent (a bug in how it stores or reads it), never a disk fault.
    for (const [id, h] of this.cluster.hosts) {
      if (h.fault !== null && !this.faultsSeen.has(id)) {
        this.faultsSeen.add(id);
        this.checker.violation(`state machine safety: ${id} stopped on its own stored state: ${h.fault}`);
      }
    }
    const errs = this.cluster.network.errors;
    for (; this.errorsSeen < errs.length; this.errorsSeen++) {
      const e = errs[this.errorsSeen]!;
      this.checker.violation(
        `exception in ${e.msg.to} handling ${e.msg.type} from ${e.msg.from} at t=${e.at}: ${(e.error as Error).stack ?? String(e.error)}`,
      );
    }
  }

  // ---- membership model ------------------------------------------------------------------

  /** First application of each index anywhere: follow committed membership changes. */
  private onApplied(_node: NodeId, e: Entry): void {
    if (e.index <= this.modelApplied || this.stopped) return;
    this.modelApplied = e.index;
    if (this.pendingConf && this.pendingConf.index <= e.index) this.pendingConf = null;
    if (e.type !== 'conf') return;
    const cc = JSON.parse(e.data) as ConfChange;
    if (cc.type === 'addLearner') {
      if (!this.voters.has(cc.node)) this.learners.add(cc.node);
      if (this.joining === cc.node) this.joining = null;
    } else if (cc.type === 'addVoter') {
      this.learners.delete(cc.node);
      this.voters.add(cc.node);
      if (this.joining === cc.node) this.joining = null;
      if (this.toReplace > 0) this.toReplace--;
    } else {
      if (this.wiped.has(cc.node) && this.voters.has(cc.node)) this.toReplace++;
      this.voters.delete(cc.node);
      this.learners.delete(cc.node);
      if (!this.removed.has(cc.node)) {
        this.removed.add(cc.node);
        // A removed member is decommissioned a little later, as an operator would.
        this.retireAt.set(cc.node, this.step + this.prng.int(0, 15));
      }
    }
    this.log(`membership committed at ${e.index}: ${cc.type} ${cc.node} -> voters [${[...this.voters].sort()}] learners [${[...this.learners].sort()}]`);
  }

  /**
   * A removed member that a running member still counts as a voter (it has not applied the
   * removal yet: the leader that committed it, removing itself, may have crashed before telling
   * anyone). Its vote may still be needed for a quorum of that member's view: an operator
   * decommissions a member once its removal is known, and no fault takes it down meanwhile
   * without the fault budget's consent.
   */
  private stillCounted(id: NodeId): boolean {
    for (const h of this.cluster.hosts.values()) if (h.id !== id && h.isRunning && h.core && h.core.confState().voters.includes(id)) return true;
    return false;
  }

  private retire(): void {
    for (const [id, at] of this.retireAt) {
      if (at > this.step || this.stillCounted(id)) continue;
      this.retireAt.delete(id);
      if (this.cluster.hosts.get(id)?.isRunning) {
        this.cluster.crash(id);
        this.checker.forget(id);
        this.log(`retire removed member ${id}`);
      }
      this.crashed.delete(id);
    }
  }

  /** Processes that are up and not paused: the ones a client can talk to. */
  private running(): NodeHost[] {
    const out: NodeHost[] = [];
    for (const h of this.cluster.hosts.values()) if (h.isRunning && !this.paused.has(h.id)) out.push(h);
    return out;
  }

  /** Processes that are up, paused or not. */
  private up(): NodeHost[] {
    const out: NodeHost[] = [];
    for (const h of this.cluster.hosts.values()) if (h.isRunning) out.push(h);
    return out;
  }

  private leader(): NodeHost | undefined {
    let best: NodeHost | undefined;
    for (const h of this.cluster.hosts.values()) {
      if (!h.isRunning || this.paused.has(h.id) || h.core.role !== 'leader') continue;
      if (!best || h.core.term > best.core.term) best = h;
    }
    return best;
  }

  private healthy(id: NodeId, crashed: ReadonlySet<NodeId>, groups: NodeId[][] | null, isolated: ReadonlySet<NodeId>): boolean {
    if (!this.started.has(id) || this.removed.has(id) || crashed.has(id) || isolated.has(id)) return false;
    if (this.paused.has(id) || this.oneWay?.nodes.has(id)) return false;
    if (groups && !(groups[0] as NodeId[]).includes(id)) return false;
    return true;
  }

  /** Voter sets that may be in force: committed, each node's view, and the proposed one. */
  private configs(extra?: Set<NodeId>): Array<Set<NodeId>> {
    const out: Array<Set<NodeId>> = [this.voters];
    for (const [id, h] of this.cluster.hosts) {
      if (this.removed.has(id) || !h.core) continue;
      const v = h.core.confState().voters;
      if (v.length > 0) out.push(new Set(v));
    }
    if (this.pendingConf) out.push(this.pendingConf.voters);
    if (extra) out.push(extra);
    return out;
  }

  /**
   * At most a minority of every voter set may be down or cut off, so liveness stays defined.
   */
  private budgetOk(
    change: { crashed?: ReadonlySet<NodeId>; groups?: NodeId[][] | null; isolated?: ReadonlySet<NodeId> },
    extra?: Set<NodeId>,
  ): boolean {
    const crashed = change.crashed ?? this.crashed;
    const groups = change.groups !== undefined ? change.groups : this.groups;
    const isolated = change.isolated ?? this.isolated;
    for (const v of this.configs(extra)) {
      let up = 0;
      for (const id of v) if (this.healthy(id, crashed, groups, isolated)) up++;
      if (up < Math.floor(v.size / 2) + 1) return false;
    }
    return true;
  }

  // ---- actions ---------------------------------------------------------------------------

  private act(): string | null {
    // Now and then a follower hears that its leader is gone when it is not (a link that
    // refused a dial for another reason): at most an early election, never a safety issue.
    if (this.leaderGone && this.goneRng.chance(0.03)) {
      const fs = this.running().filter((h) => h.core.role === 'follower' && h.core.lead !== null);
      if (fs.length > 0) {
        const f = this.goneRng.pick(fs);
        f.leaderUnreachable(f.core.lead as NodeId);
        this.stats.faults.leader_gone++;
      }
    }
    const churn = this.profile === 'churn';
    const actions: Action[] = [
      [30, 'propose', () => this.actPropose()],
      [churn ? 6 : 12, 'read', () => this.actRead()],
      [churn ? 2 : 4, 'crash', () => this.actCrash(false)],
      [churn ? 10 : 2, 'crash-leader', () => this.actCrash(true)],
      [churn ? 14 : 6, 'restart', () => this.actRestart()],
      [3, 'bounce', () => this.actBounce()],
      [4, 'partition', () => this.actPartition()],
      [churn ? 6 : 3, 'isolate', () => this.actIsolate()],
      [5, 'heal', () => this.actHeal()],
      [4, 'faults', () => this.randomFaults()],
      [2, 'link', () => this.actLinkFaults()],
      [2, 'slow-link', () => this.actSlowLink()],
      [this.profile === 'membership' ? 20 : churn ? 2 : 6, 'membership', () => this.actMembership()],
      [4, 'transfer', () => this.actTransfer()],
      [1, 'blackout', () => this.actBlackout()],
      [2, 'one-way', () => this.actOneWay()],
      [churn ? 4 : 2, 'pause', () => this.actPause()],
      [1, 'fsync-error', () => this.actFsyncError()],
      [1, 'power-fail-down', () => this.actPowerFailDown()],
      [this.profile === 'membership' ? 2 : 0.5, 'wipe', () => this.actWipe()],
      [this.replacing() ? 15 : 0, 'replace-wiped', () => this.actMembership(true)],
      [churn ? 4 : 2, 'campaign', () => this.actCampaign()],
      [churn ? 3 : 15, 'idle', () => null],
    ];
    let total = 0;
    for (const a of actions) total += a[0];
    let r = this.prng.next() * total;
    for (const [w, , fn] of actions) {
      if (r < w) return fn();
      r -= w;
    }
    return null;
  }

  private pickRunning(): NodeHost | undefined {
    const hs = this.running();
    return hs.length > 0 ? this.prng.pick(hs) : undefined;
  }

  private propose(h: NodeHost, data: string): string {
    this.stats.proposals++;
    const tok = this.checker.writeIssued(data);
    try {
      h.propose(data).then(
        (r) => {
          this.stats.acked++;
          this.log(`ack ${data} at ${r.index} (${h.id})`);
          this.checker.onAck(h.id, r.index, data, r.result, tok);
        },
        () => {},
      );
      return `${data}@${h.core.log.lastIndex()}`;
    } catch (e) {
      return `${data}:${errCode(e)}`;
    }
  }

  /** The newest leader mostly; sometimes any node that thinks it leads (a deposed leader
   * cut off in a minority still accepts proposals, which later get truncated), or any node. */
  private pickTarget(pLeader: number): NodeHost | undefined {
    const l = this.leader();
    if (l && this.prng.chance(pLeader)) return l;
    if (this.prng.chance(0.5)) {
      const leaders = this.running().filter((h) => h.core.role === 'leader');
      if (leaders.length > 0) return this.prng.pick(leaders);
    }
    return this.pickRunning();
  }

  private actPropose(): string {
    const h = this.pickTarget(0.75);
    if (!h) return 'propose: no running node';
    const count = this.prng.int(1, 4);
    const out: string[] = [];
    for (let i = 0; i < count; i++) out.push(this.propose(h, this.proposalData(h)));
    return `propose via ${h.id}: ${out.join(' ')}`;
  }

  /** A plain token, or with the coordination workload a command built from `h`'s view. */
  private proposalData(h: NodeHost): string {
    ++this.proposalSeq;
    if (!this.workload) return `p${this.proposalSeq}`;
    const view = (this.cluster.machine(h.id) as SimMachine | undefined)?.coord ?? null;
    return this.workload.next(view, this.clock.now(), h.core.term);
  }

  private actRead(): string {
    const h = this.pickTarget(0.4);
    if (!h) return 'read: no running node';
    this.stats.reads++;
    const machine = this.cluster.machine(h.id) as SimMachine | undefined;
    const tok = this.checker.readIssued(h.id, machine);
    try {
      h.readIndex().then(
        (index) => {
          this.stats.readsOk++;
          this.log(`read at ${h.id} issued t=${tok.issuedAt} -> index ${index} (must see ${tok.mustSee})`);
          this.checker.onReadResolved(tok, index);
        },
        (e) => this.log(`read at ${h.id} issued t=${tok.issuedAt} failed: ${errCode(e)}`),
      );
      return `read via ${h.id} (must see ${tok.mustSee})`;
    } catch (e) {
      return `read via ${h.id}: ${errCode(e)}`;
    }
  }

  /**
   * Every member loses power at once (members of an embedded cluster share one machine) and
   * restarts from what its disk had made durable. Acknowledged writes must survive: an
   * acknowledgement promises durability on a majority.
   */
  private blackout(): void {
    this.blackoutArmed = false;
    if (this.inLiveness) return;
    const ids = this.up()
      .map((h) => h.id)
      .filter((id) => !this.removed.has(id))
      .sort(byNodeId);
    const lost = ids.map((id) => this.storages.get(id)?.unsynced ?? 0);
    for (const id of ids) this.crash(id, true);
    for (const id of ids) this.restart(id);
    this.stats.faults.blackout++;
    this.log(`blackout: every member lost power and restarted (unsynced batches lost: ${ids.map((id, i) => `${id}=${lost[i]}`).join(' ')})`);
  }

  /** A power failure bites when writes are in flight; a crash, when entries are (the next
   * open reads them back unsynced). */
  private armedReady(st: SimStorage | undefined): boolean {
    if (!st) return false;
    return this.armedHow === 'power' ? st.unsynced > 0 : st.unsyncedEntries > 0;
  }

  /** Power-fail the armed node now (mid-step, while its disk has writes in flight). */
  private fireArmed(): void {
    const id = this.armed as NodeId;
    this.armed = null;
    if (this.inLiveness || !this.cluster.hosts.get(id)?.isRunning) return;
    if ((!this.removed.has(id) || this.stillCounted(id)) && !this.budgetOk({ crashed: new Set(this.crashed).add(id) })) return;
    // A power failure loses the writes in flight; a process crash leaves them written but
    // not durable, for the next open to read back (a bounce: at once).
    const how = this.crash(id, this.armedHow === 'power');
    if (this.armedHow === 'bounce') this.restart(id);
    this.log(`${how}${this.armedHow === 'bounce' ? '+restart' : ''} ${id} (armed)`);
  }

  private actBlackout(): string {
    if (this.maxSyncMs === null) {
      // Synchronous disks lose nothing: a whole-cluster crash and restart from storage.
      this.blackout();
      return 'blackout';
    }
    this.blackoutArmed = true;
    return 'arm blackout';
  }

  private actCrash(leader: boolean): string | null {
    let h = leader ? this.pickTarget(0.7) : this.pickRunning();
    if (this.maxSyncMs !== null && this.prng.chance(0.7)) {
      // Prefer a node with writes in flight to its disk: that is when a power failure bites.
      const busy = this.running().filter((x) => (this.storages.get(x.id)?.unsynced ?? 0) > 0);
      if (busy.length > 0) h = this.prng.pick(busy);
    }
    if (!h) return null;
    const crashed = new Set(this.crashed).add(h.id);
    if ((!this.removed.has(h.id) || this.stillCounted(h.id)) && !this.budgetOk({ crashed })) return `crash ${h.id}: skipped (fault budget)`;
    if (this.maxSyncMs !== null && this.armed === null && this.prng.chance(0.5)) {
      this.armedHow = this.prng.pick(['power', 'power', 'crash', 'bounce'] as const);
      // Power-fail it during the coming step, at the first moment it has unsynced writes.
      this.armed = h.id;
      return `arm ${this.armedHow} ${h.id}`;
    }
    return `${this.crash(h.id)} ${h.id}`;
  }

  /** Crash a member: a process crash, or (async disks only) a power failure that also
   * loses whatever was written but not yet fsynced. Returns which. */
  private crash(id: NodeId, powerFail?: boolean): string {
    this.cluster.crash(id);
    // Its followers' redials are refused (a crashed process): most hear it at once.
    for (const h of this.leaderGone ? this.running() : []) {
      if (h.core.lead === id && this.goneRng.chance(0.7)) {
        h.leaderUnreachable(id);
        this.stats.faults.leader_gone++;
      }
    }
    this.checker.forget(id);
    this.paused.delete(id);
    this.stats.crashes++;
    if (!this.removed.has(id)) this.crashed.add(id);
    const st = this.storages.get(id);
    if (st && this.maxSyncMs !== null && (powerFail ?? this.prng.chance(0.5))) return this.powerFail(id, st);
    this.stats.faults.crash++;
    const unsynced = st?.unsynced ?? 0;
    st?.processCrash();
    if (unsynced === 0) return 'crash';
    // The kernel still holds them: the next open reads them back (and must fsync them).
    this.stats.faults.unsynced_survived_crash++;
    return `crash (${unsynced} unsynced batches stay written, not durable)`;
  }

  /** The machine of a (crashed or running) member loses power. */
  private powerFail(id: NodeId, st: SimStorage): string {
    const r = st.powerFailure();
    this.stats.faults.power_failure++;
    if (r.lost > 0) this.stats.faults.unsynced_loss++;
    if (r.torn) this.stats.faults.torn_batch++;
    return `power failure (unsynced batches: ${r.kept} written back, ${r.lost} lost${r.lost > 0 ? ', the first torn and rolled back' : ''})`;
  }

  private restart(id: NodeId): void {
    this.crashed.delete(id);
    this.fsyncFailed.delete(id);
    const host = this.cluster.restart(id);
    this.stats.restarts++;
    if (host?.metrics().startState?.from === 'checkpoint') this.stats.restartsFromCheckpoint++;
    this.stats.faults.restart++;
    const st = this.storages.get(id);
    if (st && this.maxSyncMs !== null && st.unsyncedAtLastOpen > 0 && !this.inLiveness && !this.stopped && this.prng.chance(0.6)) {
      // It just read back writes that were never fsynced. Lose power again shortly: had the
      // open not made them durable, whatever it acted on since would be gone.
      const ms = this.prng.int(1, 40);
      this.log(`${id} opened ${st.unsyncedAtLastOpen} unsynced batches; power failure in ${ms} ms`);
      this.clock.setTimeout(() => this.powerFailAfterRestart(id), ms);
    }
  }

  private powerFailAfterRestart(id: NodeId): void {
    if (this.stopped || this.inLiveness || !this.cluster.hosts.get(id)?.isRunning || this.removed.has(id)) return;
    if (!this.budgetOk({ crashed: new Set(this.crashed).add(id) })) return;
    this.stats.faults.power_failure_after_restart++;
    this.log(`${this.crash(id, true)} ${id} (shortly after its restart)`);
    if (this.prng.chance(0.5)) {
      this.restart(id);
      this.log(`restart ${id} after the power failure`);
    }
  }

  /** An fsync of `id` failed: its host must stop at once, never acknowledging the batch. */
  private onFsyncError(id: NodeId): void {
    this.fsyncFailed.add(id);
    this.stats.faults.fsync_error++;
    this.checker.forget(id);
    this.paused.delete(id);
    if (!this.removed.has(id)) this.crashed.add(id);
    this.log(`fsync error at ${id}: unsynced batches dropped; the member must stop`);
  }

  private actRestart(): string | null {
    const ids = [...this.crashed].filter((id) => !this.removed.has(id) && !this.wiped.has(id));
    if (ids.length === 0) return null;
    const id = this.prng.pick(ids.sort());
    this.restart(id);
    return `restart ${id} from storage`;
  }

  private actBounce(): string | null {
    const h = this.pickRunning();
    if (!h || this.removed.has(h.id) || this.wiped.has(h.id)) return null;
    if (this.maxSyncMs !== null && this.armed === null && this.prng.chance(0.8)) {
      // Kill and restart it mid-step, while a write is in flight to its disk.
      this.armed = h.id;
      this.armedHow = 'bounce';
      return `arm bounce ${h.id}`;
    }
    const how = this.crash(h.id);
    this.restart(h.id);
    return `${how}+restart ${h.id}`;
  }

  private candidatesForPartition(): NodeId[] {
    return [...this.started].filter((id) => !this.removed.has(id)).sort();
  }

  private actPartition(): string | null {
    const ids = this.candidatesForPartition();
    for (let attempt = 0; attempt < 4; attempt++) {
      const shuffled = shuffle(this.prng, ids);
      const mainSize = this.prng.int(Math.floor(ids.length / 2) + 1, ids.length);
      const main = shuffled.slice(0, mainSize);
      const rest = shuffled.slice(mainSize);
      const groups: NodeId[][] = [main];
      if (rest.length > 1 && this.prng.chance(0.5)) {
        const cut = this.prng.int(1, rest.length);
        groups.push(rest.slice(0, cut), rest.slice(cut));
      } else if (rest.length > 0) groups.push(rest);
      if (!this.budgetOk({ groups })) continue;
      this.groups = groups;
      this.cluster.network.partition(groups);
      this.stats.partitions++;
      this.stats.faults.partition++;
      return `partition ${groups.map((g) => `[${g.sort().join(',')}]`).join(' | ')}`;
    }
    return 'partition: skipped (fault budget)';
  }

  private actIsolate(): string | null {
    const l = this.leader();
    const h = l && this.prng.chance(0.4) ? l : this.pickRunning();
    if (!h) return null;
    const isolated = new Set(this.isolated).add(h.id);
    if (!this.budgetOk({ isolated })) return `isolate ${h.id}: skipped (fault budget)`;
    this.isolated = isolated;
    this.cluster.network.isolate(h.id);
    this.stats.partitions++;
    this.stats.faults.isolate++;
    return `isolate ${h.id}`;
  }

  /** Crash or isolate a node between steps, if the fault budget allows. */
  private cutOff(id: NodeId): void {
    if (this.stopped || this.inLiveness || !this.cluster.hosts.get(id)?.isRunning || this.removed.has(id)) return;
    if (this.prng.chance(0.5)) {
      if (!this.budgetOk({ crashed: new Set(this.crashed).add(id) })) return;
      this.log(`adversary: ${this.crash(id)} new leader ${id}`);
    } else {
      const isolated = new Set(this.isolated).add(id);
      if (!this.budgetOk({ isolated })) return;
      this.isolated = isolated;
      this.cluster.network.isolate(id);
      this.stats.faults.isolate++;
      this.log(`adversary: isolate new leader ${id}`);
    }
  }

  private actHeal(): string {
    this.cluster.network.heal();
    this.groups = null;
    this.isolated.clear();
    this.clearOneWay();
    return 'heal';
  }

  private clearOneWay(): void {
    if (!this.oneWay) return;
    for (const [a, b] of this.oneWay.links) this.cluster.network.setLinkFaults(a, b, {});
    this.oneWay = null;
  }

  /**
   * A total one-way partition: a member (often the leader) or a minority can send to the
   * rest but hear nothing back, or hear everything but reach nobody.
   */
  private actOneWay(): string | null {
    const ids = this.candidatesForPartition();
    if (ids.length < 3) return null;
    const l = this.leader();
    const size = this.prng.chance(0.6) ? 1 : this.prng.int(1, Math.floor(ids.length / 2) + 1);
    const side = l && this.prng.chance(0.5) ? [l.id, ...shuffle(this.prng, ids.filter((x) => x !== l.id))].slice(0, size) : shuffle(this.prng, ids).slice(0, size);
    const nodes = new Set(side);
    const prev = this.oneWay;
    this.oneWay = { links: [], nodes };
    if (!this.budgetOk({})) {
      this.oneWay = prev;
      return `one-way partition [${side.sort()}]: skipped (fault budget)`;
    }
    this.oneWay = prev;
    this.clearOneWay();
    const outbound = this.prng.chance(0.5); // true: the side cannot send; false: cannot hear
    const links: Array<[NodeId, NodeId]> = [];
    for (const a of side) {
      for (const b of ids) {
        if (nodes.has(b)) continue;
        const link: [NodeId, NodeId] = outbound ? [a, b] : [b, a];
        this.cluster.network.setLinkFaults(link[0], link[1], { lossRate: 1 });
        links.push(link);
      }
    }
    this.oneWay = { links, nodes };
    this.stats.faults.one_way_partition++;
    return `one-way partition: [${side.sort()}] ${outbound ? 'cannot send to' : 'cannot hear from'} the rest`;
  }

  /** A process pause: the member stops running (timers, messages queue) and later wakes up. */
  private actPause(): string | null {
    const l = this.leader();
    const h = l && this.prng.chance(0.5) ? l : this.pickRunning();
    if (!h) return null;
    const paused = new Set(this.paused).add(h.id);
    const prev = this.paused;
    this.paused = paused;
    const ok = this.removed.has(h.id) || this.budgetOk({});
    if (!ok) {
      this.paused = prev;
      return `pause ${h.id}: skipped (fault budget)`;
    }
    const ms = this.prng.pick([50, 200, 400, 1000, 2500]);
    this.cluster.clockOf(h.id).pause();
    this.stats.faults.pause++;
    const wasLeader = h.core.role === 'leader';
    if (wasLeader) this.stats.faults.leader_pause++;
    this.clock.setTimeout(() => this.wake(h.id), ms);
    return `pause ${h.id}${wasLeader ? ` (leader of term ${h.core.term})` : ''} for ${ms} ms`;
  }

  private wake(id: NodeId): void {
    if (!this.paused.delete(id)) return;
    const c = this.cluster.clockOf(id);
    this.log(`wake ${id} (${c.queued} timers and messages queued)`);
    c.wake();
  }

  /** Arm an fsync failure on a member's disk (asynchronous disks): the member must stop. */
  private actFsyncError(): string | null {
    if (this.maxSyncMs === null) return null;
    const h = this.pickRunning();
    if (!h || this.removed.has(h.id)) return null;
    if (!this.budgetOk({ crashed: new Set(this.crashed).add(h.id) })) return `fsync error ${h.id}: skipped (fault budget)`;
    const st = this.storages.get(h.id);
    if (!st || st.failNextSync) return null;
    st.failNextSync = true;
    return `arm fsync error at ${h.id}`;
  }

  /**
   * A member's disk is wiped (replaced). The member must not come back under its old id with
   * an empty log while it is a voter (it would forget its votes and the entries it
   * acknowledged); the operator removes it and adds a fresh member under a new id.
   */
  private actWipe(): string | null {
    const ids = [...this.voters].filter((id) => this.started.has(id) && !this.removed.has(id) && !this.wiped.has(id)).sort();
    if (ids.length === 0 || [...this.wiped].some((w) => this.voters.has(w) || this.learners.has(w))) return null;
    // Adversary: mostly wipe a member holding the newest acknowledged write while some voter
    // still lacks it, when its copy is one the write's durability counts on.
    const last = this.checker.acked.at(-1);
    let id = this.prng.pick(ids);
    if (last && this.prng.chance(0.7)) {
      const holders = ids.filter((x) => this.holds(x, last.index, last.term));
      if (holders.length > 0 && holders.length < ids.length) id = this.prng.pick(holders);
    }
    if (!this.budgetOk({ crashed: new Set(this.crashed).add(id) })) return `wipe ${id}: skipped (fault budget)`;
    const how = this.cluster.hosts.get(id)?.isRunning ? this.crash(id, true) : 'down';
    this.storages.get(id)?.wipe();
    this.stats.faults.disk_wipe++;
    if (this.plant.amnesiacRejoin) {
      // Planted bug: it rejoins under the same name, an amnesiac voter.
      this.restart(id);
      return `wipe disk of ${id} (${how}) and restart it under the same id (planted bug)`;
    }
    this.wiped.add(id);
    this.crashed.add(id);
    return `wipe disk of ${id} (${how}): to be removed and replaced by a new member`;
  }

  /** Power failure of a member that is already down: its unsynced writes are lost now. */
  private actPowerFailDown(): string | null {
    const ids = [...this.crashed].filter((id) => (this.storages.get(id)?.unsynced ?? 0) > 0).sort();
    if (ids.length === 0) return null;
    const id = this.prng.pick(ids);
    return `${this.powerFail(id, this.storages.get(id) as SimStorage)} ${id} (while down)`;
  }

  /** New global loss/duplication/delay/reorder. `timely`: for liveness windows, a network
   * that delivers: delays well under the election timeout (Raft's broadcast time <<
   * election timeout) and at most 5% loss. (With 20% loss and a bare majority, where one
   * node can win and needs every vote, elections can fail for tens of seconds.) */
  private randomFaults(timely = false): string {
    const p = this.prng;
    const min = p.pick([0, 0, 1, 2, 5]);
    // Mostly well under the election timeout (150-300 ms); now and then comparable to it.
    const max = min + (!timely && p.chance(0.1) ? p.pick([100, 200]) : p.pick([0, 1, 5, 10, 20, 40]));
    const f = {
      lossRate: timely ? p.pick([0, 0, 0.01, 0.05]) : p.pick([0, 0, 0, 0.01, 0.05, 0.1, 0.2]),
      duplicateRate: p.pick([0, 0, 0.01, 0.05, 0.1]),
      delayMs: { min, max },
      reorder: p.chance(0.4),
    };
    this.cluster.network.setGlobalFaults(f);
    if (!timely && (f.lossRate > 0 || f.duplicateRate > 0 || max > 0 || f.reorder)) this.stats.faults.message_faults++;
    return `faults loss ${f.lossRate} dup ${f.duplicateRate} delay ${min}..${max} reorder ${f.reorder}`;
  }

  private actLinkFaults(): string | null {
    const ids = this.candidatesForPartition();
    if (ids.length < 2) return null;
    const a = this.prng.pick(ids);
    const b = this.prng.pick(ids.filter((x) => x !== a));
    const lossRate = this.prng.pick([0.1, 0.3, 0.6]);
    const max = this.prng.pick([5, 30, 80]);
    this.cluster.network.setLinkFaults(a, b, { lossRate, delayMs: { min: 0, max } });
    this.stats.faults.lossy_link++;
    return `link ${a}->${b} loss ${lossRate} delay 0..${max}`;
  }

  /** A member's messages (all it sends, or all it receives) arrive up to hundreds of ms late
   * and out of order: a congested or retransmitting link. Late votes, vote responses,
   * appends and append responses then arrive in terms that have moved on (stale terms). */
  private actSlowLink(): string | null {
    const ids = this.candidatesForPartition();
    if (ids.length < 2) return null;
    const l = this.leader();
    const a = l && this.prng.chance(0.3) ? l.id : this.prng.pick(ids);
    const outbound = this.prng.chance(0.5);
    const min = this.prng.pick([0, 50, 100]);
    const max = min + this.prng.pick([150, 300, 500]);
    for (const b of ids) {
      if (b === a) continue;
      const [x, y] = outbound ? [a, b] : [b, a];
      this.cluster.network.setLinkFaults(x, y, { delayMs: { min, max }, reorder: true });
    }
    this.stats.faults.slow_link++;
    return `slow link: messages ${outbound ? 'from' : 'to'} ${a} delayed ${min}..${max} ms, reordered`;
  }

  /** A wiped member is still in the configuration, or its replacement is not yet a voter. */
  private replacing(): boolean {
    for (const id of this.wiped) if (this.voters.has(id) || this.learners.has(id)) return true;
    return this.toReplace > 0;
  }

  /** `replace`: remove a wiped member, or add (then promote) the new member replacing it. */
  private actMembership(replace = false): string | null {
    const l = this.leader();
    if (!l) return 'membership: no leader';
    const stale = [...this.wiped].filter((id) => this.voters.has(id) || this.learners.has(id)).sort();
    const minVoters = this.n > 3 ? this.n - 1 : 3;
    const maxVoters = this.n + 1;
    const options: string[] = [];
    if (this.joining !== null) {
      if (!this.removed.has(this.joining)) options.push('retry-learner');
    } else if (this.voters.size + this.learners.size < maxVoters + 1 && this.nextId <= this.n + 12) {
      options.push('join');
    }
    const lastIndex = l.core.log.lastIndex();
    const peers = l.core.status().peers;
    const promotable = [...this.learners].filter((id) => {
      const pr = peers.find((p) => p.id === id);
      return pr !== undefined && pr.match >= lastIndex - 3 && this.healthy(id, this.crashed, this.groups, this.isolated);
    });
    if (promotable.length > 0 && this.voters.size < maxVoters) options.push('promote', 'promote');
    if (this.voters.size > minVoters) options.push('remove', 'remove');
    if (this.learners.size > 0) options.push('remove-learner');
    if (replace) {
      options.length = 0;
      if (stale.length > 0) options.push('remove-wiped');
      else if (promotable.length > 0) options.push('promote');
      else if (this.joining !== null && !this.removed.has(this.joining)) options.push('retry-learner');
      else if (this.joining === null) options.push('join');
    }
    if (options.length === 0) return null;
    const what = this.prng.pick(options);
    let cc: ConfChange;
    switch (what) {
      case 'retry-learner':
        cc = { type: 'addLearner', node: this.joining as NodeId };
        break;
      case 'join': {
        const id = `n${this.nextId++}`;
        this.started.add(id);
        this.cluster.startJoining(id);
        if (this.groups) {
          (this.groups[0] as NodeId[]).push(id);
          this.cluster.network.partition(this.groups);
        }
        this.joining = id;
        cc = { type: 'addLearner', node: id };
        break;
      }
      case 'promote':
        cc = { type: 'addVoter', node: this.prng.pick(promotable.sort()) };
        break;
      case 'remove-wiped':
        cc = { type: 'removeNode', node: stale[0] as NodeId };
        break;
      case 'remove': {
        const vs = [...this.voters].sort();
        cc = { type: 'removeNode', node: this.prng.chance(0.35) && this.voters.has(l.id) ? l.id : this.prng.pick(vs) };
        break;
      }
      default:
        cc = { type: 'removeNode', node: this.prng.pick([...this.learners].sort()) };
    }
    const next = new Set(this.voters);
    if (cc.type === 'addVoter') next.add(cc.node);
    if (cc.type === 'removeNode') next.delete(cc.node);
    if (!this.budgetOk({}, next)) return `membership ${cc.type} ${cc.node}: skipped (fault budget)`;
    try {
      l.proposeConfChange(cc).then(
        (r) => this.log(`ack conf ${cc.type} ${cc.node} at ${r.index} (${l.id})`),
        () => {},
      );
      const index = l.core.log.lastIndex();
      this.pendingConf = { index, voters: next, cc };
      this.stats.confChanges++;
      return `membership via ${l.id}: ${cc.type} ${cc.node} at ${index}`;
    } catch (e) {
      return `membership via ${l.id}: ${cc.type} ${cc.node}: ${errCode(e)}`;
    }
  }

  private actTransfer(): string | null {
    const l = this.leader();
    if (!l) return 'transfer: no leader';
    const targets = l.core.confState().voters.filter((v) => v !== l.id);
    if (targets.length === 0) return null;
    const to = this.prng.pick(targets);
    const via = this.prng.chance(0.8) ? l : this.pickRunning();
    if (!via) return null;
    try {
      via.transferLeadership(to);
      this.stats.transfers++;
      return `transfer leadership ${l.id} -> ${to} (via ${via.id})`;
    } catch (e) {
      return `transfer -> ${to} via ${via.id}: ${errCode(e)}`;
    }
  }

  private actCampaign(): string | null {
    const h = this.pickRunning();
    if (!h) return null;
    try {
      h.campaign();
      return `campaign ${h.id}`;
    } catch (e) {
      return `campaign ${h.id}: ${errCode(e)}`;
    }
  }

  // ---- liveness --------------------------------------------------------------------------

  /**
   * Heal everything and restart every crashed member; then a leader must emerge and a fresh
   * write commit within LIVENESS_MS, and every running member must apply it within CATCHUP_MS.
   */
  private async liveness(final = false): Promise<void> {
    this.inLiveness = true;
    try {
      await this.livenessCheck(final);
    } finally {
      this.inLiveness = false;
    }
  }

  private async livenessCheck(final: boolean): Promise<void> {
    this.stats.livenessChecks++;
    this.cluster.network.clearFaults();
    this.oneWay = null; // clearFaults removed its links
    // Armed fsync errors, in-flight ones included: a failing fsync would stop a member the
    // check counts on (seed 100637: one fired 10 ms into the check, leaving no majority).
    for (const st of this.storages.values()) st.disarmFsyncErrors();
    this.log(this.randomFaults(true));
    // Half the checks heal everything; the others leave the crashes and partitions in place
    // (the fault budget guarantees a connected majority of every configuration).
    const full = final || this.prng.chance(0.5) || !this.budgetOk({});
    if (full) {
      this.actHeal();
      for (const id of [...this.paused].sort()) this.wake(id);
      for (const id of [...this.crashed].sort()) if (!this.removed.has(id) && !this.wiped.has(id)) this.restart(id);
      this.crashed = new Set([...this.crashed].filter((id) => this.wiped.has(id) && !this.removed.has(id)));
      this.log(`liveness check: healed, all members up`);
    } else {
      this.log(`liveness check: a majority up and connected, faults left in place`);
    }
    const ok = (id: NodeId): boolean => this.healthy(id, this.crashed, this.groups, this.isolated);
    const start = this.clock.now();
    const data = `live${this.step}`;
    let done: { index: number; node: NodeId } | null = null;
    let lastTry = -Infinity;
    while (!done) {
      if (this.clock.now() - start >= LIVENESS_MS) {
        const l = this.leader();
        this.checker.violation(
          `liveness: no ${l ? 'progress' : 'leader'} within ${LIVENESS_MS} ms of virtual time ${full ? 'after healing' : 'with a majority up and connected'} (leader ${l?.id ?? 'none'}; ${this.stateLine(true)})`,
        );
        return;
      }
      const l = this.leader();
      if (l && this.clock.now() - lastTry >= 500) {
        lastTry = this.clock.now();
        try {
          l.propose(data).then(
            (r) => {
              if (!done) done = { index: r.index, node: l.id };
              this.checker.onAck(l.id, r.index, data, r.result);
            },
            () => {},
          );
        } catch {
          // not leader any more, transfer in progress: retry shortly
        }
      }
      await this.advance(20);
      this.checkStep();
      if (this.failed()) return;
    }
    const committed = done as { index: number; node: NodeId };
    this.log(`liveness: ${data} committed at ${committed.index} after ${this.clock.now() - start} ms`);
    // Catch-up: every running member applies the fresh write.
    const catchStart = this.clock.now();
    let behind = 0;
    for (const id of [...this.voters, ...this.learners]) {
      const m = this.cluster.hosts.get(id)?.isRunning && ok(id) ? (this.cluster.machine(id) as SimMachine) : undefined;
      if (m) behind = Math.max(behind, committed.index - m.lastIndex);
    }
    const catchupMs = CATCHUP_MS + CATCHUP_MS_PER_ENTRY * behind;
    for (;;) {
      const lagging = [...this.voters, ...this.learners].sort().filter((id) => {
        const h = this.cluster.hosts.get(id);
        if (!h?.isRunning || !ok(id)) return false;
        return (this.cluster.machine(id) as SimMachine).lastIndex < committed.index;
      });
      if (lagging.length === 0) {
        // Every member that is up has applied the fresh write: each one's state must include
        // every write acknowledged before it, across all crashes, restarts and wipes.
        const where = full ? 'after healing and restarting every member' : 'with a minority down';
        const machines = [...this.voters, ...this.learners].sort().filter((id) => this.cluster.hosts.get(id)?.isRunning && ok(id));
        this.checker.checkAppliedAcked(where, committed.index, machines.map((id) => this.cluster.machine(id) as SimMachine));
        this.checkDurable(where);
        break;
      }
      if (this.clock.now() - catchStart >= catchupMs) {
        this.checker.violation(`liveness: ${lagging.join(',')} did not apply index ${committed.index} within ${catchupMs} ms (${this.stateLine(true)})`);
        return;
      }
      await this.advance(20);
      this.checkStep();
      if (this.failed()) return;
    }
  }

  /** One line per step in the trace; `conf` adds each node's view of the voters. */
  private stateLine(conf = false): string {
    const parts: string[] = [];
    for (const id of [...this.started].sort(byNodeId)) {
      const h = this.cluster.hosts.get(id);
      if (!h) continue;
      if (!h.isRunning) {
        parts.push(`${id}:${this.removed.has(id) ? 'gone' : 'down'}`);
        continue;
      }
      const c = h.core;
      const r = c.role === 'leader' ? 'L' : c.role === 'follower' ? 'F' : c.role === 'candidate' ? 'C' : 'P';
      const log = c.log;
      const voters = conf ? ` v[${c.confState().voters.join(',')}]` : '';
      parts.push(`${id}:${this.paused.has(id) ? 'zz' : ''}${r}${c.term} c${log.committed} a${log.applied} l${log.lastIndex()} s${log.snapshotIndex}${voters}`);
    }
    const groups = conf && this.groups ? ` partition ${this.groups.map((g) => `[${g.join(',')}]`).join('|')}` : '';
    const isolated = conf && this.isolated.size > 0 ? ` isolated [${[...this.isolated].join(',')}]` : '';
    return `state ${parts.join(' | ')}${groups}${isolated}`;
  }
}

function errCode(e: unknown): string {
  const err = e as { code?: string; name?: string; message?: string };
  return err.code ?? err.name ?? String(e);
}

function shuffle<T>(p: Prng, xs: readonly T[]): T[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = p.int(0, i + 1);
    [a[i], a[j]] = [a[j] as T, a[i] as T];
  }
  return a;
}

function byNodeId(a: NodeId, b: NodeId): number {
  return Number(a.slice(1)) - Number(b.slice(1)) || (a < b ? -1 : a > b ? 1 : 0);
}
