import type { ConfState, NodeId } from '../raft/types.js';
import type { NodeHost, RoleChange } from './node-host.js';

/** Messages counted on one directed link, as seen by whoever can see it. */
export interface LinkCounters {
  /** Sent by `from`; null when only the receiving end is observable. */
  messagesOut: number | null;
  /** Delivered to `to`; null when only the sending end is observable. */
  messagesIn: number | null;
  /** Dropped on the observable end (fault injection or a full queue). */
  dropped: number;
}

/** Fault injection and link views, whatever carries the messages. */
export interface FaultControl {
  /** False when injected faults cut the link (not a liveness check). */
  connected(from: NodeId, to: NodeId): boolean;
  /** Null when this process cannot observe the link (another process's member). */
  linkStats(from: NodeId, to: NodeId): LinkCounters | null;
  isolate(id: NodeId): void | Promise<void>;
  partition(groups: NodeId[][]): void | Promise<void>;
  heal(): void | Promise<void>;
  clearFaults(): void | Promise<void>;
}

/** The result of a proposal a member committed on our behalf. */
export interface Committed {
  index: number;
  result: unknown;
}

/**
 * The members a Swarm drives: all of them in this process (embedded), or the one member this
 * process runs while its peers run elsewhere (cluster mode over TCP).
 */
export interface ClusterBackend {
  readonly mode: 'embedded' | 'tcp';
  /** Members running (or crashed) in this process. */
  readonly hosts: ReadonlyMap<NodeId, NodeHost>;
  readonly network: FaultControl;
  /** Whether this process can start that member. */
  canRun(id: NodeId): boolean;
  start(id: NodeId, conf: ConfState): NodeHost;
  crash(id: NodeId): void;
  /** The member left the group for good: stop it and forget its storage and machine. */
  remove(id: NodeId): void;
  host(id: NodeId): NodeHost;
  /** A member in this process that leads. */
  leader(): NodeHost | undefined;
  running(): NodeHost[];
  onRoleChange(fn: (c: RoleChange) => void): () => void;
  /**
   * Cluster mode: hand a proposal to the leader in another process. Undefined when no remote
   * leader is known; rejects when the outcome is unknown (the caller retries, same client/seq).
   */
  forwardProposal?(data: string, timeoutMs: number): Promise<Committed> | undefined;
  close(): void;
}
