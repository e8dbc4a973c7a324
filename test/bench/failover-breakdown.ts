// Where one Concord failover's time goes, from the members' failover traces
// (CONCORD_FAILOVER_TRACE=1, see src/util/write-trace.ts): absolute times (time origin +
// performance.now(), ms), so the bench's kill time and the members' events line up.
//
// The steps, from the kill -9 of the leader to the client's first acknowledged write:
//   kill -> first pre-vote sent by any member           detection (an election timeout ran out)
//   first pre-vote -> the winner's last pre-vote        extra_campaigns (refused or split rounds)
//   winner's pre-vote -> its votes sent                 prevote_round (round trip + its own fsync)
//   votes sent -> its first append (it won)             vote_round (voters' fsyncs + round trip)
//   won -> the first entry of its term applied          first_commit (append, fsyncs, ack)
//   applied -> the client's write answered there        client_write (reach the leader + commit)
//   answered -> the client has it                       answer_to_client
// Plus, as context: the age of the followers' last heartbeat at the kill, and when the client's
// write first reached the new leader relative to its first commit.

import type { WriteTraceEvent } from './concord-cluster.js';
import { median, round } from './stats.js';

export const FAILOVER_STEPS = ['detection', 'extra_campaigns', 'prevote_round', 'vote_round', 'first_commit', 'client_write', 'answer_to_client'] as const;
export type FailoverStep = (typeof FAILOVER_STEPS)[number];

export interface FailoverTrace {
  /** ms per step; null when the trace lacked the events. */
  steps: Record<FailoverStep, number | null>;
  /** Kill -> first pre-vote, minus the heartbeat age: from the campaigner's last heartbeat. */
  since_last_heartbeat_ms: number | null;
  /** How old the newest heartbeat any follower had received was at the kill. */
  heartbeat_age_at_kill_ms: number | null;
  /** Pre-vote campaigns started between the kill and the win (1 = no extra round). */
  campaigns: number;
  /** Pre-vote answers that refused (rejected), and pre-votes that got no answer. */
  prevote_rejects: number;
  winner: string | null;
  /** The client's write reached the winner this long after its first commit (negative: before). */
  client_arrival_after_commit_ms: number | null;
  total_ms: number;
}

/**
 * One trial: `killAt` and `ackAt` absolute ms (the bench's clock), `old` the killed leader.
 * Events after `ackAt` + 1 s and before `killAt` - 1 s are ignored.
 */
