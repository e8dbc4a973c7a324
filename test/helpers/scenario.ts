// Harness for the named Raft scenario tests (test/scenarios): a deterministic cluster on the
// virtual clock and in-process network, with the checks MIT 6.824's Raft tester performs
// (checkOneLeader, nCommitted, one) plus continuous safety monitoring:
//  - election safety: at most one node ever becomes leader in a given term;
//  - state machine safety: no two machines ever apply different entries at one index;
//  - apply order: every machine applies index i+1 right after i (or restores a snapshot).
// Everything runs in virtual time, so wall-clock speed never affects an outcome.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LocalCluster } from '../../src/host/local-cluster.js';
import type { NodeHost, StateMachine } from '../../src/host/node-host.js';
import { Raft } from '../../src/raft/raft.js';
import type { Entry, EntryType, Message, NodeId, RaftConfig, ReadState, RestartState } from '../../src/raft/types.js';
import { DEFAULT_CONFIG, newMessage } from '../../src/raft/types.js';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import { SqliteStorage } from '../../src/storage/sqlite-storage.js';
import type { LogStorage } from '../../src/storage/types.js';
import { Prng } from '../../src/util/prng.js';
import { VirtualClock } from '../../src/util/virtual-clock.js';

// ---- generic waiting -------------------------------------------------------------------

/**
 * Run the virtual clock in `stepMs` slices until `pred` holds. Returns the virtual ms it
 * took; throws (naming `what`) once `maxMs` of virtual time passed without it holding.
 */
export function waitFor(clock: VirtualClock, pred: () => boolean, maxMs: number, what = 'condition', stepMs = 10): number {
  const start = clock.now();
  while (!pred()) {
    if (clock.now() - start >= maxMs) throw new Error(`waitFor: ${what} not reached within ${maxMs} ms of virtual time`);
    clock.runFor(stepMs);
  }
  return clock.now() - start;
}

/** Let promise callbacks (proposal/read acknowledgements) run. */
export async function flushPromises(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise<void>((r) => setImmediate(r));
}

/** Observe a promise without awaiting it: the virtual clock must keep running meanwhile. */
export interface Tracked<T> {
  settled: boolean;
  value?: T;
  error?: Error;
}

export function track<T>(p: Promise<T>): Tracked<T> {
  const t: Tracked<T> = { settled: false };
  p.then(
    (v) => {
      t.settled = true;
      t.value = v;
    },
    (e: Error) => {
      t.settled = true;
      t.error = e;
    },
  );
  return t;
}

// ---- checking state machine ------------------------------------------------------------

export interface AppliedRecord {
  index: number;
  term: number;
  type: EntryType;
  data: string;
}

/** Shared by every machine of one harness: what was applied where, and any violation. */
export class ApplyChecker {
  /** index -> the entry first applied there by anyone. */
  readonly committed = new Map<number, AppliedRecord>();
  readonly violations: string[] = [];

  record(who: NodeId, e: AppliedRecord): void {
    const prev = this.committed.get(e.index);
    if (!prev) {
      this.committed.set(e.index, e);
      return;
    }
    if (prev.term !== e.term || prev.type !== e.type || prev.data !== e.data) {
      this.violations.push(
        `${who} applied ${JSON.stringify(e)} at index ${e.index} but ${JSON.stringify(prev)} was applied there before`,
      );
    }
  }
}

/**
 * Records every applied entry (all types) and checks each against the shared record. Its
 * snapshot is the full applied history plus the last applied index, so a restore resumes
 * the contiguity check exactly where the snapshot was taken.
 */
export class ScenarioMachine implements StateMachine {
  /** Normal (application) entries in apply order. */
  applied: AppliedRecord[] = [];
  readonly byIndex = new Map<number, string>();
  lastIndex = 0;
  restores = 0;

  constructor(
    readonly id: NodeId,
    private readonly checker: ApplyChecker,
  ) {}

