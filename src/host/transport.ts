import type { Message, NodeId } from '../raft/types.js';

/** Message-based link layer between members. Serializable messages only (JSON). */
export interface Transport {
  /** Best effort: a message may be lost, delayed, duplicated or reordered. */
  send(msg: Message): void;
  /**
   * Register the handler for messages addressed to this endpoint. arrivedAt (clock ms) is
   * passed for a message read after it arrived: a heartbeat the in-process network held
   * (holdIdleHeartbeats); the host counts its election clock from then.
   */
  onMessage(handler: (msg: Message, arrivedAt?: number) => void): void;
  /**
   * Optional: hand the handler, now, the messages that already arrived but wait for a later
   * turn of the event loop. NodeHost calls it before it counts elapsed time toward a timeout.
   */
  drainInbound?(): void;
  close(): void;
  /**
   * Optional: write at once what this task sent that is waiting for its batch. NodeHost calls
   * it before it blocks its loop on an inline fsync (inlineLightSyncs), which would otherwise
   * hold those messages (a leader's appends among them) until the disk is done.
   */
  flush?(): void;
  /**
   * Optional: this member stopped leading; snapshot transfers it has under way are stale (the
   * new leader sends its own): stop them rather than stream a whole state nobody installs.
   */
  abandonSnapshots?(): void;
  /**
   * Optional: each part of a multi-part snapshot from a peer as it completes, before the
   * whole arrived and its hash was checked (`part`), and each such transfer given up (`drop`,
   * also right after a whole one was delivered): the host checks and stages parts as they
   * arrive. Cluster mode's TcpTransport is fed to the host by MemberCluster instead.
   */
  onArrivingSnapshot?(handlers: ArrivingSnapshotHandlers): void;
}

export interface ArrivingSnapshotHandlers {
  part(parts: readonly string[], i: number): void;
  drop(parts: readonly string[]): void;
}

/** Per-link message counters, measured at the endpoint. */
export interface LinkStats {
  messagesIn: number;
  messagesOut: number;
  bytesIn: number;
  bytesOut: number;
}

export type { NodeId };
