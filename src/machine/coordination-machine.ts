import { createHash } from 'node:crypto';
import type { StateMachine } from '../host/node-host.js';
import { snapshotParts, type Entry, type SnapshotData } from '../raft/types.js';
import type { CheckpointReader, CheckpointRow, CheckpointTable, TableChanges } from '../storage/types.js';
import { DirtyRows } from './dirty-rows.js';
import { configProblem } from './config-bounds.js';
import { ELECTION_HISTORY_KEY, MemoryStore } from './memory-store.js';
import { MemberBook } from './member-book.js';
import { parseShared } from './parse-shared.js';
import { PART_TABLES_OF, PartPacker, parseRowText, partHead, partRowTexts, snapshotPartChars, snapshotSliceChars, type PartTable } from './snapshot-parts.js';
import { TaskRowsFeed } from './task-rows-feed.js';
import { TaskTable } from './task-table.js';
import {
  DEFAULT_SWARM_CONFIG,
  type AgentRecord,
  type Command,
  type ElectionRecord,
  type ForwardedCommand,
  type Op,
  type SwarmConfig,
} from './types.js';

export type OpResult = { ok: true; value?: unknown } | { ok: false; code: string; message: string };

/**
 * One client's session: every seq below `floor` is finished for the client (it said so with
 * `ack`), and `results` holds the outcome of each applied seq at or above it. A retry of any
 * of those is answered from here and never applied again, even if retries arrive out of order.
 * `last_active` is the log time of its last command; idle longer than `timeout_ms`, it expires.
 */
interface Session {
  floor: number;
  results: Map<number, OpResult>;
  last_active: number;
  timeout_ms: number;
}

/** Outcomes kept per client above its floor; a client has at most this many in flight. */
const MAX_SESSION_RESULTS = 16_384;

/**
 * Idle time (log time, ms) after which a session expires, unless it registered a shorter one.
 * The same constant on every replica: expiry depends on the log alone.
 */
export const SESSION_TIMEOUT_MS = 3_600_000;
/** Shortest idle timeout a session may ask for (one-shot clients ask for little). */
export const MIN_SESSION_TIMEOUT_MS = 1_000;

/**
 * Sessions kept per replica (memory bound). Over it, expired sessions go first, then the least
 * recently active. An evicted session's commands are refused (session_expired), never applied.
 */
export const MAX_SESSIONS = 4096;

const ELECTION_HISTORY_MAX = 1000;
/**
 * Snapshot formats restore() reads (v1: before registered sessions; v2: before task retention,
 * read with the default retention config). snapshot() writes the last. v3 is refused by older
 * members, which would not know that a removed task record is not a missing one.
 */
const SNAPSHOT_VERSIONS = [1, 2, 3];
/**
 * A state too large for one part is written as a multi-part format (snapshotData): a meta part
 * (v3's fields without the table rows, plus `parts`, the number of parts) then row parts, each
 * a slice of one table (see snapshot-parts.ts). A state that fits in one part is still written
 * as v3. v4 carried the tasks as one JSON record each (~380 characters a task: 378.5 M for a
 * million); v5, written now, carries them as the task table's checkpoint rows (a block of
 * tasks' column bytes as base64, ~24 characters a task, in the platform's byte order: every
 * supported one is little-endian; the meta part's `tasks` adds the agent names the columns
 * index and the block size), rebuilt by TaskTable.fromRows. Members before v5 refuse a v5
 * snapshot in checkSnapshot (a version they do not know), so a mixed cluster sends them
 * nothing they would restore wrongly; v4 parts are still read.
 */
const PARTS_VERSION = 5;
const PARTS_VERSIONS = [4, 5];
/** Fewest characters a task record takes in snapshot() (its field names alone take ~250). */
const MIN_V3_TASK_CHARS = 256;
/** Snapshot transfers whose parts are parsed as they arrive, at most (see prepareSnapshotPart). */
const MAX_PREPARING = 2;

/**
 * One part of a multi-part snapshot, parsed: part 0's meta object, or a table part's rows, or
 * (`fed`) a v5 task part whose rows went into its transfer's task table as it arrived (see
 * prepareSnapshotPart) and are not kept.
 */
interface ParsedPart {
  meta?: Record<string, unknown>;
  v?: number;
  table?: PartTable;
  rows?: unknown[];
  fed?: true;
}

/**
 * A transfer's parts prepared so far, and of v5 its task table being built from its task parts
 * as they arrive in order (null: not v5, or a part came out of order; the parts fed are then
 * parsed again from their text by the check of the whole).
 */
interface Preparing {
  parsed: Array<ParsedPart | string>;
  feed: TaskRowsFeed | null;
  /** Parts prepared in order from part 0 (the next one the feed may take). */
  next: number;
}
/**
 * Format of a checkpoint's meta row (see takeCheckpoint). 1: one orchestration row holds all
 * its task columns; 2: task blocks of `taskBlock` tasks are rows of their own. restoreCheckpoint
 * reads both (1 is rewritten as 2 by the next checkpoint); older code refuses 2.
 */
const CHECKPOINT_META_VERSION = 2;
const CHECKPOINT_META_VERSIONS = [1, 2];

/** A checkpoint's rows as the machine takes them (see takeCheckpoint). */
export interface MachineCheckpointRows {
  meta: string;
  tables: Record<CheckpointTable, TableChanges>;
}

/** Characters of checkpoint rows built per turn by default (see checkpointSteps): at the 3.5-6 ms a MiB measured, ~15-25 ms. */
export const DEFAULT_CHECKPOINT_SLICE_CHARS = 4 << 20;

