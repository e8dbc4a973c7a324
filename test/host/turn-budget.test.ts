// Five members on one event loop (the embedded swarm): a 1 MiB write used to be persisted and
// applied by all five back to back in one loop iteration, holding every timer (heartbeats,
// election clocks) for the sum. With a shared TurnBudget, a follower's heavy Ready waits for
// the due timers once the slice is spent. Checked structurally, so the load on the machine
// cannot make it pass or fail: with a zero-length slice, the followers' big applies per loop
// iteration are counted (before: all four in one).

import { describe, expect, it } from 'vitest';
import { LocalCluster } from '../../src/host/local-cluster.js';
import type { StateMachine } from '../../src/host/node-host.js';
import { TurnBudget } from '../../src/host/turn-budget.js';
import type { Entry } from '../../src/raft/types.js';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import { RealClock } from '../../src/util/clock.js';
import { Prng } from '../../src/util/prng.js';

const BIG = 1 << 20;

describe('shared turn budget', () => {
  it('followers apply 1 MiB entries one per loop iteration (before: all four in the same one)', async () => {
    let turn = 0;
    const bigAppliesPerTurn = new Map<number, number>();
    let total = 0;
    const machineFor = (id: string): StateMachine => ({
      apply(e: Entry) {
        if (e.data.length < BIG) return null;
        total++;
        // The leader never waits (its heartbeats would wait with it): followers take turns.
        if (cluster.leader()?.id !== id) bigAppliesPerTurn.set(turn, (bigAppliesPerTurn.get(turn) ?? 0) + 1);
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
      // Elections are not what this checks: long timeouts keep a loaded machine from causing one.
      // A follower's heavy Ready waits at most one heartbeat interval (here 1 s): never reached.
      raft: { electionTicksMin: 2000, electionTicksMax: 4000, heartbeatTicks: 500, maxCommittedBytesPerReady: 1 << 20 },
      serializeMessages: false,
      // Spent as soon as it started: every heavy Ready after the first waits for the timers.
      turnBudget: new TurnBudget(0),
    });
    // A marker in every loop iteration (an immediate queues the next in the next iteration's
    // check phase): the turns between which the applies are counted.
    let marking = true;
    const mark = (): void => {
      turn++;
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
      for (let i = 0; i < 10; i++) await cluster.leader()!.propose(value);
      // Let every follower apply the last one.
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      marking = false;
      clearInterval(keepAlive);
      for (const h of cluster.hosts.values()) h.stop('test over');
    }
    expect(total).toBe(50);
    expect(Math.max(...bigAppliesPerTurn.values())).toBe(1);
  }, 60_000);
});
