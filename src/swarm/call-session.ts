import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * The client session of a tool call forwarded by a cluster client: its proposals are made
 * under the client's (id, seq), not this member's, so a call retried on another leader after
 * a lost answer is answered from the replicated session table instead of applied again.
 */
export interface CallSession {
  /** Null: the client has not registered a session yet; it does when a call first writes. */
  client: string | null;
  seq: number;
  /** Every seq below this is finished for the client (raises the session floor). */
  ack: number;
  /** Proposals made so far in this call: the i-th gets sub-sequence i. */
  next: number;
  /** Set when the call's first proposal was refused for an unknown or expired session. */
  expired?: boolean;
  /** Set when the call tried to propose without a session (client null): nothing was proposed. */
  needsSession?: boolean;
}

/** Proposals one tool call may make under its session (seq * SUB_SEQS + i). */
export const SUB_SEQS = 16;

export const callSession = new AsyncLocalStorage<CallSession>();
