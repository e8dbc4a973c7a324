import type { ClusterBackend, Committed } from '../host/cluster-backend.js';
import { RequestTimeoutError } from '../host/node-host.js';
import type { OpResult } from '../machine/coordination-machine.js';
import type { Op } from '../machine/types.js';
import { ProposalError } from '../raft/types.js';
import { callSession, SUB_SEQS, type CallSession } from './call-session.js';
import { UserError } from '../util/errors.js';

const RETRY_PAUSE_MS = 10;
/**
 * How long a write refused for lack of disk space keeps being retried, for another member to
 * take over the leadership (several election timeouts), before the refusal is the answer.
 */
const DISK_FAILOVER_MS = 2_000;

export interface ProposeOptions {
  /** Scheduler, worker and marker proposals: never made under a forwarded call's session. */
  background?: boolean;
}

/** A registered session (dissertation 6.3): its id from the machine, its own seq counter. */
interface SessionState {
  id: string;
  seq: number;
  /** Seqs not answered yet; the smallest is the ack (everything below it is finished). */
  outstanding: Set<number>;
}

/** The machine's answer, and whether an earlier attempt of it may be in the log. */
interface Attempted {
  result: OpResult;
  /** An attempt was appended to some leader's log without an answer: it may apply. */
  uncertain: boolean;
}

/**
 * A client session against the cluster: registers its session with the replicated machine
 * before first use, finds the leader, retries on leader change with the same (client, seq),
 * so a retried command is never applied twice (dissertation 6.3). A session the machine no
 * longer knows (idle past its timeout, or evicted) is registered again; a command whose
 * outcome is then unknown is not re-sent blindly but reported as session_expired.
 * In cluster mode, a proposal from a follower is forwarded to the leader's process.
 */
export class Proposer {
  private session: SessionState | null = null;
  private registering: Promise<SessionState> | null = null;
  /** Sessions this proposer registered (the first included). */
  sessionsRegistered = 0;

  constructor(
    private readonly cluster: ClusterBackend,
    /** A label for logs; the session id itself comes from the machine. */
    readonly clientId: string,
    /** Throws a UserError when no request can succeed (e.g. a swarm with no agents). */
    private readonly precheck: () => void = () => undefined,
    /** Idle timeout to ask for (the machine clamps it); the machine's default when null. */
    private readonly sessionTimeoutMs: number | null = null,
  ) {}

  /** The current session id, if one is registered. */
  get sessionId(): string | null {
    return this.session?.id ?? null;
  }

  async propose(op: Op, timeoutMs = 10_000, opts: ProposeOptions = {}): Promise<OpResult> {
    this.precheck();
    const s = opts.background ? undefined : callSession.getStore();
    if (s && s.next < SUB_SEQS) return this.proposeInSession(op, s, timeoutMs);
    const deadline = performance.now() + timeoutMs;
    /** An earlier attempt, under a session since expired, may have applied (see below). */
    let maybeApplied: { session: string; seq: number } | null = null;
    for (;;) {
      const session = await this.currentSession(deadline);
      const seq = ++session.seq;
      session.outstanding.add(seq);
      let out: Attempted;
      try {
        // Seqs are added in increasing order and a Set iterates in insertion order: the first
        // outstanding one is the smallest (O(1), unlike Math.min over all of them).
        const ack = () => session.outstanding.values().next().value as number;
        out = await this.proposeSeq(op, session.id, seq, ack, deadline, timeoutMs);
      } finally {
        session.outstanding.delete(seq);
      }
      const r = out.result;
      // A conditional write re-sent after an attempt that may have applied: refused by version,
      // or a delete that found no key, says nothing (that attempt may be what moved the version
      // on or deleted the key), and answering it would tell the caller an applied write was
      // not: its outcome is unknown. Applied by the re-send, it is the answer (the first did not).
      if (maybeApplied && conditional(op) && (r.ok ? (r.value as { deleted?: unknown } | undefined)?.deleted === false : r.code !== 'session_expired')) {
        throw sessionExpired(maybeApplied.session, op, maybeApplied.seq);
      }
      if (r.ok || r.code !== 'session_expired') return r;
      if (this.session === session) this.session = null;
      if (out.uncertain && !retrySafe(op)) throw sessionExpired(session.id, op, seq);
      if (out.uncertain) maybeApplied = { session: session.id, seq };
      // Refused without effect (or harmless to apply again): a new session, a new seq.
    }
  }

