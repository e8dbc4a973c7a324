import type { NodeId } from '../raft/types.js';
import { BucketHistogram, RTT_BUCKETS_S, type HistogramSnapshot } from '../util/histogram.js';

/** Unanswered heartbeats remembered per peer: a peer that stops answering must not grow memory. */
const SENT_KEPT = 64;

/** What roundTrips() reports per peer. */
export interface RoundTrip {
  lastMs: number;
  /** How long ago the last one was measured (a cut link keeps its last figure, now stale). */
  ageMs: number;
  samples: number;
  meanMs: number;
  maxMs: number;
}

/** One peer's heartbeats in flight (a ring of seq, term, sent-at), its figures and histogram. */
class PeerTrips {
  /** Ring of unanswered heartbeats, oldest at `head`: three numbers each, no object per send. */
  readonly sent = new Float64Array(SENT_KEPT * 3);
  head = 0;
  size = 0;
  lastMs = 0;
  lastAt = 0;
  samples = 0;
  sumMs = 0;
  maxMs = 0;
  /** Outlives leaderships: a Prometheus histogram never drops what it counted. */
  histogram: BucketHistogram | null = null;
}

/**
 * Heartbeat round trips of a leader to each peer. An answer echoes its heartbeat's sequence
 * number and term, so a round trip longer than the heartbeat interval is measured against the
 * heartbeat it answers, not the latest one sent. One record per peer, looked up once per
 * heartbeat and once per answer: an idle process sends thousands of each a second.
 */
export class RoundTrips {
  private readonly peers = new Map<NodeId, PeerTrips>();

  private peer(id: NodeId): PeerTrips {
    let p = this.peers.get(id);
    if (!p) this.peers.set(id, (p = new PeerTrips()));
    return p;
  }

  /** A heartbeat that asks an answer left for `to` at `at`. */
  sent(to: NodeId, seq: number, term: number, at: number): void {
    const p = this.peer(to);
    // Full: the oldest was lost or its peer is down; forget it.
    if (p.size === SENT_KEPT) {
      p.head = (p.head + 1) % SENT_KEPT;
      p.size--;
    }
    const slot = ((p.head + p.size) % SENT_KEPT) * 3;
    p.sent[slot] = seq;
    p.sent[slot + 1] = term;
    p.sent[slot + 2] = at;
    p.size++;
  }

  /** `from` answered heartbeat (seq, term) at `now`: its round trip in ms, or null if no such heartbeat is remembered. */
  answered(from: NodeId, seq: number, term: number, now: number): number | null {
    const p = this.peers.get(from);
    if (!p) return null;
    const s = p.sent;
    let i = 0;
    let slot = 0;
    for (; i < p.size; i++) {
      slot = ((p.head + i) % SENT_KEPT) * 3;
      if (s[slot] === seq && s[slot + 1] === term) break;
    }
    if (i === p.size) return null;
    const ms = now - s[slot + 2]!;
    // Older unanswered heartbeats were lost or overtaken: drop them with this one.
    p.head = (p.head + i + 1) % SENT_KEPT;
    p.size -= i + 1;
    p.lastMs = ms;
    p.lastAt = now;
    p.samples++;
    p.sumMs += ms;
    if (ms > p.maxMs) p.maxMs = ms;
    (p.histogram ??= new BucketHistogram(RTT_BUCKETS_S)).observe(ms / 1000);
    return ms;
  }

  /** A new leadership: figures and heartbeats in flight start over; histograms accumulate. */
  restart(): void {
    for (const p of this.peers.values()) {
      p.head = p.size = 0;
      p.lastMs = p.lastAt = p.samples = p.sumMs = p.maxMs = 0;
    }
  }

  /** Measured round trips per peer since this leadership began (peers never measured left out). */
  figures(now: number): Map<NodeId, RoundTrip> {
    const out = new Map<NodeId, RoundTrip>();
    for (const [id, p] of this.peers) {
      if (p.samples === 0) continue;
      out.set(id, { lastMs: p.lastMs, ageMs: now - p.lastAt, samples: p.samples, meanMs: p.sumMs / p.samples, maxMs: p.maxMs });
    }
    return out;
  }

  /** Round-trip histograms per peer, over every leadership of this life. */
  histograms(): Map<NodeId, HistogramSnapshot> {
    const out = new Map<NodeId, HistogramSnapshot>();
    for (const [id, p] of this.peers) if (p.histogram) out.set(id, p.histogram.snapshot());
    return out;
  }
}
