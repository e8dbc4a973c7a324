// The latency breakdown of one Concord write at 1 in flight, from the members' write traces
// (CONCORD_WRITE_TRACE=1, see src/util/write-trace.ts) and the client's own send/receive
// times. Every time is absolute (time origin + performance.now(), ms), so events of different
// processes on one machine line up.
//
// One write's path, and the segment each step is reported as:
//   client sends -> leader's handler             client_to_leader
//   handler -> append sent to followers          leader_propose (tool checks, proposal, ready)
//   leader's own fsync of the entry              leader_fsync (in parallel with replication)
//   append sent -> received by the follower      net_to_follower
//   received -> that follower's fsync starts     follower_wait (an fsync already running)
//   the follower's fsync                         follower_fsync
//   fsync done -> its ack reaches the leader     ack_to_leader
//   quorum reached -> leader applied the entry   commit_to_apply
//   applied -> handler answers                   apply_to_answer
//   handler answers -> answer written to socket  answer_queued (batched once per loop turn)
//   answer written -> client has the answer      answer_to_client
// Parts of the steps above (not added to the total again):
//   append sent -> its frame written at the leader         append_queued (in net_to_follower)
//   fsync done -> the follower's ack frame written          ack_queued (in ack_to_leader)
//   the leader's commit-index-only write before applying    commit_write (in commit_to_apply)
// The follower steps are those of the follower whose ack completed the quorum; the commit
// time is the later of the leader's fsync and that ack.

import type { WriteTraceEvent } from './concord-cluster.js';
import { median, percentile, round } from './stats.js';

export interface ClientWrite {
  /** Absolute ms when the client sent it and when it had the answer. */
  t0: number;
  t1: number;
}

const SEGMENTS = [
  'client_to_leader',
  'leader_propose',
  'leader_fsync',
  'net_to_follower',
  'follower_wait',
  'follower_fsync',
  'ack_to_leader',
  'commit_to_apply',
  'apply_to_answer',
  'answer_queued',
  'answer_to_client',
  'append_queued',
  'ack_queued',
  'commit_write',
] as const;

type Segment = (typeof SEGMENTS)[number];

export interface Breakdown {
  writes_traced: number;
  writes_unmatched: number;
  total_p50_ms: number;
  /** Median of each segment (ms). */
  p50_ms: Record<Segment, number>;
  p90_ms: Record<Segment, number>;
  /** Median of (append sent -> commit): the replication round as the leader saw it. */
  replication_round_p50_ms: number;
  /** How often the quorum waited for the leader's own fsync rather than a follower's ack. */
  commit_waited_for_leader_fsync: number;
}

/** First event at or after `from` matching `pred` (events sorted by time). */
function first(evs: WriteTraceEvent[], from: number, pred: (e: WriteTraceEvent) => boolean): WriteTraceEvent | undefined {
  let lo = 0;
  let hi = evs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((evs[mid] as WriteTraceEvent).t < from) lo = mid + 1;
    else hi = mid;
  }
  for (let i = lo; i < evs.length; i++) if (pred(evs[i] as WriteTraceEvent)) return evs[i];
  return undefined;
}