  apply(e: Entry): unknown {
    if (e.index !== this.lastIndex + 1) {
      this.checker.violations.push(`${this.id} applied index ${e.index} right after ${this.lastIndex}`);
    }
    this.lastIndex = e.index;
    const rec: AppliedRecord = { index: e.index, term: e.term, type: e.type, data: e.data };
    this.checker.record(this.id, rec);
    if (e.type === 'normal') {
      this.applied.push(rec);
      this.byIndex.set(e.index, e.data);
    }
    return e.data;
  }

  snapshot(): string {
    return JSON.stringify({ lastIndex: this.lastIndex, applied: this.applied });
  }

  restore(data: string): void {
    this.restores++;
    const s = data ? (JSON.parse(data) as { lastIndex: number; applied: AppliedRecord[] }) : { lastIndex: 0, applied: [] };
    this.lastIndex = s.lastIndex;
    this.applied = s.applied;
    this.byIndex.clear();
    for (const r of s.applied) {
      this.byIndex.set(r.index, r.data);
      this.checker.record(`${this.id}(snapshot)`, r);
    }
  }

  data(): string[] {
    return this.applied.map((r) => r.data);
  }
}

// ---- the cluster harness ----------------------------------------------------------------

export interface HarnessOptions {
  n: number;
  seed: number;
  raft?: Partial<Omit<RaftConfig, 'id' | 'seed'>>;
  compactionThreshold?: number;
  requestTimeoutMs?: number;
  /** 'memory' (default) or a directory in which each member keeps `<id>.db`. */
  storage?: 'memory' | { sqliteDir: string };
  tickMs?: number;
}

export interface Ack {
  cmd: string;
  index: number;
}

export class Harness {
  readonly clock = new VirtualClock();
  readonly prng: Prng;
  /** Separate stream for the test's own random choices, so they do not perturb the cluster's. */
  readonly rand: Prng;
  readonly ids: NodeId[];
  readonly checker = new ApplyChecker();
  cluster!: LocalCluster;
  /** Proposals a client saw acknowledged (promise resolved), in acknowledgement order. */
  readonly acks: Ack[] = [];
  /** Proposals whose promise rejected. */
  readonly nacks: Array<{ cmd: string; error: Error }> = [];
  /** term -> node that became leader in it (election safety monitor). */
  readonly leaderOfTerm = new Map<number, NodeId>();
  readonly electionViolations: string[] = [];
  private readonly machines = new Map<NodeId, ScenarioMachine>();
  private readonly disconnected = new Set<NodeId>();
  private readonly opts: HarnessOptions;

  constructor(opts: HarnessOptions) {
    this.opts = opts;
    // SCENARIO_SEED_SALT re-runs every scenario under other seeds (robustness sweeps).
    const seed = (opts.seed + Number(process.env.SCENARIO_SEED_SALT ?? 0) * 7919) >>> 0;
    this.prng = new Prng(seed);
    this.rand = new Prng(seed ^ 0x5bd1e995);
    this.ids = Array.from({ length: opts.n }, (_, i) => `n${i + 1}`);
    this.cluster = this.buildCluster();
  }

  private buildCluster(): LocalCluster {
    const o = this.opts;
    const cluster = new LocalCluster({
      ids: this.ids,
      clock: this.clock,
      prng: this.prng,
      storageFor: (id) => this.openStorage(id),
      machineFor: (id) => {
        const m = new ScenarioMachine(id, this.checker);
        this.machines.set(id, m);
        return m;
      },
      tickMs: o.tickMs ?? 10,
      raft: o.raft ?? {},
      compactionThreshold: o.compactionThreshold ?? 1000,
      requestTimeoutMs: o.requestTimeoutMs ?? 5000,
    });
    cluster.onRoleChange((c) => {
      if (c.role !== 'leader' || c.previousRole === 'leader') return;
      const prev = this.leaderOfTerm.get(c.term);
      if (prev !== undefined && prev !== c.id) {
        this.electionViolations.push(`term ${c.term}: ${c.id} became leader but ${prev} already led it`);
      }
      this.leaderOfTerm.set(c.term, c.id);
    });
    return cluster;
  }

