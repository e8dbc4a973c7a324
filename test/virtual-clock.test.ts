import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { BinaryHeap } from '../src/util/heap.js';
import { VirtualClock } from '../src/util/virtual-clock.js';

describe('BinaryHeap', () => {
  it('pops in sorted order (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer()), (xs) => {
        const h = new BinaryHeap<number>((a, b) => a < b);
        xs.forEach((x) => h.push(x));
        expect(h.size).toBe(xs.length);
        const out: number[] = [];
        while (h.size > 0) out.push(h.pop() as number);
        expect(out).toEqual([...xs].sort((a, b) => a - b));
        expect(h.pop()).toBeUndefined();
      }),
    );
  });

  it('interleaved push/pop keeps the minimum on top', () => {
    const h = new BinaryHeap<number>((a, b) => a < b);
    h.push(5);
    h.push(1);
    expect(h.peek()).toBe(1);
    expect(h.pop()).toBe(1);
    h.push(3);
    h.push(7);
    expect(h.pop()).toBe(3);
    expect(h.pop()).toBe(5);
    h.clear();
    expect(h.size).toBe(0);
  });
});

describe('VirtualClock', () => {
  it('fires by time, FIFO for equal times, advancing now to each timer', () => {
    const c = new VirtualClock();
    const log: string[] = [];
    const at = (name: string) => () => log.push(`${name}@${c.now()}`);
    c.setTimeout(at('b'), 10);
    c.setTimeout(at('a'), 5);
    c.setTimeout(at('c1'), 10);
    c.setTimeout(at('c2'), 10);
    c.setTimeout(at('z'), 0);
    expect(c.pending()).toBe(5);
    expect(c.runUntil(100)).toBe(5);
    expect(log).toEqual(['z@0', 'a@5', 'b@10', 'c1@10', 'c2@10']);
    expect(c.now()).toBe(100);
    expect(c.pending()).toBe(0);
  });

  it('never fires synchronously; negative/NaN delays act as 0', () => {
    const c = new VirtualClock();
    let fired = 0;
    c.setTimeout(() => fired++, -5);
    c.setTimeout(() => fired++, Number.NaN);
    expect(fired).toBe(0);
    c.runUntil(0);
    expect(fired).toBe(2);
  });

  it('clearTimeout cancels, including from inside another timer; stale handles are harmless', () => {
    const c = new VirtualClock();
    const log: number[] = [];
    const h2 = c.setTimeout(() => log.push(2), 2);
    c.setTimeout(() => c.clearTimeout(h3), 1);
    const h3 = c.setTimeout(() => log.push(3), 3);
    c.clearTimeout(h2);
    expect(c.pending()).toBe(2);
    c.runFor(10);
    expect(log).toEqual([]);
    c.clearTimeout(h2);
    c.clearTimeout({ id: 999 });
    expect(c.pending()).toBe(0);
  });

  it('runUntil bounds: runs timers scheduled meanwhile if due, leaves later ones', () => {
    const c = new VirtualClock();
    const log: number[] = [];
    c.setTimeout(() => {
      log.push(c.now());
      c.setTimeout(() => log.push(c.now()), 5); // due at 10
      c.setTimeout(() => log.push(c.now()), 6); // due at 11
    }, 5);
    c.runUntil(10);
    expect(log).toEqual([5, 10]);
    expect(c.now()).toBe(10);
    expect(c.pending()).toBe(1);
    expect(c.nextTime()).toBe(11);
    c.runUntil(3); // never backwards
    expect(c.now()).toBe(10);
    c.runFor(1);
    expect(log).toEqual([5, 10, 11]);
  });

  it('step runs exactly one timer', () => {
    const c = new VirtualClock();
    const log: number[] = [];
    c.setTimeout(() => log.push(1), 7);
    c.setTimeout(() => log.push(2), 9);
    expect(c.step()).toBe(true);
    expect(log).toEqual([1]);
    expect(c.now()).toBe(7);
    expect(c.step()).toBe(true);
    expect(c.step()).toBe(false);
    expect(c.now()).toBe(9);
  });

  it('throws a clear error on livelock', () => {
    const c = new VirtualClock({ maxEventsPerCall: 1000 });
    const loop = () => c.setTimeout(loop, 0);
    loop();
    expect(() => c.runUntil(1)).toThrow(/livelock/);
    expect(() => c.runUntil(1, 50)).toThrow(/more than 50 events/);
    expect(() => c.runAll(10)).toThrow(/never drain/);
  });

  it('rejects re-entrant runs from a timer', () => {
    const c = new VirtualClock();
    c.setTimeout(() => c.runFor(1), 0);
    expect(() => c.runUntil(0)).toThrow(/re-entrantly/);
    // The clock stays usable afterwards.
    c.setTimeout(() => {}, 1);
    expect(c.runAll()).toBe(1);
  });

  it('is deterministic (property): same schedule, same firing order', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 20 }), { maxLength: 50 }), (delays) => {
        const run = () => {
          const c = new VirtualClock();
          const order: number[] = [];
          delays.forEach((d, i) => c.setTimeout(() => order.push(i), d));
          c.runAll();
          return order;
        };
        const order = run();
        expect(order).toEqual(run());
        // Stable sort by delay is exactly (time, insertion) order.
        expect(order).toEqual(delays.map((d, i) => [d, i] as const).sort((a, b) => a[0] - b[0]).map(([, i]) => i));
      }),
    );
  });
});