/** Step size in force: CONCORD_CHECKPOINT_SLICE_CHARS (tests force small steps), else the default. */
export function checkpointSliceChars(): number {
  const v = Number(process.env.CONCORD_CHECKPOINT_SLICE_CHARS);
  return Number.isSafeInteger(v) && v >= 1 ? v : DEFAULT_CHECKPOINT_SLICE_CHARS;
}

/** See CoordinationMachine.scalarFields. */
interface ScalarFields {
  explicitSessions: boolean;
  expiredCommands: number;
  clock: number;
  appliedIndex: number;
  appliedTerm: number;
  duplicateCommands: number;
  book: unknown;
}

/** Events a replica's hosts listen to (e.g. an agent's worker learns of its assignments). */
export interface MachineEvents {
  onAssigned?(items: Array<{ task: string; agent: string; epoch: number }>): void;
  /** Only announce assignments to this agent (the replica's own): saves an object per task
   * per replica for work that replica's worker would discard. */
  notifyAgent?: string;
  onApplied?(index: number): void;
  /** Tasks per checkpoint block row (a power of two; TASKS_PER_BLOCK when unset): only the
   * local checkpoint layout depends on it, never the replicated state. */
  tasksPerBlock?: number;
  /** Configuration changed at this log position (timing takes effect live). */
  onConfig?(config: SwarmConfig): void;
  /** An election record was applied (the history changed): resource subscribers are told. */
  onElectionRecorded?(): void;
}

/**
 * The deterministic replicated coordination state: configuration, agents, tasks,
 * replicated memory, election history and client sessions. Same log => same state.
 */
export class CoordinationMachine implements StateMachine {
  config: SwarmConfig = { ...DEFAULT_SWARM_CONFIG };
  agents = new Map<string, AgentRecord>();
  tasks = new TaskTable();
  memory = new MemoryStore();
  elections: ElectionRecord[] = [];
  /**
   * Counted as records apply, so the totals outlive the bounded history. A snapshot from
   * before these counters starts them from the records it kept.
   */
  electionTotals = { elections: 0, leader_failures: 0 };
  /** By last activity, least recent first (Map insertion order; touched = moved to the end). */
  sessions = new Map<string, Session>();
  /** Cluster mode's replicated address book (see member-book.ts); empty in embedded mode. */
  book = new MemberBook();
  /**
   * False until the log's first `session.register`: a log written before sessions were
   * registered replays as it was first applied (sessions created on first use, evicted by
   * count only). From then on only registered sessions are honoured.
   */
  explicitSessions = false;
  /** Log time: max of the appending leaders' clocks seen so far (see ForwardedCommand). */
  clock = 0;
  appliedIndex = 0;
  appliedTerm = 0;
  /** Commands skipped because their (client, seq) had already been applied. */
  duplicateCommands = 0;
  /** Commands refused, not applied, because their session was unknown or had expired. */
  expiredCommands = 0;
  /**
   * Log time up to which no session can be idle past its timeout (a lower bound over all
   * sessions' expiry). Not replicated state: it only lets a registration at the cap skip the
   * scan for expired sessions, which would find none.
   */
  private noExpiryUntil = 0;
  /**
   * Each session's checkpoint row key: a fresh one each time it moves to the end of the LRU
   * order, so rows read by key come back in `sessions`' order.
   */
  private sessionOrds = new Map<string, number>();
  private nextSessionOrd = 0;
  private readonly dirtySessions = new DirtyRows();
  /** The parts checkSnapshot last accepted, parsed (see restore); not replicated state. */
  private checkedParts: { parts: readonly string[]; s: Record<string, unknown> } | null = null;
  /**
   * Parts of snapshots still arriving, parsed one by one (see prepareSnapshotPart), by the
   * transfer's array: two senders may stream at once (a deposed leader still sending its
   * snapshot while the new one sends its own), so at most MAX_PREPARING are kept, oldest out.
   */
  private preparing = new Map<readonly string[], Preparing>();
  /** Parts checkSnapshot took already parsed from prepareSnapshotPart, since construction (tests, logs). */
  preparedPartsUsed = 0;

  constructor(private readonly events: MachineEvents = {}) {
    if (events.tasksPerBlock !== undefined) this.tasks = new TaskTable(events.tasksPerBlock);
  }

  apply(entry: Entry): unknown {
    this.appliedIndex = entry.index;
    this.appliedTerm = entry.term;
    if (entry.type !== 'normal') {
      if (entry.type === 'conf') this.book.applyConf(entry);
      this.events.onApplied?.(entry.index);
      return { ok: true };
    }
    // Parsed once per process for all the replicas it hosts; each gets its own copy.
    const parsed = parseShared(entry.data) as Command | ForwardedCommand;
    // Log time: the leader's clock only (see ForwardedCommand); deterministic, never backwards.
    const forwarded = typeof parsed === 'object' && parsed !== null && 'lnow' in parsed;
    const cmd = forwarded ? parsed.cmd : (parsed as Command);
    const now = forwarded ? parsed.lnow : cmd.now;
    if (typeof now === 'number' && now > this.clock) this.clock = now;
    if (this.explicitSessions) this.expireIdleSessions();
    let result: OpResult;
    if (cmd.client === undefined || cmd.seq === undefined) {
      result = this.applyOp(cmd.op, entry);
    } else {
      const session = this.explicitSessions ? this.liveSession(cmd.client, cmd.ack ?? 0) : this.touchSession(cmd.client, cmd.ack ?? 0);
      const seen = session?.results.get(cmd.seq);
      if (!session) {
        this.expiredCommands++;
        result = {
          ok: false,
          code: 'session_expired',
          message: `session ${cmd.client} is unknown or expired (idle past its timeout, or evicted); sequence ${cmd.seq} was not applied by this entry`,
        };
      } else if (seen) {
        this.duplicateCommands++;
        result = seen;
      } else if (cmd.seq < session.floor) {
        this.duplicateCommands++;
        result = { ok: false, code: 'stale_sequence', message: `sequence ${cmd.seq} was already acknowledged by its client` };
      } else {
        result = this.applyOp(cmd.op, entry);
        this.dirtySessions.touch(cmd.client);
        session.results.set(cmd.seq, result);
        if (session.results.size > MAX_SESSION_RESULTS) {
          const lowest = Math.min(...session.results.keys());
          session.results.delete(lowest);
          session.floor = Math.max(session.floor, lowest + 1);
        }
      }
    }
    // Retention through the log: driven by this entry's index and log time only, so every
    // replica removes the same task records at the same index.
    this.tasks.retain(this.clock, entry.index, this.config.task_retention_orchestrations, this.config.task_retention_ms);
    this.events.onApplied?.(entry.index);
    return result;
  }

