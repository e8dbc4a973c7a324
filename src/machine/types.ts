// Commands and state of the replicated coordination machine. Everything a command needs
// (including the time) travels in the command, so every replica computes the same state.

export const PRIORITIES = ['low', 'medium', 'high', 'critical'] as const;
export type Priority = (typeof PRIORITIES)[number];
export const STRATEGIES = ['sequential', 'parallel', 'adaptive'] as const;
export type Strategy = (typeof STRATEGIES)[number];
export const EXECUTORS = ['noop', 'sleep', 'http', 'external'] as const;
export type ExecutorKind = (typeof EXECUTORS)[number];

export interface SwarmConfig {
  election_timeout_min: number;
  election_timeout_max: number;
  heartbeat_interval: number;
  log_compaction_threshold: number;
  quorum_size: number | null;
  max_log_entries: number;
  batch_size: number;
  /**
   * Retention of finished orchestrations' per-task records (their aggregates are kept forever):
   * records are compacted once the orchestration is no longer among the last
   * `task_retention_orchestrations` finished, or finished `task_retention_ms` ago in log time,
   * whichever comes first. Applied deterministically at apply time (see TaskTable.retain).
   */
  task_retention_orchestrations: number;
  task_retention_ms: number;
}

export const DEFAULT_SWARM_CONFIG: SwarmConfig = {
  election_timeout_min: 150,
  election_timeout_max: 300,
  heartbeat_interval: 50,
  log_compaction_threshold: 1000,
  quorum_size: null,
  max_log_entries: 10_000,
  batch_size: 100,
  task_retention_orchestrations: 100,
  task_retention_ms: 3_600_000,
};

export interface AgentRecord {
  id: string;
  name: string;
  type: string;
  capabilities: string[];
  spawned_at: number;
  removed_at: number | null;
}

export type TaskStatus = 'pending' | 'assigned' | 'completed' | 'failed';

export interface TaskRecord {
  id: string;
  orch: string;
  seq: number;
  priority: Priority;
  status: TaskStatus;
  /** Fencing token: bumped on every assignment; only a completion carrying it applies. */
  epoch: number;
  assignee: string | null;
  /** Term of the leader that made the current assignment (to count recovered work). */
  assigned_term: number;
  lease_until: number;
  /** Assignments made so far (1 + reassignments). */
  assignments: number;
  /** Executions that reported failure; the task fails for good at MAX_TASK_ATTEMPTS. */
  failures: number;
  /**
   * Successful completions applied for this task, counted at apply time: 1 once done. A second
   * apply of the entry that completed it (a replay bug in the host or a snapshot) is counted
   * here too rather than refused, so `duplicates` can show it.
   */
  completions_applied: number;
  /** Log index of the entry whose completion was applied (null until completed). */
  completed_index: number | null;
  /**
   * Executions of this task reported to the log: each completion or failure report, applied or
   * refused, adds the number of times its reporter started the task at that epoch. A start whose
   * worker died before its report reached the log is not counted.
   */
  executions_started: number;
  /** Completions refused by the fence (stale epoch, other assignee, task already done). */
  stale_completions_refused: number;
  result: unknown;
  completed_by: string | null;
  completed_at: number | null;
}

export interface ExecutorSpec {
  kind: ExecutorKind;
  sleep_ms?: number;
  http?: { method: string; url: string; body?: string };
}

/** What a client asks for when it orchestrates tasks. */
export interface OrchestrationSpec {
  task: string;
  count: number;
  priority: Priority;
  strategy: Strategy;
  max_agents: number;
  executor: ExecutorSpec;
  payload: unknown;
  idempotency_key: string | null;
}

export interface Orchestration extends OrchestrationSpec {
  id: string;
  created_at: number;
  created_index: number;
  finished_at: number | null;
  counts: Record<TaskStatus, number> & OrchestrationTallies;
  /** Set when retention starts removing its per-task records (absent: all records kept). */
  compacted?: CompactionSummary;
}

/**
 * What an orchestration keeps of its per-task records once retention removed them: `counts`
 * stay exact; these are sums and bounds over the removed records, exact once `done_index` is set.
 */
export interface CompactionSummary {
  /** Log index and log time of the entry whose apply started the compaction. */
  at_index: number;
  at: number;
  /** Log index of the entry whose apply removed the last record (null while under way). */
  done_index: number | null;
  /** Tasks with seq < next_seq have had their records removed. */
  next_seq: number;
  records_removed: number;
  /** Sums over the removed records of failures (failed runs) and assignments. */
  failed_attempts: number;
  assignments: number;
  first_completed_at: number | null;
  last_completed_at: number | null;
  /** Execution reports for removed tasks, refused (never applied) and counted after removal. */
  late_reports_refused: number;
}

/** Per-orchestration sums of the per-task figures, kept up to date at apply time. */
export interface OrchestrationTallies {
  /** Sum over tasks of stale_completions_refused. */
  stale_completions_refused: number;
  /** Sum over tasks of max(0, completions_applied - 1): second applies of a completion. */
  duplicates: number;
  /** Assigned tasks taken back and given out again (dead holder, expired lease, new leader). */
  recovered: number;
  /** Sum over tasks of executions_started. */
  executions_started: number;
}

