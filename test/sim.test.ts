import { describe, expect, it } from 'vitest';
import type { Raft } from '../src/raft/raft.js';
import type { Entry } from '../src/raft/types.js';
import { InvariantChecker, SimMachine } from './sim/invariants.js';
import { VirtualClock } from '../src/util/virtual-clock.js';
import { Prng } from '../src/util/prng.js';
import { AsyncSimStorage } from './sim/sim-storage.js';
import { FAULT_KINDS, runSeed, zeroFaults, type FaultCounts, type PlantedBugs } from './sim/simulator.js';

// CI budget (issue 14 item 4): sized to catch what 1000 seeds x 300 steps catches, in about
// a minute on the CI machine. Short runs of many seeds find more per CPU second than long
// runs of few (most bugs need a particular seed's parameters, and then show up early).
// The seed range rotates daily (or comes from CONCORD_SIM_FROM), so CI covers new seeds each
// day; it is printed, and a failure names its seed: `npm run sim -- --seed K --trace`.
const SEEDS = 1000;
const STEPS = 150;
const DAY_MS = 86_400_000;
const FROM = process.env.CONCORD_SIM_FROM ? Number(process.env.CONCORD_SIM_FROM) : 1 + (Math.floor(Date.now() / DAY_MS) % 1000) * SEEDS;

// Planted-bug self-tests: seed ranges in which the planted bug is caught (the amnesia one in
// 3-node clusters, where one amnesiac voter is enough to lose a quorum's memory).
const PLANT_NO_SYNC = { from: 1000, count: 80 };
const PLANT_AMNESIA_SEEDS = 12;

async function runRange(from: number, count: number, steps: number, extra: { plant?: PlantedBugs; nodes?: number; coordWorkload?: boolean; snapshotPartsOnWire?: boolean; snapshotResendAfterMs?: number; embeddedTiming?: boolean } = {}) {
  const failures: Array<{ seed: number; first: string }> = [];
  const faults: FaultCounts = zeroFaults();
  const totals: Record<string, number> = {};
  let stepsRun = 0;
  const sizes = new Set<number>();
  for (let seed = from; seed < from + count; seed++) {
    const r = await runSeed(seed, { steps, ...extra });
    stepsRun += r.steps;
    sizes.add(r.nodes);
    for (const k of FAULT_KINDS) faults[k] += r.stats.faults[k];
    for (const [k, v] of Object.entries(r.stats)) if (typeof v === 'number') totals[k] = (totals[k] ?? 0) + v;
    if (r.violations.length > 0) failures.push({ seed, first: r.violations[0] as string });
  }
  return { failures, faults, totals, stepsRun, sizes };
}