  /**
   * Before the first registration (a log of the older format): find or create the session,
   * raise its floor to the client's ack, keep LRU order, evict by count.
   */
  private touchSession(client: string, ack: number): Session {
    let s = this.sessions.get(client);
    if (s) this.dropSession(client);
    else s = { floor: 0, results: new Map(), last_active: this.clock, timeout_ms: SESSION_TIMEOUT_MS };
    this.bump(client, s, ack);
    // Map iteration order is insertion order, so the first key is the least recently used.
    while (this.sessions.size > MAX_SESSIONS) {
      this.dropSession(this.sessions.keys().next().value as string);
    }
    return s;
  }

  /** A registered session that has not expired, touched; undefined if unknown or expired. */
  private liveSession(client: string, ack: number): Session | undefined {
    const s = this.sessions.get(client);
    if (!s) return undefined;
    this.dropSession(client);
    if (this.clock - s.last_active > s.timeout_ms) return undefined;
    this.bump(client, s, ack);
    return s;
  }

  private dropSession(id: string): void {
    if (!this.sessions.delete(id)) return;
    this.dirtySessions.drop(this.sessionOrds.get(id) as number);
    this.sessionOrds.delete(id);
  }

  private bump(client: string, s: Session, ack: number): void {
    s.last_active = this.clock;
    // Callers removed it first: set() appends, making it the most recently active.
    this.sessions.set(client, s);
    this.sessionOrds.set(client, ++this.nextSessionOrd);
    this.dirtySessions.touch(client);
    this.noExpiryUntil = Math.min(this.noExpiryUntil, s.last_active + s.timeout_ms);
    if (ack > s.floor) {
      s.floor = ack;
      for (const seq of s.results.keys()) if (seq < ack) s.results.delete(seq);
    }
  }

  /**
   * Drop sessions idle past their timeout from the least recently active end. O(1) when none
   * is due; a shorter-lived session behind a live one waits for its lookup or for eviction.
   */
  private expireIdleSessions(): void {
    for (const [id, s] of this.sessions) {
      if (this.clock - s.last_active <= s.timeout_ms) return;
      this.dropSession(id);
    }
  }

  /**
   * A new session, named after its log index (unique, the same on every replica). A retried
   * registration makes a second session; the unused one expires.
   */
  private registerSession(timeoutMs: number | null | undefined, entry: Entry): OpResult {
    this.explicitSessions = true;
    const timeout_ms =
      typeof timeoutMs === 'number' && Number.isFinite(timeoutMs)
        ? Math.min(SESSION_TIMEOUT_MS, Math.max(MIN_SESSION_TIMEOUT_MS, Math.floor(timeoutMs)))
        : SESSION_TIMEOUT_MS;
    const id = `s${entry.index}`;
    this.dropSession(id);
    this.bump(id, { floor: 0, results: new Map(), last_active: this.clock, timeout_ms }, 0);
    if (this.sessions.size > MAX_SESSIONS) {
      // Expired sessions go first (a one-shot client's short-lived ones, wherever they sit in
      // LRU order), then the least recently active.
      if (this.clock > this.noExpiryUntil) {
        let next = Infinity;
        for (const [sid, s] of this.sessions) {
          const expiry = s.last_active + s.timeout_ms;
          if (this.clock > expiry) this.dropSession(sid);
          else next = Math.min(next, expiry);
        }
        this.noExpiryUntil = next;
      }
      while (this.sessions.size > MAX_SESSIONS) this.dropSession(this.sessions.keys().next().value as string);
    }
    return { ok: true, value: { session: id, timeout_ms } };
  }

