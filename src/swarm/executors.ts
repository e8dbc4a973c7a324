import http from 'node:http';
import https from 'node:https';
import type { ExecutorSpec } from '../machine/types.js';
import { checkHttpTarget, currentAllowList, HttpPolicyError, type AllowedHost } from './http-policy.js';

export interface ExecutionOutcome {
  ok: boolean;
  result: unknown;
}

/** Bytes of an HTTP response body kept in the replicated result. */
export const HTTP_BODY_EXCERPT_BYTES = 1024;
const HTTP_TIMEOUT_MS = 30_000;

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
    case 'http':
      return executeHttp(spec, taskId, epoch, payload);
    case 'external':
      // External tasks are claimed and completed by other agents through task_claim/complete.
      return { ok: false, result: { error: 'external tasks are completed by task_complete, not by a worker' } };
  }
}

/** Response bytes read at most (the rest is counted, not kept). */
const HTTP_KEEP_BYTES = 64 * 1024;

interface HttpAnswer {
  status: number;
  text: string;
  bytes: number;
}

/**
 * One request with node:http(s): the socket's address lookup goes through the policy check
 * (see http-policy.ts). Redirects are not followed: a 3xx is the answer (re-checking every
 * hop's address would otherwise be needed).
 */
function request(url: URL, method: string, headers: Record<string, string>, body: string | undefined, allow: readonly AllowedHost[]): Promise<HttpAnswer> {
  const checked = checkHttpTarget(url, allow);
  const mod = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(url, { method, headers: body === undefined ? headers : { ...headers, 'Content-Length': String(Buffer.byteLength(body)) }, lookup: checked.lookup, timeout: HTTP_TIMEOUT_MS }, (res) => {
      const kept: Buffer[] = [];
      let keptBytes = 0;
      let bytes = 0;
      res.on('data', (d: Buffer) => {
        bytes += d.length;
        if (keptBytes < HTTP_KEEP_BYTES) {
          kept.push(d);
          keptBytes += d.length;
        }
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(kept).toString('utf8'), bytes }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${HTTP_TIMEOUT_MS} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

async function executeHttp(spec: ExecutorSpec, taskId: string, epoch: number, payload: unknown): Promise<ExecutionOutcome> {
  const h = spec.http;
  if (!h) return { ok: false, result: { error: 'http executor needs http.url' } };
  const t0 = performance.now();
  try {
    const allow = currentAllowList();
    const url = new URL(h.url);
    const body = h.method === 'GET' || h.method === 'HEAD' ? undefined : (h.body ?? JSON.stringify({ task: taskId, payload }));
    const headers = { 'Idempotency-Key': idempotencyKey(taskId), [EPOCH_HEADER]: String(epoch), 'Content-Type': 'application/json' };
    const res = await request(url, h.method, headers, body, allow);
    return {
      ok: res.status >= 200 && res.status < 300,
      result: {
        executor: 'http',
        status: res.status,
        body_excerpt: res.text.slice(0, HTTP_BODY_EXCERPT_BYTES),
        body_bytes: res.bytes,
        duration_ms: Math.round(performance.now() - t0),
      },
    };
  } catch (e) {
    const refused = e instanceof HttpPolicyError;
    return { ok: false, result: { executor: 'http', error: (e as Error).message, ...(refused ? { refused: true } : {}), duration_ms: Math.round(performance.now() - t0) } };
  }
}
