// Prometheus metrics for the swarms of one process, named after etcd's (etcd_server_has_leader
// -> concord_has_leader, etcd_disk_wal_fsync_duration_seconds -> concord_disk_wal_fsync_...),
// with a `swarm` label, and `member` where the figure is one member's. A private registry (the
// process may serve several coordinators in tests); every value is read at scrape time from
// the counters the tools report (service/metrics-source.ts): nothing runs between scrapes.

import { Counter, Gauge, Registry, type Metric } from 'prom-client';
import type { SwarmSample } from '../service/metrics-source.js';
import type { HistogramSnapshot } from '../util/histogram.js';

type Labels = Record<string, string>;
type Emit = (labels: Labels, value: number) => void;

/** A histogram whose buckets are kept where the measurement is made (storage, host). */
class ObservedHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly read: () => Array<{ labels: Labels; h: HistogramSnapshot }>,
  ) {}

  get(): { name: string; help: string; type: string; aggregator: string; values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> } {
    const values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> = [];
    for (const { labels, h } of this.read()) {
      h.bounds_s.forEach((le, i) => values.push({ labels: { ...labels, le }, value: h.cumulative[i]!, metricName: `${this.name}_bucket` }));
      values.push({ labels: { ...labels, le: '+Inf' }, value: h.count, metricName: `${this.name}_bucket` });
      values.push({ labels, value: h.sum_s, metricName: `${this.name}_sum` });
      values.push({ labels, value: h.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {}
}

export const METRICS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;

export class ConcordMetrics {
  readonly registry = new Registry();
  /** The sample of the scrape in progress (scrapes are serialized). */
  private sample: SwarmSample[] = [];
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly source: () => SwarmSample[]) {
    const member = (fn: (m: SwarmSample['members'][number], s: SwarmSample, emit: Emit) => void) => (emit: Emit) => {
      for (const s of this.sample) for (const m of s.members) fn(m, s, (l, v) => emit({ swarm: s.swarm, member: m.member, ...l }, v));
    };
    const swarm = (fn: (s: SwarmSample) => number) => (emit: Emit) => {
      for (const s of this.sample) emit({ swarm: s.swarm }, fn(s));
    };
    const perMember = ['swarm', 'member'];
    const perSwarm = ['swarm'];

    // ---- per member (the members running in this process) ----
    this.gauge('concord_member_up', 'Whether the member runs in this process (1) or is stopped/crashed (0).', perMember, member((m, _s, e) => e({}, m.running ? 1 : 0)));
    this.gauge('concord_has_leader', 'Whether the member knows a leader (1) or not (0); running members only.', perMember, member((m, _s, e) => m.view && e({}, m.view.hasLeader ? 1 : 0)));
    this.gauge('concord_is_leader', 'Whether the member is the leader (1) or not (0); running members only.', perMember, member((m, _s, e) => m.view && e({}, m.view.isLeader ? 1 : 0)));
    this.gauge('concord_term', "The member's current Raft term; running members only.", perMember, member((m, _s, e) => m.view && e({}, m.view.term)));
    this.counter('concord_leader_changes_seen_total', 'Times the member saw the leader change to a known leader.', perMember, member((m, _s, e) => e({}, m.counters.leaderChangesSeen)));
    // etcd declares these two as gauges: they are log indexes, which a new member starts at 0.
    this.gauge('concord_proposals_committed_total', "The member's commit index (entries committed).", perMember, member((m, _s, e) => m.view && e({}, m.view.committed)));
    this.gauge('concord_proposals_applied_total', "The member's applied index (entries applied to its state machine).", perMember, member((m, _s, e) => m.view && e({}, m.view.applied)));
    this.gauge('concord_proposals_pending', 'Proposals made on the member and not yet answered.', perMember, member((m, _s, e) => e({}, m.counters.proposalsPending)));
    this.counter('concord_proposals_failed_total', 'Proposals refused or failed on the member (no leader, timeout, superseded, disk full).', perMember, member((m, _s, e) => e({}, m.counters.proposalsFailed)));
    this.histogram('concord_proposal_commit_duration_seconds', 'Proposal to apply on the member that proposed it (commit latency), for proposals that committed.', () =>
      this.sample.flatMap((s) => s.members.map((m) => ({ labels: { swarm: s.swarm, member: m.member }, h: m.counters.commitSeconds }))),
    );
    this.histogram('concord_disk_wal_fsync_duration_seconds', 'Durable log commits (WAL fdatasync) of the member, start of the write to durable; _count equals agent_metrics fsync_count over the storage life.', () =>
      this.sample.flatMap((s) => s.members.flatMap((m) => (m.counters.storage.syncSeconds ? [{ labels: { swarm: s.swarm, member: m.member }, h: m.counters.storage.syncSeconds }] : []))),
    );
    this.counter('concord_disk_wal_write_bytes_total', 'Bytes of log rows (entries, hard state, snapshots) the member wrote.', perMember, member((m, _s, e) => e({}, m.counters.storage.bytesWritten)));
    this.histogram('concord_network_peer_round_trip_time_seconds', 'Heartbeat round trips measured by the member while it led, per peer.', () =>
      this.sample.flatMap((s) => s.members.flatMap((m) => [...m.counters.rttSeconds].sort(([a], [b]) => a.localeCompare(b)).map(([peer, h]) => ({ labels: { swarm: s.swarm, member: m.member, peer }, h })))),
    );
    this.counter('concord_network_messages_sent_total', 'Raft messages the member sent.', perMember, member((m, _s, e) => e({}, m.counters.messagesOut)));
    this.counter('concord_network_messages_received_total', 'Raft messages the member received.', perMember, member((m, _s, e) => e({}, m.counters.messagesIn)));
    this.counter('concord_snapshots_taken_total', 'Snapshots the member took (state serialized, log compacted).', perMember, member((m, _s, e) => e({}, m.counters.snapshotsTaken)));
    this.counter('concord_snapshots_installed_total', 'Snapshots the member installed from its leader.', perMember, member((m, _s, e) => e({}, m.counters.snapshotsInstalled)));
    this.histogram('concord_snapshot_save_duration_seconds', 'Wall time of each snapshot the member took; _count equals concord_snapshots_taken_total.', () =>
      this.sample.flatMap((s) => s.members.map((m) => ({ labels: { swarm: s.swarm, member: m.member }, h: m.counters.snapshotSeconds }))),
    );

    // ---- per swarm (replicated state, read from one running replica) ----
    this.gauge('concord_agents', 'Agents (voting members) of the swarm.', perSwarm, swarm((s) => s.agents));
    this.gauge('concord_agents_running', 'Agents of the swarm running (embedded) or answering the leader (cluster mode).', perSwarm, swarm((s) => s.agentsRunning));
    this.counter('concord_elections_total', 'Elections recorded in the replicated history (consensus_election_history total_elections).', perSwarm, swarm((s) => s.elections));
    this.counter('concord_leader_failures_total', 'Elections caused by a leader failure (consensus_election_history leader_failures).', perSwarm, swarm((s) => s.leaderFailures));
    this.counter('concord_tasks_completed_total', 'Tasks completed (task_results completed).', perSwarm, swarm((s) => s.tasks.completed));
    this.counter('concord_tasks_failed_total', 'Tasks failed (task_results failed).', perSwarm, swarm((s) => s.tasks.failed));
    this.counter('concord_tasks_recovered_total', 'Tasks reassigned after their agent failed (task_results tasks_recovered).', perSwarm, swarm((s) => s.tasks.recovered));
    this.counter('concord_tasks_duplicates_total', 'Tasks whose completion was applied more than once (task_results duplicates).', perSwarm, swarm((s) => s.tasks.duplicates));
    this.gauge('concord_memory_keys', 'Live keys in the replicated memory (TTL not passed in log time).', perSwarm, swarm((s) => s.memory.keys));
    // Absent from a scrape that could not size every value within its budget (see SIZE_BUDGET_MS):
    // never a partial sum. concord_memory_bytes_unmeasured_keys says how many are left.
    this.gauge('concord_memory_bytes', 'UTF-8 bytes of those keys and their JSON values; absent while values written since the last scrapes are still being sized.', perSwarm, (emit) => {
      for (const s of this.sample) if (s.memory.bytes !== null) emit({ swarm: s.swarm }, s.memory.bytes);
    });
    this.gauge('concord_memory_bytes_unmeasured_keys', 'Live keys whose value this scrape did not size (its time budget ran out); 0 when concord_memory_bytes is complete.', perSwarm, swarm((s) => s.memory.unsized));
  }

  /** The Prometheus text exposition of every swarm, read now. */
  render(): Promise<string> {
    const run = this.queue.then(async () => {
      this.sample = this.source();
      try {
        return await this.registry.metrics();
      } finally {
        this.sample = [];
      }
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  private gauge(name: string, help: string, labelNames: string[], fill: (emit: Emit) => void): void {
    new Gauge({
      name,
      help,
      labelNames,
      registers: [this.registry],
      collect() {
        this.reset();
        fill((l, v) => this.set(l, v));
      },
    });
  }

  private counter(name: string, help: string, labelNames: string[], fill: (emit: Emit) => void): void {
    new Counter({
      name,
      help,
      labelNames,
      registers: [this.registry],
      collect() {
        this.reset();
        fill((l, v) => this.inc(l, v));
      },
    });
  }

  private histogram(name: string, help: string, read: () => Array<{ labels: Labels; h: HistogramSnapshot }>): void {
    this.registry.registerMetric(new ObservedHistogram(name, help, read) as unknown as Metric<string>);
  }
}