  /**
   * Register a session with the machine (a log entry) and return its id. A registration
   * retried after a lost answer may leave an unused session behind; it expires.
   */
  async registerSession(timeoutMs = 10_000, sessionTimeoutMs = this.sessionTimeoutMs): Promise<{ session: string; timeout_ms: number }> {
    const deadline = performance.now() + timeoutMs;
    const op: Op = { t: 'session.register', timeout_ms: sessionTimeoutMs };
    const { result } = await this.proposeSeq(op, undefined, undefined, () => undefined, deadline, timeoutMs);
    if (!result.ok) throw new UserError('unavailable', `the cluster refused to register a session: ${result.code}: ${result.message}`);
    return result.value as { session: string; timeout_ms: number };
  }

  private currentSession(deadline: number): Promise<SessionState> {
    if (this.session) return Promise.resolve(this.session);
    // Concurrent first proposals share one registration.
    this.registering ??= this.registerSession(Math.max(1, deadline - performance.now()))
      .then((v) => {
        this.sessionsRegistered++;
        this.session = { id: v.session, seq: 0, outstanding: new Set() };
        return this.session;
      })
      .finally(() => {
        this.registering = null;
      });
    return this.registering;
  }

  /**
   * A forwarded call runs on the member its client believes leads. If this member cannot
   * commit it here, the client must learn at once and retry elsewhere with the same seq.
   */
  private async proposeInSession(op: Op, s: CallSession, timeoutMs: number): Promise<OpResult> {
    if (s.client === null) {
      // A read-mostly client registers a session only once a call of its writes: this one.
      s.needsSession = true;
      throw new UserError('session_expired', 'this call writes and its client has no session yet; the client registers one and sends the call again', 'session');
    }
    const sub = s.next++;
    const seq = s.seq * SUB_SEQS + sub;
    const leader = this.cluster.leader();
    if (!leader) throw notLeader(this.cluster);
    const data = JSON.stringify({ op, now: Date.now(), client: s.client, seq, ack: s.ack * SUB_SEQS });
    let r: OpResult;
    try {
      r = (await leader.propose(data, Math.min(timeoutMs, 5_000))).result as OpResult;
    } catch (e) {
      const refused = refusal(e);
      if (refused) throw refused;
      if (e instanceof ProposalError || e instanceof RequestTimeoutError) throw notLeader(this.cluster, e.message);
      throw e;
    }
    if (!r.ok && r.code === 'session_expired') {
      // The call's first proposal refused: this attempt changed nothing, and the client (who
      // knows whether an earlier attempt may have) decides whether to register and re-send.
      if (sub === 0) s.expired = true;
      throw new UserError(
        'session_expired',
        sub === 0
          ? `client session ${s.client} is unknown or expired; this call was not applied on this attempt (the client registers a new session)`
          : `client session ${s.client} expired during this call: its first ${sub} step(s) were applied, the rest was not; check the call's effect before retrying`,
        'session',
      );
    }
    return r;
  }

  private async proposeSeq(op: Op, client: string | undefined, seq: number | undefined, ack: () => number | undefined, deadline: number, timeoutMs: number): Promise<Attempted> {
    let lastError = 'no leader elected';
    let uncertain = false;
    let diskRefusedAt: number | null = null;
    // Refused for lack of disk space: said once no member took over within DISK_FAILOVER_MS
    // (a leader short of space hands its leadership on), with the note that an earlier
    // attempt may still commit when one was made.
    // A refusal of a re-send says nothing of an earlier attempt that was sent: it may commit.
    const refusedNow = (code: UserError['code'], message: string): UserError =>
      new UserError(code, uncertain ? `${message} (an earlier attempt of this request was sent and may still commit: its outcome is unknown; check its effect before retrying)` : message);
    const diskRefusal = (message: string): UserError | null => {
      const now = performance.now();
      diskRefusedAt ??= now;
      if (now - diskRefusedAt < DISK_FAILOVER_MS && deadline - now > RETRY_PAUSE_MS * 5) return null;
      return refusedNow('disk_full', message);
    };
    for (;;) {
      const remaining = deadline - performance.now();
      if (remaining <= 0) {
        // Members of this process short of space are the likely reason: say so.
        const fault = this.diskFault();
        if (fault) throw diskRefusal(fault)!;
        throw new UserError('unavailable', `no quorum committed the request within ${timeoutMs} ms (${lastError}); check consensus_verify_quorum`);
      }
      const data = (): string => JSON.stringify({ op, now: Date.now(), client, seq, ack: ack() });
      const leader = this.cluster.leader();
      let pending: Promise<Committed> | undefined;
      try {
        // propose() refuses synchronously (backlog full, not leader): inside the try, and
        // such a refusal put nothing in the log.
        if (leader) pending = leader.propose(data(), Math.min(remaining, 2_000));
        else pending = this.cluster.forwardProposal?.(data(), Math.min(remaining, 2_000));
        if (!pending) {
          // No leader because this process's members cannot write: say so, do not wait it out.
          const fault = this.diskFault();
          const refused = fault ? diskRefusal(fault) : null;
          if (refused) throw refused;
          await pause(RETRY_PAUSE_MS);
          continue;
        }
        return { result: (await pending).result as OpResult, uncertain };
      } catch (e) {
        const refused = refusal(e);
        if (refused?.code === 'disk_full') {
          const final = diskRefusal(refused.message);
          if (final) throw final;
          await pause(RETRY_PAUSE_MS * 5);
          continue;
        }
        if (refused) throw refusedNow(refused.code, refused.message);
        if (!(e instanceof ProposalError) && !(e instanceof RequestTimeoutError) && !leaderless(e)) throw e;
        // Appended (or forwarded) but unanswered: it may still commit and apply.
        if (pending) uncertain = true;
        lastError = (e as Error).message;
        await pause(RETRY_PAUSE_MS);
      }
    }
  }

