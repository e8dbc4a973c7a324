// Seeds the simulator once failed on, each named after the bug it found. A seed's trajectory
// depends on the whole code, so these are kept as replays of the exact failures, next to the
// randomized runs that keep looking for new ones.

import { describe, expect, it } from 'vitest';
import { runSeed } from './sim/simulator.js';

const FOUND: Array<[seed: number, bug: string]> = [
  [2685, 'a leader that committed its own removal stepped down at once: a follower that never learned the commit kept the removed member in its quorum and no election could be won'],
  [4458, 'the same, with the removed leader holding the longest log: the remaining members refused each other forever'],
];

describe('simulator regressions', () => {
  for (const [seed, bug] of FOUND) {
    it(`seed ${seed}: ${bug}`, async () => {
      const r = await runSeed(seed);
      expect(r.violations).toEqual([]);
    });
  }
});
