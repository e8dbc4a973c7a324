import type { Clock, TimerHandle } from './clock.js';
import { BinaryHeap } from './heap.js';

/**
 * A wakeup this late after its slot is a stall of the loop (a long task, a paused process);
 * below it, ordinary timer lateness and a busy machine's scheduling (a few ms).
 */
const STALL_LATE_MS = 20;

/** A timer of the wheel, and its handle (no lookup table: idle members re-arm thousands a second). */
class Entry {
  cancelled = false;
  constructor(
    readonly id: number,
    /** Slot time (base clock) the entry is due at. */
    readonly at: number,
    readonly fn: () => void,
    readonly wheel: TickWheel,
  ) {}
}

/** The timers due at one slot time, in creation order; those before head have run or been skipped. */
interface Slot {
  readonly entries: Entry[];
  head: number;
}

/**
 * One timer for many: a Clock whose timers all share a single timer of the base clock.
 * Due times are rounded up to a grid of slotMs, so members whose ticks fall in the same slot
 * wake the process once, not once each. With hundreds of Raft members in one process (many
 * swarms) this turns a wakeup per member per tick into at most one per slot.
 *
 * Timers fire in (slot, creation order), when the base clock fires the slot's timer: at most
 * one slot later than asked (plus the base timer's own lateness); a timer set
 * from inside a firing waits for the next arming of the base timer even when already due,
 * so a callback that re-arms itself at 0 ms cannot starve the loop. now() and defer() are
 * the base clock's: only timing passes through the wheel, randomness never does.
 */
export class TickWheel implements Clock {
  /** Timers by slot time, and the slot times in a heap: hundreds of members share a few dozen
   * slots, so a timer costs an append, and firing one a step along an array. */
  private readonly slots = new Map<number, Slot>();
  private readonly times = new BinaryHeap<number>((a, b) => a < b);
  /** Entries set and neither fired nor cancelled. */
  private live = 0;
  private nextId = 1;
  /** The base timer, and the slot it is armed for. */
  private armed: { handle: TimerHandle; at: number } | null = null;
  /** Inside fire(): timers set meanwhile do not arm the base timer (fire() does, at its end). */
  private firing = false;
  /** Wakeups of the base timer so far (a measure of what the wheel saved). */
  fired = 0;
  /** Stalls seen (see stalledMs): their total, and the time up to which the loop is accounted for. */
  private stalled = 0;
  private accountedTo = -Infinity;

  constructor(
    private readonly base: Clock,
    readonly slotMs = 2,
    /** Grid for timers that accept slack (setTimeoutWithin): they gather on fewer wakeups. */
    readonly coarseSlotMs = slotMs,
  ) {
    if (!(slotMs > 0)) throw new RangeError(`TickWheel: slotMs ${slotMs}: accepted: a number of ms > 0`);
    if (!(coarseSlotMs >= slotMs)) throw new RangeError(`TickWheel: coarseSlotMs ${coarseSlotMs}: accepted: a number of ms >= slotMs (${slotMs})`);
  }

  now(): number {
    return this.base.now();
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    return this.setTimeoutWithin(fn, ms, 0);
  }

  /**
   * Like setTimeout, but firing up to slackMs later is fine: the timer then goes to the next
   * point of the coarse grid if that is within the slack, where it shares a wakeup with every
   * other timer that accepted slack (a leader's heartbeat, an idle member's bookkeeping).
   */
  setTimeoutWithin(fn: () => void, ms: number, slackMs: number): TimerHandle {
    const delay = Number.isFinite(ms) && ms > 0 ? ms : 0;
    const due = this.base.now() + delay;
    const coarse = Math.ceil(due / this.coarseSlotMs) * this.coarseSlotMs;
    const at = coarse <= due + slackMs ? coarse : Math.ceil(due / this.slotMs) * this.slotMs;
    const e = new Entry(this.nextId++, at, fn, this);
    let slot = this.slots.get(at);
    if (!slot) {
      this.slots.set(at, (slot = { entries: [], head: 0 }));
      this.times.push(at);
    }
    slot.entries.push(e);
    this.live++;
    this.arm();
    return e;
  }

  /** Lazy: the entry stays in its slot, marked, and is skipped (its slot may still wake the base timer once). */
  clearTimeout(handle: TimerHandle): void {
    // Foreign handles, and entries already fired or cancelled, are ignored.
    if (!(handle instanceof Entry) || handle.wheel !== this || handle.cancelled) return;
    handle.cancelled = true;
    this.live--;
  }

  /**
   * The time the loop was seen stalled so far: each wakeup later than STALL_LATE_MS after its
   * slot adds its lateness beyond that (intervals counted once), and so does the armed slot if
   * it is overdue at this call (a stall in progress, or one the base timer has not fired after
   * yet: I/O callbacks and immediates run before it). Every member keeps a timer in the wheel,
   * so a stall long enough to matter crosses a slot. Hosts count time that was not stalled in
   * full, so an idle member can sleep until its deadline (see NodeHost.advanceTicks).
   */
  stalledMs(now: number = this.base.now()): number {
    const a = this.armed;
    if (a) this.noteLate(a.at, now);
    return this.stalled;
  }

  private noteLate(at: number, now: number): void {
    const from = Math.max(at + STALL_LATE_MS, this.accountedTo);
    if (now > from) this.stalled += now - from;
    if (now > this.accountedTo) this.accountedTo = now;
  }

  defer(fn: () => void): void {
    if (this.base.defer) this.base.defer(fn);
    else this.base.setTimeout(fn, 0);
  }

  /** Timers set and neither fired nor cancelled. */
  pending(): number {
    return this.live;
  }

  /** The earliest slot time holding a timer not yet run nor cancelled (dropping spent slots). */
  private earliest(): number | undefined {
    for (;;) {
      const t = this.times.peek();
      if (t === undefined) return undefined;
      const slot = this.slots.get(t) as Slot;
      while (slot.head < slot.entries.length && (slot.entries[slot.head] as Entry).cancelled) slot.head++;
      if (slot.head < slot.entries.length) return t;
      this.times.pop();
      this.slots.delete(t);
    }
  }

  /** Arm the base timer for the earliest live slot, unless it already is (or earlier). */
  private arm(): void {
    if (this.firing) return; // fire() arms once it is done
    const at = this.earliest();
    if (at === undefined) return;
    if (this.armed) {
      if (this.armed.at <= at) return;
      this.base.clearTimeout(this.armed.handle);
    }
    const handle = this.base.setTimeout(() => this.fire(at), Math.max(0, at - this.base.now()));
    this.armed = { handle, at };
  }

  private fire(at: number): void {
    this.armed = null;
    this.fired++;
    this.noteLate(at, this.base.now());
    this.firing = true;
    // Only entries that existed when the base timer fired: one set meanwhile waits for the next arming.
    const lastId = this.nextId - 1;
    try {
      slots: for (let t = this.earliest(); t !== undefined && t <= at; t = this.earliest()) {
        const slot = this.slots.get(t) as Slot;
        while (slot.head < slot.entries.length) {
          const e = slot.entries[slot.head] as Entry;
          if (e.cancelled) {
            slot.head++;
            continue;
          }
          // Set during this firing (it can only land in the last slot run): next arming.
          if (e.id > lastId) break slots;
          slot.head++;
          // Fired: a later clearTimeout of its handle is a no-op.
          e.cancelled = true;
          this.live--;
          e.fn();
        }
      }
    } finally {
      this.firing = false;
      this.arm();
    }
  }
}