  dbFile(id: NodeId): string {
    const s = this.opts.storage;
    if (!s || s === 'memory') throw new Error('dbFile: harness uses memory storage');
    return path.join(s.sqliteDir, `${id}.db`);
  }

  private openStorage(id: NodeId): LogStorage {
    const s = this.opts.storage;
    if (!s || s === 'memory') return new MemoryStorage();
    return SqliteStorage.open(this.dbFile(id));
  }

  /**
   * Crash every member at once, close their storage (the files stay), and build a fresh
   * cluster (new network, new hosts) that reopens it. Connectivity is kept.
   */
  crashAllAndReopen(start = true): void {
    this.cluster.close();
    this.cluster = this.buildCluster();
    this.applyConnectivity();
    if (start) this.cluster.startAll();
  }

  startAll(): this {
    this.cluster.startAll();
    return this;
  }

  host(id: NodeId): NodeHost {
    return this.cluster.host(id);
  }

  machine(id: NodeId): ScenarioMachine {
    const m = this.machines.get(id);
    if (!m) throw new Error(`no machine for ${id}`);
    return m;
  }

  hasMachine(id: NodeId): boolean {
    return this.machines.has(id);
  }

  isRunning(id: NodeId): boolean {
    return this.cluster.hosts.get(id)?.isRunning ?? false;
  }

  runFor(ms: number): void {
    this.clock.runFor(ms);
  }

  waitFor(pred: () => boolean, maxMs: number, what?: string, stepMs?: number): number {
    return waitFor(this.clock, pred, maxMs, what, stepMs);
  }

  // -- connectivity (6.824 model: connected members all reach each other; a disconnected
  //    member reaches nobody) --

  disconnect(id: NodeId): void {
    this.disconnected.add(id);
    this.applyConnectivity();
  }

  connect(id: NodeId): void {
    this.disconnected.delete(id);
    this.applyConnectivity();
  }

  connectAll(): void {
    this.disconnected.clear();
    this.applyConnectivity();
  }

  isConnected(id: NodeId): boolean {
    return !this.disconnected.has(id);
  }

  private applyConnectivity(): void {
    const net = this.cluster.network;
    if (this.disconnected.size === 0) net.heal();
    // Ids outside the list (including members added later) are in no group: cut off.
    else net.partition([this.allIds().filter((id) => !this.disconnected.has(id))]);
  }

  /** The configured ids plus any member started later (joiners). */
  allIds(): NodeId[] {
    return [...new Set([...this.ids, ...this.cluster.hosts.keys()])];
  }

  /** Running members reachable in the current connectivity. */
  live(): NodeId[] {
    return this.allIds().filter((id) => this.isRunning(id) && this.isConnected(id));
  }

  // -- leadership --

  /** Running, connected members that currently believe they lead, grouped by term. */
  leadersByTerm(among: NodeId[] = this.live()): Map<number, NodeId[]> {
    const out = new Map<number, NodeId[]>();
    for (const id of among) {
      const s = this.host(id).status();
      if (s.role !== 'leader') continue;
      const l = out.get(s.term) ?? [];
      l.push(id);
      out.set(s.term, l);
    }
    for (const [term, ls] of out) if (ls.length > 1) throw new Error(`term ${term} has ${ls.length} leaders: ${ls.join(', ')}`);
    return out;
  }

  /** The leader every running connected member follows, once they all agree. */
  stableLeader(among: NodeId[] = this.live()): NodeId | null {
    const byTerm = this.leadersByTerm(among);
    if (byTerm.size === 0) return null;
    const term = Math.max(...byTerm.keys());
    const leader = (byTerm.get(term) as NodeId[])[0] as NodeId;
    for (const id of among) {
      const s = this.host(id).status();
      if (s.term !== term || s.leader !== leader) return null;
    }
    return leader;
  }

  /** Wait (default at most 5 s virtual) until the connected members agree on one leader. */
  checkOneLeader(maxMs = 5000, among?: () => NodeId[]): NodeId {
    let leader: NodeId | null = null;
    this.waitFor(() => (leader = this.stableLeader(among ? among() : this.live())) !== null, maxMs, 'one agreed leader');
    return leader as unknown as NodeId;
  }

