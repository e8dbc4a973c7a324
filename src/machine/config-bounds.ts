// Bounds of a swarm's config, shared by the consensus_config tool (which refuses a bad patch
// with a UserError) and the state machine (which turns a committed bad patch into a recorded
// no-op): a committed entry must never leave members with a config they cannot start with.

import type { SwarmConfig } from './types.js';

export const CONFIG_LIMITS: Record<keyof Omit<SwarmConfig, 'quorum_size'>, [number, number]> = {
  election_timeout_min: [10, 60_000],
  election_timeout_max: [11, 120_000],
  heartbeat_interval: [5, 30_000],
  log_compaction_threshold: [10, 10_000_000],
  max_log_entries: [10, 10_000_000],
  batch_size: [1, 10_000],
  task_retention_orchestrations: [0, 1_000_000],
  // Up to ten years of log time.
  task_retention_ms: [0, 315_360_000_000],
};

/** Largest swarm (members), hence the largest quorum. */
const MAX_QUORUM = 15;

export interface ConfigProblem {
  field: string;
  value: unknown;
  /** What would have been accepted. */
  accepted: string;
}

/** The first thing wrong with applying `patch` to `current`, or null when it is valid. */
export function configProblem(current: SwarmConfig, patch: unknown): ConfigProblem | null {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return { field: 'patch', value: patch, accepted: 'an object of config fields' };
  // Absent and undefined are the same (JSON drops undefined on the way through the log).
  const p = Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined));
  for (const k of Object.keys(p)) {
    if (k !== 'quorum_size' && !(k in CONFIG_LIMITS)) return { field: k, value: p[k], accepted: `one of the fields ${[...Object.keys(CONFIG_LIMITS), 'quorum_size'].join(', ')}` };
  }
  for (const [k, [lo, hi]] of Object.entries(CONFIG_LIMITS)) {
    const v = p[k];
    if (v !== undefined && (!Number.isInteger(v) || (v as number) < lo || (v as number) > hi)) return { field: k, value: v, accepted: `an integer ${lo}..${hi}` };
  }
  const q = p.quorum_size;
  if (q !== undefined && q !== null && (!Number.isInteger(q) || (q as number) < 1 || (q as number) > MAX_QUORUM)) {
    return { field: 'quorum_size', value: q, accepted: `null or an integer 1..${MAX_QUORUM}` };
  }
  const next = { ...current, ...p } as SwarmConfig;
  if (next.election_timeout_max <= next.election_timeout_min) {
    return { field: 'election_timeout_max', value: next.election_timeout_max, accepted: `greater than election_timeout_min (${next.election_timeout_min})` };
  }
  if (next.heartbeat_interval * 2 > next.election_timeout_min) {
    return {
      field: 'heartbeat_interval',
      value: next.heartbeat_interval,
      accepted: `at most half of election_timeout_min (${next.election_timeout_min}), so a follower hears at least two heartbeats before timing out`,
    };
  }
  return null;
}
