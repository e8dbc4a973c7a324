import { describe, expect, it } from 'vitest';
import { simCluster, RecordingMachine } from './helpers/sim-cluster.js';

describe('smoke', () => {
  it('elects and replicates', async () => {
    const { clock, cluster, ids } = simCluster({ n: 5, seed: 1 });
    cluster.startAll();
    clock.runFor(1000);
    const leader = cluster.leader();
    expect(leader).toBeDefined();
    const ps = [];
    for (let i = 0; i < 100; i++) ps.push(leader!.propose(`x${i}`));
    clock.runFor(1000);
    const res = await Promise.all(ps);
    expect(res.length).toBe(100);
    for (const id of ids) {
      const m = cluster.machine(id) as RecordingMachine;
      expect(m.applied.map((a) => a.data)).toEqual(Array.from({ length: 100 }, (_, i) => `x${i}`));
    }
  });
});
