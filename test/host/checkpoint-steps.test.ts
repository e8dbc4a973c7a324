// Issue 12: the first checkpoint a member takes after installing a snapshot rewrites the whole
// state; its rows were built on one turn (1.05 GiB: 3.7-6.6 s, long enough for elections). The
// host now takes them a slice per turn (CONCORD_CHECKPOINT_SLICE_CHARS, forced small here),
// applies held, and stores them once the last slice is built: the rows are the state at one
// applied index (a restart from them has its hash). A member stopped mid-steps stores nothing.

import { afterEach, describe, expect, it } from 'vitest';
import { LocalCluster } from '../../src/host/local-cluster.js';
import { TurnBudget } from '../../src/host/turn-budget.js';
import { CoordinationMachine, type MachineCheckpointRows } from '../../src/machine/coordination-machine.js';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import type { CheckpointRow, LogStorage, PersistBatch } from '../../src/storage/types.js';
import { Prng } from '../../src/util/prng.js';
import { VirtualClock } from '../../src/util/virtual-clock.js';
import { putOp } from '../machine/machine-util.js';

const SLICE = 64 << 10;
const CONF = { voters: ['n1', 'n2', 'n3'], learners: [] };

afterEach(() => {
  delete process.env.CONCORD_CHECKPOINT_SLICE_CHARS;
});

/** One checkpoint's take by a member, watched through its machine's checkpointSteps. */
interface Take {
  id: string;
  at: number;
  hash: string;
  /** Characters each step reported building, and the applied index at each step. */
  steps: number[];
  applied: number[];
  rows?: MachineCheckpointRows;
  /** Of a whole rewrite: right after it was stored, the storage's checkpoint index and the hash of a machine restarted from its rows. */
  stored?: { index: number; hash: string };
}

const rowChars = (r: CheckpointRow): number => r[1].length + (r[2]?.byteLength ?? 0);

/**
 * A 3-member swarm (in-process network, MemoryStorage kept across restarts) whose leader wrote
 * 60 values of 20,000 characters while one follower was down: that follower, started, installs
 * a snapshot, and its next checkpoint rewrites ~1.2 M characters of rows.
 */
async function setup(onStep?: (t: Take, i: number) => void, checkpointStepDelayMs?: number, budgetFor?: (clock: VirtualClock) => TurnBudget, snapshotSaveMs?: number) {
  process.env.CONCORD_CHECKPOINT_SLICE_CHARS = String(SLICE);
  const clock = new VirtualClock();
  const storages = new Map<string, MemoryStorage>();
  const takes: Take[] = [];
  const cluster = new LocalCluster({
    ids: ['n1', 'n2', 'n3'],
    clock,
    prng: new Prng(7),
    storageFor: (id) => {
      const s = new MemoryStorage();
      storages.set(id, s);
      // A disk whose fsync of an installed snapshot takes snapshotSaveMs: the core holds the
      // snapshot (its log starts past it) while the machine still has the old state.
      if (snapshotSaveMs !== undefined) {
        (s as LogStorage).saveAsync = (batch: PersistBatch, done: (err: Error | null) => void): boolean => {
          s.save(batch);
          if (!batch.snapshot) return true;
          clock.setTimeout(() => done(null), snapshotSaveMs);
          return false;
        };
      }
      return s;
    },
    machineFor: (id) => {
      const m = new CoordinationMachine();
      const steps = m.checkpointSteps.bind(m);
      m.checkpointSteps = function* (slice?: number) {
        const t: Take = { id, at: m.appliedIndex, hash: m.stateHash(), steps: [], applied: [] };
        takes.push(t);
        const g = steps(slice);
        for (;;) {
          t.applied.push(m.appliedIndex);
          const r = g.next();
          if (r.done) {
            t.rows = r.value;
            // The host stores the rows on this turn; read them back on the next.
            if (r.value.tables.memory.clear) {
              clock.setTimeout(() => {
                const st = storages.get(id)!.load(CONF);
                const back = new CoordinationMachine();
                if (st.checkpoint) back.restoreCheckpoint(st.checkpoint);
                t.stored = { index: st.checkpoint ? st.snapshot!.index : -1, hash: back.stateHash() };
              }, 0);
            }
            return r.value;
          }
          t.steps.push(r.value);
          onStep?.(t, t.steps.length);
          yield r.value;
        }
      };
      return m;
    },
    compactionThreshold: 20,
    // Writes wait for applies a stepped take holds (steps far apart in the third test).
    requestTimeoutMs: 60_000,
    checkpointStepDelayMs,
    turnBudget: budgetFor?.(clock),
  });
  cluster.startAll();
  clock.runFor(1000);
  const leader = cluster.leader()!;
  expect(leader).toBeDefined();
  const behind = cluster.ids.find((id) => id !== leader.id)!;
  cluster.crash(behind);
  let now = 2000;
  const write = async (n: number, value: (k: number) => unknown) => {
    const ps = [];
    for (let k = 0; k < n; k++) ps.push(cluster.leader()!.propose(JSON.stringify({ op: putOp(`k${now}`, value(k)), now: now++ })));
    // Virtual time until all are applied (a leader's own stepped takes hold its applies too).
    let settled = false;
    const all = Promise.all(ps);
    void all.finally(() => (settled = true)).catch(() => {});
    for (let ms = 0; !settled && ms < 60_000; ms += 100) {
      clock.runFor(100);
      await new Promise<void>((r) => setImmediate(r));
    }
    await all;
  };
  await write(60, (k) => `${k}:`.padEnd(20_000, 'abcdefgh'));
  await write(40, (k) => ({ k }));
  // Its log was compacted past where the stopped follower's ends: that one is sent a snapshot.
  expect(leader.core.log.snapshotIndex).toBeGreaterThan(20);
  return { clock, cluster, storages, takes, leader, behind, write };
}

