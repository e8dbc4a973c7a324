import { Prng } from '../util/prng.js';
import { RaftLog } from './log.js';
import { Progress } from './progress.js';
import { committedIndex, majority, voteResult } from './quorum.js';
import { ReadOnlyQueue } from './read-only.js';
import {
  COMMIT_NOTICE,
  HEARTBEAT_NO_ANSWER,
  ProposalError,
  type ConfChange,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type MessageType,
  type NodeId,
  type RaftConfig,
  type ReadAck,
  type ReadState,
  type Ready,
  type RestartState,
  type Role,
  type Snapshot,
  type SnapshotData,
  type SoftState,
} from './types.js';

const CAMPAIGN_TRANSFER = 'transfer';
/** Bound on read acks held for a host that does not take them. */
const MAX_READ_ACKS = 4096;
/** MsgAppResp context of a member that cannot take the log from index 1 (see baseKnown). */
const NEED_SNAPSHOT = 'need-snapshot';
/** What takeHeartbeats and takeReadAcks return when there is nothing (they run per message). */
const NO_MESSAGES: readonly Message[] = Object.freeze([]);
const NO_READ_ACKS: readonly ReadAck[] = Object.freeze([]);

/** A pending ReadIndex that arrived before the leader committed an entry of its term. */
interface DeferredRead {
  context: string;
  from: NodeId;
}

export interface PeerStatus {
  id: NodeId;
  match: number;
  next: number;
  state: string;
  recentActive: boolean;
  isLearner: boolean;
  /** Ticks since this peer last answered the leader. */
  ticksSinceResponse: number;
}

export interface RaftStatus {
  id: NodeId;
  term: number;
  vote: NodeId | null;
  role: Role;
  leader: NodeId | null;
  commit: number;
  applied: number;
  lastIndex: number;
  firstIndex: number;
  snapshotIndex: number;
  conf: ConfState;
  /** Voters that granted this node's winning vote (leader only, this term). */
  votedBy: NodeId[];
  leadTransferee: NodeId | null;
  peers: PeerStatus[];
  /** Leader only: a majority answered within the last election timeout. */
  quorumActive: boolean;
  uncommittedEntries: number;
  /** Leader only: UTF-8 bytes of uncommitted entry data (bounded by maxUncommittedBytes). */
  uncommittedBytes: number;
}

/**
 * A Raft member as a pure state machine (cf. etcd's raft.go + rawnode.go): inputs are
 * tick(), step(), propose*(), transferLeadership(), readIndex(); outputs come out of ready()
 * and are acknowledged with advance(). No I/O, no clock, no randomness but the seeded PRNG.
 */
export class Raft {
  readonly id: NodeId;
  term = 0;
  vote: NodeId | null = null;
  role: Role = 'follower';
  lead: NodeId | null = null;
  readonly log = new RaftLog();

  private readonly cfg: Required<RaftConfig>;
  private readonly prng: Prng;
  private voters = new Set<NodeId>();
  private learners = new Set<NodeId>();
  private prs = new Map<NodeId, Progress>();
  private votes = new Map<NodeId, boolean>();
  private votedBy: NodeId[] = [];
  private msgs: Message[] = [];
  private readStates: ReadState[] = [];
  private readOnly = new ReadOnlyQueue();
  private deferredReads: DeferredRead[] = [];
  /** Leader: answers to heartbeats carrying a read context, until the host takes them. */
  private readAcks: ReadAck[] = [];
  /** Leader: UTF-8 bytes of entry data in (committed, lastIndex], for the backlog bound. */
  private uncommittedBytes = 0;
  /** Leader: sequence number of the latest heartbeat broadcast (see Message.index). */
  private heartbeatSeq = 0;

  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  /** Leader-local tick counter, for per-peer response age. */
  private ticks = 0;
  private leadTransferee: NodeId | null = null;
  private transferElapsed = 0;
  /** Index of the latest conf change proposed; none may be proposed until it is applied. */
  private pendingConfIndex = 0;
  /**
   * Whether this node knows the membership its log starts from: the bootstrap membership
   * (initialConf) or a snapshot's. A joiner started with an empty membership does not: if it
   * replayed conf changes from index 1 on top of nothing it would miss the bootstrap voters
   * (and, once a voter, could elect itself alone). Such a node takes only a snapshot.
   */
  private baseKnown: boolean;
  /** Leader: a member needs a snapshot and none is held; the host should compact now. */
  private snapshotWanted = false;
  /** A follower finished installing a snapshot this leader sent (see releaseDeliveredSnapshot). */
  private snapshotDelivered = false;
  /** Holds taken by holdApply and not released yet. */
  private applyHolds = 0;

  private prevSoft: SoftState;
  private prevHard: HardState;

  constructor(config: RaftConfig, restart: RestartState) {
    const transferTimeoutTicks = config.transferTimeoutTicks ?? config.electionTicksMin;
    this.cfg = { ...config, transferTimeoutTicks, maxCommittedBytesPerReady: config.maxCommittedBytesPerReady ?? Infinity };
    validateConfig(this.cfg);
    this.id = config.id;
    this.prng = new Prng(config.seed);

    const hs = restart.hardState;
    this.term = hs.term;
    this.vote = hs.vote;
    let conf = restart.initialConf;
    this.baseKnown = restart.snapshot !== null || conf.voters.length > 0 || conf.learners.length > 0;
    if (restart.snapshot) {
      const m = restart.snapshot;
      this.log.snapshotIndex = m.index;
      this.log.snapshotTerm = m.term;
      this.log.committed = m.index;
      this.log.applied = m.index;
      // No data: the state was restored from the host's own checkpoint rows, and a follower
      // that needs a snapshot waits for the host to make one (snapshotWanted).
      this.log.snapshot = restart.snapshotData !== undefined ? { metadata: m, data: restart.snapshotData } : null;
      conf = m.confState;
    }
    this.log.append(restart.entries);
    this.log.stableIndex = this.log.lastIndex();
    this.log.commitTo(Math.min(hs.commit, this.log.lastIndex()));
    this.setConf(conf);
    this.prevHard = this.hardState();
    this.becomeFollower(this.term, null);
    this.prevSoft = this.softState();
  }

  // ---- inputs ----------------------------------------------------------------------------

  tick(): void {
    this.ticks++;
    if (this.role === 'leader') this.tickHeartbeat();
    else this.tickElection();
  }

