// The five members of an embedded swarm share this process's event loop, and the four
// followers get each append in the same loop iteration. Each 1 MiB value is written to every
// member's log, then stored again as a row by every member's checkpoint (8-25 ms of SQLite work
// per MiB on the bench machine). Through the process's turn budget, each such heavy item, the
// leader's included, runs in a loop iteration of its own, and a checkpoint stores about one
// value's rows, in an iteration after the one that applied them. Checked structurally (heavy
// items counted per loop iteration), so the machine's load cannot decide it. The code before
// ran two followers' writes per iteration, the leader's write and its checkpoint in the
// iterations where they came, and checkpoints of 4-12 values.

import { describe, expect, it } from 'vitest';
import { memoryStore } from '../../src/service/memory.js';
import type { StateMachine } from '../../src/host/node-host.js';
import type { LogStorage, MachineCheckpoint, PersistBatch } from '../../src/storage/types.js';
import { swarmWithAgents, testResources } from './service-util.js';

const res = testResources();
const BIG = 1 << 19;
const VALUE = (1 << 20) - 16;
const WRITES = 8;

function rowChars(c: MachineCheckpoint): number {
  let n = 0;
  for (const t of Object.values(c.tables)) for (const row of t.put) n += row[1].length;
  return n;
}

describe('1 MiB values in an embedded swarm', () => {
  it('every member writes and checkpoints them one heavy item per loop iteration, leader included', async () => {
    const { coordinator, swarm } = await swarmWithAgents(res.dir('large-values-turns'), { agents: 5, durability: 'full' });
    res.keep(coordinator);
    let iteration = 0;
    let marking = true;
    const mark = (): void => {
      iteration++;
      if (marking) setImmediate(mark);
    };
    setImmediate(mark);
    const perIteration = new Map<number, string[]>();
    let bigWrites = 0;
    const checkpointChars: number[] = [];
    const note = (what: string): void => {
      const list = perIteration.get(iteration) ?? [];
      list.push(what);
      perIteration.set(iteration, list);
    };
    // A checkpoint in the iteration where its member applied a large value: not deferred.
    const applyIteration = new Map<string, number>();
    const checkpointsWithApply: string[] = [];
    for (const [id, host] of swarm.cluster.hosts) {
      const { storage, machine } = (host as unknown as { opts: { storage: LogStorage; machine: StateMachine } }).opts;
      const apply = machine.apply.bind(machine);
      machine.apply = (e) => {
        if (e.data.length >= BIG) applyIteration.set(id, iteration);
        return apply(e);
      };
      const count = (b: PersistBatch): void => {
        if (b.entries.reduce((n, e) => n + e.data.length, 0) < BIG) return;
        bigWrites++;
        note(`${id} write`);
      };
      const save = storage.save.bind(storage);
      storage.save = (b) => {
        count(b);
        save(b);
      };
      const saveAsync = storage.saveAsync?.bind(storage);
      if (saveAsync) {
        storage.saveAsync = (b, done) => {
          count(b);
          return saveAsync(b, done);
        };
      }
      const checkpoint = storage.checkpoint!.bind(storage);
      storage.checkpoint = (c, defer) => {
        const chars = rowChars(c);
        if (chars >= BIG) {
          checkpointChars.push(chars);
          note(`${id} checkpoint`);
          if (applyIteration.get(id) === iteration) checkpointsWithApply.push(`${id} at iteration ${iteration}`);
        }
        return checkpoint(c, defer);
      };
    }
    const value = 'v'.repeat(VALUE);
    try {
      for (let i = 0; i < WRITES; i++) await memoryStore(swarm, { key: `big/${i}`, value });
      const t0 = Date.now();
      while (bigWrites < WRITES * 5 && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 20));
    } finally {
      marking = false;
    }
    expect(bigWrites).toBe(WRITES * 5);
    // Each member checkpointed the values it applied (a leader's first may wait for two).
    expect(checkpointChars.length).toBeGreaterThanOrEqual(WRITES * 5 * 0.6);
    expect(Math.max(...checkpointChars)).toBeLessThan(2.5 * VALUE);
    expect(checkpointsWithApply).toEqual([]);
    const crowded = [...perIteration.entries()].filter(([, items]) => items.length > 1);
    expect(crowded).toEqual([]);
  }, 120_000);
});
