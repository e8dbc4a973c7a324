// Optional start-up timeline for `concord node` (CONCORD_STARTUP_TRACE=1): one stderr line per
// milestone with the ms since this process's time origin, to see where a restart spends its
// time. Off by default: a disabled mark is one boolean test.

import { performance } from 'node:perf_hooks';

/** Read once at load; hot paths test this before calling startupMark. */
export const STARTUP_TRACE = process.env.CONCORD_STARTUP_TRACE === '1';
const enabled = STARTUP_TRACE;
const seen = new Set<string>();

/** Records `what` once per process (later calls with the same name are ignored). */
export function startupMark(what: string): void {
  if (!enabled || seen.has(what)) return;
  seen.add(what);
  process.stderr.write(`concord startup ${what} at ${performance.now().toFixed(1)} ms (origin ${performance.timeOrigin.toFixed(1)})\n`);
}
