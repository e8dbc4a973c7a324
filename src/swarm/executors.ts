// The http executor (node:http, node:https, and the address policy with node:dns) is loaded
// with the first http task: a restarted member does not need it to rejoin.
import type { ExecutorSpec } from '../machine/types.js';

export interface ExecutionOutcome {
  ok: boolean;
  result: unknown;
}

/** Bytes of an HTTP response body kept in the replicated result. */
export const HTTP_BODY_EXCERPT_BYTES = 1024;

/**
 * The key a side effect of the task is deduplicated by: the task id, the same for every run.
 * A re-run after a crash or lease expiry has a new epoch, so a `<task id>:<epoch>` key would
 * let the sink apply the task twice; the epoch travels separately as a fencing token.
 */
export function idempotencyKey(taskId: string): string {
  return taskId;
}

/** Header carrying the assignment's epoch: a sink may refuse writes older than one it has seen. */
export const EPOCH_HEADER = 'Concord-Epoch';

/**
 * Run one task attempt. An attempt may be repeated after a crash or lease expiry (execution is
 * at-least-once), so side effects must be idempotent: HTTP calls carry
 * `Idempotency-Key: <task id>` and `Concord-Epoch: <epoch>`.
 */
export async function execute(spec: ExecutorSpec, taskId: string, epoch: number, payload: unknown): Promise<ExecutionOutcome> {
  switch (spec.kind) {
    case 'noop':
      return { ok: true, result: { executor: 'noop' } };
    case 'sleep': {
      const ms = spec.sleep_ms ?? 0;
      const t0 = performance.now();
      await new Promise((r) => setTimeout(r, ms));
      return { ok: true, result: { executor: 'sleep', slept_ms: Math.round(performance.now() - t0) } };
    }
    case 'http': {
      const headers = { 'Idempotency-Key': idempotencyKey(taskId), [EPOCH_HEADER]: String(epoch), 'Content-Type': 'application/json' };
      const { executeHttp } = await import('./http-executor.js');
      return executeHttp(spec, headers, taskId, payload, HTTP_BODY_EXCERPT_BYTES);
    }
    case 'external':
      // External tasks are claimed and completed by other agents through task_claim/complete.
      return { ok: false, result: { error: 'external tasks are completed by task_complete, not by a worker' } };
  }
}