  private applyOp(op: Op, entry: Entry): OpResult {
    switch (op.t) {
      case 'config': {
        // Validated here too: an entry proposed around the tool (or by an older version) must
        // not leave every member with a config it refuses to start with. Recorded as a no-op.
        const bad = configProblem(this.config, op.patch);
        if (bad) return { ok: false, code: 'invalid', message: `config not applied: ${bad.field}=${JSON.stringify(bad.value)}; accepted: ${bad.accepted}` };
        this.config = { ...this.config, ...op.patch };
        this.events.onConfig?.(this.config);
        return { ok: true, value: this.config };
      }
      case 'agent.register': {
        const prev = this.agents.get(op.agent.id);
        this.agents.set(op.agent.id, { ...op.agent, spawned_at: prev?.spawned_at ?? this.clock, removed_at: null });
        return { ok: true };
      }
      case 'agent.remove': {
        const a = this.agents.get(op.id);
        if (!a) return { ok: false, code: 'not_found', message: `agent ${op.id} is not registered` };
        a.removed_at = this.clock;
        return { ok: true };
      }
      case 'orch.create':
        return this.tasks.createOrchestration(op, entry.index, this.clock);
      case 'task.assign': {
        const applied = this.tasks.assign(op, this.clock, this.events.notifyAgent);
        const rec = this.elections.length > 0 ? this.elections[this.elections.length - 1] : undefined;
        if (rec && rec.term === op.term && applied.recovered > 0) {
          rec.tasks_recovered += applied.recovered;
          this.publishElections();
        }
        if (applied.items.length > 0) this.events.onAssigned?.(applied.items);
        // Counted, not items.length: the items list is filtered per replica (notifyAgent),
        // and results are replicated state that must be identical everywhere.
        // The item form (task_claim) also names what it assigned: a claim retried under the
        // same session is answered from this result, and must report these tasks, not its
        // own new picks. Derived from the op and the state: the same on every replica.
        const claimed = op.items?.filter((it) => this.tasks.heldBy(it.task, it.from_epoch + 1, it.agent) !== undefined).map((it) => it.task);
        return { ok: true, value: { assigned: applied.assigned, stale: applied.stale, ...(claimed ? { tasks: [...new Set(claimed)] } : {}) } };
      }
      case 'task.complete':
        return { ok: true, value: this.tasks.complete(op.items ?? [], this.clock, op.groups, entry.index) };
      case 'mem.put':
        this.memory.expire(this.clock);
        return this.memory.put(op, this.clock);
      case 'mem.del':
        this.memory.expire(this.clock);
        return this.memory.del(op);
      case 'election': {
        const rec: ElectionRecord = { ...op.record, at: this.clock, tasks_recovered: 0 };
        if (this.elections.some((e) => e.term === rec.term)) {
          return { ok: false, code: 'duplicate', message: `election of term ${rec.term} already recorded` };
        }
        this.elections.push(rec);
        this.electionTotals.elections++;
        if (isLeaderFailure(rec.cause)) this.electionTotals.leader_failures++;
        if (this.elections.length > ELECTION_HISTORY_MAX) this.elections.shift();
        this.publishElections();
        this.events.onElectionRecorded?.();
        return { ok: true };
      }
      case 'election.timing': {
        const rec = this.elections.find((e) => e.term === op.term);
        if (!rec) return { ok: false, code: 'not_found', message: `no election record of term ${op.term}` };
        rec.failover_ms = op.failover_ms;
        delete rec.timing_note;
        this.publishElections();
        return { ok: true };
      }
      case 'clock':
        this.memory.expire(this.clock);
        return { ok: true };
      case 'session.register':
        return this.registerSession(op.timeout_ms, entry);
      case 'member.seed':
        return this.book.seed(op.cluster_id, op.members);
      case 'member.bind':
        return this.book.bind(op.id, op.incarnation);
    }
  }

  /**
   * Mirror the election history into its system memory key. A copy, never the live records:
   * an alias would change the key whenever tasks_recovered changes on this replica, but not on
   * one restored from a snapshot (where the two are separate objects), so replicas diverged.
   */
  private publishElections(): void {
    this.memory.putSystem(ELECTION_HISTORY_KEY, { elections: structuredClone(this.elections.slice(-100)) }, this.clock);
  }

  /**
   * Approximate snapshot size from record counts (measured averages: ~300 bytes per task in
   * JSON, a few hundred per memory record). Only paces compaction; never reported.
   */
  sizeHint(): number {
    return 4096 + this.tasks.tasks.size * 300 + this.memory.size * 256 + this.sessions.size * 128;
  }

  /** Rows the next checkpoint would write (every row after a snapshot restore): paces them. */
  dirtyRows(): number {
    return this.memory.dirty.count(this.memory.size) + this.dirtySessions.count(this.sessions.size) + this.tasks.dirtyRows();
  }

  /** The next checkpoint rewrites every row (the last one's changes were not stored). */
  markCheckpointLost(): void {
    this.memory.dirty.setFull();
    this.dirtySessions.setFull();
    this.tasks.markFull();
  }

  /**
   * The state as checkpoint rows: what changed since the previous call, plus the small rest
   * (meta) whole. Tracking restarts from here, so the caller must store the result (or call
   * markCheckpointLost). Each row is what snapshot() holds for it; meta holds the rest, except
   * the idempotency map (rebuilt from the orchestrations; see TaskTable.fromRows).
   */
  takeCheckpoint(): MachineCheckpointRows {
    const steps = this.checkpointSteps(Infinity);
    for (;;) {
      const r = steps.next();
      if (r.done) return r.value;
    }
  }

