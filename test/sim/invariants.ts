// Safety checker for the deterministic simulator. It is fed by observing the hosts (their
// cores' logs, terms, roles and commit indexes), by the state machines' apply hooks, by role
// change events, and by the outcome of client requests (acknowledged proposals and
// ReadIndex reads). Every check is incremental so that checking after every event or step
// costs time proportional to what changed, not to the length of the logs.

import type { RoleChange, StateMachine } from '../../src/host/node-host.js';
import { CoordinationMachine } from '../../src/machine/coordination-machine.js';
import type { Raft } from '../../src/raft/raft.js';
import type { Entry, HardState, Message, NodeId, SnapshotData } from '../../src/raft/types.js';
import type { CheckpointReader, CheckpointTable, TableChanges } from '../../src/storage/types.js';

/** One position of the single committed history every replica must agree on. */
interface HistEntry {
  term: number;
  type: string;
  data: string;
  /** Hash of the state machine after applying entries 1..index (set by the first applier). */
  hash?: number;
  /** Who first fixed this position, for diagnostics. */
  by: string;
}

/** Log matching record: the content of entry (index, term) and the term preceding it. */
interface LmRec {
  term: number;
  type: string;
  data: string;
  prevTerm: number;
  by: NodeId;
  next: LmRec | undefined;
}

interface NodeCursor {
  core: Raft;
  /** Highest committed index checked against the history, this life. */
  commit: number;
  /** Snapshot index last verified. */
  snapshotIndex: number;
  /** Leader completeness: the term this node was last checked leading, and up to where. */
  lcTerm: number;
  lcIndex: number;
}

interface LeaderWatch {
  core: Raft;
  term: number;
  /** Last index seen in the leader's log and the entry object there. */
  wm: number;
  ref: Entry | undefined;
}

export interface AckedWrite {
  index: number;
  term: number;
  data: string;
  at: number;
}

/** What a client had observed when it issued a request (real-time order for linearizability). */
export interface ReadToken {
  node: NodeId;
  issuedAt: number;
  /** Highest index the read must reflect: every write acknowledged, and every state
   * returned by a read that completed, before this read was issued. */
  mustSee: number;
  /** Why: the write, or the earlier read, that set mustSee. */
  mustSeeWhy: string;
  machine: SimMachine | undefined;
}

export interface WriteToken {
  data: string;
  issuedAt: number;
  /** Highest index acknowledged or read before the write was issued: it must land above. */
  floor: number;
  floorWhy: string;
}

