// Five members on one event loop (the embedded swarm): a 1 MiB write used to be persisted and
// applied by all four followers back to back in one loop iteration, holding every timer
// (heartbeats, election clocks) for the sum. With a shared TurnBudget, a follower's heavy Ready
// runs in a loop iteration of its own. Checked structurally, so the load on the machine cannot
// make it pass or fail: the followers' big applies per loop iteration are counted.

import { describe, expect, it } from 'vitest';
import { LocalCluster } from '../../src/host/local-cluster.js';
import type { StateMachine } from '../../src/host/node-host.js';
import { TurnBudget } from '../../src/host/turn-budget.js';
import type { RaftConfig } from '../../src/raft/types.js';
import type { Entry } from '../../src/raft/types.js';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import { RealClock } from '../../src/util/clock.js';
import { Prng } from '../../src/util/prng.js';

const BIG = 1 << 20;

function busyMs(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

/** Write `writes` 1 MiB entries; returns the followers' big applies per loop iteration. */
async function bigAppliesPerIteration(opts: { writes: number; applyMs: number; raft: Partial<Omit<RaftConfig, 'id' | 'seed'>> }): Promise<{ total: number; maxPerIteration: number; budget: TurnBudget }> {
  let iteration = 0;
  const perIteration = new Map<number, number>();
  let total = 0;
  const budget = new TurnBudget();
  const machineFor = (id: string): StateMachine => ({
    apply(e: Entry) {
      if (e.data.length < BIG) return null;
      total++;
      // The leader never waits (its heartbeats would wait with it): followers take turns.
      if (cluster.leader()?.id !== id) perIteration.set(iteration, (perIteration.get(iteration) ?? 0) + 1);
      busyMs(opts.applyMs);
      return null;
    },
    snapshot: () => '',
    restore: () => undefined,
  });
  const cluster = new LocalCluster({
    ids: ['n1', 'n2', 'n3', 'n4', 'n5'],
    clock: new RealClock(),
    prng: new Prng(7),
    storageFor: () => new MemoryStorage(),
    machineFor,
    tickMs: 2,
    raft: { maxCommittedBytesPerReady: 1 << 20, ...opts.raft },
    serializeMessages: false,
    turnBudget: budget,
  });
  // A marker in every loop iteration (an immediate queues the next in the next iteration's
  // check phase): the iterations between which the applies are counted.
  let marking = true;
  const mark = (): void => {
    iteration++;
    if (marking) setImmediate(mark);
  };
  setImmediate(mark);
  const keepAlive = setInterval(() => {}, 1000);
  try {
    cluster.startAll();
    const t0 = Date.now();
    while (!cluster.leader()) {
      if (Date.now() - t0 > 10_000) throw new Error('no leader');
      await new Promise((r) => setTimeout(r, 10));
    }
    const value = 'x'.repeat(BIG);
    for (let i = 0; i < opts.writes; i++) await cluster.leader()!.propose(value);
    // Let every follower apply the last one.
    const t1 = Date.now();
    while (total < opts.writes * 5 && Date.now() - t1 < 10_000) await new Promise((r) => setTimeout(r, 20));
  } finally {
    marking = false;
    clearInterval(keepAlive);
    for (const h of cluster.hosts.values()) h.stop('test over');
  }
  return { total, maxPerIteration: Math.max(...perIteration.values()), budget };
}

describe('shared turn budget', () => {
  it('followers apply 1 MiB entries one per loop iteration (before: all four in the same one)', async () => {
    // Elections are not what this checks: long timeouts keep a loaded machine from causing one.
    const r = await bigAppliesPerIteration({ writes: 10, applyMs: 0, raft: { electionTicksMin: 2000, electionTicksMax: 4000, heartbeatTicks: 500 } });
    expect(r.total).toBe(50);
    expect(r.maxPerIteration).toBe(1);
    expect(r.budget.ran).toBeGreaterThanOrEqual(40);
  }, 60_000);

  it('one per iteration however long they waited (the first budget let every waiting one through at once after a heartbeat interval)', async () => {
    // Each apply takes 15 ms and the heartbeat interval is 10 ms: the first budget's waiting
    // Readies passed their deadline (one heartbeat interval) and all ran in one iteration.
    const r = await bigAppliesPerIteration({ writes: 6, applyMs: 15, raft: { electionTicksMin: 2000, electionTicksMax: 4000, heartbeatTicks: 5 } });
    expect(r.total).toBe(30);
    expect(r.maxPerIteration).toBe(1);
    expect(r.budget.maxWaiting).toBeGreaterThanOrEqual(2);
  }, 60_000);

  it('runs queued items first in first out, one per iteration, and goes on after one throws', async () => {
    const order: string[] = [];
    let iteration = 0;
    const seen = new Map<string, number>();
    let marking = true;
    const mark = (): void => {
      iteration++;
      if (marking) setImmediate(mark);
    };
    setImmediate(mark);
    const budget = new TurnBudget();
    const uncaught: unknown[] = [];
    const onUncaught = (e: unknown): void => void uncaught.push(e);
    process.on('uncaughtException', onUncaught);
    try {
      for (const name of ['a', 'b', 'c', 'd']) {
        budget.defer(() => {
          order.push(name);
          seen.set(name, iteration);
          if (name === 'b') throw new Error('b failed');
        });
      }
      const t0 = Date.now();
      while (order.length < 4 && Date.now() - t0 < 5_000) await new Promise((r) => setTimeout(r, 5));
    } finally {
      marking = false;
      process.off('uncaughtException', onUncaught);
    }
    expect(order).toEqual(['a', 'b', 'c', 'd']);
    expect(new Set(seen.values()).size).toBe(4);
    expect(uncaught.map((e) => (e as Error).message)).toEqual(['b failed']);
    expect(budget.waiting).toBe(0);
  });
});

describe('turn budget with two items per iteration', () => {
  it('runs them in pairs, first in first out', async () => {
    let iteration = 0;
    let marking = true;
    const mark = (): void => {
      iteration++;
      if (marking) setImmediate(mark);
    };
    setImmediate(mark);
    const budget = new TurnBudget(undefined, 2);
    const ran: Array<[string, number]> = [];
    try {
      for (const name of ['a', 'b', 'c', 'd', 'e']) budget.defer(() => void ran.push([name, iteration]));
      const t0 = Date.now();
      while (ran.length < 5 && Date.now() - t0 < 5_000) await new Promise((r) => setTimeout(r, 5));
    } finally {
      marking = false;
    }
    expect(ran.map(([n]) => n)).toEqual(['a', 'b', 'c', 'd', 'e']);
    const [a, b, c, d, e] = ran.map(([, i]) => i);
    expect(a).toBe(b);
    expect(c).toBe(d);
    expect(new Set([a, c, e]).size).toBe(3);
  });
});
