// One load generator for both systems of the etcd-compare bench: the same keys and values, the
// same closed loop, the same failover writer. A system is only a `KvTarget` (put one key).
//
// Keys are 16 bytes, values 256 bytes, printable ASCII (so they go through JSON unchanged and
// are the same bytes on the wire for both systems before each system's own framing).

import { performance } from 'node:perf_hooks';
import { Prng } from '../../src/util/prng.js';
import { percentile, round, sleep } from './stats.js';

export const KEY_BYTES = 16;
export const VALUE_BYTES = 256;

/** What the load generator needs from a system: write one key, resolve when it is committed. */
export interface KvTarget {
  /** Rejects on any failure (including `timeoutMs` passing, when given). */
  put(key: string, value: string, timeoutMs?: number): Promise<void>;
}

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

/**
 * Deterministic keys and values. Keys: a 4-char stream tag, then a 12-char base-36 counter
 * (distinct keys, like a real write workload, no hot key). Values: 256 pseudo-random chars
 * from a pool, so they don't compress to nothing.
 */
export class KvGen {
  private n = 0;
  private readonly pool: string;
  private readonly prng: Prng;

  constructor(private readonly tag: string, seed: number) {
    if (tag.length !== 4) throw new Error(`KvGen tag must be 4 chars, got ${JSON.stringify(tag)}`);
    this.prng = new Prng(seed);
    let p = '';
    for (let i = 0; i < VALUE_BYTES * 4; i++) p += ALPHABET[this.prng.int(0, ALPHABET.length)];
    this.pool = p;
  }

  next(): { key: string; value: string } {
    const i = this.n++;
    const key = this.tag + i.toString(36).padStart(KEY_BYTES - 4, '0');
    const off = this.prng.int(0, this.pool.length - VALUE_BYTES + 1);
    return { key, value: this.pool.slice(off, off + VALUE_BYTES) };
  }
}

export interface LoopResult {
  inflight: number;
  /** Median of the full one-second windows' write counts. */
  per_s: number;
  mean_per_s: number;
  per_s_windows: number[];
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
  writes: number;
  errors: number;
  first_error: string | null;
}

/**
 * Closed loop: `inflight` workers, each writes, awaits the acknowledgement, writes again. The
 * first `warmupS` seconds are not counted; then `seconds` are measured. A failed write counts
 * as an error and the worker goes on (after 1 ms, so a dead target doesn't spin).
 */
