import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * The client session of a tool call forwarded by a cluster client: its proposals are made
 * under the client's (id, seq), not this member's, so a call retried on another leader after
 * a lost answer is answered from the replicated session table instead of applied again.
 */
export interface CallSession {
  client: string;
  seq: number;
  /** Every seq below this is finished for the client (raises the session floor). */
  ack: number;
  /** Proposals made so far in this call: the i-th gets sub-sequence i. */
  next: number;
}

/** Proposals one tool call may make under its session (seq * SUB_SEQS + i). */
export const SUB_SEQS = 16;

export const callSession = new AsyncLocalStorage<CallSession>();
