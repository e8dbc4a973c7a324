import { describe, expect, it } from 'vitest';
import type { Raft } from '../src/raft/raft.js';
import type { Entry } from '../src/raft/types.js';
import { InvariantChecker, SimMachine } from './sim/invariants.js';
import { runSeed } from './sim/simulator.js';

// CI budget: 200 seeds of mixed cluster sizes (the size follows the seed: 3, 5, 7).
const SEEDS = 200;
const STEPS = 200;

describe('deterministic simulator', () => {
  it(`${SEEDS} seeds (3, 5 and 7 nodes) run with no invariant violation`, async () => {
    const failures: string[] = [];
    let steps = 0;
    const sizes = new Set<number>();
    for (let seed = 1; seed <= SEEDS; seed++) {
      const r = await runSeed(seed, { steps: STEPS });
      steps += r.steps;
      sizes.add(r.nodes);
      if (r.violations.length > 0) failures.push(`seed ${seed} (${r.nodes} nodes): ${r.violations[0]}`);
    }
    expect(failures).toEqual([]);
    expect(steps).toBe(SEEDS * STEPS);
    expect([...sizes].sort()).toEqual([3, 5, 7]);
  });

  it('replays a seed identically (same trace twice)', async () => {
    const a = await runSeed(42, { steps: 120, trace: true });
    const b = await runSeed(42, { steps: 120, trace: true });
    expect(a.trace.length).toBeGreaterThan(100);
    expect(b.trace).toEqual(a.trace);
    expect(b.stats).toEqual(a.stats);
    // And a different seed gives a different run.
    const c = await runSeed(43, { steps: 120, trace: true });
    expect(c.trace).not.toEqual(a.trace);
  });

  it('exercises every kind of fault and request', async () => {
    const totals: Record<string, number> = {};
    for (let seed = 1000; seed < 1010; seed++) {
      const r = await runSeed(seed, { steps: 200 });
      for (const [k, v] of Object.entries(r.stats)) totals[k] = (totals[k] ?? 0) + v;
    }
    for (const k of ['acked', 'readsOk', 'crashes', 'restarts', 'partitions', 'confChanges', 'transfers', 'snapshotsInstalled', 'snapshotsTaken', 'livenessChecks']) {
      expect(totals[k], k).toBeGreaterThan(0);
    }
  });
});

/** A fake core exposing just what the checker reads. */
function fakeCore(o: { role?: Raft['role']; term: number; entries: Array<[term: number, data: string]>; committed?: number; snapshotIndex?: number }): Raft {
  const entries: Entry[] = o.entries.map(([term, data], i) => ({ index: (o.snapshotIndex ?? 0) + i + 1, term, type: 'normal', data }));
  const snapshotIndex = o.snapshotIndex ?? 0;
  const log = {
    snapshotIndex,
    snapshotTerm: 0,
    snapshot: null,
    entries,
    committed: o.committed ?? 0,
    applied: 0,
    lastIndex: () => snapshotIndex + entries.length,
    entry: (i: number) => entries[i - snapshotIndex - 1],
    term: (i: number) => (i === snapshotIndex ? 0 : entries[i - snapshotIndex - 1]?.term),
  };
  return { role: o.role ?? 'follower', term: o.term, log } as unknown as Raft;
}

describe('invariant checker catches planted violations', () => {
  it('two leaders in one term (election safety)', () => {
    const c = new InvariantChecker();
    c.observeEvent('a', fakeCore({ role: 'leader', term: 3, entries: [] }));
    c.observeEvent('b', fakeCore({ role: 'leader', term: 4, entries: [] }));
    expect(c.violations).toEqual([]);
    c.observeEvent('c', fakeCore({ role: 'leader', term: 4, entries: [] }));
    expect(c.violations[0]).toMatch(/election safety: term 4 has two leaders, b and c/);
  });

  it('a leader overwriting its own log (leader append-only)', () => {
    const c = new InvariantChecker();
    const core = fakeCore({ role: 'leader', term: 2, entries: [[1, 'x'], [2, 'y']] });
    c.observeEvent('a', core);
    (core.log.entries as Entry[])[1] = { index: 2, term: 2, type: 'normal', data: 'z' };
    c.observeEvent('a', core);
    expect(c.violations[0]).toMatch(/leader append-only: a .* rewrote entry 2/);
  });

  it('divergent entries with the same index and term (log matching)', () => {
    const c = new InvariantChecker();
    c.checkNode('a', fakeCore({ term: 2, entries: [[1, 'x'], [2, 'y']] }));
    c.checkNode('b', fakeCore({ term: 2, entries: [[1, 'x'], [2, 'q']] }));
    expect(c.violations[0]).toMatch(/log matching: entry \(2, term 2\)/);
  });

  it('a divergent applied entry (state machine safety)', () => {
    const c = new InvariantChecker();
    const a = new SimMachine('a', c);
    const b = new SimMachine('b', c);
    a.apply({ index: 1, term: 1, type: 'normal', data: 'x' });
    b.apply({ index: 1, term: 1, type: 'normal', data: 'x' });
    a.apply({ index: 2, term: 1, type: 'normal', data: 'y' });
    expect(c.violations).toEqual([]);
    b.apply({ index: 2, term: 2, type: 'normal', data: 'evil' });
    expect(c.violations[0]).toMatch(/state machine safety: b applied index 2/);
  });

  it('a machine skipping an index', () => {
    const c = new InvariantChecker();
    const a = new SimMachine('a', c);
    a.apply({ index: 1, term: 1, type: 'normal', data: 'x' });
    a.apply({ index: 3, term: 1, type: 'normal', data: 'z' });
    expect(c.violations[0]).toMatch(/applied index 3 after 1/);
  });

  it('a leader missing a committed entry (leader completeness)', () => {
    const c = new InvariantChecker();
    c.checkNode('a', fakeCore({ term: 2, entries: [[1, 'x'], [2, 'y']], committed: 2 }));
    expect(c.violations).toEqual([]);
    c.checkNode('b', fakeCore({ role: 'leader', term: 3, entries: [[1, 'x']] }));
    expect(c.violations[0]).toMatch(/leader completeness: b leads term 3 but lacks committed entry 2/);
  });

  it('an acknowledged write that is lost, and a stale read', () => {
    const c = new InvariantChecker();
    const a = new SimMachine('a', c);
    a.apply({ index: 1, term: 1, type: 'normal', data: 'w1' });
    c.onAck('a', 1, 'w1', 'w1');
    expect(c.violations).toEqual([]);
    c.onAck('a', 2, 'w2', 'w2'); // never applied anywhere
    expect(c.violations[0]).toMatch(/acknowledged write: a acknowledged "w2" at index 2/);

    const d = new InvariantChecker();
    const m = new SimMachine('m', d);
    m.apply({ index: 1, term: 1, type: 'normal', data: 'w1' });
    d.onAck('m', 1, 'w1', 'w1');
    const tok = d.readIssued('m', m);
    d.onReadResolved(tok, 0);
    expect(d.violations[0]).toMatch(/linearizable read: .* returned index 0, but write "w1" at 1/);
  });
});