export async function closedLoop(
  /** The target of each worker (0 .. inflight-1), e.g. to spread workers over client connections. */
  targetOf: (worker: number) => KvTarget,
  gen: KvGen,
  inflight: number,
  seconds: number,
  warmupS: number,
  /** Receives every measured write's latency (ms), to merge loops run in slices. */
  sink?: number[],
): Promise<LoopResult> {
  const start = performance.now();
  const mStart = start + warmupS * 1000;
  const mEnd = mStart + seconds * 1000;
  const windows = new Array<number>(Math.ceil(seconds)).fill(0);
  const latencies: number[] = [];
  let writes = 0;
  let errors = 0;
  let firstError: string | null = null;

  const worker = async (w: number): Promise<void> => {
    const target = targetOf(w);
    for (;;) {
      const t0 = performance.now();
      if (t0 >= mEnd) return;
      const { key, value } = gen.next();
      try {
        await target.put(key, value);
      } catch (e) {
        errors++;
        firstError ??= (e as Error).message;
        await sleep(1);
        continue;
      }
      const t1 = performance.now();
      if (t1 >= mStart && t1 < mEnd) {
        writes++;
        const w = Math.floor((t1 - mStart) / 1000);
        if (w < windows.length) windows[w] = (windows[w] as number) + 1;
        if (t0 >= mStart) {
          latencies.push(t1 - t0);
          sink?.push(t1 - t0);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: inflight }, (_, w) => worker(w)));
  // Full one-second windows only; a trailing partial window would understate the rate.
  const full = windows.slice(0, Math.floor(seconds));
  return loopResult(inflight, full.length > 0 ? full : [writes / seconds], latencies, writes, seconds, errors, firstError);
}

function loopResult(inflight: number, perWindow: number[], latencies: readonly number[], writes: number, seconds: number, errors: number, firstError: string | null): LoopResult {
  return {
    inflight,
    per_s: round(percentile(perWindow, 50), 1),
    mean_per_s: round(writes / seconds, 1),
    per_s_windows: perWindow,
    p50_ms: round(percentile(latencies, 50)),
    p99_ms: round(percentile(latencies, 99)),
    max_ms: round(percentile(latencies, 100)),
    writes,
    errors,
    first_error: firstError,
  };
}

export interface RetryResult {
  /** From `t0` to the acknowledgement of the first write that succeeded. */
  ms: number;
  /** Attempts started until then. */
  attempts: number;
  /** The last failure seen before the success (what the writer was getting during the outage). */
  lastError: string | null;
}

export interface RetryOptions {
  /** Each attempt fails after this long (the target aborts it). */
  attemptTimeoutMs: number;
  /**
   * A new attempt starts when the previous one failed, or `retryEveryMs` after it started when
   * it is still pending (hedged: a write forwarded to a dead leader can hang until its timeout,
   * and that must not quantize the measurement to the timeout).
   */
  retryEveryMs: number;
  /** At most this many attempts pending at once. */
  maxPending: number;
  /** Throw when nothing succeeded this long after `t0`. */
  giveUpMs: number;
}

/**
 * The failover writer: from `t0` (the kill), write until one write is acknowledged and return
 * the time from `t0` to that acknowledgement. `target(attempt)` picks the target of each
 * attempt (so a writer can rotate endpoints). Attempts still pending at the success are left
 * to finish on their own timeouts; `settled` resolves when they all have.
 */
export async function writeUntilSuccess(
  target: (attempt: number) => KvTarget,
  gen: KvGen,
  t0: number,
  o: RetryOptions,
): Promise<RetryResult & { settled: Promise<void> }> {
  let attempts = 0;
  let lastError: string | null = null;
  let pending = 0;
  const all: Promise<void>[] = [];
  let wake: (() => void) | null = null;
  let done: number | null = null;
  const kick = (): void => {
    const w = wake;
    wake = null;
    w?.();
  };
  const launch = (): void => {
    const { key, value } = gen.next();
    const a = attempts++;
    pending++;
    all.push(
      target(a)
        .put(key, value, o.attemptTimeoutMs)
        .then(
          () => {
            done ??= performance.now() - t0;
          },
          (e: unknown) => {
            lastError = (e as Error).message;
          },
        )
        .finally(() => {
          pending--;
          kick();
        }),
    );
  };
  for (;;) {
    if (done !== null) break;
    if (performance.now() - t0 > o.giveUpMs) {
      await Promise.all(all);
      throw new Error(`no successful write within ${o.giveUpMs} ms after the kill (${attempts} attempts, last error: ${lastError})`);
    }
    const failedFast = pending === 0 && attempts > 0;
    if (pending < o.maxPending) {
      // A refusal that came back at once (dead endpoint, "no leader") shouldn't become a busy loop.
      if (failedFast) await sleep(1);
      if (done !== null) break;
      launch();
    }
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        wake = null;
        resolve();
      }, o.retryEveryMs);
      wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }
  return { ms: done as number, attempts, lastError, settled: Promise.all(all).then(() => undefined) };
}

/**
 * A light steady load: one write at a time, the next `everyMs` after the previous one
 * started (or at once if it took longer). Failures are counted and the writer goes on.
 * `stop()` resolves once the write in progress has ended.
 */
export function steadyWriter(target: KvTarget, gen: KvGen, everyMs: number, timeoutMs = 1_000): { stop(): Promise<{ writes: number; errors: number }> } {
  let running = true;
  let writes = 0;
  let errors = 0;
  const loop = (async () => {
    while (running) {
      const t0 = performance.now();
      const { key, value } = gen.next();
      try {
        await target.put(key, value, timeoutMs);
        writes++;
      } catch {
        errors++;
      }
      const left = everyMs - (performance.now() - t0);
      if (left > 0 && running) await sleep(left);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return { writes, errors };
    },
  };
}

/**
 * Loops of one level run in slices (see etcd-compare --interleave) merged into one result:
 * each slice's full one-second windows, the writes and errors summed, the latencies pooled.
 */
export function mergeLoops(parts: readonly LoopResult[], latencies: readonly number[], seconds: number): LoopResult {
  const writes = parts.reduce((n, r) => n + r.writes, 0);
  const errors = parts.reduce((n, r) => n + r.errors, 0);
  const firstError = parts.find((r) => r.first_error !== null)?.first_error ?? null;
  return loopResult(parts[0]?.inflight ?? 0, parts.flatMap((r) => r.per_s_windows), latencies, writes, seconds, errors, firstError);
}
