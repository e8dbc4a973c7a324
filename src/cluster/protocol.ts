// Requests a client (CLI, MCP proxy, bench, peer member) sends on a member's port, as the
// body of an authenticated CLIENT_REQ frame. Validated on arrival: a malformed request gets
// an error answer naming what was wrong; it never reaches the service layer.

import { z } from 'zod';

const session = z.object({
  client: z.string().min(1).max(200),
  seq: z.number().int().positive(),
  ack: z.number().int().nonnegative(),
});

const holdMs = z.number().int().nonnegative().max(60_000).optional();
/**
 * Leader addresses (HOST:PORT) the caller could not reach: a member whose leader is one of
 * them holds the request (up to hold_ms) for the next leader instead of redirecting there.
 */
const unreachable = z.array(z.string().min(1).max(300)).max(64).optional();

const request = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('status') }),
  z.object({
    kind: z.literal('tool'),
    name: z.string().min(1).max(200),
    arguments: z.record(z.string(), z.unknown()).default({}),
    session: session.optional(),
    /** No session yet: run the call, but refuse it (session_required) at its first proposal. */
    session_on_write: z.boolean().optional(),
    /** How long the caller lets a member wait for an election in progress (ms). */
    hold_ms: holdMs,
    unreachable,
    /** The caller wants the tool's progress (sent as progress entries before the answer). */
    progress: z.boolean().optional(),
  }),
  /** Register a client session (a log entry); tool calls then carry its id. */
  z.object({ kind: z.literal('session'), timeout_ms: z.number().int().positive().max(86_400_000).optional(), hold_ms: holdMs, unreachable }),
  z.object({ kind: z.literal('tools/list') }),
  z.object({ kind: z.literal('resources/list') }),
  z.object({ kind: z.literal('resources/templates/list') }),
  z.object({ kind: z.literal('resources/read'), uri: z.string().min(1).max(2000), hold_ms: holdMs, unreachable }),
  z.object({ kind: z.literal('propose'), data: z.string().min(1), hold_ms: holdMs }),
  z.object({
    kind: z.literal('admin'),
    /** removed: a leader tells a member it removed (members only; see MemberCluster.applyBook). */
    op: z.enum(['block', 'unblock', 'log', 'removed']),
    peers: z.array(z.string().min(1).max(64)).max(64).default([]),
    from: z.number().int().nonnegative().optional(),
    to: z.number().int().nonnegative().optional(),
  }),
]);

export type ToolSession = z.infer<typeof session>;
export type ClientRequest = z.infer<typeof request>;

/** One member's own view, answered by any member (clients use it to find the leader). */
export interface MemberStatus {
  id: string;
  swarm: string;
  role: string;
  term: number | null;
  leader: string | null;
  leader_address: string | null;
  commit: number | null;
  applied: number | null;
  last_index: number | null;
  first_index: number | null;
  /** Peers this member drops Raft traffic with (fault injection). */
  blocked: string[];
  /** This member's TCP links, measured here. */
  links: Record<string, {
    connected: boolean; messages_out: number; messages_in: number; dropped: number; queued: number; reconnects: number;
    /** Snapshot state bytes sent to / accepted from this peer as SNAP_PART frames, and transfers
     * to it continued past byte 0 on a new connection (after a dropped one). */
    snapshot_bytes_out: number; snapshot_bytes_in: number; snapshot_resumes: number;
  }>;
  /**
   * This member's snapshots since its process started: taken (checkpoints included), installed
   * from a leader, and the last install (index, parts, size in UTF-16 characters, restore time,
   * parts checked and parsed as they arrived rather than at the end). Null while it does not run.
   */
  snapshots?: { taken: number; installed: number; last_install: { index: number; parts: number; chars: number; restore_ms: number; parts_checked_on_arrival: number } | null } | null;
  /** Connections refused for authentication and closed for protocol errors, since start. */
  auth_failures: number;
  protocol_errors: number;
  /** Event-loop delay of this process since start (ms): a stalled loop delays heartbeats. */
  event_loop_delay_ms: { p50: number; p99: number; max: number };
  /**
   * The cluster's Raft timing (consensus_config) as this member applied it, ms; null before it
   * applied any. Clients take a leader silent for election_timeout_min as suspect (see
   * ClusterClient), as its followers do.
   */
  raft_timing?: { election_timeout_min_ms: number; election_timeout_max_ms: number; heartbeat_interval_ms: number } | null;
  /** The replicated address book as this member applied it (null before it applied any). */
  membership?: {
    cluster_id: string | null;
    members: Record<string, { address: string; state: 'active' | 'removed'; incarnation: string | null }>;
  } | null;
  /**
   * The voters this member's log starts from (--peers at its first start), and whether it
   * runs or still waits for evidence that the cluster never formed (membership.ts).
   */
  bootstrap?: { state: 'waiting' | 'running'; voters: string[] };
}

export function parseClientRequest(raw: unknown): ClientRequest {
  const r = request.safeParse(raw);
  if (r.success) return r.data;
  const why = r.error.issues.map((i) => `${i.path.join('.') || 'request'}: ${i.message}`).join('; ');
  throw Object.assign(new Error(`malformed request (${why})`), { code: 'invalid_argument' });
}
