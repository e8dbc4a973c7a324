import type { ClusterBackend, Committed } from '../host/cluster-backend.js';
import { RequestTimeoutError } from '../host/node-host.js';
import type { OpResult } from '../machine/coordination-machine.js';
import type { Op } from '../machine/types.js';
import { ProposalError } from '../raft/types.js';
import { callSession, SUB_SEQS, type CallSession } from './call-session.js';
import { UserError } from './errors.js';

const RETRY_PAUSE_MS = 10;

export interface ProposeOptions {
  /** Scheduler, worker and marker proposals: never made under a forwarded call's session. */
  background?: boolean;
}

/**
 * A client session against the cluster: finds the leader, retries on leader change with the
 * same (client, seq), so a retried command is never applied twice (dissertation 6.3).
 * In cluster mode, a proposal from a follower is forwarded to the leader's process.
 */
export class Proposer {
  private seq = 0;
  private outstanding = new Set<number>();

  constructor(
    private readonly cluster: ClusterBackend,
    readonly clientId: string,
    /** Throws a UserError when no request can succeed (e.g. a swarm with no agents). */
    private readonly precheck: () => void = () => undefined,
  ) {}

  async propose(op: Op, timeoutMs = 10_000, opts: ProposeOptions = {}): Promise<OpResult> {
    this.precheck();
    const s = opts.background ? undefined : callSession.getStore();
    if (s && s.next < SUB_SEQS) return this.proposeInSession(op, s, timeoutMs);
    const seq = ++this.seq;
    this.outstanding.add(seq);
    try {
      // Seqs are added in increasing order and a Set iterates in insertion order: the first
      // outstanding one is the smallest (O(1), unlike Math.min over all of them).
      const ack = () => this.outstanding.values().next().value as number;
      return await this.proposeSeq(op, this.clientId, seq, ack, timeoutMs);
    } finally {
      this.outstanding.delete(seq);
    }
  }

  /**
   * A forwarded call runs on the member its client believes leads. If this member cannot
   * commit it here, the client must learn at once and retry elsewhere with the same seq.
   */
  private async proposeInSession(op: Op, s: CallSession, timeoutMs: number): Promise<OpResult> {
    const seq = s.seq * SUB_SEQS + s.next++;
    const leader = this.cluster.leader();
    if (!leader) throw notLeader(this.cluster);
    const data = JSON.stringify({ op, now: Date.now(), client: s.client, seq, ack: s.ack * SUB_SEQS });
    try {
      return (await leader.propose(data, Math.min(timeoutMs, 5_000))).result as OpResult;
    } catch (e) {
      const refused = refusal(e);
      if (refused) throw refused;
      if (e instanceof ProposalError || e instanceof RequestTimeoutError) throw notLeader(this.cluster, e.message);
      throw e;
    }
  }

  private async proposeSeq(op: Op, client: string, seq: number, ack: () => number, timeoutMs: number): Promise<OpResult> {
    const deadline = performance.now() + timeoutMs;
    let lastError = 'no leader elected';
    for (;;) {
      const remaining = deadline - performance.now();
      if (remaining <= 0) {
        throw new UserError('unavailable', `no quorum committed the request within ${timeoutMs} ms (${lastError}); check consensus_verify_quorum`);
      }
      const data = (): string => JSON.stringify({ op, now: Date.now(), client, seq, ack: ack() });
      const leader = this.cluster.leader();
      try {
        // propose() refuses synchronously (backlog full, not leader): inside the try.
        let pending: Promise<Committed> | undefined;
        if (leader) pending = leader.propose(data(), Math.min(remaining, 2_000));
        else pending = this.cluster.forwardProposal?.(data(), Math.min(remaining, 2_000));
        if (!pending) {
          await pause(RETRY_PAUSE_MS);
          continue;
        }
        return (await pending).result as OpResult;
      } catch (e) {
        const refused = refusal(e);
        if (refused) throw refused;
        if (!(e instanceof ProposalError) && !(e instanceof RequestTimeoutError) && !leaderless(e)) throw e;
        lastError = (e as Error).message;
        await pause(RETRY_PAUSE_MS);
      }
    }
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
 * A refusal of the request itself (backlog full, invalid), raised locally or by the leader a
 * proposal was forwarded to: retrying elsewhere cannot help, so the caller sees it.
 */
function refusal(e: unknown): UserError | null {
  const code = (e as { code?: unknown } | null)?.code;
  if (code === 'backlog_full') return new UserError('backlog_full', (e as Error).message);
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