  /**
   * Up to n ticks, exactly as that many tick() calls, stopping right after a tick that
   * changed the role (so a host can note a campaign start). Returns the ticks done. Spans in
   * which no tick can act are counted in one step: a host with a coarse tick timer catches up
   * dozens of ticks per wake, and hundreds of members share one process.
   */
  tickMany(n: number): number {
    let done = 0;
    while (done < n) {
      const quiet = Math.min(n - done, this.quietTicks());
      if (quiet > 0) {
        this.ticks += quiet;
        this.electionElapsed += quiet;
        if (this.role === 'leader') this.heartbeatElapsed += quiet;
        done += quiet;
        continue;
      }
      const role = this.role;
      this.tick();
      done++;
      if (this.role !== role) break;
    }
    return done;
  }

  /** How many coming ticks would only count (no timeout reached, nothing sent); 0 when unsure. */
  private quietTicks(): number {
    if (this.role !== 'leader') {
      // tickElection acts only once the (unchanging) timeout is reached, and only if promotable.
      if (!this.promotable()) return Infinity;
      return Math.max(0, this.randomizedElectionTimeout - this.electionElapsed - 1);
    }
    if (this.leadTransferee !== null || this.removedTicksLeft !== null) return 0;
    for (const pr of this.prs.values()) if (pr.state === 'snapshot') return 0;
    return Math.max(0, Math.min(this.cfg.heartbeatTicks - this.heartbeatElapsed, this.cfg.electionTicksMin - this.electionElapsed) - 1);
  }

  /**
   * Ticks until tick() next acts by itself: a follower's or candidate's election timeout, a
   * leader's next heartbeat. Lets a host that ticks coarsely wake exactly when it matters.
   */
  ticksUntilTimeout(): number {
    if (this.role === 'leader') return Math.max(1, this.cfg.heartbeatTicks - this.heartbeatElapsed);
    return Math.max(1, this.randomizedElectionTimeout - this.electionElapsed);
  }

  /** Start an election now, as if the election timeout fired (trigger-election). */
  campaign(): void {
    this.hup(false);
  }

  /**
   * The host learned that `id`'s process is gone (its address refuses connections). If it is
   * the leader this follower follows, the leader's lease ends now: the follower grants votes
   * from now on, and its own election timer has only its randomized part left to run
   * (0 to electionTicksMax - electionTicksMin ticks), which still spreads the candidates.
   * Nothing else changes: a follower that did not see the refusal keeps its lease and still
   * refuses to vote until it times out too, so one member's broken link disrupts nobody.
   * Safety never depends on timing, so a wrong report costs at most an election.
   */
  leaderUnreachable(id: NodeId): void {
    if (this.role !== 'follower' || this.lead !== id || id === this.id) return;
    this.electionElapsed = Math.max(this.electionElapsed, this.cfg.electionTicksMin);
  }

  step(m: Message): void {
    if (m.term > this.term && m.term !== 0) {
      if (m.type === 'MsgVote' || m.type === 'MsgPreVote') {
        const force = m.context === CAMPAIGN_TRANSFER;
        const inLease = this.cfg.checkQuorum && this.lead !== null && this.electionElapsed < this.cfg.electionTicksMin;
        // A member that heard from a live leader recently ignores campaigns: this is what
        // keeps a rejoining partitioned node from disrupting a healthy leader.
        if (!force && inLease) return;
      }
      if (m.type === 'MsgPreVote' || (m.type === 'MsgPreVoteResp' && !m.reject)) {
        // Pre-vote traffic never changes terms: granting a pre-vote promises nothing.
      } else if (m.type === 'MsgApp' || m.type === 'MsgHeartbeat' || m.type === 'MsgSnap') {
        this.becomeFollower(m.term, m.from);
      } else if (m.type === 'MsgVote') {
        // The election timer restarts on a leader's message or a vote granted (Raft 5.2), not
        // on a newer term seen in a request this member may refuse: refusing means its log is
        // more up to date than the candidate's, and it must still time out and run. Restarted
        // by every such request, it could lose every race to candidates that cannot win
        // (no pre-vote, a bare majority: simulator seed 3077 with --snapshot-parts).
        const elapsed = this.electionElapsed;
        const timeout = this.randomizedElectionTimeout;
        this.becomeFollower(m.term, null);
        this.electionElapsed = elapsed;
        this.randomizedElectionTimeout = timeout;
      } else {
        this.becomeFollower(m.term, null);
      }
    } else if (m.term < this.term && m.term !== 0) {
      if ((this.cfg.checkQuorum || this.cfg.preVote) && (m.type === 'MsgHeartbeat' || m.type === 'MsgApp')) {
        // Tell a stale leader about the newer term so it steps down instead of lingering.
        this.send({ type: 'MsgAppResp', to: m.from });
      } else if (m.type === 'MsgPreVote') {
        this.send({ type: 'MsgPreVoteResp', to: m.from, reject: true });
      }
      return;
    }

    switch (m.type) {
      case 'MsgVote':
      case 'MsgPreVote':
        this.handleVoteRequest(m);
        return;
      default:
        break;
    }
    if (this.role === 'leader') this.stepLeader(m);
    else if (this.role === 'follower') this.stepFollower(m);
    else this.stepCandidate(m);
  }

  /** Append one application command. Returns its index and term (the proposal id). */
  propose(data: string): { index: number; term: number } {
    const r = this.proposeEntries([{ type: 'normal', data }]);
    return r;
  }

  /** Append several commands in one go (they share one replication round). */
  proposeBatch(datas: string[]): { index: number; term: number } {
    return this.proposeEntries(datas.map((data) => ({ type: 'normal' as const, data })));
  }

  proposeConfChange(cc: ConfChange): { index: number; term: number } {
    this.checkCanPropose(1);
    if (this.pendingConfIndex > this.log.applied) {
      throw new ProposalError('conf_change_pending', `a membership change (index ${this.pendingConfIndex}) is still in progress; retry after it is applied`, this.lead);
    }
    if (this.log.term(this.log.committed) !== this.term) {
      // Ongaro's single-server fix: a new leader commits an entry of its term first.
      throw new ProposalError('conf_change_pending', 'the new leader has not yet committed an entry of its term; retry shortly', this.lead);
    }
    validateConfChange(cc, this.voters, this.learners);
    const r = this.proposeEntries([{ type: 'conf', data: JSON.stringify(cc) }]);
    this.pendingConfIndex = r.index;
    return r;
  }

