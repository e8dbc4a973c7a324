/**
 * The leader's view of one follower's replication (cf. etcd tracker/progress.go).
 * probe: one append in flight until the follower answers, to find the match point.
 * replicate: optimistic pipelining, bounded by maxInflight messages.
 * snapshot: a snapshot is on its way; appends wait for it.
 */
export type ProgressState = 'probe' | 'replicate' | 'snapshot';

export class Progress {
  match = 0;
  next: number;
  state: ProgressState = 'probe';
  /** probe: an append is outstanding. */
  probeSent = false;
  /** replicate: last index of each in-flight append, oldest first. */
  inflight: number[] = [];
  pendingSnapshot = 0;
  /** Ticks since the snapshot was sent, so a lost snapshot is retried. */
  snapshotElapsed = 0;
  /** Heard from this peer since the last check-quorum round. */
  recentActive = false;
  /** Leader clock reading (ticks) of the last response, for replication lag. */
  lastResponseTick = 0;

  constructor(
    next: number,
    readonly maxInflight: number,
    public isLearner: boolean,
  ) {
    this.next = next;
  }

  becomeProbe(): void {
    // After a snapshot the follower has at least the snapshot's index.
    if (this.state === 'snapshot') {
      this.next = Math.max(this.match + 1, this.pendingSnapshot + 1);
    } else {
      this.next = this.match + 1;
    }
    this.state = 'probe';
    this.probeSent = false;
    this.inflight = [];
    this.pendingSnapshot = 0;
  }

  becomeReplicate(): void {
    this.state = 'replicate';
    this.next = this.match + 1;
    this.probeSent = false;
    this.inflight = [];
    this.pendingSnapshot = 0;
  }

  becomeSnapshot(index: number): void {
    this.state = 'snapshot';
    this.pendingSnapshot = index;
    this.snapshotElapsed = 0;
    this.probeSent = false;
    this.inflight = [];
  }

  /** The follower acknowledged up to n. Returns false for a stale acknowledgement. */
  maybeUpdate(n: number): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, n + 1);
    return updated;
  }

  /** Record an append sent with last index `last`. */
  sentEntries(last: number, count: number): void {
    if (this.state === 'replicate') {
      if (count > 0) {
        this.next = last + 1;
        this.inflight.push(last);
      }
    } else if (this.state === 'probe') {
      this.probeSent = true;
    }
  }

  /** Free in-flight slots acknowledged up to `index`. */
  freeTo(index: number): void {
    let i = 0;
    while (i < this.inflight.length && (this.inflight[i] as number) <= index) i++;
    if (i > 0) this.inflight.splice(0, i);
  }

  /**
   * The follower rejected an append at `rejected`; `probeHint` is where to try next.
   * Returns false when the rejection is stale (an answer to an older message).
   */
  maybeDecrTo(rejected: number, probeHint: number): boolean {
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    // A refusal at or below match is stale, or from a follower that lost entries it had
    // acknowledged (a wiped disk): the probe would go out unchanged and be refused again, a
    // ping-pong at link speed that each duplicated copy doubles. Stay paused; the next
    // heartbeat response probes again.
    if (rejected <= this.match) return false;
    this.next = Math.max(Math.min(rejected, probeHint + 1), this.match + 1, 1);
    this.probeSent = false;
    return true;
  }

  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflight.length >= this.maxInflight;
      case 'snapshot':
        return true;
    }
  }
}
