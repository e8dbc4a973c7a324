// A member's view of time in the simulator: its own clock, running at a seeded rate (drift)
// from a seeded offset, over the one virtual clock that orders the whole run. It also models
// a process pause (GC, SIGSTOP, a VM descheduled): while paused, nothing of the member runs:
// its timers and the messages that arrive for it queue, in arrival order, and run when it
// wakes, against whatever state it had when it stopped.

import type { Message } from '../../src/raft/types.js';
import type { Transport } from '../../src/host/transport.js';
import type { Clock, TimerHandle } from '../../src/util/clock.js';
import type { VirtualClock } from '../../src/util/virtual-clock.js';

interface NodeTimer {
  fn: () => void;
  base: TimerHandle | null;
  cancelled: boolean;
}

export class NodeClock implements Clock {
  private seq = 0;
  private readonly timers = new Map<number, NodeTimer>();
  /** Work that arrived while paused, in arrival order. */
  private queue: Array<() => void> = [];
  private pausedFlag = false;

  /** `rate`: local ms per virtual ms (e.g. 0.9-1.1); `offsetMs`: local time at virtual 0. */
  constructor(
    private readonly base: VirtualClock,
    readonly rate = 1,
    readonly offsetMs = 0,
  ) {}

  now(): number {
    return this.offsetMs + this.base.now() * this.rate;
  }

  /** This clock's reading at virtual time `virtualMs` (the network's clock is the virtual one). */
  localAt(virtualMs: number): number {
    return this.offsetMs + virtualMs * this.rate;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = ++this.seq;
    const t: NodeTimer = { fn, base: null, cancelled: false };
    this.timers.set(id, t);
    const local = Number.isFinite(ms) && ms > 0 ? ms : 0;
    // A hair late rather than early: a tick timer must find its whole tick elapsed locally.
    const virtualMs = local === 0 ? 0 : local / this.rate + 1e-6;
    t.base = this.base.setTimeout(() => {
      t.base = null;
      this.runOrQueue(() => {
        if (t.cancelled) return;
        this.timers.delete(id);
        t.fn();
      });
    }, virtualMs);
    return { id };
  }

  /** Works on a timer that already fired into a pause's queue too. */
  clearTimeout(handle: TimerHandle): void {
    const id = (handle as { id?: unknown }).id;
    if (typeof id !== 'number') return;
    const t = this.timers.get(id);
    if (!t) return;
    t.cancelled = true;
    this.timers.delete(id);
    if (t.base) this.base.clearTimeout(t.base);
  }

  get paused(): boolean {
    return this.pausedFlag;
  }

  pause(): void {
    this.pausedFlag = true;
  }

  /** Wake up: run what queued, in order, each as its own event (as a woken process would). */
  wake(): void {
    if (!this.pausedFlag) return;
    this.pausedFlag = false;
    const q = this.queue;
    this.queue = [];
    for (const fn of q) this.base.setTimeout(() => this.runOrQueue(fn), 0);
  }

  /** The process died: whatever it had queued dies with it. */
  reset(): void {
    this.pausedFlag = false;
    this.queue = [];
    for (const [id, t] of this.timers) if (t.base === null) this.timers.delete(id);
  }

  get queued(): number {
    return this.queue.length;
  }

  runOrQueue(fn: () => void): void {
    if (this.pausedFlag) this.queue.push(fn);
    else fn();
  }
}

/** The member's network endpoint as its process sees it: deliveries wait out a pause. */
export class PausableTransport implements Transport {
  constructor(
    private readonly inner: Transport,
    private readonly clock: NodeClock,
    private readonly onSend?: (m: Message) => void,
  ) {}

  send(msg: Message): void {
    this.onSend?.(msg);
    this.inner.send(msg);
  }

  onMessage(handler: (msg: Message, arrivedAt?: number) => void): void {
    // A held heartbeat's arrival, on the network's (virtual) clock, read on this member's.
    this.inner.onMessage((m, at) => this.clock.runOrQueue(() => handler(m, at === undefined ? undefined : this.clock.localAt(at))));
  }

  drainInbound(): void {
    this.inner.drainInbound?.();
  }

  close(): void {
    this.inner.close();
  }
}
