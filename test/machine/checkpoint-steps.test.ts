// Issue 12: the first checkpoint after a snapshot install rewrites the whole state as rows; built
// on one turn, 1.05 GiB held a member 3.7-6.6 s. checkpointSteps builds them a slice at a time:
// each step at most the slice plus the one row that crosses it, and the rows are exactly what
// takeCheckpoint() gives for the same state (whole rewrite and incremental alike).

import { describe, expect, it } from 'vitest';
import { CoordinationMachine, type MachineCheckpointRows } from '../../src/machine/coordination-machine.js';
import type { Op } from '../../src/machine/types.js';
import type { CheckpointRow } from '../../src/storage/types.js';
import { createOp, entry, putOp } from './machine-util.js';

const SLICE = 64 << 10;

const rowChars = (r: CheckpointRow): number => r[1].length + (r[2]?.byteLength ?? 0);

function allRows(c: MachineCheckpointRows): CheckpointRow[] {
  return [...c.tables.sessions.put, ...c.tables.orchs.put, ...c.tables.memory.put];
}

/** The steps of m.checkpointSteps(SLICE) run to the end: the chars each step built, and the rows. */
function stepped(m: CoordinationMachine): { steps: number[]; c: MachineCheckpointRows } {
  const g = m.checkpointSteps(SLICE);
  const steps: number[] = [];
  for (;;) {
    const r = g.next();
    if (r.done) {
      const total = allRows(r.value).reduce((n, x) => n + rowChars(x), 0);
      // The last step's share: what the yields did not report.
      steps.push(total - steps.reduce((a, b) => a + b, 0));
      return { steps, c: r.value };
    }
    steps.push(r.value as number);
  }
}

/** A machine with 60 values of ~20,000 characters, small ones, sessions and tasks. */
function source(): { m: CoordinationMachine; apply: (op: Op, client?: string, seq?: number) => void } {
  const m = new CoordinationMachine({ tasksPerBlock: 64 });
  let i = 0;
  const apply = (op: Op, client?: string, seq?: number) => void m.apply(entry(++i, { op, now: 1000 + i, ...(client ? { client, seq } : {}) }));
  for (let k = 0; k < 60; k++) apply(putOp(`big/${k}`, `${k}:`.padEnd(20_000, 'abcdefgh')), `c${k % 5}`, k);
  for (let k = 0; k < 200; k++) apply(putOp(`small/${k}`, { k }));
  apply(createOp(1000));
  return { m, apply };
}

describe('CoordinationMachine.checkpointSteps', () => {
  it('a whole-state rewrite after a restore is built over several steps, each at most the slice plus one row; the rows equal takeCheckpoint()', () => {
    const { m } = source();
    const data = m.snapshotData();
    const a = new CoordinationMachine({ tasksPerBlock: 64 });
    const b = new CoordinationMachine({ tasksPerBlock: 64 });
    a.restore(data);
    b.restore(data);
    const { steps, c } = stepped(a);
    const whole = b.takeCheckpoint();
    expect(c).toEqual(whole);
    expect(c.tables.memory.clear).toBe(true);
    expect(c.tables.memory.put).toHaveLength(260);
    const total = allRows(c).reduce((n, x) => n + rowChars(x), 0);
    expect(total).toBeGreaterThan(1_200_000);
    const biggestRow = Math.max(...allRows(c).map(rowChars));
    // ~1.2 M characters in 64 Ki slices: about 19 steps, none larger than the bound.
    expect(steps.length).toBeGreaterThanOrEqual(Math.floor(total / (SLICE + biggestRow)));
    for (const s of steps) expect(s).toBeLessThanOrEqual(SLICE + biggestRow);
    // Tracking restarted at the end: nothing left to write.
    expect(a.dirtyRows()).toBe(0);
    expect(a.stateHash()).toBe(b.stateHash());
  });

  it('incremental checkpoints in steps equal takeCheckpoint() too (memory, sessions, task blocks changed and removed)', () => {
    const x = source();
    const y = source();
    // Both past their first (whole) checkpoint, one stepped, one not.
    stepped(x.m);
    y.m.takeCheckpoint();
    for (const s of [x, y]) {
      for (let k = 0; k < 12; k++) s.apply(putOp(`big/${k * 3}`, `v2:${k}`.padEnd(30_000, 'z')), `c${k % 5}`, 100 + k);
      s.apply({ t: 'mem.del', key: 'small/7', namespace: 'default', if_version: null });
      s.apply({ t: 'task.assign', term: 1, lease_ms: 1000, items: [{ task: 'orch-261-7', agent: 'a', from_epoch: 0 }, { task: 'orch-261-900', agent: 'b', from_epoch: 0 }] });
    }
    const { steps, c } = stepped(x.m);
    expect(c).toEqual(y.m.takeCheckpoint());
    expect(c.tables.memory.clear).toBe(false);
    expect(c.tables.memory.del).toHaveLength(1);
    expect(c.tables.orchs.put.map(([ord]) => ord % 64)).toEqual([0, 1, 15]);
    expect(steps.length).toBeGreaterThan(3);
    expect(x.m.dirtyRows()).toBe(0);
    expect(x.m.stateHash()).toBe(y.m.stateHash());
  });

  it('a small checkpoint takes one step; steps dropped halfway and markCheckpointLost: the next checkpoint rewrites every table', () => {
    const { m, apply } = source();
    m.takeCheckpoint();
    apply(putOp('small/1', 'changed'));
    const one = m.checkpointSteps(SLICE).next();
    expect(one.done).toBe(true);
    apply(createOp(10));
    for (let k = 0; k < 10; k++) apply(putOp(`big/${k}`, 'x'.repeat(40_000)));
    const g = m.checkpointSteps(SLICE);
    expect(g.next().done).toBe(false);
    // Dropped (the host's member stopped): the tracking was partly taken.
    m.markCheckpointLost();
    const next = m.takeCheckpoint();
    expect([next.tables.memory.clear, next.tables.sessions.clear, next.tables.orchs.clear]).toEqual([true, true, true]);
    expect(next.tables.memory.put).toHaveLength(260);
  });
});