  /** Every connected running member has the same term; returns it. */
  checkTerms(among: NodeId[] = this.live()): number {
    const terms = new Set(among.map((id) => this.host(id).status().term));
    if (terms.size !== 1) throw new Error(`members disagree on term: ${[...terms].join(', ')}`);
    return [...terms][0] as number;
  }

  /** No running connected member believes it leads. */
  checkNoLeader(among: NodeId[] = this.live()): void {
    for (const id of among) {
      const s = this.host(id).status();
      if (s.role === 'leader') throw new Error(`expected no leader among ${among.join(',')}, but ${id} leads term ${s.term}`);
    }
  }

  // -- replication --

  /** How many machines (crashed ones included: what they applied stays applied) applied
   * `index`, and the command there. Throws if two of them disagree. */
  nCommitted(index: number): { count: number; data: string | undefined } {
    let count = 0;
    let data: string | undefined;
    for (const id of this.allIds()) {
      if (!this.machines.has(id)) continue;
      const d = this.machine(id).byIndex.get(index);
      if (d === undefined) continue;
      if (count > 0 && d !== data) throw new Error(`committed values at index ${index} differ: ${data} vs ${d}`);
      data = d;
      count++;
    }
    return { count, data };
  }

  /**
   * Propose `cmd` at `id` if it is a running leader. Returns the index the proposal got, or
   * null when `id` refused it. The client's acknowledgement is recorded in `acks`.
   */
  start(id: NodeId, cmd: string): { index: number; term: number } | null {
    if (!this.isRunning(id)) return null;
    const h = this.host(id);
    let p: Promise<{ index: number; result: unknown }>;
    try {
      p = h.propose(cmd);
    } catch {
      return null;
    }
    const index = h.core.log.lastIndex();
    const term = h.core.term;
    p.then(
      (v) => {
        if (v.index !== index) this.checker.violations.push(`proposal ${cmd} acknowledged at ${v.index}, proposed at ${index}`);
        this.acks.push({ cmd, index: v.index });
      },
      (e: Error) => this.nacks.push({ cmd, error: e }),
    );
    return { index, term };
  }

  /**
   * 6.824's one(): submit `cmd` to whichever connected member leads, and wait until at least
   * `expected` machines applied it. With retry, a proposal lost to a leader change is
   * resubmitted. Returns the index it committed at. Throws after 10 s of virtual time.
   */
  one(cmd: string, expected: number, retry = true): number {
    const t0 = this.clock.now();
    let rr = 0;
    while (this.clock.now() - t0 < 10_000) {
      let index = -1;
      const cands = this.live();
      for (let k = 0; k < cands.length; k++) {
        const id = cands[(rr + k) % cands.length] as NodeId;
        const r = this.start(id, cmd);
        if (r) {
          index = r.index;
          break;
        }
      }
      rr++;
      if (index !== -1) {
        const t1 = this.clock.now();
        while (this.clock.now() - t1 < 2000) {
          const { count, data } = this.nCommitted(index);
          if (count > 0 && count >= expected && data === cmd) return index;
          this.clock.runFor(10);
        }
        if (!retry) throw new Error(`one(${cmd}) failed to reach agreement on ${expected} members`);
      } else {
        this.clock.runFor(50);
      }
    }
    throw new Error(`one(${cmd}) failed to reach agreement on ${expected} members within 10 s`);
  }

  /** Application commands a member applied, in order. */
  appliedData(id: NodeId): string[] {
    return this.machine(id).data();
  }

  /** Throw on any safety violation seen so far. */
  assertSafe(): void {
    const all = [...this.checker.violations, ...this.electionViolations];
    if (all.length > 0) throw new Error(`safety violations:\n${all.slice(0, 10).join('\n')}`);
    const errs = this.cluster.network.errors;
    if (errs.length > 0) throw new Error(`message handlers threw: ${String((errs[0] as { error: unknown }).error)}`);
  }

  close(): void {
    this.cluster.close();
  }
}