export interface MemoryRecord {
  key: string;
  namespace: string;
  value: unknown;
  version: number;
  created_at: number;
  updated_at: number;
  expires_at: number | null;
}

export type ElectionCause = 'startup' | 'leader crash' | 'step-down' | 'transfer' | 'lost quorum' | 'leader unreachable' | 'trigger-election' | 'membership change' | 'unknown';

export interface ElectionRecord {
  term: number;
  old_leader: string | null;
  new_leader: string;
  voted_by: string[];
  election_duration_ms: number;
  /** The winner's last message from the previous leader to its campaign start (null: unknown,
   * e.g. the first election). Absent in records written before it was measured. */
  detection_ms?: number | null;
  /** The winner's last message from the previous leader to the first entry of its term
   * applied (its no-op committed), on the winner's clock. Measured after the record is
   * written, so filled in by an election.timing entry; null until then or when not
   * measurable, with timing_note saying which. Absent in records written before it. */
  failover_ms?: number | null;
  /** Why detection_ms or failover_ms is null; absent once both are measured. */
  timing_note?: string;
  cause: ElectionCause;
  at: number;
  /** In-flight tasks this leader reassigned from earlier terms (filled in as it happens). */
  tasks_recovered: number;
}

export type Op =
  | { t: 'config'; patch: Partial<SwarmConfig> }
  | { t: 'agent.register'; agent: Omit<AgentRecord, 'spawned_at' | 'removed_at'> }
  | { t: 'agent.remove'; id: string }
  | ({ t: 'orch.create' } & OrchestrationSpec)
  | {
      t: 'task.assign';
      term: number;
      lease_ms: number;
      items?: Array<{ task: string; agent: string; from_epoch: number }>;
      /** Compact form used by the scheduler: ~5x fewer bytes to write, replicate and parse. */
      groups?: AssignGroup[];
    }
  | { t: 'task.complete'; items?: CompleteItem[]; groups?: CompleteGroup[] }
  | { t: 'mem.put'; key: string; namespace: string; value: unknown; ttl_s: number | null; if_version: number | null }
  | { t: 'mem.del'; key: string; namespace: string; if_version: number | null }
  | { t: 'election'; record: Omit<ElectionRecord, 'tasks_recovered' | 'at'> }
  /** The leader of `term` completes its record once its failover is measured. */
  | { t: 'election.timing'; term: number; failover_ms: number }
  | { t: 'clock' }
  /** Open a client session (dissertation 6.3); its id is derived from this entry's index.
   * timeout_ms: idle time after which it expires (clamped to the machine's bounds). */
  | { t: 'session.register'; timeout_ms?: number | null }
  /** Cluster mode: the first leader records the cluster id and the bootstrap members' addresses. */
  | { t: 'member.seed'; cluster_id: string; members: Record<string, string> }
  /** Cluster mode: bind a member id to its data directory's incarnation (once). */
  | { t: 'member.bind'; id: string; incarnation: string };

/** Tasks of one orchestration given to one agent; `from[i]` is the epoch seqs[i] must have. */
export interface AssignGroup {
  orch: string;
  agent: string;
  seqs: number[];
  from: number[];
}

/**
 * One execution report. `starts`: how many runs of this task at this epoch the report covers
 * (omitted means 1): more than 1 when an earlier run's report was lost (its member stopped) and
 * the task ran again; 0 when an earlier report already covered this run.
 */
export interface CompleteItem {
  task: string;
  agent: string;
  epoch: number;
  ok: boolean;
  result: unknown;
  starts?: number;
}

/** Completions by one agent for one orchestration; results omitted means null each, starts omitted 1 each. */
export interface CompleteGroup {
  orch: string;
  agent: string;
  seqs: number[];
  epochs: number[];
  ok: boolean;
  results?: unknown[];
  starts?: number[];
}

/** A log entry's payload: the op, the proposer's clock, and the client session. */
export interface Command {
  op: Op;
  /**
   * Proposer's wall clock (ms since epoch). Log time follows it only when the proposer is
   * the leader that appends the entry; see ForwardedCommand.
   */
  now: number;
  /** Client session id from `session.register` (dissertation 6.3): a retried (client, seq) is
   * never applied twice; a command of an unknown or expired session is refused, not applied. */
  client?: string;
  seq?: number;
  /** Every seq below this has been answered to the client: the session may forget them. */
  ack?: number;
}

/**
 * A command another member (or client) handed to the leader: the leader appends it wrapped,
 * stamped with its own clock (`lnow`), and log time follows `lnow`, never the inner `now`.
 * So one member with a fast clock cannot move TTLs and leases forward for everyone: log
 * time is the maximum of the clocks of the leaders that appended entries.
 */
export interface ForwardedCommand {
  cmd: Command;
  lnow: number;
}

/**
 * Wrap a forwarded command's JSON without parsing it. `lnow` comes last: should `data`
 * smuggle in a key of that name, JSON.parse keeps the last one, the leader's.
 */
export function stampForwarded(data: string, leaderNow: number): string {
  return `{"cmd":${data},"lnow":${Math.floor(leaderNow)}}`;
}

export const MAX_KEY_BYTES = 512;
export const MAX_VALUE_BYTES = 1 << 20;
export const MAX_TASK_ATTEMPTS = 3;
