import type { Clock, TimerHandle } from './clock.js';
import { BinaryHeap } from './heap.js';

interface Timer {
  readonly id: number;
  readonly time: number;
  readonly fn: () => void;
  cancelled: boolean;
}

export interface VirtualClockOptions {
  /** Events one run call may execute before it throws. Catches livelock, e.g. a timer that
   * keeps rescheduling itself at 0 ms so virtual time never advances. */
  maxEventsPerCall?: number;
}

/**
 * Deterministic clock for simulation. Time only moves when the owner runs it. Timers fire
 * in (time, creation order): equal-time timers are FIFO, so a run depends on nothing but
 * the sequence of calls made against the clock.
 */
export class VirtualClock implements Clock {
  private time = 0;
  private nextId = 1;
  private live = 0;
  private running = false;
  private readonly maxEventsPerCall: number;
  // Ids are allocated monotonically, so they double as the FIFO tie-breaker.
  private readonly queue = new BinaryHeap<Timer>((a, b) => a.time < b.time || (a.time === b.time && a.id < b.id));
  // Maps handles we issued to their timers; foreign or stale handles are ignored.
  private readonly byId = new Map<number, Timer>();

  constructor(opts: VirtualClockOptions = {}) {
    this.maxEventsPerCall = opts.maxEventsPerCall ?? 10_000_000;
  }

  now(): number {
    return this.time;
  }

  /** Negative, NaN or infinite delays become 0 (fire on the next turn, never synchronously). */
  setTimeout(fn: () => void, ms: number): TimerHandle {
    const delay = Number.isFinite(ms) && ms > 0 ? ms : 0;
    const timer: Timer = { id: this.nextId++, time: this.time + delay, fn, cancelled: false };
    this.queue.push(timer);
    this.byId.set(timer.id, timer);
    this.live++;
    return { id: timer.id };
  }

  /** Lazy deletion: the timer stays in the heap, marked, and is skipped when popped. */
  clearTimeout(handle: TimerHandle): void {
    const id = (handle as { id?: unknown }).id;
    if (typeof id !== 'number') return;
    const timer = this.byId.get(id);
    if (!timer) return;
    timer.cancelled = true;
    this.byId.delete(id);
    this.live--;
  }

  /** Timers scheduled and neither fired nor cancelled. */
  pending(): number {
    return this.live;
  }

  /** Virtual time of the next live timer, or undefined when none is pending. */
  nextTime(): number | undefined {
    return this.peekLive()?.time;
  }

  /**
   * Fire every timer due at or before `t` (including ones scheduled meanwhile), advancing
   * now() to each timer's time, then to `t`. Time never goes backwards: t < now() runs
   * nothing. Returns the number of timers fired. An exception from a timer propagates,
   * leaving now() at that timer's time.
   */
  runUntil(t: number, maxEvents: number = this.maxEventsPerCall): number {
    return this.guarded(() => {
      let fired = 0;
      for (let next = this.peekLive(); next && next.time <= t; next = this.peekLive()) {
        if (fired >= maxEvents) {
          throw new Error(
            `VirtualClock: more than ${maxEvents} events in runUntil(${t}) at now=${this.time}; ` +
              'probable livelock (a timer rescheduling itself without advancing time?)',
          );
        }
        this.fire(next);
        fired++;
      }
      if (t > this.time) this.time = t;
      return fired;
    });
  }

  runFor(ms: number, maxEvents?: number): number {
    return this.runUntil(this.time + ms, maxEvents);
  }

  /** Fire the single next timer, advancing now() to its time. False when none is pending. */
  step(): boolean {
    return this.guarded(() => {
      const next = this.peekLive();
      if (!next) return false;
      this.fire(next);
      return true;
    });
  }

  /** Run until no timers remain; throws past maxEvents (periodic timers never drain). */
  runAll(maxEvents: number = this.maxEventsPerCall): number {
    return this.guarded(() => {
      let fired = 0;
      for (let next = this.peekLive(); next; next = this.peekLive()) {
        if (fired >= maxEvents) {
          throw new Error(`VirtualClock: runAll() exceeded ${maxEvents} events at now=${this.time}; timers never drain`);
        }
        this.fire(next);
        fired++;
      }
      return fired;
    });
  }

  private peekLive(): Timer | undefined {
    let top = this.queue.peek();
    while (top && top.cancelled) {
      this.queue.pop();
      top = this.queue.peek();
    }
    return top;
  }

  private fire(timer: Timer): void {
    this.queue.pop();
    this.byId.delete(timer.id);
    this.live--;
    this.time = timer.time;
    timer.fn();
  }

  // A timer callback that runs the clock would fire later timers inside an earlier one,
  // breaking the ordering guarantee; refuse it instead of silently nesting.
  private guarded<R>(body: () => R): R {
    if (this.running) throw new Error('VirtualClock: run/step called re-entrantly from a timer callback');
    this.running = true;
    try {
      return body();
    } finally {
      this.running = false;
    }
  }
}