  /**
   * takeCheckpoint() in steps: before building a row, yields once `sliceChars` (JSON and
   * bytes) were built since the last yield, the count as the value; so a host can build a
   * whole-state rewrite (the first checkpoint after a snapshot install: the cluster bench's
   * 1.05 GiB held one turn 3.7-6.6 s) over several turns. The state must not change until it
   * returns (the host holds applies). One dropped before it returns leaves the tracking of
   * changes partly taken: call markCheckpointLost.
   */
  *checkpointSteps(sliceChars = checkpointSliceChars()): Generator<number, MachineCheckpointRows> {
    let built = 0;
    const take = function* (rows: Generator<CheckpointRow, Omit<TableChanges, 'put'>>): Generator<number, TableChanges> {
      const put: CheckpointRow[] = [];
      for (;;) {
        if (built >= sliceChars) {
          yield built;
          built = 0;
        }
        const r = rows.next();
        if (r.done) return { ...r.value, put };
        put.push(r.value);
        built += r.value[1].length + (r.value[2]?.byteLength ?? 0);
      }
    };
    const sessionRow = (id: string): [number, string] | undefined => {
      const x = this.sessions.get(id);
      return x ? [this.sessionOrds.get(id) as number, JSON.stringify([id, x.floor, [...x.results.entries()], x.last_active, x.timeout_ms])] : undefined;
    };
    const ids = this.sessions.keys.bind(this.sessions);
    const sessions = yield* take(
      this.dirtySessions.takeRows(sessionRow, function* () {
        for (const id of ids()) yield sessionRow(id) as [number, string];
      }),
    );
    const orchs = yield* take(this.tasks.takeChangeRows());
    const memory = yield* take(this.memory.takeChangeRows());
    const meta = JSON.stringify({
      v: CHECKPOINT_META_VERSION,
      config: this.config,
      agents: [...this.agents.values()],
      elections: this.elections,
      electionTotals: this.electionTotals,
      ...this.scalarFields(),
      completeHigh: this.tasks.completeIndexHigh,
      compactedRefused: this.tasks.compactedReportsRefused,
      taskAgents: this.tasks.agentNames(),
      taskBlock: this.tasks.tasksPerBlock,
      memoryOrd: this.memory.lastOrd,
      sessionOrd: this.nextSessionOrd,
    });
    return { meta, tables: { memory, sessions, orchs } };
  }

  /**
   * Rebuild from a checkpoint (takeCheckpoint's rows, each table read in row-key order): the
   * same state, maps in the same order, as the machine that wrote it. Changes from here on are
   * tracked by row, on top of the stored ones.
   */
  restoreCheckpoint(c: CheckpointReader): void {
    const m = JSON.parse(c.meta);
    if (!CHECKPOINT_META_VERSIONS.includes(m.v)) throw new Error(`unsupported checkpoint version ${String(m.v)} (expected one of ${CHECKPOINT_META_VERSIONS.join(', ')})`);
    this.config = { ...DEFAULT_SWARM_CONFIG, ...m.config };
    this.agents = new Map((m.agents as AgentRecord[]).map((a) => [a.id, a]));
    this.elections = m.elections;
    this.electionTotals = m.electionTotals;
    this.restoreScalarFields(m);
    // Read on demand when the storage offers it; read whole (and rewritten with lookup keys
    // at the next checkpoint) when its rows have none (null: an older file).
    const stored = c.storedRows?.('memory');
    this.memory = stored ? MemoryStore.fromStored(stored, m.memoryOrd) : MemoryStore.fromRows((each) => c.jsonRows('memory', each), m.memoryOrd, stored === null);
    this.tasks =
      m.v === 1
        ? TaskTable.fromWholeRows(c.rows('orchs'), m.taskAgents, m.completeHigh, m.compactedRefused, this.events.tasksPerBlock)
        : TaskTable.fromRows(c.rows('orchs'), m.taskAgents, m.completeHigh, m.compactedRefused, m.taskBlock);
    this.sessions = new Map();
    this.sessionOrds = new Map();
    for (const [ord, row] of c.rows('sessions')) {
      const [id, floor, rs, last_active, timeout_ms] = row as [string, number, Array<[number, OpResult]>, number, number];
      this.sessions.set(id, { floor, results: new Map(rs), last_active, timeout_ms });
      this.sessionOrds.set(id, ord);
    }
    this.nextSessionOrd = m.sessionOrd;
    this.dirtySessions.setFull();
    this.dirtySessions.full = false;
    this.noExpiryUntil = 0;
    this.announceRestored();
  }

  /**
   * The fields written alike, in this order, at the end of snapshot() (v3), of the v4 meta part
   * and after the elections in the checkpoint meta. Key order is part of the v3 bytes, hashed
   * into state hashes (test/machine/snapshot-layout.test.ts pins all three).
   */
  private scalarFields(): ScalarFields {
    return {
      explicitSessions: this.explicitSessions,
      expiredCommands: this.expiredCommands,
      clock: this.clock,
      appliedIndex: this.appliedIndex,
      appliedTerm: this.appliedTerm,
      duplicateCommands: this.duplicateCommands,
      book: this.book.toJSON(),
    };
  }

  /** scalarFields() read back (from a snapshot of any version, or a checkpoint meta row). */
  private restoreScalarFields(s: Partial<ScalarFields>): void {
    this.explicitSessions = s.explicitSessions === true;
    // Snapshots from before this counter (v1) carry none.
    this.expiredCommands = s.expiredCommands ?? 0;
    this.clock = s.clock as number;
    this.appliedIndex = s.appliedIndex as number;
    this.appliedTerm = s.appliedTerm as number;
    this.duplicateCommands = s.duplicateCommands as number;
    // Snapshots from before the book carry none: it is rebuilt from later entries.
    this.book = MemberBook.fromJSON(s.book);
  }

  snapshot(): string {
    return JSON.stringify({
      v: 3,
      config: this.config,
      agents: [...this.agents.values()],
      tasks: this.tasks.toJSON(),
      memory: this.memory.toJSON(),
      elections: this.elections,
      electionTotals: this.electionTotals,
      sessions: [...this.sessions.entries()].map(([c, s]) => [c, s.floor, [...s.results.entries()], s.last_active, s.timeout_ms]),
      ...this.scalarFields(),
    });
  }

  /**
   * SHA-256 (hex) of snapshot(): the replicated state as a whole. Replicas at the same applied
   * index hold the same state (the simulators compare snapshot() strings), so they have the
   * same hash; a backup restored elsewhere is checked against it.
   */
  stateHash(): string {
    return createHash('sha256').update(this.snapshot()).digest('hex');
  }

