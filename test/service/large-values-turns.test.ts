// The five members of an embedded swarm share this process's event loop, and the four
// followers get each append in the same loop iteration. Their 1 MiB writes (8-11 ms of SQLite
// work each on the bench machine) used to run back to back in that iteration, holding every
// timer meanwhile; through the process's turn budget at most two run per iteration. Checked
// structurally (writes counted per loop iteration), so the machine's load cannot decide it:
// on the code before, all four followers wrote in the same iteration.

import { describe, expect, it } from 'vitest';
import type { NodeHost } from '../../src/host/node-host.js';
import { memoryStore } from '../../src/service/memory.js';
import type { LogStorage, PersistBatch } from '../../src/storage/types.js';
import { swarmWithAgents, testResources } from './service-util.js';

const res = testResources();
const BIG = 1 << 19;

describe('1 MiB values in an embedded swarm', () => {
  it('followers write them at most two per loop iteration (before: all four in one)', async () => {
    const { coordinator, swarm } = await swarmWithAgents(res.dir('large-values-turns'), { agents: 5, durability: 'full' });
    res.keep(coordinator);
    let iteration = 0;
    let marking = true;
    const mark = (): void => {
      iteration++;
      if (marking) setImmediate(mark);
    };
    setImmediate(mark);
    const followerWrites = new Map<number, number>();
    let bigWrites = 0;
    for (const host of swarm.cluster.hosts.values()) {
      const storage = (host as unknown as { opts: { storage: LogStorage } }).opts.storage;
      const count = (b: PersistBatch): void => {
        if (b.entries.reduce((n, e) => n + e.data.length, 0) < BIG) return;
        bigWrites++;
        if (swarm.cluster.leader()?.id !== (host as NodeHost).id) followerWrites.set(iteration, (followerWrites.get(iteration) ?? 0) + 1);
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
    }
    const value = 'v'.repeat((1 << 20) - 16);
    try {
      for (let i = 0; i < 6; i++) await memoryStore(swarm, { key: `big/${i}`, value });
      const t0 = Date.now();
      while (bigWrites < 30 && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 20));
    } finally {
      marking = false;
    }
    expect(bigWrites).toBe(30);
    expect(Math.max(...followerWrites.values())).toBeLessThanOrEqual(2);
  }, 120_000);
});
