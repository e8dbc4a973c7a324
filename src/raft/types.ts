// Wire and storage types of the Raft core. Everything here is plain JSON so that messages,
// entries and snapshots serialize unchanged to SQLite rows and TCP frames.

export type NodeId = string;

/** `normal` carries application data; `conf` carries a JSON ConfChange; `noop` is the
 * empty entry a new leader appends so it can commit something of its own term. */
export type EntryType = 'normal' | 'conf' | 'noop';

export interface Entry {
  index: number;
  term: number;
  type: EntryType;
  /** Opaque to the core for `normal`; JSON of a ConfChange for `conf`; '' for `noop`. */
  data: string;
}

/** What must be durable before any message that depends on it is sent. */
export interface HardState {
  term: number;
  vote: NodeId | null;
  commit: number;
}

/** Cluster membership. Learners receive the log but neither vote nor count for commit. */
export interface ConfState {
  voters: NodeId[];
  learners: NodeId[];
}

export type ConfChangeType = 'addLearner' | 'addVoter' | 'removeNode';

/** Single-server change (dissertation section 4.1): one in flight at a time. */
export interface ConfChange {
  type: ConfChangeType;
  node: NodeId;
  /** Free-form context carried to the application when the change is applied. */
  context?: string;
}

export interface SnapshotMetadata {
  index: number;
  term: number;
  confState: ConfState;
}

/**
 * Serialized application state, opaque to the core: one string, or a list of parts when the
 * whole would pass V8's string limit (~512 Mi characters); each part stays far below it.
 */
export type SnapshotData = string | readonly string[];

/** The state's parts (one for a single string). */
export function snapshotParts(d: SnapshotData): readonly string[] {
  return typeof d === 'string' ? [d] : d;
}

/** UTF-16 length of all parts: a cheap, monotone size. */
export function snapshotChars(d: SnapshotData): number {
  if (typeof d === 'string') return d.length;
  let n = 0;
  for (const p of d) n += p.length;
  return n;
}

export interface Snapshot {
  metadata: SnapshotMetadata;
  /** Serialized application state as of metadata.index. */
  data: SnapshotData;
}

export type MessageType =
  | 'MsgApp'
  | 'MsgAppResp'
  | 'MsgVote'
  | 'MsgVoteResp'
  | 'MsgPreVote'
  | 'MsgPreVoteResp'
  | 'MsgHeartbeat'
  | 'MsgHeartbeatResp'
  | 'MsgSnap'
  | 'MsgTimeoutNow'
  | 'MsgReadIndex'
  | 'MsgReadIndexResp'
  | 'MsgTransferLeader';

export interface Message {
  type: MessageType;
  from: NodeId;
  to: NodeId;
  term: number;
  /** MsgApp: term of the entry at `index` (the consistency check). Votes: last log term. */
  logTerm: number;
  /** MsgApp: index preceding `entries`. MsgAppResp: highest matched index (or rejected index).
   * Votes: last log index. MsgReadIndexResp: the read index. MsgHeartbeat: the leader's
   * heartbeat sequence number, echoed in MsgHeartbeatResp so the host can match an answer
   * to the heartbeat it answers (round-trip times). */
  index: number;
  entries: Entry[];
  commit: number;
  reject: boolean;
  /** MsgAppResp rejection: the follower's hint for fast backtracking (see log.ts). */
  rejectHint: number;
  /** Term of the hinted index, so the leader can skip a whole conflicting term. Votes: the
   * term of the candidate's entry at `commit` (its commit index). */
  logTermHint: number;
  /** ReadIndex request context, heartbeats carrying it, vote-campaign kind, and on MsgApp
   * COMMIT_NOTICE. */
  context: string;
  snapshot?: Snapshot;
}

/**
 * MsgApp context: an append that carries no entries, only a new commit index, to a follower
 * the leader knows holds everything up to it (replicating, nothing in flight). A follower that
 * accepts it sends no answer: the answer would repeat what the leader already has, and at one
 * write in flight these answers were a third of the messages a leader received per write.
 * Heartbeats keep the leader's view of the follower fresh. Members that do not know the
 * context answer as before.
 */
export const COMMIT_NOTICE = 'commit-notice';

/**
 * MsgHeartbeat context: the leader needs no answer to this heartbeat. It heard from the
 * follower within the last heartbeat interval, knows it holds the whole log with nothing in
 * flight, and waits for no read: the answer would repeat what it knows. Without answers the
 * leader asks again at its next heartbeat, so it hears each follower at least every other
 * interval (its quorum check and the health views read that age). In 50 idle swarms, half of
 * the answers, a quarter of all messages. Members that do not know the context answer as
 * before (and the leader reads such an answer as one without a read context). Read contexts
 * always contain ':', so they never equal it.
 */
