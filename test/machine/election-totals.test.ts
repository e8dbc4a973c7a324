// Election totals are counted as records apply: exact past the retained history (1000
// records), and carried through a snapshot.

import { describe, expect, it } from 'vitest';
import { CoordinationMachine } from '../../src/machine/coordination-machine.js';

function electionEntry(index: number, term: number, cause: string) {
  const record = { term, old_leader: 'a', new_leader: 'b', voted_by: ['b', 'c'], election_duration_ms: 5, cause };
  return { index, term, type: 'normal' as const, data: JSON.stringify({ op: { t: 'election', record }, now: 1_000 + index }) };
}

describe('election totals', () => {
  it('count every applied election, beyond the 1000 kept, and survive a snapshot', () => {
    const m = new CoordinationMachine();
    for (let i = 1; i <= 1200; i++) m.apply(electionEntry(i, i, i % 3 === 0 ? 'leader crash' : 'step-down'));
    expect(m.elections).toHaveLength(1000);
    expect(m.electionTotals).toEqual({ elections: 1200, leader_failures: 400 });
    const r = new CoordinationMachine();
    r.restore(m.snapshot());
    r.apply(electionEntry(1201, 1201, 'lost quorum'));
    expect(r.electionTotals).toEqual({ elections: 1201, leader_failures: 401 });
    // A duplicate record of a term is refused and not counted.
    r.apply(electionEntry(1202, 1201, 'lost quorum'));
    expect(r.electionTotals.elections).toBe(1201);
  });
});
