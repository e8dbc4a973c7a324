import type { NodeId } from '../raft/types.js';

/** What one ReadIndex round from the leader measured (NodeHost.probeQuorum). */
export interface QuorumProbeResult {
  leader: NodeId;
  term: number;
  /** The voters when the round started. */
  voters: NodeId[];
  /**
   * Voters that answered within the timeout -> round trip in ms of the heartbeat each
   * answered, on the leader's clock (the leader itself: 0).
   */
  answered: Map<NodeId, number>;
  /** The core released the round's read: a majority of voters acknowledged this leader. */
  quorumConfirmed: boolean;
  /** ms from the start until the core released the round; null when it did not. */
  confirmMs: number | null;
  timeoutMs: number;
  elapsedMs: number;
}