export const HEARTBEAT_NO_ANSWER = 'no-answer';

/** A message with every optional field at its zero value, overridden by `partial`. */
export function newMessage(partial: Partial<Message> & Pick<Message, 'type' | 'from' | 'to' | 'term'>): Message {
  return {
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    logTermHint: 0,
    context: '',
    ...partial,
  };
}

export type Role = 'follower' | 'preCandidate' | 'candidate' | 'leader';

/** Volatile state the host may want to observe. Not persisted. */
export interface SoftState {
  leader: NodeId | null;
  role: Role;
  /** The term this soft state belongs to. A host that acts on a Ready later (after an
   * asynchronous fsync) must report this, not the core's current term, which may be newer. */
  term: number;
}

/** A voter or learner answered a leader's heartbeat that carried a read context. */
export interface ReadAck {
  context: string;
  from: NodeId;
}

export interface ReadState {
  /** Commit index the read must wait for (apply >= index) before reading. */
  index: number;
  /** The context passed to readIndex(), echoed back so the caller can match it. */
  context: string;
}

/**
 * The hand-off batch. The host must, in this order:
 * 1. persist `snapshot` (if any), then `entries`, then `hardState` (if any), durably;
 * 2. send `messages`;
 * 3. apply `committedEntries` in order, answer `readStates` once applied >= their index;
 * 4. call `advance(ready)`.
 */
export interface Ready {
  softState: SoftState | null;
  hardState: HardState | null;
  entries: Entry[];
  snapshot: Snapshot | null;
  messages: Message[];
  committedEntries: Entry[];
  readStates: ReadState[];
}

/** Tunables. Durations are in ticks; the host chooses the tick length (default 10 ms). */
export interface RaftConfig {
  id: NodeId;
  /** Election timeout is drawn uniformly from [electionTicksMin, electionTicksMax). */
  electionTicksMin: number;
  electionTicksMax: number;
  heartbeatTicks: number;
  /** Seed for this node's PRNG: the only source of randomness in the core. */
  seed: number;
  preVote: boolean;
  checkQuorum: boolean;
  /** Per-message bounds for log replication batching. */
  maxEntriesPerMsg: number;
  maxBytesPerMsg: number;
  /** Flow control: MsgApp messages in flight per follower while pipelining. */
  maxInflightMsgs: number;
  /** Uncommitted entries the leader accepts before refusing proposals (backlog full). */
  maxUncommittedEntries: number;
  /**
   * Uncommitted entry data (UTF-8 bytes) the leader accepts before refusing proposals, as
   * etcd's MaxUncommittedEntriesSize. A single entry over the bound is accepted when nothing
   * is uncommitted, so a large entry is never refused forever.
   */
  maxUncommittedBytes: number;
  /** Ticks a leadership transfer may take before it is abandoned. Defaults to election min. */
  transferTimeoutTicks?: number;
  /**
   * Entry data (UTF-16 length) one Ready hands over to apply, at least one entry; the rest
   * comes in the next Ready. Bounds one Ready's work (etcd's MaxCommittedSizePerReady).
   * Default unbounded.
   */
  maxCommittedBytesPerReady?: number;
}

export const DEFAULT_CONFIG: Omit<RaftConfig, 'id' | 'seed'> = {
  electionTicksMin: 15,
  electionTicksMax: 30,
  heartbeatTicks: 5,
  preVote: true,
  checkQuorum: true,
  maxEntriesPerMsg: 512,
  maxBytesPerMsg: 1 << 20,
  maxInflightMsgs: 256,
  maxUncommittedEntries: 10_000,
  maxUncommittedBytes: 64 << 20,
};

/** State a node restarts from: what storage durably holds. */
export interface RestartState {
  hardState: HardState;
  /** Snapshot the log starts after; null means the log starts at index 1. */
  snapshot: SnapshotMetadata | null;
  snapshotData?: SnapshotData;
  /** Entries after the snapshot, contiguous. */
  entries: Entry[];
  /** Membership when there is no snapshot and no conf entries yet (bootstrap). */
  initialConf: ConfState;
}

export class ProposalError extends Error {
  constructor(
    readonly code: 'not_leader' | 'backlog_full' | 'transfer_in_progress' | 'conf_change_pending' | 'invalid',
    message: string,
    readonly leader: NodeId | null = null,
  ) {
    super(message);
    this.name = 'ProposalError';
  }
}