/** 32-bit FNV-1a chain over (previous hash, entry). */
export function chainHash(prev: number, e: Pick<Entry, 'term' | 'type' | 'data'>): number {
  let h = (0x811c9dc5 ^ prev) >>> 0;
  const s = `${e.term}|${e.type}|${e.data}`;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * The simulator's state machine: it keeps the applied index and a hash chain of everything
 * applied (noop and conf entries included), and reports each applied entry to the checker,
 * which holds the one history all machines must follow. Its snapshot is just
 * "index:hash", so snapshots stay small however long the run.
 */
/** Non-JSON entries (the plain workload's tokens) reach the coordination machine as this. */
const CLOCK_ONLY = JSON.stringify({ op: { t: 'clock' }, now: 0 });

/** Part and slice sizes of the coordination machine's snapshots in the simulator (see SimMachine.snapshotSteps). */
const SIM_PART_CHARS = 1024;
const SIM_SLICE_CHARS = 512;

/** Rows a SimMachine without the coordination machine keeps in checkpoints: slot (index mod ROW_SLOTS) + 1 -> `index:hash`. */
/** Entries a machine restarted from rows applies before its own state is hashed again. */
const LAZY_CHECK_AFTER = 12;
const ROW_SLOTS = 4;

/**
 * The simulator's state machine: a hash chain over the applied entries (any divergence shows
 * at once), and, in runs with the coordination workload, the product's CoordinationMachine
 * fed the same entries (tasks, retention, memory with TTLs): its state hash at an index must
 * be the same on every replica, whether it applied the log, restored a snapshot or restarted
 * from checkpoint rows.
 */
export class SimMachine implements StateMachine {
  lastIndex = 0;
  hash = 0;
  readonly coord: CoordinationMachine | null;
  /**
   * Without the coordination machine, the state as checkpoint rows too (incremental
   * snapshots): each slot holds the latest applied index in its residue class with the hash
   * after it, so a restart from rows checks that the rows and the meta row come from the same
   * checkpoint. With it, its rows are the coordination machine's (checked by state hash).
   */
  private slots = new Map<number, string>();
  private dirty = new Set<number>();
  private full = true;
  /** No state hash of this machine on apply before this index (see restoreCheckpoint). */
  private lazyUntil = 0;
  /** Restarts of this machine from checkpoint rows (for the simulator's coverage count). */
  static rowRestores = 0;
  /** Snapshots restored from the coordination machine's multi-part form (coverage count). */
  static partRestores = 0;
  /** The coordination parts of the multi-part snapshot last checked (the same array goes to restore). */
  private checked: { data: readonly string[]; coord: readonly string[] } | null = null;

  constructor(
    readonly node: NodeId,
    private readonly checker: InvariantChecker,
    private readonly onApplied?: (node: NodeId, e: Entry) => void,
    withCoord = false,
    /** Planted bug (see PlantedBugs.coordLossyRestore). */
    private readonly lossyRestore = false,
    /** Planted bug (see PlantedBugs.coordLossyCheckpoint). */
    private readonly lossyCheckpoint = false,
    /** See SimOptions.snapshotPartsOnWire. */
    partsOnWire = false,
  ) {
    this.coord = withCoord ? new CoordinationMachine() : null;
    // Only then: a machine with these methods changes what travels, hence every trajectory.
    if (this.coord && partsOnWire) {
      this.snapshotSteps = this.partSteps;
      this.checkSnapshot = this.checkParts;
    }
    // As the product's hosts take a coordination machine's rows: in steps (small ones here).
    if (this.coord) this.checkpointSteps = this.rowSteps;
  }

  snapshotSteps?: () => Generator<void, SnapshotData>;
  checkSnapshot?: (data: SnapshotData) => string | null;
  checkpointSteps?: () => Generator<unknown, { meta: string; tables: Record<CheckpointTable, TableChanges> }>;
  /** Checkpoints whose rows took more than one turn (for the simulator's coverage count). */
  static steppedTakes = 0;

  /**
   * The coordination machine's checkpoint rows taken in slices of SIM_SLICE_CHARS, so a
   * whole-state rewrite after an install (or a large change) is built over several turns with
   * applies held, as a large state's is.
   */
  private *rowSteps(): Generator<unknown, { meta: string; tables: Record<CheckpointTable, TableChanges> }> {
    const head = `${this.lastIndex}:${this.hash}`;
    if (!this.coord) return this.takeCheckpoint();
    const steps = this.coord.checkpointSteps(SIM_SLICE_CHARS);
    let r = steps.next();
    if (!r.done) SimMachine.steppedTakes++;
    while (!r.done) {
      yield r.value;
      r = steps.next();
    }
    return { meta: `${head}:${r.value.meta}`, tables: r.value.tables };
  }

  apply(e: Entry): unknown {
    if (e.index !== this.lastIndex + 1) {
      this.checker.violation(`state machine safety: ${this.node} applied index ${e.index} after ${this.lastIndex} (gap or repeat)`);
    }
    this.hash = chainHash(this.hash, e);
    this.lastIndex = e.index;
    if (this.coord) {
      this.coord.apply(e.type === 'normal' && !e.data.startsWith('{') ? { ...e, data: CLOCK_ONLY } : e);
      // Every 4th index (hashing the whole state on each apply would dominate the run); after
      // a restart from rows, not before LAZY_CHECK_AFTER entries (see restoreCheckpoint).
      if (e.index % 4 === 0 && e.index >= this.lazyUntil) this.checker.onStateHash(this.node, e.index, this.coord.stateHash(), 'apply');
    } else {
      const slot = (e.index % ROW_SLOTS) + 1;
      this.slots.set(slot, `${e.index}:${this.hash}`);
      this.dirty.add(slot);
    }
    this.checker.onApply(this.node, e, this.hash);
    this.onApplied?.(this.node, e);
    return e.data;
  }

  snapshot(): string {
    const head = `${this.lastIndex}:${this.hash}`;
    return this.coord ? `${head}:${this.coord.snapshot()}` : head;
  }

  /**
   * What a follower is sent with snapshotPartsOnWire: the coordination machine's snapshotSteps
   * with parts and slices forced small (SIM_PART_CHARS, SIM_SLICE_CHARS), so a few KB of state
   * travels, is stored, checked and restored in the multi-part form (v5: tasks as their block
   * rows) a large state takes, serialized over several turns with applies held. Part 0 is the
   * chain head; a state that fits in one part stays the single string.
   */
  private *partSteps(): Generator<void, SnapshotData> {
    const head = `${this.lastIndex}:${this.hash}`;
    if (!this.coord) return head;
    const data = yield* this.coord.snapshotSteps(SIM_PART_CHARS, SIM_SLICE_CHARS);
    return typeof data === 'string' ? `${head}:${data}` : [head, ...data];
  }

  /** The coordination machine's check of a multi-part snapshot (a single string is not checked, as before). */
  private checkParts(data: SnapshotData): string | null {
    if (typeof data === 'string' || !this.coord) return null;
    const coord = data.slice(1);
    this.checked = { data, coord };
    return this.coord.checkSnapshot(coord);
  }

  restore(data: SnapshotData): void {
    if (typeof data !== 'string') {
      // Multi-part: the chain head, then the coordination machine's parts.
      const coord = this.checked?.data === data ? this.checked.coord : data.slice(1);
      this.checked = null;
      this.restoreHead(data[0] ?? '', () => {
        this.coord?.restore(coord);
        SimMachine.partRestores++;
      });
      return;
    }
    this.restoreHead(data, null);
  }

  /** restore() of `head:hash[:coordination v3 string]`, or of `head:hash` with `coordParts` restoring the rest. */
  private restoreHead(data: string, coordParts: (() => void) | null): void {
    if (data === '') {
      this.lastIndex = 0;
      this.hash = 0;
    } else {
      const a = data.indexOf(':');
      const b = data.indexOf(':', a + 1);
      const index = Number(data.slice(0, a));
      if (index < this.lastIndex) {
        this.checker.violation(`state machine safety: ${this.node} restored snapshot at ${index} over applied ${this.lastIndex} (went backwards)`);
      }
      this.lastIndex = index;
      this.hash = Number(b < 0 ? data.slice(a + 1) : data.slice(a + 1, b));
      if (this.coord) {
        if (b < 0 && !coordParts) this.checker.violation(`state machine safety: ${this.node} restored a snapshot at ${index} without the coordination state`);
        else {
          if (coordParts) coordParts();
          else this.restoreV3(data.slice(b + 1), index);
          if (this.lossyRestore) {
            this.coord.memory.dropFirstForTest();
          }
          this.checker.onStateHash(this.node, index, this.coord.stateHash(), 'restore');
        }
      }
    }
    // The slots' history is not in a snapshot: only the last one is known from here.
    this.slots = new Map(this.lastIndex > 0 ? [[(this.lastIndex % ROW_SLOTS) + 1, `${this.lastIndex}:${this.hash}`]] : []);
    this.full = true;
    this.checker.onRestore(this.node, this.lastIndex, this.hash);
  }

  /**
   * The coordination state sent as one (v3) string, restored by way of the multi-part form: a
   * machine restored from the string writes its parts (SIM_PART_CHARS, so a few KB of state
   * is several: v5, the tasks as their block rows), which are checked and restored here. The
   * state hash check after it catches anything the parts lose; what travels, and so the
   * trajectory, is unchanged.
   */
  private restoreV3(v3: string, index: number): void {
    const coord = this.coord as CoordinationMachine;
    const from = new CoordinationMachine();
    from.restore(v3);
    const parts = from.snapshotData(SIM_PART_CHARS);
    if (typeof parts === 'string') {
      coord.restore(parts);
      return;
    }
    const why = coord.checkSnapshot(parts);
    if (why !== null) {
      this.checker.violation(`snapshot parts: ${this.node} refused the parts of the state at ${index}: ${why}`);
      coord.restore(v3);
      return;
    }
    coord.restore(parts);
    SimMachine.partRestores++;
  }

  takeCheckpoint(): { meta: string; tables: Record<CheckpointTable, TableChanges> } {
    const head = `${this.lastIndex}:${this.hash}`;
    if (this.coord) {
      // The product's rows; the chain head rides in meta.
      const c = this.coord.takeCheckpoint();
      return { meta: `${head}:${c.meta}`, tables: c.tables };
    }
    const put: Array<[number, string]> = [];
    for (const slot of this.full ? this.slots.keys() : this.dirty) put.push([slot, JSON.stringify(this.slots.get(slot))]);
    const empty = (): TableChanges => ({ clear: this.full, del: [], put: [] });
    const tables = { memory: { clear: this.full, del: [], put }, sessions: empty(), orchs: empty() };
    this.full = false;
    this.dirty.clear();
    return { meta: head, tables };
  }

  restoreCheckpoint(c: CheckpointReader): void {
    const a = c.meta.indexOf(':');
    const b = c.meta.indexOf(':', a + 1);
    const index = Number(c.meta.slice(0, a));
    if (index < this.lastIndex) {
      this.checker.violation(`state machine safety: ${this.node} restored checkpoint at ${index} over applied ${this.lastIndex} (went backwards)`);
    }
    this.lastIndex = index;
    this.hash = Number(b < 0 ? c.meta.slice(a + 1) : c.meta.slice(a + 1, b));
    SimMachine.rowRestores++;
    if (this.coord) {
      if (b < 0) this.checker.violation(`state machine safety: ${this.node} restored a checkpoint at ${index} without the coordination state`);
      else {
        const reader: CheckpointReader = { meta: c.meta.slice(b + 1), rows: (t) => c.rows(t), jsonRows: (t, each) => c.jsonRows(t, each), storedRows: (t) => c.storedRows?.(t) ?? null };
        this.coord.restoreCheckpoint(reader);
        if (this.lossyCheckpoint) {
          this.coord.memory.dropFirstForTest();
        }
        // Hashed on a second machine restored from the same rows: hashing this one would read
        // every stored memory record now, and the records read on demand (MemoryStore.fromStored)
        // would never be exercised. Its own hash is checked again LAZY_CHECK_AFTER entries on.
        const twin = new CoordinationMachine();
        twin.restoreCheckpoint(reader);
        if (this.lossyCheckpoint) twin.memory.dropFirstForTest();
        this.checker.onStateHash(this.node, index, twin.stateHash(), 'restore');
        this.lazyUntil = index + LAZY_CHECK_AFTER;
      }
      this.checker.onRestore(this.node, this.lastIndex, this.hash);
      return;
    }
    this.slots = new Map([...c.rows('memory')].map(([slot, v]) => [slot, v as string]));
    this.dirty.clear();
    this.full = false;
    // The slot of the meta's index holds exactly it; every other slot an earlier index.
    for (const [slot, v] of this.slots) {
      const idx = Number(v.split(':')[0]);
      const mismatch = slot === (this.lastIndex % ROW_SLOTS) + 1 ? v !== c.meta : idx >= this.lastIndex || idx <= this.lastIndex - ROW_SLOTS || (idx % ROW_SLOTS) + 1 !== slot;
      if (mismatch) this.checker.violation(`checkpoint: ${this.node} restored rows (slot ${slot}: ${v}) that do not belong to the checkpoint at ${c.meta}`);
    }
    if (this.lastIndex > 0 && this.slots.get((this.lastIndex % ROW_SLOTS) + 1) !== c.meta) {
      this.checker.violation(`checkpoint: ${this.node} restored meta ${c.meta} without its row`);
    }
    this.checker.onRestore(this.node, this.lastIndex, this.hash);
  }

  dirtyRows(): number {
    if (this.coord) return this.coord.dirtyRows();
    return this.full ? this.slots.size : this.dirty.size;
  }

  markCheckpointLost(): void {
    if (this.coord) this.coord.markCheckpointLost();
    this.full = true;
  }
}

export class InvariantChecker {
  readonly violations: string[] = [];
  /** Called on each violation (the simulator adds it to the trace). */
  onViolation: ((msg: string) => void) | null = null;
  /** Virtual time source for acknowledgement timestamps. */
  now: () => number = () => 0;

  private readonly leaderOfTerm = new Map<number, NodeId>();
  private readonly hist: Array<HistEntry | undefined> = [];
  private readonly lm: Array<LmRec | undefined> = [];
  private readonly verified = new WeakSet<Entry>();
  private readonly cursors = new Map<NodeId, NodeCursor>();
  private readonly leaders = new Map<NodeId, LeaderWatch>();
  /** For leader completeness: term bound of the commit -> highest index committed under it. */
  private readonly commitBound = new Map<number, number>();
  private maxCommitSeen = 0;
  readonly acked: AckedWrite[] = [];
  private maxAcked = 0;
  private maxAckedData = '';
  /** Highest state index any completed read returned, and which read. */
  private maxRead = 0;
  private readonly commitDurable = new Map<NodeId, { core: Raft; term: number; commit: number }>();
  private maxReadWhy = '';

  violation(msg: string): void {
    this.violations.push(msg);
    this.onViolation?.(msg);
  }

  /** Highest index any node is known to have committed. */
  get committedIndex(): number {
    return this.maxCommitSeen;
  }

  histEntry(i: number): Readonly<HistEntry> | undefined {
    return this.hist[i];
  }

  // ---- election safety and leader append-only --------------------------------------------

  /** Election safety: at most one leader per term. */
  observeLeader(id: NodeId, term: number, source: string): void {
    const prev = this.leaderOfTerm.get(term);
    if (prev === undefined) this.leaderOfTerm.set(term, id);
    else if (prev !== id) this.violation(`election safety: term ${term} has two leaders, ${prev} and ${id} (seen via ${source})`);
  }

  onRoleChange(c: RoleChange): void {
    if (c.role === 'leader') this.observeLeader(c.id, c.term, 'role change event');
  }

  /**
   * Called after every simulator event for each running node: election safety, and leader
   * append-only (a leader never removes or rewrites an entry of its own log while it leads).
   */
  observeEvent(id: NodeId, core: Raft): void {
    if (core.role !== 'leader') {
      if (this.leaders.size > 0) this.leaders.delete(id);
      return;
    }
    this.observeLeader(id, core.term, 'core state');
    const log = core.log;
    const last = log.lastIndex();
    const w = this.leaders.get(id);
    if (!w || w.core !== core || w.term !== core.term) {
      this.leaders.set(id, { core, term: core.term, wm: last, ref: log.entry(last) });
      return;
    }
    if (last < w.wm) {
      this.violation(`leader append-only: ${id} (leader, term ${core.term}) log shrank from ${w.wm} to ${last}`);
    } else if (w.wm > log.snapshotIndex && log.entry(w.wm) !== w.ref) {
      this.violation(`leader append-only: ${id} (leader, term ${core.term}) rewrote entry ${w.wm}`);
    }
    w.wm = last;
    w.ref = log.entry(last);
  }

  /** Forget a node's leader watch (it crashed: the next life is a new core anyway). */
  forget(id: NodeId): void {
    this.leaders.delete(id);
  }

  // ---- per-step log checks ----------------------------------------------------------------

  /** Log matching, committed-prefix agreement and leader completeness for one running node. */
  checkNode(id: NodeId, core: Raft): void {
    const log = core.log;
    let cur = this.cursors.get(id);
    if (!cur || cur.core !== core) {
      cur = { core, commit: log.snapshotIndex, snapshotIndex: -1, lcTerm: -1, lcIndex: 0 };
      this.cursors.set(id, cur);
    }

    // Snapshot boundary: the snapshot's last entry is committed history.
    if (log.snapshotIndex !== cur.snapshotIndex) {
      if (log.snapshotIndex < cur.snapshotIndex) {
        this.violation(`snapshot: ${id} snapshot index went back from ${cur.snapshotIndex} to ${log.snapshotIndex}`);
      }
      cur.snapshotIndex = log.snapshotIndex;
      if (log.snapshotIndex > 0) {
        this.checkCommitted(id, log.snapshotIndex, log.snapshotTerm, undefined, 'snapshot');
        const snap = log.snapshot;
        if (snap && snap.metadata.index === log.snapshotIndex && typeof snap.data === 'string' && snap.data !== '') {
          const [si, sh] = snap.data.split(':');
          if (Number(si) !== snap.metadata.index) {
            this.violation(`snapshot: ${id} snapshot metadata index ${snap.metadata.index} but state at ${si}`);
          } else {
            const h = this.hist[snap.metadata.index]?.hash;
            if (h !== undefined && h !== Number(sh)) {
              this.violation(`snapshot: ${id} snapshot at ${si} has state hash ${sh}, history has ${h}`);
            }
          }
        }
      }
    }
    if (cur.commit < log.snapshotIndex) cur.commit = log.snapshotIndex;

    // Log matching: every (index, term) has one content and one preceding term.
    const last = log.lastIndex();
    let i = last;
    while (i > log.snapshotIndex && !this.verified.has(log.entry(i) as Entry)) i--;
    for (let j = i + 1; j <= last; j++) {
      const e = log.entry(j) as Entry;
      const prevTerm = log.term(j - 1) as number;
      if (e.index !== j) this.violation(`log: ${id} holds entry claiming index ${e.index} at position ${j}`);
      if (e.term < prevTerm) this.violation(`log: ${id} entry ${j} has term ${e.term} below preceding term ${prevTerm}`);
      if (e.term > core.term) this.violation(`log: ${id} entry ${j} has term ${e.term} above the node's term ${core.term}`);
      this.checkMatching(id, e, prevTerm);
      this.verified.add(e);
    }

    // Committed prefix: what a node calls committed is the one history.
    const c = log.committed;
    if (c > last) this.violation(`log: ${id} committed ${c} beyond last index ${last}`);
    if (log.applied > c) this.violation(`log: ${id} applied ${log.applied} beyond committed ${c}`);
    if (c < cur.commit) {
      // Commit never moves back within a life.
      this.violation(`log: ${id} commit index went back from ${cur.commit} to ${c}`);
      cur.commit = c;
    }
    for (let j = cur.commit + 1; j <= Math.min(c, last); j++) {
      const e = log.entry(j) as Entry;
      this.checkCommitted(id, j, e.term, e, 'commit');
    }
    cur.commit = Math.max(cur.commit, c);
    if (c > this.maxCommitSeen) {
      // The entries up to c were committed by a leader whose term is <= this node's term.
      this.commitBound.set(core.term, Math.max(this.commitBound.get(core.term) ?? 0, c));
      this.maxCommitSeen = c;
    }

    if (core.role === 'leader') this.checkLeaderCompleteness(id, core, cur);
  }

  private checkMatching(id: NodeId, e: Entry, prevTerm: number): void {
    let rec = this.lm[e.index];
    while (rec && rec.term !== e.term) rec = rec.next;
    if (!rec) {
      this.lm[e.index] = { term: e.term, type: e.type, data: e.data, prevTerm, by: id, next: this.lm[e.index] };
      return;
    }
    if (rec.type !== e.type || rec.data !== e.data) {
      this.violation(
        `log matching: entry (${e.index}, term ${e.term}) is ${e.type}:${JSON.stringify(e.data)} at ${id} but ${rec.type}:${JSON.stringify(rec.data)} at ${rec.by}`,
      );
    } else if (rec.prevTerm !== prevTerm) {
      this.violation(
        `log matching: entry (${e.index}, term ${e.term}) follows term ${prevTerm} at ${id} but term ${rec.prevTerm} at ${rec.by}`,
      );
    }
  }

  private checkCommitted(id: NodeId, index: number, term: number, e: Entry | undefined, what: string): void {
    const h = this.hist[index];
    if (!h) {
      if (e) this.hist[index] = { term, type: e.type, data: e.data, by: `${id} (${what})` };
      return;
    }
    if (h.term !== term || (e && (h.type !== e.type || h.data !== e.data))) {
      const mine = e ? `${e.type}:${JSON.stringify(e.data)} term ${term}` : `term ${term}`;
      this.violation(
        `state machine safety: ${id} ${what} index ${index} as ${mine}, history has ${h.type}:${JSON.stringify(h.data)} term ${h.term} (from ${h.by})`,
      );
    }
  }

  /**
   * Leader completeness: every entry committed under a term below the leader's is in the
   * leader's log, with the committed content, at every index (not just the highest one: a
   * log that matches at k but differs below would otherwise pass on log matching alone).
   * Incremental: each (leader, term) is checked once up to each bound.
   */
  private checkLeaderCompleteness(id: NodeId, core: Raft, cur: NodeCursor): void {
    let k = 0;
    for (const [bound, idx] of this.commitBound) if (bound < core.term && idx > k) k = idx;
    if (cur.lcTerm !== core.term) {
      cur.lcTerm = core.term;
      cur.lcIndex = 0;
    }
    const log = core.log;
    // Below the snapshot: covered by the snapshot (checked against history by hash).
    for (let j = Math.max(cur.lcIndex, log.snapshotIndex) + 1; j <= k; j++) {
      const e = log.entry(j);
      if (e === undefined) {
        this.violation(`leader completeness: ${id} leads term ${core.term} but lacks committed entry ${j} (its log ends at ${log.lastIndex()}, committed up to ${k})`);
        return;
      }
      const h = this.hist[j];
      if (h && (h.term !== e.term || h.type !== e.type || h.data !== e.data)) {
        this.violation(
          `leader completeness: ${id} leads term ${core.term} with entry ${j} ${e.type}:${JSON.stringify(e.data)} of term ${e.term}, committed history has ${h.type}:${JSON.stringify(h.data)} term ${h.term}`,
        );
        return;
      }
    }
    if (k > cur.lcIndex) cur.lcIndex = k;
  }

  // ---- state machine safety ---------------------------------------------------------------

  onApply(id: NodeId, e: Entry, hash: number): void {
    const h = this.hist[e.index];
    if (!h) {
      const prev = this.hist[e.index - 1];
      if (e.index > 1 && prev?.hash === undefined) {
        // Unreachable when machines apply in order: someone applied index-1 first.
        this.violation(`state machine safety: ${id} applied ${e.index} before anyone applied ${e.index - 1}`);
      }
      this.hist[e.index] = { term: e.term, type: e.type, data: e.data, hash, by: `${id} (apply)` };
      return;
    }
    if (h.term !== e.term || h.type !== e.type || h.data !== e.data) {
      this.violation(
        `state machine safety: ${id} applied index ${e.index} as ${e.type}:${JSON.stringify(e.data)} term ${e.term}, history has ${h.type}:${JSON.stringify(h.data)} term ${h.term} (from ${h.by})`,
      );
      return;
    }
    if (h.hash === undefined) h.hash = hash;
    else if (h.hash !== hash) {
      this.violation(`state machine safety: ${id} state after applying ${e.index} differs from history (hash ${hash} != ${h.hash})`);
    }
  }

  /** Coordination state hash of each index, from whoever got there first. */
  private readonly stateHashes = new Map<number, { hash: string; by: string }>();
  /** Coordination state hashes compared with another replica's at the same index. */
  stateChecks = 0;

  /** Replicas at the same applied index hold the same coordination state (retention included). */
  onStateHash(id: NodeId, index: number, hash: string, how: 'apply' | 'restore'): void {
    const h = this.stateHashes.get(index);
    if (!h) this.stateHashes.set(index, { hash, by: `${id} (${how})` });
    else if (++this.stateChecks && h.hash !== hash) {
      this.violation(`replica divergence: ${id}'s coordination state at ${index} (${how}) differs from ${h.by}'s (${hash.slice(0, 12)} != ${h.hash.slice(0, 12)})`);
    }
  }

  onRestore(id: NodeId, index: number, hash: number): void {
    if (index === 0) return;
    const h = this.hist[index];
    if (!h || h.hash === undefined) {
      this.violation(`state machine safety: ${id} restored a snapshot at ${index} that no machine ever produced`);
      return;
    }
    if (h.hash !== hash) {
      this.violation(`state machine safety: ${id} restored a snapshot at ${index} whose state differs from history`);
    }
  }

  // ---- client-visible guarantees -----------------------------------------------------------

  /** A client proposes a write: note what it had observed (see WriteToken). */
  writeIssued(data: string): WriteToken {
    const fromRead = this.maxRead > this.maxAcked;
    return {
      data,
      issuedAt: this.now(),
      floor: Math.max(this.maxAcked, this.maxRead),
      floorWhy: fromRead ? this.maxReadWhy : `write ${JSON.stringify(this.maxAckedData)}`,
    };
  }

  /**
   * A proposal resolved: it is committed, holds what was proposed, and (linearizability of
   * writes) lands after everything acknowledged or read before it was issued.
   */
  onAck(node: NodeId, index: number, data: string, result: unknown, tok?: WriteToken): void {
    const h = this.hist[index];
    if (!h || h.type !== 'normal' || h.data !== data) {
      this.violation(
        `acknowledged write: ${node} acknowledged ${JSON.stringify(data)} at index ${index}, history has ${h ? `${h.type}:${JSON.stringify(h.data)}` : 'nothing'}`,
      );
    }
    if (result !== data) this.violation(`acknowledged write: ${node} returned result ${JSON.stringify(result)} for ${JSON.stringify(data)}`);
    if (tok && index <= tok.floor) {
      this.violation(
        `linearizable write: ${JSON.stringify(data)} issued at t=${tok.issuedAt} was acknowledged at index ${index}, but ${tok.floorWhy} at ${tok.floor} had been acknowledged or read before it was issued`,
      );
    }
    this.acked.push({ index, term: h?.term ?? -1, data, at: this.now() });
    if (index > this.maxAcked) {
      this.maxAcked = index;
      this.maxAckedData = data;
    }
  }

  /**
   * Durability of acknowledged writes, against what the members' disks actually hold (not
   * against the checker's own write-once history): for every voter set that may be in force,
   * the members whose durable storage (what survives a power failure) lacks the write must
   * be fewer than a quorum, or a quorum without it could elect a leader that lacks it and
   * the write would be lost. Members in `gone` (their disk wiped: they never vote again under
   * that id) hold nothing but cannot be part of such a quorum either.
   */
  checkAckedDurable(
    where: string,
    configs: ReadonlyArray<ReadonlySet<NodeId>>,
    holds: (node: NodeId, index: number, term: number) => boolean,
    gone: ReadonlySet<NodeId> = new Set(),
  ): void {
    for (const w of this.acked) {
      for (const v of configs) {
        const lacking: NodeId[] = [];
        for (const id of v) if (!gone.has(id) && !holds(id, w.index, w.term)) lacking.push(id);
        const quorum = Math.floor(v.size / 2) + 1;
        if (lacking.length >= quorum) {
          this.violation(
            `acknowledged write not durable (${where}): ${JSON.stringify(w.data)} at index ${w.index} (term ${w.term}, acknowledged at t=${w.at}) is missing from the durable storage of [${lacking.sort()}], a quorum of voters [${[...v].sort()}]`,
          );
          return;
        }
      }
    }
  }

  /**
   * A leader's commit index is durable: the entry there is on the disks (what survives a
   * power failure) of a quorum of the leader's voters, counting wiped members (`gone`) as
   * never voting again. Checked after every event, so a member that acknowledged entries it
   * had not made durable is caught the moment they count toward a commit, before any ack.
   * Durable logs obey log matching, so the newest committed entry stands for the prefix.
   */
  checkCommitDurable(
    id: NodeId,
    core: Raft,
    holds: (node: NodeId, index: number, term: number) => boolean,
    gone: ReadonlySet<NodeId> = new Set(),
  ): void {
    const log = core.log;
    const c = log.committed;
    const w = this.commitDurable.get(id);
    if (w && w.core === core && w.term === core.term && w.commit === c) return;
    this.commitDurable.set(id, { core, term: core.term, commit: c });
    if (c === 0) return;
    const term = log.term(c);
    if (term === undefined) return;
    const voters = core.confState().voters;
    const lacking = voters.filter((v) => !gone.has(v) && !holds(v, c, term));
    if (lacking.length >= Math.floor(voters.length / 2) + 1) {
      this.violation(
        `commit not durable: ${id} (leader, term ${core.term}) committed ${c} (term ${term}) but it is missing from the durable storage of [${lacking.sort()}], a quorum of voters [${voters}]`,
      );
    }
  }

  /**
   * Persist before you answer (Raft's rule for votes and appends): a vote grant is on disk
   * (term and vote) before it is sent, and an append acknowledgement covers only entries on
   * disk. `durable` is what the sender's disk would keep through a power failure, now.
   */
  checkSentDurable(m: Message, durable: { hardState: HardState; lastIndex(): number }): void {
    if (m.type === 'MsgVoteResp' && !m.reject) {
      // A disk already in a later term is fine too: the member can never vote in m.term again.
      const hs = durable.hardState;
      if (hs.term < m.term || (hs.term === m.term && hs.vote !== m.to)) {
        this.violation(`persist before answering: ${m.from} granted its vote in term ${m.term} to ${m.to} but its disk holds term ${hs.term} vote ${hs.vote ?? 'none'}`);
      }
    } else if (m.type === 'MsgAppResp' && !m.reject) {
      if (durable.hardState.term < m.term) {
        this.violation(`persist before answering: ${m.from} answered an append in term ${m.term} but its disk holds term ${durable.hardState.term}`);
      } else if (durable.hardState.term === m.term && durable.lastIndex() < m.index) {
        this.violation(`persist before answering: ${m.from} acknowledged entries up to ${m.index} to ${m.to} (term ${m.term}) but its disk holds entries only up to ${durable.lastIndex()}`);
      }
    }
  }

  /** Members that applied a write acknowledged at `upTo` hold every write acknowledged up
   * to it: each one's state is the committed history's state at its applied index. */
  checkAppliedAcked(where: string, upTo: number, machines: ReadonlyArray<Pick<SimMachine, 'node' | 'lastIndex' | 'hash'>>): void {
    for (const m of machines) {
      if (m.lastIndex < upTo) {
        const w = this.acked.filter((a) => a.index <= upTo).reduce((a, b) => (b.index > a.index ? b : a), { index: 0, data: '' } as Pick<AckedWrite, 'index' | 'data'>);
        this.violation(`acknowledged write lost (${where}): ${m.node} applied up to ${m.lastIndex} only, but write ${JSON.stringify(w.data)} was acknowledged at ${w.index}`);
        return;
      }
      const h = this.hist[m.lastIndex];
      if (m.lastIndex > 0 && h?.hash !== undefined && h.hash !== m.hash) {
        this.violation(`acknowledged write lost (${where}): ${m.node}'s state at ${m.lastIndex} differs from the committed history's`);
        return;
      }
    }
  }

  readIssued(node: NodeId, machine: SimMachine | undefined): ReadToken {
    const fromRead = this.maxRead > this.maxAcked;
    return {
      node,
      issuedAt: this.now(),
      mustSee: Math.max(this.maxAcked, this.maxRead),
      mustSeeWhy: fromRead ? this.maxReadWhy : `write ${JSON.stringify(this.maxAckedData)}`,
      machine,
    };
  }

  /**
   * Linearizable read, against the whole history: the read index and the state read (the
   * node's machine when the client gets the answer) reflect every write acknowledged and
   * every state returned by a read that completed before this read was issued (reads never
   * go back in time), and the state read is the committed history's state at its index (no
   * value that was never committed). Later writes are held to this read by writeIssued.
   */
  onReadResolved(tok: ReadToken, index: number): void {
    if (index < tok.mustSee) {
      this.violation(
        `linearizable read: read at ${tok.node} issued at t=${tok.issuedAt} returned index ${index}, but ${tok.mustSeeWhy} at ${tok.mustSee} was acknowledged or read before`,
      );
      return;
    }
    const m = tok.machine;
    if (!m) return;
    if (m.lastIndex < index) {
      this.violation(`linearizable read: read at ${tok.node} resolved with index ${index} but its state machine applied only ${m.lastIndex}`);
      return;
    }
    const state = m.lastIndex;
    const h = this.hist[state];
    if (state > 0 && (h?.hash === undefined || h.hash !== m.hash)) {
      this.violation(`linearizable read: read at ${tok.node} returned a state at ${state} that is not the committed history's state there`);
      return;
    }
    if (state > this.maxRead) {
      this.maxRead = state;
      this.maxReadWhy = `the state returned by a read at ${tok.node} (issued t=${tok.issuedAt}, answered t=${this.now()})`;
    }
  }
}