describe('checkpoint rows taken over several turns', () => {
  it('after an install, the whole rewrite is built a bounded slice per step, applies held; the stored rows restart to the same state', async () => {
    // Each step schedules a timer: if the next step ran before it, the two shared a turn.
    let watch: { clock: VirtualClock; id: string } | null = null;
    const timers = { scheduled: 0, ran: 0 };
    const sharedTurn: number[] = [];
    const c = await setup((t, i) => {
      if (!watch || t.id !== watch.id) return;
      if (timers.ran < timers.scheduled) sharedTurn.push(i);
      timers.scheduled++;
      watch.clock.setTimeout(() => timers.ran++, 0);
    });
    watch = { clock: c.clock, id: c.behind };
    c.takes.length = 0;
    c.cluster.start(c.behind);
    c.clock.runFor(3000);
    expect(c.cluster.host(c.behind).metrics().snapshotsInstalled).toBe(1);
    // Entries after the install make its first checkpoint due.
    await c.write(40, (k) => ({ after: k }));
    c.clock.runFor(1000);
    const whole = c.takes.find((t) => t.id === c.behind && t.rows?.tables.memory.clear);
    expect(whole).toBeDefined();
    const t = whole!;
    const rows = [...t.rows!.tables.sessions.put, ...t.rows!.tables.orchs.put, ...t.rows!.tables.memory.put];
    expect(rows.length).toBeGreaterThan(100);
    const total = rows.reduce((n, r) => n + rowChars(r), 0);
    expect(total).toBeGreaterThan(1_200_000);
    // ~1.2 M characters in 64 Ki slices: many steps (one turn each), each at most the slice
    // plus the row that crossed it.
    const biggest = Math.max(...rows.map(rowChars));
    expect(t.steps.length).toBeGreaterThanOrEqual(Math.floor(total / (SLICE + biggest)));
    for (const s of t.steps) expect(s).toBeLessThanOrEqual(SLICE + biggest);
    // Each on a turn of its own: other timers ran between every two steps.
    expect(timers.scheduled).toBeGreaterThanOrEqual(t.steps.length);
    expect(sharedTurn).toEqual([]);
    // Applies held throughout: every step saw the state at the take's index.
    expect(new Set(t.applied)).toEqual(new Set([t.at]));
    // Stored at that index; a machine restarted from the rows has the state's hash.
    expect(t.stored).toEqual({ index: t.at, hash: t.hash });
    // And the member went on applying: it ends with the leader's state.
    const a = c.cluster.machine(c.leader.id) as CoordinationMachine;
    const b = c.cluster.machine(c.behind) as CoordinationMachine;
    expect(b.appliedIndex).toBe(a.appliedIndex);
    expect(b.stateHash()).toBe(a.stateHash());
    c.cluster.close();
  });

  it("with a turn budget (an embedded swarm's members share one loop) every step waits for an iteration of its own in the budget, not a zero-delay timer", async () => {
    let budget: TurnBudget | null = null;
    let ranAtStep: number[] = [];
    let watched: string | null = null;
    const c = await setup((t) => {
      if (t.id === watched) ranAtStep.push(budget!.ran);
    }, undefined, (clock) => (budget = new TurnBudget((fn) => clock.setTimeout(fn, 0))));
    watched = c.behind;
    ranAtStep = [];
    c.takes.length = 0;
    c.cluster.start(c.behind);
    c.clock.runFor(3000);
    await c.write(40, (k) => ({ after: k }));
    c.clock.runFor(1000);
    const t = c.takes.find((x) => x.id === c.behind && x.rows?.tables.memory.clear)!;
    expect(t).toBeDefined();
    expect(t.steps.length).toBeGreaterThan(5);
    // Each step after the first is a budget item: the budget's count moved between any two.
    const inTake = ranAtStep.slice(-t.steps.length);
    for (let i = 1; i < inTake.length; i++) expect(inTake[i]!).toBeGreaterThan(inTake[i - 1]!);
    expect(t.stored).toEqual({ index: t.at, hash: t.hash });
    const a = c.cluster.machine(c.leader.id) as CoordinationMachine;
    const b = c.cluster.machine(c.behind) as CoordinationMachine;
    expect(b.stateHash()).toBe(a.stateHash());
    c.cluster.close();
  });

  it('a member stopped mid-steps stores nothing of them; restarted, it rewrites the whole state and agrees with the leader', async () => {
    let stopAt: { clock: VirtualClock; cluster: LocalCluster; id: string } | null = null;
    let dropped: Take | null = null;
    const c = await setup((t, i) => {
      // Between the third and fourth steps (a turn of its own): the member crashes.
      if (stopAt && t.id === stopAt.id && t.rows === undefined && i === 3 && dropped === null) {
        dropped = t;
        const s = stopAt;
        s.clock.setTimeout(() => s.cluster.crash(s.id), 0);
      }
    });
    stopAt = { clock: c.clock, cluster: c.cluster, id: c.behind };
    c.cluster.start(c.behind);
    c.clock.runFor(3000);
    const installedAt = c.cluster.host(c.behind).core.log.snapshotIndex;
    await c.write(40, (k) => ({ after: k }));
    c.clock.runFor(1000);
    expect(dropped).not.toBeNull();
    const d = dropped as unknown as Take;
    // Its steps stopped with the member: the generator was never run to the end.
    expect(d.rows).toBeUndefined();
    expect(d.steps.length).toBe(3);
    expect(c.cluster.host(c.behind).isRunning).toBe(false);
    // Nothing of that checkpoint was stored: the storage holds the installed snapshot.
    const st = c.storages.get(c.behind)!.load(CONF);
    expect(st.checkpoint).toBeUndefined();
    expect(st.snapshot!.index).toBe(installedAt);
    // Restarted from that snapshot, its next checkpoint rewrites every row, and restarts to it.
    const host = c.cluster.start(c.behind);
    expect(host.metrics().startState!.from).toBe('snapshot');
    c.clock.runFor(1000);
    await c.write(40, (k) => ({ again: k }));
    c.clock.runFor(1000);
    const next = c.takes.find((t) => t.id === c.behind && t !== d && t.rows?.tables.memory.clear);
    expect(next).toBeDefined();
    expect(next!.steps.length).toBeGreaterThan(3);
    expect(next!.stored).toEqual({ index: next!.at, hash: next!.hash });
    const a = c.cluster.machine(c.leader.id) as CoordinationMachine;
    const b = c.cluster.machine(c.behind) as CoordinationMachine;
    expect(b.stateHash()).toBe(a.stateHash());
    c.cluster.close();
  });

  it('a snapshot the core took between steps, its save still in flight, drops them too: the log no longer has their index (simulator seed 5763)', async () => {
    // Installs take 30 s to become durable; steps 500 ms apart.
    const c = await setup(undefined, 500, undefined, 30_000);
    c.cluster.start(c.behind);
    c.clock.runFor(40_000);
    const host = c.cluster.host(c.behind);
    expect(host.metrics().snapshotsInstalled).toBe(1);
    await c.write(40, (k) => ({ after: k }));
    const t = c.takes.find((x) => x.id === c.behind && x.rows === undefined && x.steps.length > 0);
    expect(t).toBeDefined();
    c.cluster.network.isolate(c.behind);
    await c.write(60, (k) => ({ cut: k }));
    c.cluster.network.heal();
    // The leader's snapshot reaches the core, whose log now starts past the take's index,
    // while its save is in flight: the install (and the machine's restore) waits 30 s.
    for (let ms = 0; ms < 5000 && host.core.log.snapshotIndex <= t!.at; ms += 10) c.clock.runFor(10);
    expect(host.core.log.snapshotIndex).toBeGreaterThan(t!.at);
    expect(host.metrics().snapshotsInstalled).toBe(1);
    const stepsThen = t!.steps.length;
    // Steps that went on would finish the take within the save's 30 s and store rows at an
    // index the log no longer has.
    c.clock.runFor(25_000);
    expect(host.metrics().snapshotsInstalled).toBe(1);
    expect(t!.steps.length).toBe(stepsThen);
    expect(t!.rows).toBeUndefined();
    c.clock.runFor(10_000);
    expect(host.metrics().snapshotsInstalled).toBe(2);
    expect(host.isRunning).toBe(true);
    await c.write(40, (k) => ({ later: k }));
    c.clock.runFor(60_000);
    const a = c.cluster.machine(c.leader.id) as CoordinationMachine;
    const b = c.cluster.machine(c.behind) as CoordinationMachine;
    expect(b.appliedIndex).toBe(a.appliedIndex);
    expect(b.stateHash()).toBe(a.stateHash());
    c.cluster.close();
  });

  it('a snapshot installed between steps drops them (rows of two states never mix); the member checkpoints the new state whole', async () => {
    // Steps 500 ms apart: the member is cut off, falls behind the leader's compacted log, and
    // is sent a snapshot while its take is half done.
    const c = await setup(undefined, 500);
    c.cluster.start(c.behind);
    c.clock.runFor(3000);
    expect(c.cluster.host(c.behind).metrics().snapshotsInstalled).toBe(1);
    await c.write(40, (k) => ({ after: k }));
    const host = c.cluster.host(c.behind);
    const t = c.takes.find((x) => x.id === c.behind && x.rows === undefined && x.steps.length > 0);
    expect(t).toBeDefined();
    const firstAt = t!.at;
    c.cluster.network.isolate(c.behind);
    await c.write(60, (k) => ({ cut: k }));
    expect(t!.rows).toBeUndefined();
    c.cluster.network.heal();
    c.clock.runFor(3000);
    // Installed over the take: the take stopped there, its rows never built to the end.
    expect(host.metrics().snapshotsInstalled).toBe(2);
    expect(t!.rows).toBeUndefined();
    const stepsThen = t!.steps.length;
    c.clock.runFor(20_000);
    expect(t!.steps.length).toBe(stepsThen);
    // Its stored state: no checkpoint of the old index; later, the new state's rows, whole.
    await c.write(40, (k) => ({ later: k }));
    c.clock.runFor(20_000);
    const next = c.takes.find((x) => x.id === c.behind && x !== t && x.at > firstAt && x.rows?.tables.memory.clear);
    expect(next).toBeDefined();
    expect(next!.stored).toEqual({ index: next!.at, hash: next!.hash });
    const st = c.storages.get(c.behind)!.load(CONF);
    expect(st.snapshot!.index).toBeGreaterThan(firstAt);
    const a = c.cluster.machine(c.leader.id) as CoordinationMachine;
    const b = c.cluster.machine(c.behind) as CoordinationMachine;
    expect(b.appliedIndex).toBe(a.appliedIndex);
    expect(b.stateHash()).toBe(a.stateHash());
    c.cluster.close();
  });
});