  transferLeadership(to: NodeId): void {
    if (this.role !== 'leader') {
      if (this.lead === null) throw new ProposalError('not_leader', 'no leader is known; cannot transfer leadership', null);
      this.send({ type: 'MsgTransferLeader', to: this.lead, term: 0, context: to });
      return;
    }
    this.handleTransfer(to);
  }

  /** Linearizable read barrier: a ReadState with this context comes out of ready(). */
  readIndex(context: string): void {
    if (this.removedTicksLeft !== null) throw new ProposalError('not_leader', `${this.id} was removed from the configuration and is stepping down`, null);
    if (this.role === 'leader') {
      this.handleReadIndex(context, this.id);
      return;
    }
    if (this.lead === null) throw new ProposalError('not_leader', 'no leader is known; cannot serve a linearizable read', null);
    this.send({ type: 'MsgReadIndex', to: this.lead, term: 0, context });
  }

  /**
   * The application saved its state at the applied index: drop the log up to it. `data` is
   * the snapshot to send followers behind the log; null when the application keeps its state
   * in its own tables (a checkpoint): none is held then, and a follower that needs one makes
   * the host produce it (takeSnapshotRequest). With data at the first index's predecessor
   * (nothing left to drop), the snapshot is only held for sending. The snapshot returned is
   * at the applied index, whatever the memory log keeps.
   */
  compact(data: SnapshotData | null, keepEntries = 0): Snapshot {
    const index = this.log.applied;
    const term = this.log.term(index);
    if (term === undefined) throw new Error(`compact: no term for applied index ${index}`);
    if (index > this.log.stableIndex) throw new Error(`compact: applied ${index} beyond stable ${this.log.stableIndex}`);
    const snap: Snapshot = { metadata: { index, term, confState: this.confState() }, data: data ?? '' };
    // Without data, the last keepEntries entries stay in memory (etcd's catch-up entries): a
    // follower a little behind gets entries, not a snapshot serialized for it.
    const to = data === null ? Math.max(this.log.snapshotIndex, index - keepEntries) : index;
    if (to < index) this.log.compact({ metadata: { index: to, term: this.log.term(to) as number, confState: snap.metadata.confState }, data: '' }, false);
    else this.log.compact(snap, data !== null);
    return snap;
  }

  /**
   * Leader: who answered heartbeats carrying a read context since the last call, in arrival
   * order (an answer after the read was confirmed is still listed). Lets a host observe a
   * ReadIndex round member by member (consensus_verify_quorum) without watching the wire.
   */
  takeReadAcks(): readonly ReadAck[] {
    // Asked after every heartbeat answer a leader reads: no new array while there is none.
    if (this.readAcks.length === 0) return NO_READ_ACKS;
    const acks = this.readAcks;
    this.readAcks = [];
    return acks;
  }

