import type { Entry, Snapshot } from './types.js';

/**
 * The node's log in memory: entries after the latest snapshot, plus the indexes that say
 * how far they are durable (stable), committed and applied. Storage holds the durable copy;
 * keeping the suffix here lets the core stay free of I/O.
 */
export class RaftLog {
  snapshotIndex = 0;
  snapshotTerm = 0;
  /** entries[i].index === snapshotIndex + 1 + i */
  entries: Entry[] = [];
  /** Highest index known durable in storage. */
  stableIndex = 0;
  committed = 0;
  applied = 0;
  /** Latest snapshot, kept so the leader can send it to a follower behind the log. */
  snapshot: Snapshot | null = null;
  /** A snapshot received from the leader that the host must still persist and install. */
  pendingSnapshot: Snapshot | null = null;

  firstIndex(): number {
    return this.snapshotIndex + 1;
  }

  lastIndex(): number {
    return this.snapshotIndex + this.entries.length;
  }

  lastTerm(): number {
    const n = this.entries.length;
    return n > 0 ? (this.entries[n - 1] as Entry).term : this.snapshotTerm;
  }

  /** Term of entry i, or undefined when i was compacted away or does not exist yet. */
  term(i: number): number | undefined {
    if (i === this.snapshotIndex) return this.snapshotTerm;
    if (i < this.snapshotIndex || i > this.lastIndex()) return undefined;
    return (this.entries[i - this.snapshotIndex - 1] as Entry).term;
  }

  entry(i: number): Entry | undefined {
    if (i <= this.snapshotIndex) return undefined;
    return this.entries[i - this.snapshotIndex - 1];
  }

  matchTerm(i: number, t: number): boolean {
    return this.term(i) === t;
  }

  /** Election restriction (section 5.4.1): compare last term, then last index. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /** Entries in [lo, hi), bounded by count and approximate encoded bytes (at least one). */
  slice(lo: number, hi: number, maxCount = Infinity, maxBytes = Infinity): Entry[] {
    if (lo <= this.snapshotIndex) throw new Error(`slice(${lo}) below first index ${this.firstIndex()}`);
    const end = Math.min(hi, this.lastIndex() + 1, lo + maxCount);
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i < end; i++) {
      const e = this.entries[i - this.snapshotIndex - 1] as Entry;
      bytes += e.data.length + 32;
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  /** Leader append of new entries at the end. */
  append(ents: Entry[]): void {
    for (const e of ents) {
      if (e.index !== this.lastIndex() + 1) throw new Error(`append: index ${e.index} after ${this.lastIndex()}`);
      this.entries.push(e);
    }
  }

  /**
   * Follower side of AppendEntries: if the entry at prevIndex has prevTerm, drop any
   * conflicting suffix, append what is new and advance commit. Returns the index of the
   * last entry the leader sent (now matched), or null when the consistency check fails.
   */
  maybeAppend(prevIndex: number, prevTerm: number, leaderCommit: number, ents: Entry[]): number | null {
    if (!this.matchTerm(prevIndex, prevTerm)) return null;
    const lastNew = prevIndex + ents.length;
    const conflict = this.findConflict(ents);
    if (conflict !== 0) {
      if (conflict <= this.committed) {
        throw new Error(`entry ${conflict} conflicts with committed entry (committed ${this.committed})`);
      }
      this.truncateAndAppend(ents.slice(conflict - (prevIndex + 1)));
    }
    this.commitTo(Math.min(leaderCommit, lastNew));
    return lastNew;
  }

  /** First index whose term differs from ours, or the first new index, or 0 if none. */
  private findConflict(ents: Entry[]): number {
    for (const e of ents) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  private truncateAndAppend(ents: Entry[]): void {
    const first = ents[0];
    if (!first) return;
    const keep = first.index - this.snapshotIndex - 1;
    if (keep < 0) throw new Error(`truncate below snapshot: ${first.index} <= ${this.snapshotIndex}`);
    this.entries.length = Math.min(this.entries.length, keep);
    this.stableIndex = Math.min(this.stableIndex, first.index - 1);
    this.append(ents);
  }

  /**
   * Largest index <= index whose term is <= term. Used for the rejection hint: every entry
   * after it is known to conflict, so the leader can skip them in one round trip.
   */
  findConflictByTerm(index: number, term: number): number {
    let i = Math.min(index, this.lastIndex());
    while (i > this.snapshotIndex) {
      const t = this.term(i) as number;
      if (t <= term) break;
      i--;
    }
    return i;
  }

  commitTo(index: number): void {
    if (index <= this.committed) return;
    if (index > this.lastIndex()) throw new Error(`commitTo(${index}) beyond last index ${this.lastIndex()}`);
    this.committed = index;
  }

  unstableEntries(): Entry[] {
    if (this.stableIndex >= this.lastIndex()) return [];
    return this.entries.slice(Math.max(0, this.stableIndex - this.snapshotIndex));
  }

  stableTo(index: number, term: number): void {
    if (this.term(index) === term && index > this.stableIndex) this.stableIndex = index;
  }

  /** Committed entries not yet handed to the application. */
  nextCommitted(maxCount = Infinity, maxBytes = Infinity): Entry[] {
    if (this.committed <= this.applied) return [];
    const lo = Math.max(this.applied + 1, this.firstIndex());
    return this.slice(lo, this.committed + 1, maxCount, maxBytes);
  }

  appliedTo(index: number): void {
    if (index > this.committed) throw new Error(`appliedTo(${index}) beyond commit ${this.committed}`);
    if (index > this.applied) this.applied = index;
  }

  /** Install a snapshot from the leader: the whole local log is replaced. */
  restore(s: Snapshot): void {
    this.snapshotIndex = s.metadata.index;
    this.snapshotTerm = s.metadata.term;
    this.entries = [];
    this.committed = s.metadata.index;
    this.snapshot = s;
    this.pendingSnapshot = s;
  }

  /**
   * Local compaction after the application saved its state at `s.metadata.index`; `held`:
   * s carries that state (it can be sent), else none is held from here (a checkpoint's).
   * At the current snapshot index, a held one is taken only when none is held yet.
   */
  compact(s: Snapshot, held = true): void {
    const index = s.metadata.index;
    if (index > this.applied) throw new Error(`compact(${index}) beyond applied ${this.applied}`);
    if (index === this.snapshotIndex && held && this.snapshot === null && s.metadata.term === this.snapshotTerm) {
      this.snapshot = s;
      return;
    }
    if (index <= this.snapshotIndex) return;
    const term = this.term(index);
    if (term !== s.metadata.term) throw new Error(`compact(${index}): term ${s.metadata.term} != log term ${term}`);
    this.entries = this.entries.slice(index - this.snapshotIndex);
    this.snapshotIndex = index;
    this.snapshotTerm = term;
    this.snapshot = held ? s : null;
  }
}
