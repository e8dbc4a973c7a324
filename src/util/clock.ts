/** Time source owned by the host: real in production, virtual in the simulator. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
  /** Run fn after the current turn, before timers (setImmediate); default setTimeout 0. */
  defer?(fn: () => void): void;
  /** setTimeout that may fire up to slackMs late, to share a wakeup (TickWheel); default setTimeout. */
  setTimeoutWithin?(fn: () => void, ms: number, slackMs: number): TimerHandle;
  /**
   * Milliseconds the event loop was seen stalled so far (its timers running late), a running
   * total: the difference between two readings is the stalled part of the time between them
   * (TickWheel). Without it, a host must treat any long interval as possibly stalled.
   */
  stalledMs?(now: number): number;
}

export type TimerHandle = { readonly id: number } | NodeJS.Timeout;

/** Wall-clock implementation. Timers are unref'd so they never keep the process alive. */
export class RealClock implements Clock {
  now(): number {
    return performance.now();
  }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  }
  clearTimeout(handle: TimerHandle): void {
    clearTimeout(handle as NodeJS.Timeout);
  }
  defer(fn: () => void): void {
    // setTimeout(0) costs ~1 ms per hop; setImmediate keeps hops sub-millisecond. It must stay
    // referenced: with only unref'd immediates pending, libuv's poll phase sleeps until the
    // next timer (~10 ms per hop, measured). A run immediate keeps nothing alive.
    // Every clock in the process shares one immediate per turn (many members, many messages
    // each): same FIFO order as an immediate each, without an immediate object per hop.
    deferred.push(fn);
    if (deferred.length === 1) setImmediate(drainDeferred);
  }
}

/** Functions deferred this turn, in order; drained by one immediate. */
let deferred: Array<() => void> = [];

function drainDeferred(): void {
  const batch = deferred;
  // What these defer runs in the next turn, as it would with an immediate of its own.
  deferred = [];
  let i = 0;
  try {
    for (; i < batch.length; i++) (batch[i] as () => void)();
  } finally {
    // A throw must not drop the rest: they run next turn, ahead of what was deferred since.
    if (i < batch.length - 1) {
      const rest = batch.slice(i + 1);
      const later = deferred;
      deferred = rest.concat(later);
      if (later.length === 0) setImmediate(drainDeferred);
    }
  }
}