export function analyzeBreakdown(writes: ClientWrite[], traces: Map<string, WriteTraceEvent[]>, leaderId: string): Breakdown {
  const sorted = new Map([...traces].map(([id, evs]) => [id, [...evs].sort((a, b) => a.t - b.t)]));
  const L = sorted.get(leaderId) ?? [];
  const followers = [...sorted.keys()].filter((id) => id !== leaderId);
  // Followers' acks needed with the leader's own vote: a majority of all members.
  const needAcks = Math.floor((followers.length + 1) / 2);
  const samples = new Map<Segment, number[]>(SEGMENTS.map((s) => [s, []]));
  const totals: number[] = [];
  const rounds: number[] = [];
  let leaderBound = 0;
  let unmatched = 0;
  for (const w of writes) {
    const toolIn = first(L, w.t0, (e) => e.ev === 'tool_in');
    const toolOut = toolIn && first(L, toolIn.t, (e) => e.ev === 'tool_out');
    if (!toolIn || !toolOut || toolOut.t > w.t1) {
      unmatched++;
      continue;
    }
    // The write's entry: the last one the leader appended while handling it.
    let app: WriteTraceEvent | undefined;
    for (const e of L) if (e.t >= toolIn.t && e.t <= toolOut.t && e.ev === 'app_send' && (app === undefined || (e.idx ?? 0) > (app.idx ?? 0))) app = e;
    const idx = app?.idx;
    if (!app || idx === undefined) {
      unmatched++;
      continue;
    }
    const appSent = first(L, toolIn.t, (e) => e.ev === 'app_send' && (e.idx ?? -1) >= idx) as WriteTraceEvent;
    const lfs = first(L, toolIn.t, (e) => e.ev === 'fsync_start' && (e.idx ?? -1) >= idx);
    const lfe = lfs && first(L, lfs.t, (e) => e.ev === 'fsync_end' && e.idx === lfs.idx);
    const applied = first(L, appSent.t, (e) => e.ev === 'apply' && e.idx === idx);
    const perFollower: Array<{ id: string; recv: number; fs: number; fe: number; ackAt: number; ackFlush?: number }> = [];
    for (const f of followers) {
      const F = sorted.get(f) as WriteTraceEvent[];
      const recv = first(F, appSent.t - 5, (e) => e.ev === 'app_recv' && (e.idx ?? -1) >= idx);
      const fs = recv && first(F, recv.t, (e) => e.ev === 'fsync_start' && (e.idx ?? -1) >= idx);
      const fe = fs && first(F, fs.t, (e) => e.ev === 'fsync_end' && e.idx === fs.idx);
      const ack = first(L, appSent.t, (e) => e.ev === 'ack_recv' && e.peer === f && (e.idx ?? -1) >= idx);
      // Members without the flush event (older builds): the queued parts are left out.
      const ackFlush = fe && first(F, fe.t, (e) => e.ev === 'flush' && e.peer === leaderId);
      if (recv && fs && fe && ack) perFollower.push({ id: f, recv: recv.t, fs: fs.t, fe: fe.t, ackAt: ack.t, ackFlush: ackFlush && ackFlush.t <= ack.t ? ackFlush.t : undefined });
    }
    perFollower.sort((a, b) => a.ackAt - b.ackAt);
    const q = perFollower[needAcks - 1];
    if (!lfs || !lfe || !applied || !q) {
      unmatched++;
      continue;
    }
    const commitAt = Math.max(lfe.t, q.ackAt);
    if (lfe.t > q.ackAt) leaderBound++;
    const add = (s: Segment, v: number): void => void (samples.get(s) as number[]).push(v);
    add('client_to_leader', toolIn.t - w.t0);
    add('leader_propose', appSent.t - toolIn.t);
    add('leader_fsync', lfe.t - lfs.t);
    add('net_to_follower', q.recv - appSent.t);
    add('follower_wait', q.fs - q.recv);
    add('follower_fsync', q.fe - q.fs);
    add('ack_to_leader', q.ackAt - q.fe);
    add('commit_to_apply', applied.t - commitAt);
    add('apply_to_answer', toolOut.t - applied.t);
    // Older members without the resp_sent event: the whole way back counts as answer_to_client.
    const sent = first(L, toolOut.t, (e) => e.ev === 'resp_sent');
    const sentAt = sent && sent.t <= w.t1 ? sent.t : toolOut.t;
    add('answer_queued', sentAt - toolOut.t);
    add('answer_to_client', w.t1 - sentAt);
    const appFlush = first(L, appSent.t, (e) => e.ev === 'flush' && e.peer === q.id);
    if (appFlush && appFlush.t <= q.recv) add('append_queued', appFlush.t - appSent.t);
    if (q.ackFlush !== undefined) add('ack_queued', q.ackFlush - q.fe);
    const cw = first(L, commitAt, (e) => e.ev === 'fsync_start' && e.idx === -1);
    const cwEnd = cw && first(L, cw.t, (e) => e.ev === 'fsync_end' && e.idx === -1);
    if (cw && cwEnd && cwEnd.t <= applied.t) add('commit_write', cwEnd.t - cw.t);
    rounds.push(commitAt - appSent.t);
    totals.push(w.t1 - w.t0);
  }
  const stat = (p: number): Record<Segment, number> => Object.fromEntries(SEGMENTS.map((s) => [s, round(percentile(samples.get(s) as number[], p), 2)])) as Record<Segment, number>;
  return {
    writes_traced: totals.length,
    writes_unmatched: unmatched,
    total_p50_ms: round(median(totals), 2),
    p50_ms: stat(50),
    p90_ms: stat(90),
    replication_round_p50_ms: round(median(rounds), 2),
    commit_waited_for_leader_fsync: totals.length === 0 ? 0 : round(leaderBound / totals.length, 3),
  };
}