export function tempDir(prefix = 'concord-scn-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

// ---- the pure core, hand-driven ---------------------------------------------------------

export interface CoreSpec {
  id: NodeId;
  voters: NodeId[];
  learners?: NodeId[];
  term?: number;
  vote?: NodeId | null;
  commit?: number;
  /** Log as terms: logTerms[i] is the term of entry i+1. */
  logTerms?: number[];
  cfg?: Partial<Omit<RaftConfig, 'id'>>;
}

export function newCore(spec: CoreSpec): Raft {
  const terms = spec.logTerms ?? [];
  const entries: Entry[] = terms.map((t, i) => ({ index: i + 1, term: t, type: 'normal', data: `e${i + 1}@${t}` }));
  const restart: RestartState = {
    hardState: { term: spec.term ?? 0, vote: spec.vote ?? null, commit: spec.commit ?? 0 },
    snapshot: null,
    entries,
    initialConf: { voters: spec.voters, learners: spec.learners ?? [] },
  };
  return new Raft({ ...DEFAULT_CONFIG, seed: 1, ...spec.cfg, id: spec.id }, restart);
}

/**
 * etcd-style test network for pure cores: collects each core's ready (treating it as
 * persisted at once), records committed entries and read states, and delivers messages
 * until the system is quiet. `intercept` filters messages (partition, loss, truncation).
 */
export class CoreNet {
  readonly nodes = new Map<NodeId, Raft>();
  readonly committed = new Map<NodeId, Entry[]>();
  readonly readStates = new Map<NodeId, ReadState[]>();
  /** Every message delivered, for assertions on the traffic. */
  readonly delivered: Message[] = [];
  /** Drop a message (return null), rewrite it (e.g. truncate its entries), or pass it. */
  intercept: (m: Message) => Message | null = (m) => m;

  constructor(cores: Raft[]) {
    for (const c of cores) {
      this.nodes.set(c.id, c);
      this.committed.set(c.id, []);
      this.readStates.set(c.id, []);
    }
  }

  node(id: NodeId): Raft {
    const r = this.nodes.get(id);
    if (!r) throw new Error(`no core ${id}`);
    return r;
  }

  /** Take one ready from `id`: persist (no-op), record, advance. Returns its messages. */
  collect(id: NodeId): Message[] {
    const r = this.node(id);
    if (!r.hasReady()) return [];
    const rd = r.ready();
    (this.committed.get(id) as Entry[]).push(...rd.committedEntries);
    (this.readStates.get(id) as ReadState[]).push(...rd.readStates);
    r.advance(rd);
    return rd.messages;
  }

  /** Deliver messages (and everything they trigger) until quiet. Returns delivered count. */
  settle(maxRounds = 1000): number {
    let n = 0;
    for (let round = 0; round < maxRounds; round++) {
      const batch: Message[] = [];
      for (const id of this.nodes.keys()) {
        // Drain a node fully: an advance can produce more (e.g. the leader's own commit).
        for (let k = 0; k < 10; k++) {
          const ms = this.collect(id);
          if (ms.length === 0 && !this.node(id).hasReady()) break;
          batch.push(...ms);
        }
      }
      if (batch.length === 0) return n;
      for (const sent of batch) {
        const to = this.nodes.get(sent.to);
        const m = to ? this.intercept(sent) : null;
        if (!to || !m) continue;
        this.delivered.push(m);
        to.step(m);
        n++;
      }
    }
    throw new Error('CoreNet.settle: did not quiesce');
  }

  /** Tick every core (or the listed ones) `n` times, settling after each tick. */
  tick(n: number, ids: NodeId[] = [...this.nodes.keys()]): void {
    for (let i = 0; i < n; i++) {
      for (const id of ids) this.node(id).tick();
      this.settle();
    }
  }
}

/** Pull one core's outgoing messages without delivering them. */
export function takeMessages(r: Raft): Message[] {
  if (!r.hasReady()) return [];
  const rd = r.ready();
  r.advance(rd);
  return rd.messages;
}

export function msg(partial: Partial<Message> & Pick<Message, 'type' | 'from' | 'to' | 'term'>): Message {
  return newMessage(partial);
}
