import type { NodeId } from './types.js';
import { majority } from './quorum.js';

interface ReadRequest {
  context: string;
  /** Commit index when the request arrived: the read waits until applied >= index. */
  index: number;
  /** Who asked: the leader itself, or a follower that forwarded the request. */
  from: NodeId;
  acks: Set<NodeId>;
}

/**
 * ReadIndex requests waiting for a heartbeat round to confirm the leader still leads
 * (dissertation section 6.4). Requests are released in arrival order: a quorum ack for a
 * later request also proves leadership for every earlier one.
 */
export class ReadOnlyQueue {
  private queue: ReadRequest[] = [];

  add(context: string, index: number, from: NodeId, self: NodeId): void {
    if (this.queue.some((r) => r.context === context)) return;
    this.queue.push({ context, index, from, acks: new Set([self]) });
  }

  /** Record an ack; returns the requests now confirmed (possibly none). */
  ack(context: string, from: NodeId, voters: readonly NodeId[]): ReadRequest[] {
    const pos = this.queue.findIndex((r) => r.context === context);
    if (pos < 0) return [];
    const req = this.queue[pos] as ReadRequest;
    req.acks.add(from);
    const votes = voters.filter((v) => req.acks.has(v)).length;
    if (votes < majority(voters.length)) return [];
    return this.queue.splice(0, pos + 1);
  }

  lastContext(): string {
    return this.queue.length > 0 ? (this.queue[this.queue.length - 1] as ReadRequest).context : '';
  }

  size(): number {
    return this.queue.length;
  }

  clear(): void {
    this.queue = [];
  }
}
