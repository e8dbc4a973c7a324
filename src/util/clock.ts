/** Time source owned by the host: real in production, virtual in the simulator. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
  /** Run fn after the current turn, before timers (setImmediate); default setTimeout 0. */
  defer?(fn: () => void): void;
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
    setImmediate(fn);
  }
}