export function analyzeFailover(killAt: number, ackAt: number, old: string, traces: Map<string, WriteTraceEvent[]>): FailoverTrace {
  const after = (evs: WriteTraceEvent[], t: number, pred: (e: WriteTraceEvent) => boolean): WriteTraceEvent | undefined => evs.find((e) => e.t >= t && pred(e));
  const before = (evs: WriteTraceEvent[], t: number, pred: (e: WriteTraceEvent) => boolean): WriteTraceEvent | undefined => {
    for (let i = evs.length - 1; i >= 0; i--) if ((evs[i] as WriteTraceEvent).t < t && pred(evs[i] as WriteTraceEvent)) return evs[i];
    return undefined;
  };
  const live = new Map([...traces].filter(([id]) => id !== old).map(([id, evs]) => [id, evs.filter((e) => e.t >= killAt - 1_000 && e.t <= ackAt + 1_000).sort((a, b) => a.t - b.t)]));
  const ev = (e: WriteTraceEvent, name: string): boolean => e.ev === name;

  // Newest heartbeat from the old leader at any follower before the kill.
  let lastHb: number | null = null;
  for (const evs of live.values()) {
    const h = before(evs, killAt, (e) => ev(e, 'MsgHeartbeat_recv') && e.peer === old);
    if (h && (lastHb === null || h.t > lastHb)) lastHb = h.t;
  }
  // Pre-votes sent after the kill (one event per peer: a campaign is a burst of them).
  const campaignsAt: Array<{ id: string; t: number }> = [];
  for (const [id, evs] of live) {
    let lastT = -Infinity;
    for (const e of evs) {
      if (e.t < killAt || e.t > ackAt || !ev(e, 'MsgPreVote_send')) continue;
      if (e.t - lastT > 5) campaignsAt.push({ id, t: e.t });
      lastT = e.t;
    }
  }
  campaignsAt.sort((a, b) => a.t - b.t);
  // The winner: the member that sent entries after the kill.
  let winner: string | null = null;
  let wonAt = Infinity;
  for (const [id, evs] of live) {
    const a = after(evs, killAt, (e) => ev(e, 'app_send'));
    if (a && a.t < wonAt) {
      wonAt = a.t;
      winner = id;
    }
  }
  let prevoteRejects = 0;
  for (const evs of live.values()) prevoteRejects += evs.filter((e) => e.t >= killAt && e.t <= wonAt && ev(e, 'MsgPreVoteResp_send') && e.reject === true).length;

  const steps: Record<FailoverStep, number | null> = Object.fromEntries(FAILOVER_STEPS.map((s) => [s, null])) as Record<FailoverStep, number | null>;
  const first = campaignsAt[0];
  let sinceHb: number | null = null;
  let arrival: number | null = null;
  if (first) {
    steps.detection = first.t - killAt;
    const c = live.get(first.id) as WriteTraceEvent[];
    const h = before(c, first.t, (e) => ev(e, 'MsgHeartbeat_recv') && e.peer === old);
    if (h) sinceHb = first.t - h.t;
  }
  if (winner && first) {
    const w = live.get(winner) as WriteTraceEvent[];
    const vote = before(w, wonAt, (e) => ev(e, 'MsgVote_send'));
    const pre = vote ? before(w, vote.t, (e) => ev(e, 'MsgPreVote_send')) : undefined;
    if (pre) steps.extra_campaigns = Math.max(0, pre.t - first.t);
    if (pre && vote) steps.prevote_round = vote.t - pre.t;
    if (vote) steps.vote_round = wonAt - vote.t;
    // The no-op is the first entry the winner sent; its apply ends the first commit.
    const noop = after(w, wonAt, (e) => ev(e, 'app_send'));
    const applied = noop?.idx !== undefined ? after(w, wonAt, (e) => ev(e, 'apply') && (e.idx as number) >= (noop.idx as number)) : undefined;
    if (applied) steps.first_commit = applied.t - wonAt;
    const toolIn = after(w, wonAt, (e) => ev(e, 'tool_in'));
    const toolOut = after(w, applied?.t ?? wonAt, (e) => ev(e, 'tool_out') && e.t <= ackAt);
    if (applied && toolOut) steps.client_write = toolOut.t - applied.t;
    if (toolOut) steps.answer_to_client = ackAt - toolOut.t;
    if (toolIn && applied) arrival = toolIn.t - applied.t;
  }
  return {
    steps: Object.fromEntries(Object.entries(steps).map(([k, v]) => [k, v === null ? null : round(v, 1)])) as Record<FailoverStep, number | null>,
    since_last_heartbeat_ms: sinceHb === null ? null : round(sinceHb, 1),
    heartbeat_age_at_kill_ms: lastHb === null ? null : round(killAt - lastHb, 1),
    campaigns: campaignsAt.filter((c) => c.t <= wonAt).length,
    prevote_rejects: prevoteRejects,
    winner,
    client_arrival_after_commit_ms: arrival === null ? null : round(arrival, 1),
    total_ms: round(ackAt - killAt, 1),
  };
}

/** Medians over trials of each step (null steps left out). */
export function summarizeFailoverTraces(ts: FailoverTrace[]): Record<string, number | null> {
  const med = (xs: Array<number | null>): number | null => {
    const v = xs.filter((x): x is number => x !== null);
    return v.length === 0 ? null : round(median(v), 1);
  };
  return {
    ...Object.fromEntries(FAILOVER_STEPS.map((s) => [s, med(ts.map((t) => t.steps[s]))])),
    since_last_heartbeat: med(ts.map((t) => t.since_last_heartbeat_ms)),
    heartbeat_age_at_kill: med(ts.map((t) => t.heartbeat_age_at_kill_ms)),
    client_arrival_after_commit: med(ts.map((t) => t.client_arrival_after_commit_ms)),
    total: med(ts.map((t) => t.total_ms)),
  };
}
