// Checks on a Raft message from a peer before the core sees it. The transport already checked
// its shape and that it came from the member it names; these are the invariants the core
// assumes of a correct leader, which a buggy, outdated or hostile member could break. A
// message that breaks one is refused (the caller logs it); it never reaches the core, where
// it could throw halfway through a step or install state no replica can serve from.

import { snapshotChars, type Message, type SnapshotData } from '../raft/types.js';

export interface PeerInputContext {
  /** Optional deeper check of snapshot data by the state machine: a reason, or null if usable. */
  checkSnapshot?: (data: SnapshotData) => string | null;
  /** The core's commit index: a snapshot at or below it is only answered, never restored. */
  committed?: () => number;
}

/** Why `m` must be refused, or null to let the core step it. */
export function refusePeerMessage(m: Message, ctx: PeerInputContext): string | null {
  if (m.type === 'MsgApp') {
    let prev = m.index;
    let prevTerm = m.logTerm;
    if (m.logTerm > m.term) return `MsgApp prev term ${m.logTerm} is after the sender's term ${m.term}`;
    for (const e of m.entries) {
      if (e.index !== prev + 1) return `MsgApp entries not contiguous: index ${e.index} after ${prev}`;
      if (e.term < prevTerm) return `MsgApp entry ${e.index} has term ${e.term} below the previous term ${prevTerm}`;
      if (e.term > m.term) return `MsgApp entry ${e.index} has term ${e.term} after the sender's term ${m.term}`;
      prev = e.index;
      prevTerm = e.term;
    }
    return null;
  }
  if (m.type === 'MsgSnap') {
    const s = m.snapshot;
    if (!s) return 'MsgSnap without a snapshot';
    const { index, term, confState } = s.metadata;
    if (index < 1) return `MsgSnap at index ${index}: a snapshot covers at least one entry`;
    if (term < 1 || term > m.term) return `MsgSnap term ${term} outside 1..${m.term} (the sender's term)`;
    if (confState.voters.length === 0) return 'MsgSnap with no voters in its membership';
    if (snapshotChars(s.data) === 0) return 'MsgSnap with empty state data (installing it would discard this member\'s state)';
    // The core answers it with its commit and drops the data (a leader's resend while this
    // member installs the first copy): parsing a large state again would only stall us.
    if (ctx.committed && index <= ctx.committed()) return null;
    const why = ctx.checkSnapshot?.(s.data) ?? null;
    if (why) return `MsgSnap state data unusable: ${why}`;
    return null;
  }
  return null;
}
