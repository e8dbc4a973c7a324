// Optional per-write timeline for cluster mode (CONCORD_WRITE_TRACE=1), for the etcd-compare
// bench's latency breakdown of one write: one stderr line per event ("concord trace {json}")
// with an absolute time (time origin + now, ms, comparable across processes on one machine).
// Off by default: callers test WRITE_TRACE before building anything.

import { performance } from 'node:perf_hooks';

/** Read once at load. */
export const WRITE_TRACE = process.env.CONCORD_WRITE_TRACE === '1';
/**
 * CONCORD_FAILOVER_TRACE=1: the same lines for a failover's steps (heartbeats received, vote
 * and pre-vote traffic, role changes, fsyncs, applies, tool calls, the client's attempts), for
 * the etcd-compare bench's failover breakdown.
 */
export const FAILOVER_TRACE = process.env.CONCORD_FAILOVER_TRACE === '1';
/** Either trace: the events both need (fsyncs, applies, tool calls, appends). */
export const ANY_TRACE = WRITE_TRACE || FAILOVER_TRACE;

export function traceWrite(ev: string, idx?: number, peer?: string, extra?: Record<string, unknown>): void {
  const t = Math.round((performance.timeOrigin + performance.now()) * 1000) / 1000;
  process.stderr.write(`concord trace ${JSON.stringify({ t, ev, idx, peer, ...extra })}\n`);
}