  /**
   * Why a snapshot sent by a peer cannot be restored (null when it can): checked before it
   * reaches the log, so a forged or garbled one is refused instead of throwing halfway through
   * restore. Versions are the ones restore() reads.
   */
  checkSnapshot(data: SnapshotData): string | null {
    const parts = snapshotParts(data);
    let s: unknown;
    const prep = this.preparing.get(parts);
    this.preparing.delete(parts);
    if (parts.length > 1) {
      s = prep ? this.assemblePrepared(parts, prep) : CoordinationMachine.assembleParts(parts);
      if (typeof s === 'string') return s;
      // Parsing a large state takes seconds: restore() takes this parse if it restores these parts.
      this.checkedParts = { parts, s: s as Record<string, unknown> };
    } else {
      try {
        s = JSON.parse(parts[0] ?? '');
      } catch {
        return 'not JSON';
      }
      if (typeof s !== 'object' || s === null || Array.isArray(s)) return 'not a JSON object';
      const v = (s as Record<string, unknown>).v;
      if (!SNAPSHOT_VERSIONS.includes(v as number)) return `snapshot version ${JSON.stringify(v)} (expected one of ${SNAPSHOT_VERSIONS.join(', ')})`;
    }
    const o = s as Record<string, unknown>;
    const isObj = (x: unknown): boolean => typeof x === 'object' && x !== null && !Array.isArray(x);
    const ok = isObj(o.config) && Array.isArray(o.agents) && isObj(o.tasks) && Array.isArray(o.memory) && Array.isArray(o.elections) && Array.isArray(o.sessions);
    return ok ? null : 'not a complete coordination snapshot';
  }

  /**
   * The state to send a follower: snapshot() (v3) when it fits in one part of `maxPartChars`,
   * else v4 parts, so no string ever holds the whole of a large state.
   */
  snapshotData(maxPartChars = snapshotPartChars()): SnapshotData {
    const steps = this.snapshotSteps(maxPartChars, Infinity);
    for (;;) {
      const r = steps.next();
      if (r.done) return r.value;
    }
  }

  /**
   * snapshotData() in steps: yields after each `sliceChars` of JSON written, so a host can
   * serialize a large state over several event-loop turns (holding its applies meanwhile: the
   * state must not change until the last step returns the data).
   */
  *snapshotSteps(maxPartChars = snapshotPartChars(), sliceChars = snapshotSliceChars()): Generator<void, SnapshotData> {
    const p = new PartPacker(maxPartChars, PARTS_VERSION);
    let mark = 0;
    for (const pieces of CoordinationMachine.taskRowsOut(this.tasks)) {
      p.addJson('taskrows', pieces);
      if (p.written - mark >= sliceChars) {
        mark = p.written;
        yield;
      }
    }
    const rows: Array<[PartTable, Iterable<unknown>]> = [
      ['memory', this.memory.values()],
      ['sessions', [...this.sessions].map(([c, x]) => [c, x.floor, [...x.results.entries()], x.last_active, x.timeout_ms])],
    ];
    for (const [table, it] of rows) {
      for (const r of it) {
        p.add(table, r);
        if (p.written - mark >= sliceChars) {
          mark = p.written;
          yield;
        }
      }
    }
    p.flush();
    const meta = JSON.stringify({
      v: PARTS_VERSION,
      parts: p.parts.length + 1,
      config: this.config,
      agents: [...this.agents.values()],
      tasks: {
        complete_high: this.tasks.completeIndexHigh,
        compacted_refused: this.tasks.compactedReportsRefused,
        agents: this.tasks.agentNames(),
        block: this.tasks.tasksPerBlock,
      },
      elections: this.elections,
      electionTotals: this.electionTotals,
      ...this.scalarFields(),
    });
    // Small: the rows are dropped and v3 written (what every member version reads), when it
    // fits in one part. Its task records take ~300 characters each where the rows above take
    // ~24, so it is built only when it may fit: the rest as written above plus the least the
    // records take is at most a part (a million tasks never make a 380 M-character string).
    // No rows at all: v3 is the only form (a one-element array would be read as v3 and
    // refused for its version; simulator seed 8818, with parts of a few hundred characters).
    if (p.parts.length === 0) return this.snapshot();
    const rest = p.written - (p.writtenOf.get('taskrows') ?? 0);
    if (rest + meta.length + this.tasks.recordCount * MIN_V3_TASK_CHARS <= maxPartChars) {
      const one = this.snapshot();
      if (one.length <= maxPartChars) return one;
    }
    return [meta, ...p.parts];
  }

  /**
   * The task table's rows as a v5 part holds them, [ord, row] or [ord, row, column bytes as
   * base64], as JSON pieces (see PartPacker.addJson): base64 needs no escaping, so its string
   * is a piece of its own, the same text JSON.stringify of the row would write.
   */
  private static *taskRowsOut(t: TaskTable): Generator<string[]> {
    for (const [ord, row, bin] of t.snapshotRows()) {
      const head = `[${ord},${JSON.stringify(row)}`;
      yield bin === undefined ? [`${head}]`] : [`${head},"`, Buffer.from(bin.buffer, bin.byteOffset, bin.byteLength).toString('base64'), '"]'];
    }
  }

