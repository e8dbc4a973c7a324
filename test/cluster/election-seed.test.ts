// Each member process seeds its Raft PRNG (randomized election timeouts) independently: two
// members started in the same millisecond must not draw the same timeouts, or they campaign
// at the same instant and split the vote at every failover.

import { describe, expect, it } from 'vitest';
import { electionSeed } from '../../src/cluster/member-node.js';
import { Prng } from '../../src/util/prng.js';

describe('election seed of a member process', () => {
  it('differs between members started at once (no two seeds, hence timeout sequences, alike)', () => {
    // Drawn back to back in one process: the same millisecond and pid, the worst case of
    // members spawned together (Date.now() ^ pid collided for adjacent pids and milliseconds).
    const seeds = Array.from({ length: 64 }, () => electionSeed());
    expect(new Set(seeds).size).toBe(seeds.length);
    for (const s of seeds) expect(Number.isInteger(s) && s >= 0 && s < 2 ** 32).toBe(true);
    // Their first election timeouts (150-300 ms in 2 ms ticks) are spread, not equal.
    const firsts = seeds.map((s) => new Prng(s).int(75, 150));
    expect(new Set(firsts).size).toBeGreaterThan(20);
  });
});