  /** A running member of this process that cannot write for lack of disk space, if any. */
  private diskFault(): string | null {
    for (const h of this.cluster.hosts.values()) {
      const f = h.isRunning ? h.diskFault : null;
      if (f) return f;
    }
    return null;
  }

  /** Linearizable read: a ReadIndex round on the leader, then read its applied state. */
  async read<T>(fn: (leaderId: string) => T, timeoutMs = 5_000): Promise<T> {
    this.precheck();
    const inSession = callSession.getStore() !== undefined;
    const deadline = performance.now() + timeoutMs;
    let lastError = 'no leader elected';
    for (;;) {
      const remaining = deadline - performance.now();
      if (remaining <= 0) throw new UserError('unavailable', `linearizable read not confirmed by a quorum within ${timeoutMs} ms (${lastError})`);
      const leader = this.cluster.leader();
      if (!leader) {
        if (inSession || this.cluster.mode === 'tcp') throw notLeader(this.cluster);
        await pause(RETRY_PAUSE_MS);
        continue;
      }
      try {
        await leader.readIndex(Math.min(remaining, 2_000));
        return fn(leader.id);
      } catch (e) {
        if (!(e instanceof ProposalError) && !(e instanceof RequestTimeoutError)) throw e;
        if (inSession) throw notLeader(this.cluster, (e as Error).message);
        lastError = (e as Error).message;
        await pause(RETRY_PAUSE_MS);
      }
    }
  }
}

/**
 * Ops that may be applied a second time without a second effect: re-sent under a new session
 * even when an earlier attempt may have applied. A compare-and-set (if_version) applied twice
 * is refused the second time (version_mismatch), never applied twice; that refusal is then no
 * answer (the outcome is unknown, see propose), but a first attempt that did not apply is
 * applied by the re-send.
 */
function retrySafe(op: Op): boolean {
  switch (op.t) {
    case 'clock':
    case 'election':
    case 'election.timing':
    case 'session.register':
    case 'member.seed':
    case 'member.bind':
      return true;
    case 'mem.put':
    case 'mem.del':
      return op.if_version !== null && op.if_version !== undefined;
    default:
      return false;
  }
}

/** A write that applies only if the key's version matches (re-sent safely, refused once applied). */
function conditional(op: Op): boolean {
  return (op.t === 'mem.put' || op.t === 'mem.del') && op.if_version !== null && op.if_version !== undefined;
}

function sessionExpired(session: string, op: Op, seq: number): UserError {
  return new UserError(
    'session_expired',
    `session=${session} expired (idle past its timeout, or evicted) while the ${op.t} request (seq ${seq}) was unanswered: ` +
      'it may or may not have been applied, so it was not sent again (that could apply it twice). ' +
      'Check its effect (memory_retrieve the key, task_status for the orchestration; orchestrate with an idempotency_key is safe to repeat) and retry if it is missing; the next request registers a new session',
    'session',
  );
}

/**
 * A refusal of the request itself (backlog full, invalid), raised locally or by the leader a
 * proposal was forwarded to: retrying elsewhere cannot help, so the caller sees it.
 */
function refusal(e: unknown): UserError | null {
  const code = (e as { code?: unknown } | null)?.code;
  if (code === 'backlog_full') return new UserError('backlog_full', (e as Error).message);
  if (code === 'disk_full') return new UserError('disk_full', (e as Error).message);
  if (code === 'invalid') return new UserError('invalid_argument', (e as Error).message);
  return null;
}

/** Errors of a forwarded proposal that mean "try again", not "this request is bad". */
function leaderless(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  const name = (e as { name?: unknown } | null)?.name;
  return code === 'not_leader' || code === 'unavailable' || name === 'ConnectionError';
}

function notLeader(cluster: ClusterBackend, why?: string): UserError {
  const here = [...cluster.hosts.values()].map((h) => h.id).join(', ');
  return new UserError('not_leader', `${here || 'this member'} does not lead${why ? ` (${why})` : ''}; retry on the current leader`);
}

export function pause(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