  /**
   * Part `i` of a multi-part snapshot that is still arriving (`parts` fills in as it does; the
   * same array is later handed to checkSnapshot): parse and check it now, so that the check
   * of the whole, once its hash matched, parses nothing. Each part is bounded (64 MiB), so the
   * work per call is too; parsing 20 parts of a 1 GiB state at the end blocked for seconds.
   * Nothing is restored from it before checkSnapshot accepts the whole.
   */
  prepareSnapshotPart(parts: readonly string[], i: number): void {
    let prep = this.preparing.get(parts);
    if (!prep) {
      if (this.preparing.size >= MAX_PREPARING) this.preparing.delete(this.preparing.keys().next().value!);
      this.preparing.set(parts, (prep = { parsed: [], feed: null, next: 0 }));
    }
    if (prep.parsed[i] !== undefined) return;
    const text = parts[i] ?? '';
    if (i !== prep.next) prep.feed = null;
    else prep.next++;
    const head = partHead(PARTS_VERSION, 'taskrows');
    if (i > 0 && prep.feed !== null && text.startsWith(head)) {
      prep.parsed[i] = CoordinationMachine.feedPart(prep.feed, text, i, head);
      // A row that did not load: the feed holds a part-built table that will never be used.
      if (typeof prep.parsed[i] === 'string') prep.feed = null;
      return;
    }
    const p = CoordinationMachine.parsePart(text, i);
    prep.parsed[i] = p;
    // A task part written otherwise than PartPacker does (parsed whole): the feed would miss its rows.
    if (typeof p !== 'string' && p.table === 'taskrows') prep.feed = null;
    // Of v5, the task table is built as its parts arrive (they come first after part 0).
    if (i === 0 && typeof p !== 'string' && p.meta!.v === PARTS_VERSION) {
      const feed = TaskRowsFeed.of(p.meta!.tasks);
      if (typeof feed !== 'string') prep.feed = feed;
    }
  }

  /**
   * A v5 task part's rows parsed one at a time (partRowTexts) and loaded into `feed`: what
   * parsePart would return for it, with `fed` for its rows, or why it is refused.
   */
  private static feedPart(feed: TaskRowsFeed, text: string, i: number, head: string): ParsedPart | string {
    feed.startPart(i);
    for (const row of partRowTexts(text, head)) {
      if (row === null) return `part ${i} is not JSON`;
      let x: unknown;
      try {
        x = parseRowText(row);
      } catch {
        return `part ${i} is not JSON`;
      }
      const why = feed.add(x);
      if (why !== null) return why;
    }
    return { v: PARTS_VERSION, table: 'taskrows', fed: true };
  }

  /** The transfer of `parts` was given up: what prepareSnapshotPart parsed of it goes. */
  dropSnapshotParts(parts: readonly string[]): void {
    this.preparing.delete(parts);
  }

  /** One part of a multi-part snapshot parsed and checked on its own, or why it is not one. */
  private static parsePart(text: string, i: number): ParsedPart | string {
    let x: unknown;
    try {
      x = JSON.parse(text);
    } catch {
      return `part ${i} is not JSON`;
    }
    if (i === 0) {
      if (typeof x !== 'object' || x === null || Array.isArray(x)) return 'part 0 is not a JSON object';
      return { meta: x as Record<string, unknown> };
    }
    const p = x as { v?: unknown; k?: unknown; rows?: unknown } | null;
    if (typeof p !== 'object' || p === null || !PARTS_VERSIONS.includes(p.v as number) || !PART_TABLES_OF[p.v as number]!.includes(p.k as PartTable) || !Array.isArray(p.rows)) {
      return `part ${i} is not a table part`;
    }
    return { v: p.v as number, table: p.k as PartTable, rows: p.rows as unknown[] };
  }

  /** assembleParts from the parts prepareSnapshotPart parsed (a part it missed is parsed here). */
  private assemblePrepared(parts: readonly string[], prep: Preparing): Record<string, unknown> | string {
    let used = 0;
    const r = CoordinationMachine.assembleParts(
      parts,
      (i) => {
        const had = prep.parsed[i];
        if (had !== undefined) used++;
        return had ?? CoordinationMachine.parsePart(parts[i]!, i);
      },
      prep.feed,
    );
    this.preparedPartsUsed += used;
    return r;
  }

  /**
   * A multi-part snapshot's parts parsed into v3's shape (tables' rows gathered from their
   * parts; of v5, `tasks` is the task table rebuilt from its rows), or a reason it is not one.
   * Parses every part (`parse`: each part's parse, possibly done already) and, of v5, rebuilds
   * the task table (every block's bytes checked): nothing is restored from a broken one.
   */
  private static assembleParts(
    parts: readonly string[],
    parse: (i: number) => ParsedPart | string = (i) => CoordinationMachine.parsePart(parts[i] ?? '', i),
    feed: TaskRowsFeed | null = null,
  ): Record<string, unknown> | string {
    const head = parse(0);
    if (typeof head === 'string') return head;
    const s = head.meta!;
    if (!PARTS_VERSIONS.includes(s.v as number)) return `a ${parts.length}-part snapshot of version ${JSON.stringify(s.v)} (expected one of ${PARTS_VERSIONS.join(', ')})`;
    if (s.parts !== parts.length) return `${parts.length} parts, the snapshot says ${JSON.stringify(s.parts)}`;
    const rows: Record<PartTable, unknown[]> = { tasks: [], orchs: [], idem: [], memory: [], sessions: [], taskrows: [] };
    // Of v5, the task rows' parts by index (rows stay in their parts: they are read once, in
    // order), and the parts whose rows were fed to `feed` as they arrived.
    const taskParts: Array<[number, unknown[]]> = [];
    const fed: number[] = [];
    for (let i = 1; i < parts.length; i++) {
      const p = parse(i);
      if (typeof p === 'string') return p;
      if (p.v !== s.v) return `part ${i} is of version ${p.v}, part 0 of ${JSON.stringify(s.v)}`;
      if (p.table === 'taskrows') {
        if (p.fed) fed.push(i);
        else taskParts.push([i, p.rows!]);
        continue;
      }
      const into = rows[p.table!];
      for (const r of p.rows!) into.push(r);
    }
    const t = s.tasks as Record<string, unknown> | null;
    if (typeof t !== 'object' || t === null) return 'part 0 has no tasks summary';
    if (s.v === 5) {
      // Every task part fed as it arrived: the table is built. Else the fed ones (the feed
      // stopped: a part came out of order) are parsed again, and all are built from rows.
      let built: TaskTable | string;
      if (feed !== null && taskParts.length === 0) built = feed.finish();
      else {
        for (const i of fed) {
          const p = CoordinationMachine.parsePart(parts[i] ?? '', i);
          if (typeof p === 'string') return p;
          taskParts.push([i, p.rows!]);
        }
        taskParts.sort((a, b) => a[0] - b[0]);
        built = CoordinationMachine.buildTasks(t, taskParts);
      }
      if (typeof built === 'string') return built;
      s.tasks = built;
    } else s.tasks = { ...t, tasks: rows.tasks, orchs: rows.orchs, idem: rows.idem };
    s.memory = rows.memory;
    s.sessions = rows.sessions;
    return s;
  }