  /**
   * Host input: while any hold is taken, Readys carry no committed entries, so the state
   * machine stays at one index while the host serializes it over several turns (a large
   * state: seconds); messages, heartbeats and appends go on meanwhile. Counted: a member's own
   * snapshot for a follower and a backup may copy at once, and neither may release the
   * other's hold. Returns the release (calling it again does nothing).
   */
  holdApply(): () => void {
    this.applyHolds++;
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      this.applyHolds--;
    };
  }

  /**
   * The host restored an installed snapshot into tables it can serialize again on demand
   * (checkpoints): stop holding its data, a second copy of the state in memory. A follower
   * that needs one later is served as after a checkpoint (takeSnapshotRequest).
   */
  releaseSnapshot(): void {
    if (this.log.pendingSnapshot === null) this.log.snapshot = null;
  }

  /**
   * Leader of a host that can serialize its state again on demand (checkpoints): once a
   * follower installed the held snapshot and no other is being sent one, stop holding its data
   * (the whole state: 15 MiB for a million tasks, else held until the next checkpoint). A
   * follower that needs one later has the host make one (takeSnapshotRequest), as after a
   * checkpoint. While a transfer is under way it stays (resent without serializing again).
   * True when the data was dropped.
   */
  releaseDeliveredSnapshot(): boolean {
    if (!this.snapshotDelivered) return false;
    if (this.role !== 'leader' || this.log.snapshot === null || this.log.pendingSnapshot !== null) {
      this.snapshotDelivered = false;
      return false;
    }
    for (const pr of this.prs.values()) if (pr.state === 'snapshot') return false;
    this.snapshotDelivered = false;
    this.log.snapshot = null;
    return true;
  }

  /** Leader: a member needs a snapshot and none exists; the host should compact (once). */
  takeSnapshotRequest(): boolean {
    const wanted = this.snapshotWanted;
    this.snapshotWanted = false;
    return wanted;
  }

  /** Live reconfiguration of timing and limits (consensus config goes through the log). */
  updateConfig(patch: Partial<Omit<RaftConfig, 'id' | 'seed'>>): void {
    const next = { ...this.cfg, ...patch };
    if (patch.transferTimeoutTicks === undefined && patch.electionTicksMin !== undefined) {
      next.transferTimeoutTicks = patch.electionTicksMin;
    }
    validateConfig(next);
    Object.assign(this.cfg, next);
    this.randomizedElectionTimeout = this.prng.int(this.cfg.electionTicksMin, this.cfg.electionTicksMax);
  }

  // ---- ready / advance -------------------------------------------------------------------

  hasReady(): boolean {
    if (this.role === 'leader') this.flushAppends();
    // Field by field, not softState()/hardState(): asked after every message, usually false.
    const ps = this.prevSoft;
    if (this.lead !== ps.leader || this.role !== ps.role) return true;
    const ph = this.prevHard;
    if (this.term !== ph.term || this.vote !== ph.vote || this.log.committed !== ph.commit) return true;
    return (
      this.msgs.length > 0 ||
      this.readStates.length > 0 ||
      this.log.pendingSnapshot !== null ||
      // The host takes it in handleReady (takeSnapshotRequest): a Ready, even an empty one.
      this.snapshotWanted ||
      this.log.stableIndex < this.log.lastIndex() ||
      (this.log.committed > this.log.applied && this.applyHolds === 0)
    );
  }

  ready(): Ready {
    if (this.role === 'leader') this.flushAppends();
    const ps = this.prevSoft;
    const ph = this.prevHard;
    const rd: Ready = {
      softState: this.lead !== ps.leader || this.role !== ps.role ? this.softState() : null,
      hardState: this.term !== ph.term || this.vote !== ph.vote || this.log.committed !== ph.commit ? this.hardState() : null,
      entries: this.log.unstableEntries(),
      snapshot: this.log.pendingSnapshot,
      messages: this.msgs,
      committedEntries: this.log.pendingSnapshot || this.applyHolds > 0 ? [] : this.log.nextCommitted(Infinity, this.cfg.maxCommittedBytesPerReady),
      readStates: this.readStates,
    };
    this.msgs = [];
    this.readStates = [];
    return rd;
  }

  /**
   * Take the pending heartbeats (a leader's) and heartbeat responses (a follower's) out of the
   * next Ready, for a host to send before it persists that Ready. They claim nothing about the
   * log (etcd sends them without waiting for the write), only the term, which the host must
   * know to be durable.
   */
  takeHeartbeats(): readonly Message[] {
    const msgs = this.msgs;
    let n = 0;
    for (const m of msgs) if (m.type === 'MsgHeartbeat' || m.type === 'MsgHeartbeatResp') n++;
    if (n === 0) return NO_MESSAGES;
    // Usually all of them (an idle member's answer, an idle leader's round): no copying.
    if (n === msgs.length) {
      this.msgs = [];
      return msgs;
    }
    this.msgs = msgs.filter((m) => m.type !== 'MsgHeartbeat' && m.type !== 'MsgHeartbeatResp');
    return msgs.filter((m) => m.type === 'MsgHeartbeat' || m.type === 'MsgHeartbeatResp');
  }

  /** The host persisted, sent and applied everything in `rd`. */
  advance(rd: Ready): void {
    if (rd.softState) this.prevSoft = rd.softState;
    if (rd.hardState) this.prevHard = rd.hardState;
    if (rd.snapshot) {
      const m = rd.snapshot.metadata;
      if (this.log.pendingSnapshot === rd.snapshot) this.log.pendingSnapshot = null;
      this.log.stableIndex = Math.max(this.log.stableIndex, m.index);
      this.log.applied = Math.max(this.log.applied, m.index);
      this.setConf(m.confState);
    }
    const last = rd.entries[rd.entries.length - 1];
    if (last) this.log.stableTo(last.index, last.term);
    for (const e of rd.committedEntries) {
      this.log.appliedTo(e.index);
      if (e.type === 'conf') this.applyConfChange(JSON.parse(e.data) as ConfChange);
    }
    if (this.role === 'leader') {
      // The leader counts itself toward commit only once its own copy is durable.
      const self = this.prs.get(this.id);
      if (self && self.maybeUpdate(this.log.stableIndex) && this.maybeCommit()) this.bcastAppend();
    }
  }

  // ---- observers -------------------------------------------------------------------------

  softState(): SoftState {
    return { leader: this.lead, role: this.role, term: this.term };
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  confState(): ConfState {
    return { voters: [...this.voters].sort(), learners: [...this.learners].sort() };
  }

  status(): RaftStatus {
    const peers: PeerStatus[] = [];
    if (this.role === 'leader') {
      for (const [id, pr] of this.prs) {
        peers.push({
          id,
          match: pr.match,
          next: pr.next,
          state: pr.state,
          recentActive: pr.recentActive,
          isLearner: pr.isLearner,
          ticksSinceResponse: id === this.id ? 0 : this.ticks - pr.lastResponseTick,
        });
      }
    }
    return {
      id: this.id,
      term: this.term,
      vote: this.vote,
      role: this.role,
      leader: this.lead,
      commit: this.log.committed,
      applied: this.log.applied,
      lastIndex: this.log.lastIndex(),
      firstIndex: this.log.firstIndex(),
      snapshotIndex: this.log.snapshotIndex,
      conf: this.confState(),
      votedBy: this.role === 'leader' ? [...this.votedBy] : [],
      leadTransferee: this.leadTransferee,
      peers,
      quorumActive: this.role === 'leader' ? this.quorumRecentlyHeard() : false,
      uncommittedEntries: this.log.lastIndex() - this.log.committed,
      uncommittedBytes: this.role === 'leader' ? this.uncommittedBytes : 0,
    };
  }

  isVoter(id: NodeId = this.id): boolean {
    return this.voters.has(id);
  }

  // ---- roles -----------------------------------------------------------------------------

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = null;
    }
    this.lead = null;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout = this.prng.int(this.cfg.electionTicksMin, this.cfg.electionTicksMax);
    this.votes.clear();
    this.leadTransferee = null;
    this.transferElapsed = 0;
    this.readOnly.clear();
    this.deferredReads = [];
    this.readAcks = [];
    this.uncommittedBytes = 0;
    this.removedTicksLeft = null;
    this.resetProgress();
  }

  private resetProgress(): void {
    this.prs.clear();
    const next = this.log.lastIndex() + 1;
    for (const id of this.voters) this.prs.set(id, new Progress(next, this.cfg.maxInflightMsgs, false));
    for (const id of this.learners) this.prs.set(id, new Progress(next, this.cfg.maxInflightMsgs, true));
    // Response age counts from now: a new leader has not yet had a chance to hear anyone.
    for (const pr of this.prs.values()) pr.lastResponseTick = this.ticks;
    const self = this.prs.get(this.id);
    if (self) self.match = this.log.stableIndex;
  }

  private becomeFollower(term: number, lead: NodeId | null): void {
    this.reset(term);
    this.role = 'follower';
    this.lead = lead;
  }

  private becomeLeader(): void {
    this.reset(this.term);
    this.role = 'leader';
    this.lead = this.id;
    this.votedBy = [];
    for (const [id, granted] of this.votesOfWin) if (granted) this.votedBy.push(id);
    this.votedBy.sort();
    for (const pr of this.prs.values()) pr.recentActive = true;
    // Conf changes wait until the no-op below commits (see proposeConfChange).
    this.pendingConfIndex = this.log.lastIndex();
    this.log.append([{ index: this.log.lastIndex() + 1, term: this.term, type: 'noop', data: '' }]);
    // Entries inherited uncommitted from earlier terms count too (etcd starts from 0).
    this.uncommittedBytes = dataBytes(this.log.slice(this.log.committed + 1, this.log.lastIndex() + 1));
    this.bcastAppend();
  }

  private votesOfWin: Map<NodeId, boolean> = new Map();

  private hup(transfer: boolean): void {
    if (this.role === 'leader') return;
    if (!this.promotable()) return;
    // An unapplied committed conf change could make our view of the voters stale.
    for (const e of this.log.nextCommitted()) {
      if (e.type === 'conf') return;
    }
    if (this.cfg.preVote && !transfer) this.campaignPre();
    else this.campaignReal(transfer);
  }

  private promotable(): boolean {
    // Without a known base membership our view of the voters is not to be trusted.
    return this.voters.has(this.id) && this.log.pendingSnapshot === null && this.baseKnown;
  }

  private campaignPre(): void {
    const term = this.term;
    this.reset(term);
    this.role = 'preCandidate';
    this.requestVotes('MsgPreVote', this.term + 1, false);
  }

  private campaignReal(transfer: boolean): void {
    this.reset(this.term + 1);
    this.role = 'candidate';
    this.vote = this.id;
    this.requestVotes('MsgVote', this.term, transfer);
  }

  private requestVotes(type: 'MsgVote' | 'MsgPreVote', term: number, transfer: boolean): void {
    this.votes.set(this.id, true);
    if (this.tally() !== 'pending') return;
    for (const id of [...this.voters].sort()) {
      if (id === this.id) continue;
      this.send({
        type,
        to: id,
        term,
        logTerm: this.log.lastTerm(),
        index: this.log.lastIndex(),
        // What this member knows committed (see learnCommitFromCandidate).
        commit: this.log.committed,
        logTermHint: this.log.term(this.log.committed) ?? 0,
        context: transfer ? CAMPAIGN_TRANSFER : '',
      });
    }
  }

  /** Act on the votes gathered so far. */
  private tally(): 'won' | 'lost' | 'pending' {
    const res = voteResult([...this.voters], this.votes);
    if (res === 'won') {
      if (this.role === 'preCandidate') this.campaignReal(false);
      else {
        this.votesOfWin = new Map(this.votes);
        this.becomeLeader();
      }
    } else if (res === 'lost') {
      this.becomeFollower(this.term, null);
    }
    return res;
  }

  /**
   * A candidate's commit index is true (it heard it from a leader). Where this member's entry
   * at that index has the same term, its log up to there is the committed prefix (log
   * matching), so it may commit that far. A member that holds a membership change making it a
   * voter, but never heard it committed (the notice was lost with its leader), learns it here:
   * without it, it would neither campaign nor, having the longest log, let the others win.
   */
  private learnCommitFromCandidate(m: Message): void {
    const c = m.commit;
    if (c <= this.log.committed || c > this.log.lastIndex() || m.logTermHint <= 0) return;
    if (this.log.term(c) === m.logTermHint) this.log.commitTo(c);
  }

  private handleVoteRequest(m: Message): void {
    this.learnCommitFromCandidate(m);
    const pre = m.type === 'MsgPreVote';
    const canVote = this.vote === m.from || (this.vote === null && this.lead === null) || (pre && m.term > this.term);
    const respType: MessageType = pre ? 'MsgPreVoteResp' : 'MsgVoteResp';
    if (canVote && this.log.isUpToDate(m.index, m.logTerm)) {
      // A pre-vote grant answers in the campaign's future term so the candidate counts it.
      this.send({ type: respType, to: m.from, term: m.term, reject: false });
      if (!pre) {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send({ type: respType, to: m.from, term: this.term, reject: true });
    }
  }

  // ---- per-role message handling ---------------------------------------------------------

  private stepLeader(m: Message): void {
    const pr = this.prs.get(m.from);
    switch (m.type) {
      case 'MsgAppResp':
        if (pr) this.handleAppendResponse(m, pr);
        return;
      case 'MsgHeartbeatResp':
        if (!pr) return;
        pr.recentActive = true;
        pr.lastResponseTick = this.ticks;
        pr.probeSent = false;
        if (pr.state === 'replicate' && pr.inflight.length >= pr.maxInflight) pr.inflight.shift();
        if (pr.match < this.log.lastIndex()) this.sendAppend(m.from, pr);
        if (m.context !== '' && m.context !== HEARTBEAT_NO_ANSWER) {
          // Bounded for drivers that never take them (the simulator): keep the newest.
          if (this.readAcks.length >= MAX_READ_ACKS) this.readAcks.shift();
          this.readAcks.push({ context: m.context, from: m.from });
          this.handleReadAck(m.context, m.from);
        }
        return;
      case 'MsgReadIndex':
        this.handleReadIndex(m.context, m.from);
        return;
      case 'MsgTransferLeader':
        this.handleTransfer(m.context);
        return;
      default:
        return;
    }
  }

  private handleAppendResponse(m: Message, pr: Progress): void {
    pr.recentActive = true;
    pr.lastResponseTick = this.ticks;
    if (m.reject && m.context === NEED_SNAPSHOT) {
      if (pr.state === 'snapshot') return;
      if (this.log.snapshot !== null && this.log.snapshotIndex > 0) {
        pr.next = pr.match + 1;
        this.sendSnapshot(m.from, pr);
      } else {
        // Nothing to send yet: have the host snapshot, and retry at the next heartbeat.
        this.snapshotWanted = true;
        pr.becomeProbe();
        pr.probeSent = true;
      }
      return;
    }
    if (m.reject) {
      let hint = m.rejectHint;
      if (m.logTermHint > 0) hint = this.log.findConflictByTerm(m.rejectHint, m.logTermHint);
      if (pr.maybeDecrTo(m.index, hint)) {
        if (pr.state === 'replicate') pr.becomeProbe();
        this.sendAppend(m.from, pr);
      }
      return;
    }
    const wasPaused = pr.isPaused();
    if (!pr.maybeUpdate(m.index)) {
      if (wasPaused && !pr.isPaused()) this.sendAppend(m.from, pr);
      return;
    }
    if (pr.state === 'probe') pr.becomeReplicate();
    else if (pr.state === 'snapshot' && pr.match >= pr.pendingSnapshot) {
      pr.becomeProbe();
      this.snapshotDelivered = true;
    }
    else if (pr.state === 'replicate') pr.freeTo(m.index);

    if (this.maybeCommit()) this.bcastAppend();
    // Further entries for this follower go out from flushAppends() with the next ready.
    if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) {
      this.send({ type: 'MsgTimeoutNow', to: m.from });
    }
  }

  private stepCandidate(m: Message): void {
    const respType: MessageType = this.role === 'preCandidate' ? 'MsgPreVoteResp' : 'MsgVoteResp';
    switch (m.type) {
      case 'MsgApp':
      case 'MsgHeartbeat':
      case 'MsgSnap':
        // A leader exists for this term: stand down and take its traffic.
        this.becomeFollower(m.term, m.from);
        this.stepFollower(m);
        return;
      default:
        if (m.type === respType) {
          this.votes.set(m.from, !m.reject);
          this.tally();
        }
        return;
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case 'MsgApp':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppend(m);
        return;
      case 'MsgHeartbeat':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
        if (m.context !== HEARTBEAT_NO_ANSWER) this.send({ type: 'MsgHeartbeatResp', to: m.from, context: m.context, index: m.index });
        return;
      case 'MsgSnap':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return;
      case 'MsgTransferLeader':
        if (this.lead !== null) this.send({ type: 'MsgTransferLeader', to: this.lead, term: 0, context: m.context });
        return;
      case 'MsgTimeoutNow':
        this.hup(true);
        return;
      case 'MsgReadIndexResp':
        this.readStates.push({ index: m.index, context: m.context });
        return;
      default:
        return;
    }
  }

  private handleAppend(m: Message): void {
    if (!this.baseKnown) {
      // Our log is empty and we lack the membership it starts from: ask for a snapshot.
      this.send({ type: 'MsgAppResp', to: m.from, index: m.index, reject: true, context: NEED_SNAPSHOT });
      return;
    }
    if (m.index < this.log.committed) {
      this.send({ type: 'MsgAppResp', to: m.from, index: this.log.committed });
      return;
    }
    const lastNew = this.log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew !== null) {
      // Accepted: a commit notice needs no answer (a rejected one gets one, below).
      if (m.context === COMMIT_NOTICE && m.entries.length === 0) return;
      this.send({ type: 'MsgAppResp', to: m.from, index: lastNew });
      return;
    }
    const hintIndex = this.log.findConflictByTerm(Math.min(m.index, this.log.lastIndex()), m.logTerm);
    this.send({
      type: 'MsgAppResp',
      to: m.from,
      index: m.index,
      reject: true,
      rejectHint: hintIndex,
      logTermHint: this.log.term(hintIndex) ?? 0,
    });
  }

  private handleSnapshot(m: Message): void {
    const s = m.snapshot;
    if (!s) return;
    const { index, term } = s.metadata;
    if (index <= this.log.committed) {
      this.send({ type: 'MsgAppResp', to: m.from, index: this.log.committed });
      return;
    }
    if (this.log.matchTerm(index, term)) {
      // We already hold the snapshot's last entry: just fast-forward the commit. Answer with
      // the commit index, not our last index: entries after the snapshot's may be a stale
      // suffix from an old term, and claiming them would let the leader count us toward
      // committing entries we do not hold (etcd answers with committed too).
      this.log.commitTo(index);
      this.send({ type: 'MsgAppResp', to: m.from, index: this.log.committed });
      return;
    }
    this.log.restore(s);
    this.baseKnown = true;
    this.log.stableIndex = index;
    this.send({ type: 'MsgAppResp', to: m.from, index: this.log.lastIndex() });
  }

  // ---- leader duties ---------------------------------------------------------------------

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.hup(false);
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    for (const [id, pr] of this.prs) {
      if (pr.state === 'snapshot' && ++pr.snapshotElapsed >= this.cfg.electionTicksMin) {
        // The snapshot (or its answer) was lost: probe again, which resends it.
        pr.becomeProbe();
        this.sendAppend(id, pr);
      }
    }
    if (this.leadTransferee !== null && ++this.transferElapsed >= this.cfg.transferTimeoutTicks) {
      this.leadTransferee = null;
      this.transferElapsed = 0;
    }
    if (this.removedTicksLeft !== null && --this.removedTicksLeft <= 0) {
      this.becomeFollower(this.term, null);
      return;
    }
    if (this.electionElapsed >= this.cfg.electionTicksMin) {
      this.electionElapsed = 0;
      if (this.cfg.checkQuorum) {
        if (!this.quorumRecentlyHeard()) {
          this.becomeFollower(this.term, null);
          return;
        }
        for (const [id, pr] of this.prs) if (id !== this.id) pr.recentActive = false;
      }
    }
    if (this.heartbeatElapsed >= this.cfg.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.bcastHeartbeat(this.readOnly.lastContext());
    }
  }

  private quorumRecentlyHeard(): boolean {
    let active = 0;
    for (const id of this.voters) if (id === this.id || this.prs.get(id)?.recentActive) active++;
    return active >= majority(this.voters.size);
  }

  private checkCanPropose(count: number, bytes = 0): void {
    if (this.role !== 'leader' || this.removedTicksLeft !== null) {
      throw new ProposalError('not_leader', `${this.id} is not the leader${this.removedTicksLeft !== null ? ' (removed from the configuration, stepping down)' : ''}`, this.role === 'leader' ? null : this.lead);
    }
    if (this.leadTransferee !== null) {
      throw new ProposalError('transfer_in_progress', `leadership is being transferred to ${this.leadTransferee}; retry shortly`, this.lead);
    }
    const uncommitted = this.log.lastIndex() - this.log.committed;
    if (uncommitted + count > this.cfg.maxUncommittedEntries) {
      throw new ProposalError(
        'backlog_full',
        `backlog full: ${uncommitted} uncommitted entries, max_log_entries is ${this.cfg.maxUncommittedEntries}; retry when replication catches up`,
        this.lead,
      );
    }
    if (this.uncommittedBytes > 0 && this.uncommittedBytes + bytes > this.cfg.maxUncommittedBytes) {
      throw new ProposalError(
        'backlog_full',
        `backlog full: ${this.uncommittedBytes} bytes uncommitted, this proposal adds ${bytes}, the bound is ${this.cfg.maxUncommittedBytes} bytes; retry when replication catches up`,
        this.lead,
      );
    }
  }

  private proposeEntries(ents: Array<Pick<Entry, 'type' | 'data'>>): { index: number; term: number } {
    const bytes = dataBytes(ents);
    this.checkCanPropose(ents.length, bytes);
    this.uncommittedBytes += bytes;
    let index = this.log.lastIndex();
    const full: Entry[] = ents.map((e) => ({ index: ++index, term: this.term, type: e.type, data: e.data }));
    this.log.append(full);
    // Replication is sent from flushAppends() when the host collects the ready, so that
    // proposals made in one turn share one message per follower (batching).
    return { index, term: this.term };
  }

  private maybeCommit(): boolean {
    const voters = [...this.voters];
    const mci = committedIndex(voters, (id) => this.prs.get(id)?.match ?? 0);
    // Figure 8: only an entry of the current term is committed by counting replicas.
    if (mci > this.log.committed && this.log.term(mci) === this.term) {
      const firstInTerm = this.log.term(this.log.committed) !== this.term;
      const bytes = dataBytes(this.log.slice(this.log.committed + 1, mci + 1));
      this.uncommittedBytes = Math.max(0, this.uncommittedBytes - bytes);
      this.commitBytesPending += bytes;
      this.log.commitTo(mci);
      if (firstInTerm) this.releaseDeferredReads();
      return true;
    }
    return false;
  }

  /**
   * Send every follower what it lacks, pipelined up to its in-flight bound; followers that
   * got nothing new still get an empty append when the commit index moved.
   */
  private flushAppends(): void {
    const commitMoved = this.commitBcastPending;
    this.commitBcastPending = false;
    this.noticeLight = this.commitBytesPending <= NOTICE_MAX_COMMITTED_BYTES;
    this.commitBytesPending = 0;
    for (const [id, pr] of this.prs) {
      if (id === this.id) continue;
      let sent = false;
      while (pr.next <= this.log.lastIndex() && !pr.isPaused()) {
        if (!this.sendAppend(id, pr, false)) break;
        sent = true;
      }
      if (!sent && commitMoved && !pr.isPaused()) this.sendAppend(id, pr, true);
    }
  }

  /** Commit moved or a term began: everyone hears about it at the next flush. */
  private bcastAppend(): void {
    this.commitBcastPending = true;
  }

  private commitBcastPending = false;
  /** Entry bytes committed since the last flushAppends, and whether they were few (see sendAppend). */
  private commitBytesPending = 0;
  private noticeLight = true;
  /** A leader removed by a committed change: ticks of heartbeats left before it steps down. */
  private removedTicksLeft: number | null = null;

  /** Send entries (or a snapshot) to one follower. Returns whether anything was sent. */
  private sendAppend(to: NodeId, pr: Progress, sendIfEmpty = true): boolean {
    if (pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    if (prevTerm === undefined) return this.sendSnapshot(to, pr);
    const entries =
      pr.next <= this.log.lastIndex()
        ? this.log.slice(pr.next, this.log.lastIndex() + 1, this.cfg.maxEntriesPerMsg, this.cfg.maxBytesPerMsg)
        : [];
    if (entries.length === 0 && !sendIfEmpty) return false;
    // Nothing in flight and no entries: the answer would tell nothing new (see COMMIT_NOTICE).
    // A probing leader waits for its answer, so only a replicating one marks it. After a
    // large commit the answer is kept: it comes once the follower has applied it, while its
    // heartbeat answers wait behind that apply (without it, 1 MiB writes on a loaded machine
    // cost leaders their check-quorum: test/service/large-values.test.ts).
    const notice = entries.length === 0 && pr.state === 'replicate' && pr.match === prevIndex && this.noticeLight;
    this.send({
      type: 'MsgApp',
      to,
      index: prevIndex,
      logTerm: prevTerm,
      entries,
      commit: this.log.committed,
      context: notice ? COMMIT_NOTICE : '',
    });
    const last = entries[entries.length - 1];
    pr.sentEntries(last ? last.index : prevIndex, entries.length);
    return entries.length > 0;
  }

  private sendSnapshot(to: NodeId, pr: Progress): boolean {
    const snap = this.log.snapshot;
    if (!snap) {
      // Compacted by a checkpoint, which holds no snapshot: have the host make one, and
      // probe again at the next heartbeat (as for NEED_SNAPSHOT).
      this.snapshotWanted = true;
      pr.becomeProbe();
      pr.probeSent = true;
      return false;
    }
    this.send({ type: 'MsgSnap', to, snapshot: snap });
    pr.becomeSnapshot(snap.metadata.index);
    return false;
  }

  private bcastHeartbeat(context: string): void {
    const seq = ++this.heartbeatSeq;
    // Answers may be skipped only while two intervals stay well inside the quorum check's
    // window (and the health views' "heard within an election timeout"), and no transfer
    // waits for a follower to catch up.
    const mayQuiet = context === '' && this.leadTransferee === null && this.cfg.heartbeatTicks * 3 <= this.cfg.electionTicksMin;
    const last = this.log.lastIndex();
    for (const [id, pr] of this.prs) {
      if (id === this.id) continue;
      const quiet = mayQuiet && pr.state === 'replicate' && pr.match === last && pr.inflight.length === 0 && this.ticks - pr.lastResponseTick <= this.cfg.heartbeatTicks;
      // Never tell a follower to commit beyond what it is known to hold.
      this.send({ type: 'MsgHeartbeat', to: id, commit: Math.min(pr.match, this.log.committed), context: quiet ? HEARTBEAT_NO_ANSWER : context, index: seq });
    }
  }

  private handleTransfer(to: NodeId): void {
    const pr = this.prs.get(to);
    if (!pr || pr.isLearner || to === this.id) return;
    if (this.leadTransferee === to) return;
    this.leadTransferee = to;
    this.transferElapsed = 0;
    // Reset the election clock so check-quorum does not fire mid-transfer.
    this.electionElapsed = 0;
    if (pr.match === this.log.lastIndex()) this.send({ type: 'MsgTimeoutNow', to });
    else this.sendAppend(to, pr);
  }

  private handleReadIndex(context: string, from: NodeId): void {
    if (this.log.term(this.log.committed) !== this.term) {
      // Until an entry of this term commits, our commit index may be behind the true one.
      this.deferredReads.push({ context, from });
      return;
    }
    if (this.voters.size === 1 && this.voters.has(this.id)) {
      this.releaseRead(context, this.log.committed, from);
      return;
    }
    this.readOnly.add(context, this.log.committed, from, this.id);
    this.bcastHeartbeat(context);
  }

  private handleReadAck(context: string, from: NodeId): void {
    for (const req of this.readOnly.ack(context, from, [...this.voters])) {
      this.releaseRead(req.context, req.index, req.from);
    }
  }

  private releaseRead(context: string, index: number, from: NodeId): void {
    if (from === this.id) this.readStates.push({ index, context });
    else this.send({ type: 'MsgReadIndexResp', to: from, index, context });
  }

  private releaseDeferredReads(): void {
    const reads = this.deferredReads;
    this.deferredReads = [];
    for (const r of reads) this.handleReadIndex(r.context, r.from);
  }

  // ---- membership ------------------------------------------------------------------------

  private setConf(conf: ConfState): void {
    this.voters = new Set(conf.voters);
    this.learners = new Set(conf.learners);
    if (this.role === 'leader') this.syncProgress();
  }

  /** Add progress for new members, drop removed ones, keep the rest. */
  private syncProgress(): void {
    const next = this.log.lastIndex() + 1;
    for (const id of [...this.voters, ...this.learners]) {
      const pr = this.prs.get(id);
      if (!pr) {
        const fresh = new Progress(next, this.cfg.maxInflightMsgs, this.learners.has(id));
        fresh.recentActive = true;
        fresh.lastResponseTick = this.ticks;
        this.prs.set(id, fresh);
      } else {
        pr.isLearner = this.learners.has(id);
      }
    }
    for (const id of [...this.prs.keys()]) {
      if (!this.voters.has(id) && !this.learners.has(id)) this.prs.delete(id);
    }
  }

  private applyConfChange(cc: ConfChange): void {
    const voters = new Set(this.voters);
    const learners = new Set(this.learners);
    if (cc.type === 'addVoter') {
      learners.delete(cc.node);
      voters.add(cc.node);
    } else if (cc.type === 'addLearner') {
      if (!voters.has(cc.node)) learners.add(cc.node);
    } else {
      voters.delete(cc.node);
      learners.delete(cc.node);
    }
    this.setConf({ voters: [...voters], learners: [...learners] });
    if (this.role === 'leader') {
      if (!this.voters.has(this.id)) {
        // A removed leader steps down once its removal is committed (dissertation 4.2.2), but
        // only after one election timeout of heartbeats: they carry the new commit index.
        // Members use the applied configuration, and one that never learns the removal
        // committed keeps counting the removed member in its quorum: then no election may ever
        // be won (sim seeds 2685, 4458). Meanwhile it takes no new proposal or read.
        if (this.removedTicksLeft === null) {
          this.removedTicksLeft = this.cfg.electionTicksMin;
          this.bcastAppend();
        }
        return;
      }
      if (this.leadTransferee !== null && !this.voters.has(this.leadTransferee)) this.leadTransferee = null;
      // Removing a voter can shrink the quorum enough to commit pending entries.
      if (this.maybeCommit()) this.bcastAppend();
    }
  }

  // ---- plumbing --------------------------------------------------------------------------

  private send(partial: Partial<Message> & { type: MessageType; to: NodeId }): void {
    // newMessage({ from, term, ...partial }) built in one object (same fields, same order):
    // heartbeats and their answers are most of an idle process's messages.
    const m: Message = {
      logTerm: 0,
      index: 0,
      entries: [],
      commit: 0,
      reject: false,
      rejectHint: 0,
      logTermHint: 0,
      context: '',
      from: this.id,
      term: this.term,
      type: partial.type,
      to: partial.to,
    };
    this.msgs.push(Object.assign(m, partial));
  }
}