describe('deterministic simulator', () => {
  it(`${SEEDS} seeds x ${STEPS} steps (3, 5 and 7 nodes, rotating range) run with no invariant violation`, { timeout: 600_000 }, async () => {
    process.stderr.write(`sim.test: seeds ${FROM}..${FROM + SEEDS - 1} x ${STEPS} steps (replay a range with CONCORD_SIM_FROM=${FROM})\n`);
    const r = await runRange(FROM, SEEDS, STEPS);
    expect(r.failures.map((f) => `seed ${f.seed}: ${f.first} (replay: npm run sim -- --seed ${f.seed} --steps ${STEPS} --trace)`)).toEqual([]);
    expect(r.stepsRun).toBe(SEEDS * STEPS);
    expect([...r.sizes].sort()).toEqual([3, 5, 7]);
  });

  it(`${SEEDS / 4} seeds x ${STEPS} steps with the embedded swarm's timing (sleeping followers, held heartbeats) run with no invariant violation`, { timeout: 600_000 }, async () => {
    // The same rotating range's first quarter, under a 1 s tick timer on a stall-measuring
    // wheel per member, wakes on the heartbeat grid, heartbeats that ask no answer held for
    // their receiver's next read (held only while no loss, duplication or delay is in effect).
    const r = await runRange(FROM, SEEDS / 4, STEPS, { embeddedTiming: true });
    expect(r.failures.map((f) => `seed ${f.seed}: ${f.first} (replay: npm run sim -- --seed ${f.seed} --steps ${STEPS} --embedded-timing --trace)`)).toEqual([]);
    expect(r.totals.heartbeatsHeld).toBeGreaterThan(0);
    expect(r.totals.livenessChecks).toBeGreaterThan(0);
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

  it('exercises every kind of fault and request', { timeout: 300_000 }, async () => {
    // 50 seeds: with leader-gone reports the trajectories moved, and seeds 1000-1039 no longer
    // happened to tear a batch (a rare fault); 1000-1049 still exercise every kind.
    const r = await runRange(1000, 50, 200);
    expect(r.failures).toEqual([]);
    for (const k of ['acked', 'readsOk', 'confChanges', 'transfers', 'snapshotsInstalled', 'snapshotsTaken', 'livenessChecks']) {
      expect(r.totals[k], k).toBeGreaterThan(0);
    }
    // Every fault kind, including power failures, blackouts, lost unsynced writes, torn
    // batches, fsync errors, wipes, pauses, skewed clocks and one-way partitions.
    for (const k of FAULT_KINDS) expect(r.faults[k], k).toBeGreaterThan(0);
  });
});

describe('simulated disk', () => {
  const conf = { voters: ['a'], learners: [] };
  const entry = (index: number) => ({ index, term: 1, type: 'normal' as const, data: `e${index}` });
  function written(syncOnOpen: boolean) {
    const clock = new VirtualClock();
    const st = new AsyncSimStorage(clock, new Prng(1), 5);
    st.syncOnOpen = syncOnOpen;
    const acks: number[] = [];
    st.saveAsync({ snapshot: null, entries: [entry(1)], hardState: { term: 1, vote: 'a', commit: 0 } }, () => acks.push(1));
    clock.runFor(10);
    st.saveAsync({ snapshot: null, entries: [entry(2), entry(3)], hardState: null }, () => acks.push(2));
    st.processCrash(); // before the second fsync completed
    clock.runFor(10);
    return { st, acks };
  }

  it('a process crash leaves unsynced writes written, not durable; the open syncs what it reads', () => {
    const { st, acks } = written(true);
    expect(acks).toEqual([1]); // the dead process never hears about the second batch
    expect(st.unsynced).toBe(1);
    expect(st.durableImage.lastIndex()).toBe(1);
    expect(st.load(conf).entries.map((e) => e.index)).toEqual([1, 2, 3]);
    expect(st.unsyncedAtLastOpen).toBe(1);
    expect(st.durableImage.lastIndex()).toBe(3); // made durable by the open
    st.powerFailure();
    expect(st.load(conf).entries.map((e) => e.index)).toEqual([1, 2, 3]);
  });

  it('without the sync on open, a power failure after the restart loses what the restarted member read', () => {
    const { st } = written(false);
    expect(st.load(conf).entries.map((e) => e.index)).toEqual([1, 2, 3]);
    expect(st.durableImage.lastIndex()).toBe(1);
    const r = st.powerFailure();
    expect(r.kept + r.lost).toBe(1);
    // The torn two-entry batch is kept or lost whole, never in part.
    expect([[1], [1, 2, 3]]).toContainEqual(st.load(conf).entries.map((e) => e.index));
  });

  it('an fsync error drops the unsynced batch and reports it to the writer', () => {
    const clock = new VirtualClock();
    const st = new AsyncSimStorage(clock, new Prng(1), 5);
    let failed: Error | null = null;
    st.failNextSync = true;
    st.saveAsync({ snapshot: null, entries: [entry(1)], hardState: null }, (err) => {
      failed = err;
    });
    clock.runFor(10);
    expect(String(failed)).toMatch(/fsync failure/);
    expect(st.load(conf).entries).toEqual([]);
  });
});

describe('the simulator catches planted bugs', () => {
  it('storage that does not fsync what it loads on open (a power failure after restart loses acknowledged data)', { timeout: 300_000 }, async () => {
    const r = await runRange(PLANT_NO_SYNC.from, PLANT_NO_SYNC.count, 300, { plant: { noSyncOnOpen: true } });
    const caught = r.failures.filter((f) => /persist before answering|not durable|acknowledged write|election safety/.test(f.first));
    expect(caught.length).toBeGreaterThan(0);
    // The same seed is clean without the bug: the fault model alone is survivable.
    const clean = await runSeed(caught[0]!.seed, { steps: 300 });
    expect(clean.violations).toEqual([]);
    expect(clean.stats.faults.unsynced_survived_crash).toBeGreaterThan(0);
  });

  it('a wiped member rejoining under its old id while still a voter (amnesiac vote)', { timeout: 300_000 }, async () => {
    const r = await runRange(1, PLANT_AMNESIA_SEEDS, 300, { nodes: 3, plant: { amnesiacRejoin: true } });
    const safety = r.failures.filter((f) => /not durable|acknowledged write|election safety|state machine safety/.test(f.first));
    expect(safety.length).toBeGreaterThan(0);
    const clean = await runSeed(safety[0]!.seed, { steps: 300, nodes: 3 });
    expect(clean.violations).toEqual([]);
    expect(clean.stats.faults.disk_wipe).toBeGreaterThan(0);
  });

  it('a replica whose snapshot restore loses one memory record (coordination workload)', { timeout: 300_000 }, async () => {
    const r = await runRange(1, 20, 300, { plant: { coordLossyRestore: true }, coordWorkload: true });
    const caught = r.failures.filter((f) => /replica divergence/.test(f.first));
    expect(caught.length).toBeGreaterThan(0);
    const clean = await runSeed(caught[0]!.seed, { steps: 300, coordWorkload: true });
    expect(clean.violations).toEqual([]);
    expect(clean.stats.coordRuns).toBe(1);
    expect(clean.stats.coordStateChecks).toBeGreaterThan(0);
    // Its restores went by way of the multi-part form (v5: tasks as block rows).
    expect(clean.stats.coordPartRestores).toBeGreaterThan(0);
  });

  it('multi-part snapshots on the wire (coordination workload): sent, stored, checked and restored with every state hash agreeing', { timeout: 300_000 }, async () => {
    const r = await runRange(1, 20, 300, { coordWorkload: true, snapshotPartsOnWire: true });
    expect(r.failures).toEqual([]);
    // (seeds 1-20: 268)
    expect(r.totals.coordPartRestores).toBeGreaterThan(100);
    // Checkpoint rows taken over several turns, applies held (512-character slices), stayed green.
    expect(r.totals.coordSteppedTakes).toBeGreaterThan(10);
  });

  it('snapshots delivered whole and not streamed again on a resend (2 s window): no violation, and the window was used', { timeout: 300_000 }, async () => {
    const r = await runRange(20_001, 100, 300, { snapshotResendAfterMs: 2_000 });
    expect(r.failures).toEqual([]);
    // (seeds 20,001-20,100: 39)
    expect(r.totals.snapshotResendsSkipped).toBeGreaterThan(10);
  });

  it('a replica whose restart from checkpoint rows loses one memory record (coordination workload)', { timeout: 300_000 }, async () => {
    const r = await runRange(1, 20, 300, { plant: { coordLossyCheckpoint: true }, coordWorkload: true });
    const caught = r.failures.filter((f) => /replica divergence/.test(f.first));
    expect(caught.length).toBeGreaterThan(0);
    // Clean, the same seed restarts members of the coordination run from their rows, and
    // every state hash agrees.
    const clean = await runSeed(caught[0]!.seed, { steps: 300, coordWorkload: true });
    expect(clean.violations).toEqual([]);
    expect(clean.stats.coordRuns).toBe(1);
    expect(clean.stats.restartsFromCheckpoint).toBeGreaterThan(0);
  });
});

/** A fake core exposing just what the checker reads. */
function fakeCore(o: {
  role?: Raft['role'];
  term: number;
  entries: Array<[term: number, data: string]>;
  committed?: number;
  snapshotIndex?: number;
  snapshotTerm?: number;
  voters?: string[];
}): Raft {
  const entries: Entry[] = o.entries.map(([term, data], i) => ({ index: (o.snapshotIndex ?? 0) + i + 1, term, type: 'normal', data }));
  const snapshotIndex = o.snapshotIndex ?? 0;
  const snapshotTerm = o.snapshotTerm ?? 0;
  const log = {
    snapshotIndex,
    snapshotTerm,
    snapshot: null,
    entries,
    committed: o.committed ?? 0,
    applied: 0,
    lastIndex: () => snapshotIndex + entries.length,
    entry: (i: number) => entries[i - snapshotIndex - 1],
    term: (i: number) => (i === snapshotIndex ? snapshotTerm : entries[i - snapshotIndex - 1]?.term),
  };
  const confState = () => ({ voters: o.voters ?? [], learners: [] });
  return { role: o.role ?? 'follower', term: o.term, log, confState } as unknown as Raft;
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

  it('a leader whose log differs from committed history below its newest committed entry (leader completeness, every index)', () => {
    const c = new InvariantChecker();
    const m = new SimMachine('m', c);
    m.apply({ index: 1, term: 1, type: 'normal', data: 'x' });
    m.apply({ index: 2, term: 1, type: 'normal', data: 'y' });
    m.apply({ index: 3, term: 1, type: 'normal', data: 'z' });
    // A follower reports commit 3 through its snapshot (no log entries to match against).
    c.checkNode('a', fakeCore({ term: 2, entries: [], snapshotIndex: 3, snapshotTerm: 1, committed: 3 }));
    expect(c.violations).toEqual([]);
    // The new leader agrees at 3 (the only index the old check looked at) but not at 2.
    c.checkNode('b', fakeCore({ role: 'leader', term: 3, entries: [[1, 'x'], [1, 'EVIL'], [1, 'z']] }));
    expect(c.violations[0]).toMatch(/leader completeness: b leads term 3 with entry 2 normal:"EVIL"/);
  });

  it('an acknowledged write missing from the durable storage of a quorum (checkAckedDurable)', () => {
    const c = new InvariantChecker();
    const m = new SimMachine('a', c);
    m.apply({ index: 1, term: 1, type: 'normal', data: 'w1' });
    c.onAck('a', 1, 'w1', 'w1');
    const voters = new Set(['a', 'b', 'c']);
    const disk = new Map([
      ['a', true],
      ['b', true],
      ['c', false],
    ]);
    const holds = (id: string) => disk.get(id) ?? false;
    c.checkAckedDurable('t', [voters], holds);
    expect(c.violations).toEqual([]);
    // b loses power and, its open never having synced, loses the entry: a and... only a holds it.
    disk.set('b', false);
    c.checkAckedDurable('t', [voters], holds, new Set(['b'])); // b wiped and gone: c alone is no quorum
    expect(c.violations).toEqual([]);
    c.checkAckedDurable('t', [voters], holds); // b is back under its old name: {b, c} is a quorum without it
    expect(c.violations[0]).toMatch(/acknowledged write not durable \(t\): "w1" at index 1 .* missing from the durable storage of \[b,c\]/);
  });

  it('a commit counted on a member that had not made the entry durable (checkCommitDurable)', () => {
    const c = new InvariantChecker();
    const leader = fakeCore({ role: 'leader', term: 2, entries: [[1, 'x'], [2, 'y']], committed: 2, voters: ['a', 'b', 'c'] });
    c.checkCommitDurable('a', leader, (id) => id !== 'c');
    expect(c.violations).toEqual([]);
    const leader2 = fakeCore({ role: 'leader', term: 3, entries: [[1, 'x'], [2, 'y']], committed: 2, voters: ['a', 'b', 'c'] });
    c.checkCommitDurable('a', leader2, (id) => id === 'a');
    expect(c.violations[0]).toMatch(/commit not durable: a \(leader, term 3\) committed 2 \(term 2\) .* \[b,c\]/);
  });

  it('a read that goes back in time behind a completed read, with no write acknowledged (reads linearizable against the whole history)', () => {
    const c = new InvariantChecker();
    const a = new SimMachine('a', c);
    const b = new SimMachine('b', c);
    for (let i = 1; i <= 3; i++) a.apply({ index: i, term: 1, type: 'normal', data: `w${i}` });
    b.apply({ index: 1, term: 1, type: 'normal', data: 'w1' });
    // No write was ever acknowledged (the acks are still in flight): the old check saw nothing.
    c.onReadResolved(c.readIssued('a', a), 3);
    expect(c.violations).toEqual([]);
    c.onReadResolved(c.readIssued('b', b), 1);
    expect(c.violations[0]).toMatch(/linearizable read: read at b .* returned index 1, but the state returned by a read at a .* at 3/);
  });

  it('a read returning a state that is not the committed history (a value never written)', () => {
    const c = new InvariantChecker();
    const a = new SimMachine('a', c);
    a.apply({ index: 1, term: 1, type: 'normal', data: 'w1' });
    const b = new SimMachine('b', c);
    b.apply({ index: 1, term: 1, type: 'normal', data: 'w1' });
    b.hash ^= 1; // b's state is not what applying the history gives
    c.onReadResolved(c.readIssued('b', b), 1);
    expect(c.violations[0]).toMatch(/linearizable read: read at b returned a state at 1 that is not the committed history's state/);
  });

  it('a write acknowledged below a state an earlier read returned (writes linearizable)', () => {
    const c = new InvariantChecker();
    const a = new SimMachine('a', c);
    for (let i = 1; i <= 3; i++) a.apply({ index: i, term: 1, type: 'normal', data: `w${i}` });
    c.onReadResolved(c.readIssued('a', a), 3);
    const tok = c.writeIssued('w2');
    c.onAck('a', 2, 'w2', 'w2', tok);
    expect(c.violations[0]).toMatch(/linearizable write: "w2" .* acknowledged at index 2, but the state returned by a read at a .* at 3/);
  });
});
