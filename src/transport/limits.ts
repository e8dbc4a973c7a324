// Tunables and counters shared by the TCP transport pieces.

import { MAX_FRAME_BYTES } from './frame.js';

export interface TcpLimits {
  /** Largest authenticated frame accepted or produced. */
  maxFrameBytes: number;
  /** A message whose JSON exceeds this many characters travels as SNAP_CHUNK frames of this
   * many bytes. Together with batchChars it keeps every frame far below maxFrameBytes
   * (UTF-8 needs at most 3 bytes per UTF-16 unit). */
  chunkBytes: number;
  /** A MSG batch frame holds at most this many JSON characters (at least one message). */
  batchChars: number;
  /** Per-peer send queue bound; the oldest messages are dropped beyond it. */
  maxQueueMessages: number;
  maxQueueChars: number;
  /** Largest message accepted (reassembled from chunks) or sent; snapshots excepted. */
  maxMessageBytes: number;
  /** Largest snapshot (UTF-8 bytes of its state data) sent or accepted as SNAP_PART frames. A
   * receiver holds at most one partial snapshot of at most this size per peer. 8 GiB: a
   * state in parts may pass 1 GiB (issue 12), and must still reach a lagging member. */
  maxSnapshotBytes: number;
  /** Snapshot parts sent but not yet acknowledged, at most (each chunkBytes characters of state, so at most 3 * chunkBytes bytes). */
  snapshotWindowChunks: number;
  /** A partial snapshot whose sender went quiet is kept this long for it to resume, then freed. */
  snapshotResumeMs: number;
  /** Stop handing frames to a socket whose unsent buffer exceeds this (slow peer). */
  highWaterBytes: number;
  handshakeTimeoutMs: number;
  pingIntervalMs: number;
  deadAfterMs: number;
  backoffMinMs: number;
  backoffMaxMs: number;
  /** Connections still in the handshake; more are refused at once (cheap DoS bound). */
  maxPendingHandshakes: number;
  /** The same, per source address: one host cannot take every handshake slot. */
  maxPendingHandshakesPerSource: number;
  /** Pre-authentication warnings of one kind are logged at most once per this window. */
  logWindowMs: number;
  /** Client requests in flight per client connection. */
  maxClientInflight: number;
}

export const DEFAULT_LIMITS: TcpLimits = {
  maxFrameBytes: MAX_FRAME_BYTES,
  chunkBytes: 1 << 20,
  batchChars: 1 << 20,
  maxQueueMessages: 4096,
  maxQueueChars: 64 << 20,
  maxMessageBytes: 256 << 20,
  maxSnapshotBytes: 8 * 2 ** 30,
  snapshotWindowChunks: 4,
  snapshotResumeMs: 60_000,
  highWaterBytes: 2 << 20,
  handshakeTimeoutMs: 2000,
  pingIntervalMs: 1000,
  deadAfterMs: 10_000,
  backoffMinMs: 100,
  backoffMaxMs: 5000,
  maxPendingHandshakes: 64,
  maxPendingHandshakesPerSource: 8,
  logWindowMs: 10_000,
  maxClientInflight: 1024,
};

export function resolveLimits(patch: Partial<TcpLimits> | undefined): TcpLimits {
  const l = { ...DEFAULT_LIMITS, ...patch };
  if (l.chunkBytes * 3 + 64 > l.maxFrameBytes || l.batchChars * 3 + 64 > l.maxFrameBytes) {
    throw new Error('TcpLimits: chunkBytes and batchChars must stay below maxFrameBytes / 3');
  }
  if (!(Number.isSafeInteger(l.snapshotWindowChunks) && l.snapshotWindowChunks >= 1)) throw new Error('TcpLimits: snapshotWindowChunks must be an integer >= 1');
  return l;
}

/** Exponential backoff with jitter in [d/2, d]: reconnecting peers don't move in lockstep. */
export function backoffMs(attempt: number, l: Pick<TcpLimits, 'backoffMinMs' | 'backoffMaxMs'>): number {
  const d = Math.min(l.backoffMaxMs, l.backoffMinMs * 2 ** Math.min(attempt, 30));
  return d / 2 + Math.random() * (d / 2);
}

export interface PeerStats {
  messagesIn: number;
  messagesOut: number;
  bytesIn: number;
  bytesOut: number;
  /** Messages discarded by a full send queue (or superseded large messages). */
  dropped: number;
  /** Outbound connections re-established after the first. */
  reconnects: number;
  /** Handshakes with this peer that failed authentication, either direction. */
  authFailures: number;
  /** Messages sent / received as SNAP_CHUNK sequences, or snapshots as SNAP_PART streams. */
  chunkedOut: number;
  chunkedIn: number;
  /** Snapshot state bytes sent in SNAP_PART frames, and accepted from them. */
  snapshotBytesOut: number;
  snapshotBytesIn: number;
  /** Snapshot transfers continued from a byte past 0 (after a dropped connection). */
  snapshotResumes: number;
  /** Outbound connection authenticated right now. */
  connected: boolean;
  /** Messages waiting in the send queue. */
  queued: number;
  /** Bytes written to the connection that this process still buffers (the kernel has not taken them). */
  buffered?: number;
}

export const zeroStats = (): PeerStats => ({
  messagesIn: 0,
  messagesOut: 0,
  bytesIn: 0,
  bytesOut: 0,
  dropped: 0,
  reconnects: 0,
  authFailures: 0,
  chunkedOut: 0,
  chunkedIn: 0,
  snapshotBytesOut: 0,
  snapshotBytesIn: 0,
  snapshotResumes: 0,
  connected: false,
  queued: 0,
});
