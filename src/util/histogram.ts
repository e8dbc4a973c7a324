/**
 * Fixed-bucket histogram of observations in seconds, Prometheus style (a bucket counts the
 * observations <= its bound). Kept at the point of measurement so a scrape reads exact
 * counts; observe() is a short scan, nothing is allocated.
 */
export class BucketHistogram {
  /** Per bucket (not cumulative); the last one is +Inf. */
  private readonly counts: number[];
  private sum_s = 0;
  private total = 0;

  constructor(readonly bounds_s: readonly number[]) {
    this.counts = new Array<number>(bounds_s.length + 1).fill(0);
  }

  observe(seconds: number): void {
    let i = 0;
    while (i < this.bounds_s.length && seconds > this.bounds_s[i]!) i++;
    this.counts[i]!++;
    this.sum_s += seconds;
    this.total++;
  }

  get count(): number {
    return this.total;
  }

  snapshot(): HistogramSnapshot {
    let acc = 0;
    const cumulative = this.counts.map((c) => (acc += c));
    return { bounds_s: this.bounds_s, cumulative, sum_s: this.sum_s, count: this.total };
  }
}

export interface HistogramSnapshot {
  bounds_s: readonly number[];
  /** Observations <= each bound, then the total (+Inf). */
  cumulative: number[];
  sum_s: number;
  count: number;
}

/** base * 2^i for i < n (etcd's prometheus.ExponentialBuckets). */
export function exponentialBuckets(base: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => base * 2 ** i);
}

/** etcd's disk_wal_fsync_duration_seconds buckets: 1 ms .. 8.192 s. */
export const DISK_BUCKETS_S = exponentialBuckets(0.001, 14);
/** etcd's network_peer_round_trip_time_seconds buckets: 0.1 ms .. 3.2768 s. */
export const RTT_BUCKETS_S = exponentialBuckets(0.0001, 16);