/** Above this many entry bytes in one commit, its notice is answered (see sendAppend). */
const NOTICE_MAX_COMMITTED_BYTES = 64 << 10;

function dataBytes(ents: ReadonlyArray<Pick<Entry, 'data'>>): number {
  let n = 0;
  for (const e of ents) n += Buffer.byteLength(e.data, 'utf8');
  return n;
}

function validateConfig(c: Required<RaftConfig>): void {
  const bad = (field: string, value: unknown, accepted: string): never => {
    throw new Error(`invalid raft config: ${field}=${String(value)}; accepted: ${accepted}`);
  };
  if (!c.id) bad('id', c.id, 'a non-empty node id');
  if (!(c.heartbeatTicks >= 1)) bad('heartbeatTicks', c.heartbeatTicks, '>= 1');
  if (!(c.electionTicksMin > c.heartbeatTicks)) bad('electionTicksMin', c.electionTicksMin, `> heartbeatTicks (${c.heartbeatTicks})`);
  if (!(c.electionTicksMax > c.electionTicksMin)) bad('electionTicksMax', c.electionTicksMax, `> electionTicksMin (${c.electionTicksMin})`);
  if (!(c.maxEntriesPerMsg >= 1)) bad('maxEntriesPerMsg', c.maxEntriesPerMsg, '>= 1');
  if (!(c.maxInflightMsgs >= 1)) bad('maxInflightMsgs', c.maxInflightMsgs, '>= 1');
  if (!(c.maxUncommittedEntries >= 1)) bad('maxUncommittedEntries', c.maxUncommittedEntries, '>= 1');
  if (!(c.maxUncommittedBytes >= 1)) bad('maxUncommittedBytes', c.maxUncommittedBytes, '>= 1');
}

function validateConfChange(cc: ConfChange, voters: Set<NodeId>, learners: Set<NodeId>): void {
  const fail = (msg: string): never => {
    throw new ProposalError('invalid', msg);
  };
  if (!cc.node) fail('conf change needs a node id');
  if (cc.type === 'addLearner' && (voters.has(cc.node) || learners.has(cc.node))) fail(`${cc.node} is already a member`);
  if (cc.type === 'addVoter' && voters.has(cc.node)) fail(`${cc.node} is already a voter`);
  if (cc.type === 'removeNode') {
    if (!voters.has(cc.node) && !learners.has(cc.node)) fail(`${cc.node} is not a member`);
    if (voters.has(cc.node) && voters.size === 1) fail(`cannot remove ${cc.node}: it is the last voter`);
  }
}
