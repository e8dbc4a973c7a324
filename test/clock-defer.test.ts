// RealClock.defer: every deferred function of a turn shares one setImmediate (hundreds of
// members in one process defer a process round or a delivery per message), in FIFO order,
// and what they defer runs in a later turn, as with an immediate each.

import { afterEach, describe, expect, it, vi } from 'vitest';
import { RealClock } from '../src/util/clock.js';

afterEach(() => {
  vi.restoreAllMocks();
});

const turn = (): Promise<void> => new Promise((r) => setTimeout(r, 5));

describe('RealClock.defer', () => {
  it('runs a turn\'s deferred functions in order from one setImmediate, shared by every clock', async () => {
    const spy = vi.spyOn(globalThis, 'setImmediate');
    const a = new RealClock();
    const b = new RealClock();
    const order: number[] = [];
    for (let i = 0; i < 100; i++) (i % 2 === 0 ? a : b).defer(() => order.push(i));
    expect(spy).toHaveBeenCalledTimes(1);
    await turn();
    expect(order).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });

  it('a function deferred while the batch runs waits for the next turn, behind an immediate queued before it', async () => {
    const clock = new RealClock();
    const order: string[] = [];
    clock.defer(() => {
      order.push('first');
      setImmediate(() => order.push('immediate'));
      clock.defer(() => order.push('nested'));
    });
    clock.defer(() => order.push('second'));
    await turn();
    expect(order).toEqual(['first', 'second', 'immediate', 'nested']);
  });
});