  /**
   * The task table of a v5 snapshot, rebuilt from its rows (taskParts: [part index, rows]) as a
   * checkpoint's are (TaskTable.fromRows), or why it cannot be: a row that is not one, column
   * bytes that are not base64, of the wrong length or widths, a block missing or twice. The
   * reason names the part and the orchestration (and block) being read (see TaskRowsFeed).
   */
  private static buildTasks(t: Record<string, unknown>, taskParts: ReadonlyArray<[number, unknown[]]>): TaskTable | string {
    const feed = TaskRowsFeed.of(t);
    if (typeof feed === 'string') return feed;
    for (const [i, rows] of taskParts) {
      feed.startPart(i);
      for (const x of rows) {
        const why = feed.add(x);
        if (why !== null) return why;
      }
    }
    return feed.finish();
  }

  restore(data: SnapshotData): void {
    const parts = snapshotParts(data);
    if (parts.length === 0 || (parts.length === 1 && !parts[0])) return;
    let s;
    if (parts.length > 1) {
      const held = this.checkedParts;
      this.checkedParts = null;
      const a = held?.parts === parts ? held.s : CoordinationMachine.assembleParts(parts);
      if (typeof a === 'string') throw new Error(`snapshot: ${a}`);
      s = a as any; // eslint-disable-line @typescript-eslint/no-explicit-any
    } else {
      s = JSON.parse(parts[0]!);
      if (!SNAPSHOT_VERSIONS.includes(s.v)) throw new Error(`unsupported snapshot version ${String(s.v)}`);
    }
    // Fields added since (task retention) take their defaults.
    this.config = { ...DEFAULT_SWARM_CONFIG, ...s.config };
    this.agents = new Map((s.agents as AgentRecord[]).map((a) => [a.id, a]));
    // Of v5 the table was rebuilt from its rows by the check (with the sender's block size,
    // which only sets the local checkpoint layout; the next checkpoint rewrites it all).
    this.tasks = s.tasks instanceof TaskTable ? s.tasks : TaskTable.fromJSON(s.tasks, this.events.tasksPerBlock);
    this.tasks.markFull();
    this.memory = MemoryStore.fromJSON(s.memory);
    this.elections = s.elections;
    this.electionTotals = s.electionTotals ?? {
      elections: this.elections.length,
      leader_failures: this.elections.filter((e) => isLeaderFailure(e.cause)).length,
    };
    // v1 (before registered sessions) kept no activity time: its sessions count as active at
    // the snapshot's clock, with the default timeout, in the same (LRU) order.
    this.sessions = new Map(
      (s.sessions as Array<[string, number, Array<[number, OpResult]>, number?, number?]>).map(([c, floor, rs, last, timeout]) => [
        c,
        { floor, results: new Map(rs), last_active: last ?? s.clock, timeout_ms: timeout ?? SESSION_TIMEOUT_MS },
      ]),
    );
    // Row keys numbered afresh: the next checkpoint rewrites every table.
    this.nextSessionOrd = 0;
    this.sessionOrds = new Map([...this.sessions.keys()].map((id) => [id, ++this.nextSessionOrd]));
    this.dirtySessions.setFull();
    this.noExpiryUntil = 0;
    this.restoreScalarFields(s);
    this.announceRestored();
  }

  /**
   * A snapshot or checkpoint replaces entries that are never replayed: announce what they had
   * set up, as applying them would have. Otherwise a member restarted from (or sent) one never
   * runs work still assigned to it until its lease expires, nor adopts the config's timing.
   */
  private announceRestored(): void {
    this.events.onConfig?.(this.config);
    const items: Array<{ task: string; agent: string; epoch: number }> = [];
    for (const id of this.tasks.assigned) {
      const t = this.tasks.tasks.get(id);
      if (t?.assignee) items.push({ task: t.id, agent: t.assignee, epoch: t.epoch });
    }
    if (items.length > 0) this.events.onAssigned?.(items);
  }
}

/** Causes that mean the previous leader failed (crashed, lost its quorum, or went silent). */
export function isLeaderFailure(cause: string): boolean {
  return cause === 'leader crash' || cause === 'lost quorum' || cause === 'leader unreachable';
}
