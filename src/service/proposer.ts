import type { LocalCluster } from '../host/local-cluster.js';
import { RequestTimeoutError } from '../host/node-host.js';
import type { OpResult } from '../machine/coordination-machine.js';
import type { Op } from '../machine/types.js';
import { ProposalError } from '../raft/types.js';
import { UserError } from './errors.js';

const RETRY_PAUSE_MS = 10;

/**
 * A client session against the cluster: finds the leader, retries on leader change with the
 * same (client, seq), so a retried command is never applied twice (dissertation 6.3).
 */
export class Proposer {
  private seq = 0;
  private outstanding = new Set<number>();

  constructor(
    private readonly cluster: LocalCluster,
    readonly clientId: string,
    /** Throws a UserError when no request can succeed (e.g. a swarm with no agents). */
    private readonly precheck: () => void = () => undefined,
  ) {}

  async propose(op: Op, timeoutMs = 10_000): Promise<OpResult> {
    this.precheck();
    const seq = ++this.seq;
    this.outstanding.add(seq);
    try {
      return await this.proposeSeq(op, seq, timeoutMs);
    } finally {
      this.outstanding.delete(seq);
    }
  }

  private async proposeSeq(op: Op, seq: number, timeoutMs: number): Promise<OpResult> {
    const deadline = performance.now() + timeoutMs;
    let lastError = 'no leader elected';
    for (;;) {
      const remaining = deadline - performance.now();
      if (remaining <= 0) {
        throw new UserError('unavailable', `no quorum committed the request within ${timeoutMs} ms (${lastError}); check consensus_verify_quorum`);
      }
      const leader = this.cluster.leader();
      if (!leader) {
        await pause(RETRY_PAUSE_MS);
        continue;
      }
      // Seqs are added in increasing order and a Set iterates in insertion order: the first
      // outstanding one is the smallest (O(1), unlike Math.min over all of them).
      const ack = this.outstanding.values().next().value as number;
      const data = JSON.stringify({ op, now: Date.now(), client: this.clientId, seq, ack });
      try {
        const r = await leader.propose(data, Math.min(remaining, 2_000));
        return r.result as OpResult;
      } catch (e) {
        if (e instanceof ProposalError) {
          if (e.code === 'backlog_full') throw new UserError('backlog_full', e.message);
          if (e.code === 'invalid') throw new UserError('invalid_argument', e.message);
          lastError = e.message;
        } else if (e instanceof RequestTimeoutError) {
          lastError = e.message;
        } else {
          throw e;
        }
        await pause(RETRY_PAUSE_MS);
      }
    }
  }

  /** Linearizable read: a ReadIndex round on the leader, then read its applied state. */
  async read<T>(fn: (leaderId: string) => T, timeoutMs = 5_000): Promise<T> {
    this.precheck();
    const deadline = performance.now() + timeoutMs;
    let lastError = 'no leader elected';
    for (;;) {
      const remaining = deadline - performance.now();
      if (remaining <= 0) throw new UserError('unavailable', `linearizable read not confirmed by a quorum within ${timeoutMs} ms (${lastError})`);
      const leader = this.cluster.leader();
      if (!leader) {
        await pause(RETRY_PAUSE_MS);
        continue;
      }
      try {
        await leader.readIndex(Math.min(remaining, 2_000));
        return fn(leader.id);
      } catch (e) {
        if (!(e instanceof ProposalError) && !(e instanceof RequestTimeoutError)) throw e;
        lastError = (e as Error).message;
        await pause(RETRY_PAUSE_MS);
      }
    }
  }
}

export function pause(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
