// The http task executor: one request per attempt, its address checked by the policy
// (http-policy.ts). Loaded by executors.ts on the first http task only.

import http from 'node:http';
import https from 'node:https';
import type { ExecutorSpec } from '../machine/types.js';
import { checkHttpTarget, currentAllowList, HttpPolicyError, type AllowedHost } from './http-policy.js';

const HTTP_TIMEOUT_MS = 30_000;

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

/** `headers`: the task's Idempotency-Key and epoch (see executors.ts). */
export async function executeHttp(spec: ExecutorSpec, headers: Record<string, string>, taskId: string, payload: unknown, excerptBytes: number): Promise<{ ok: boolean; result: unknown }> {
  const h = spec.http;
  if (!h) return { ok: false, result: { error: 'http executor needs http.url' } };
  const t0 = performance.now();
  try {
    const allow = currentAllowList();
    const url = new URL(h.url);
    const body = h.method === 'GET' || h.method === 'HEAD' ? undefined : (h.body ?? JSON.stringify({ task: taskId, payload }));
    const res = await request(url, h.method, headers, body, allow);
    return {
      ok: res.status >= 200 && res.status < 300,
      result: {
        executor: 'http',
        status: res.status,
        body_excerpt: res.text.slice(0, excerptBytes),
        body_bytes: res.bytes,
        duration_ms: Math.round(performance.now() - t0),
      },
    };
  } catch (e) {
    const refused = e instanceof HttpPolicyError;
    return { ok: false, result: { executor: 'http', error: (e as Error).message, ...(refused ? { refused: true } : {}), duration_ms: Math.round(performance.now() - t0) } };
  }
}
