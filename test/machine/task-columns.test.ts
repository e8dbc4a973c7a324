// Task records live in per-orchestration columns with a compact encoding and a side map for
// whatever does not fit: every value must read back exactly, through apply, snapshot and restore.

import { describe, expect, it } from 'vitest';
import { CoordinationMachine } from '../../src/machine/coordination-machine.js';
import { BinReader, BinWriter, Interner, NumColumn, OrchTasks, RefColumn, TASKS_PER_BLOCK } from '../../src/machine/task-columns.js';
import type { Orchestration, TaskRecord } from '../../src/machine/types.js';
import { LogBuilder, createOp } from './machine-util.js';

const T0 = 1_700_000_000_000;

function orch(count: number): Orchestration {
  return {
    id: 'orch-7',
    task: 'w',
    count,
    priority: 'high',
    strategy: 'parallel',
    max_agents: 5,
    executor: { kind: 'noop' },
    payload: null,
    idempotency_key: null,
    created_at: T0,
    created_index: 7,
    finished_at: null,
    counts: { pending: count, assigned: 0, completed: 0, failed: 0, stale_completions_refused: 0, duplicates: 0, recovered: 0, executions_started: 0 },
  };
}

describe('task columns', () => {
  // Both backings: plain arrays below 64 slots, typed arrays from 64.
  for (const n of [10, 1000]) {
    it(`a numeric column (${n} slots) keeps every value exactly, compact or not`, () => {
      const counter = new NumColumn(n, 1, 0);
      const time = new NumColumn(n, T0, null);
      const values: unknown[] = [0, 1, 2, 254, 255, 256, 70_000, 2 ** 40, -1, 1.5, -0.25, Number.MAX_SAFE_INTEGER, 'x', undefined, null];
      values.forEach((v, i) => counter.set(i, v));
      values.forEach((v, i) => expect(counter.get(i)).toBe(v === null ? null : v));
      // Integers in [0, 2^32 - 1) are held in the column itself (widened as needed), the rest in the side map.
      const compact = [0, 1, 2, 254, 255, 256, 70_000];
      expect(counter.wideCount).toBe(values.length - compact.length);
      const times: unknown[] = [null, T0, T0 + 1, T0 + 30_000, T0 + 2 ** 32, T0 - 1, 0, T0 + 0.5];
      times.forEach((v, i) => time.set(i, v));
      times.forEach((v, i) => expect(time.get(i)).toBe(v));
      expect(time.wideCount).toBe(4);
      // Overwriting a wide value with a compact one (and back to zero) leaves nothing behind.
      values.forEach((_, i) => counter.set(i, 3));
      expect(counter.wideCount).toBe(0);
      values.forEach((_, i) => expect(counter.get(i)).toBe(3));
      values.forEach((_, i) => counter.set(i, 0));
      values.forEach((_, i) => expect(counter.get(i)).toBe(0));
    });
  }

  it('a column takes one byte a slot until a value needs two, then four; side-map values survive the widening', () => {
    const c = new NumColumn(1000, 1, 0);
    expect(c.slotBytes).toBe(0);
    c.set(0, 3);
    c.set(1, -7);
    expect(c.slotBytes).toBe(1);
    c.set(2, 300);
    expect(c.slotBytes).toBe(2);
    c.set(3, 70_000);
    expect(c.slotBytes).toBe(4);
    expect([0, 1, 2, 3, 4].map((i) => c.get(i))).toEqual([3, -7, 300, 70_000, 0]);
    expect(c.wideCount).toBe(1);
  });

  it('widening is per block: a value that needs four bytes widens only its block, and each block row carries its own width', () => {
    const B = TASKS_PER_BLOCK;
    const c = new NumColumn(4 * B, 1, 0);
    c.set(0, 5);
    c.set(B + 7, 300);
    c.set(3 * B + 1, 70_000);
    c.set(3 * B + 2, -1); // side map
    // Slots held: block 0 one byte, block 1 two, block 2 none, block 3 four (not 4 x 4 bytes).
    expect(c.bytes).toBe(B + 2 * B + 4 * B);
    const rows = [0, 1, 2, 3].map((b) => {
      const w = new BinWriter();
      const d = c.blockRow(w, b, b * B, (b + 1) * B);
      return { d, bin: w.finish() };
    });
    expect(rows.map((r) => (r.d === 0 ? 0 : (r.d as unknown[])[0]))).toEqual([0, 1, 0, 2]);
    expect(rows.map((r) => r.bin?.byteLength ?? 0)).toEqual([B, 2 * B, 0, 4 * B]);
    // Back into a fresh column, block by block: every value exact, widths as written.
    const back = new NumColumn(4 * B, 1, 0);
    rows.forEach((r, b) => back.loadBlock(r.d, new BinReader(r.bin ?? new Uint8Array(0)), b, b * B, B));
    for (const i of [0, 1, B + 7, 2 * B, 3 * B + 1, 3 * B + 2, 4 * B - 1]) expect(back.get(i)).toBe(c.get(i));
    expect([back.get(0), back.get(B + 7), back.get(3 * B + 1), back.get(3 * B + 2)]).toEqual([5, 300, 70_000, -1]);
    expect(back.bytes).toBe(c.bytes);
    // A block loaded narrow widens on its own when a later value needs it.
    back.set(5, 70_001);
    expect([back.get(0), back.get(5)]).toEqual([5, 70_001]);
    expect(back.bytes).toBe(4 * B + 2 * B + 4 * B);
  });

  it('an agent column keeps ids, null and non-string values', () => {
    const names = new Interner();
    const c = new RefColumn(400, names);
    const values: unknown[] = ['raft-agent-1', null, 'raft-agent-2', 'raft-agent-1', 42, { a: 1 }, ''];
    // More distinct agents than one byte of codes holds.
    for (let k = 0; k < 300; k++) values.push(`agent-${k}`);
    values.forEach((v, i) => c.set(i, v));
    values.forEach((v, i) => expect(c.get(i)).toEqual(v));
    expect(names.values.slice(0, 3)).toEqual(['raft-agent-1', 'raft-agent-2', '']);
    // Overwritten: a non-string value leaves its side map.
    c.set(4, 'x');
    c.set(5, null);
    expect([c.get(4), c.get(5)]).toEqual(['x', null]);
  });

  it('a record stored and read back is the same record, field order included', () => {
    const t = new OrchTasks(orch(100), new Interner(), false);
    const r: TaskRecord = {
      id: 'orch-7-42',
      orch: 'orch-7',
      seq: 42,
      priority: 'high',
      status: 'completed',
      epoch: 300,
      assignee: 'raft-agent-3',
      assigned_term: 2 ** 33,
      lease_until: T0 + 30_000,
      assignments: 300,
      failures: 2,
      completions_applied: 1,
      completed_index: 123_456,
      executions_started: 1e12,
      stale_completions_refused: 5,
      result: { ok: [1, 2] },
      completed_by: 'raft-agent-3',
      completed_at: T0 + 31_000,
    };
    t.load(r);
    expect(JSON.stringify(t.record(41))).toBe(JSON.stringify(r));
    expect(t.has(41)).toBe(true);
    expect(t.has(40)).toBe(false);
    t.remove(41);
    expect(t.has(41)).toBe(false);
  });
});

describe('task table on columns', () => {
  it('values beyond the compact encodings survive apply, snapshot and restore', () => {
    const b = new LogBuilder();
    b.now = T0;
    b.op(createOp(100));
    // Reassign task 1 300 times (epoch and assignments past 8 bits), with a lease far away.
    for (let e = 0; e < 300; e++) b.op({ t: 'task.assign', term: 2 ** 33, lease_ms: 2 ** 40, groups: [{ orch: 'orch-1', agent: `agent-${e % 3}`, seqs: [1], from: [e] }] });
    b.op({ t: 'task.complete', groups: [{ orch: 'orch-1', agent: 'agent-2', seqs: [1], epochs: [300], ok: true, results: ['done'], starts: [70_000] }] });
    const t = b.machine.tasks.tasks.get('orch-1-1')!;
    expect(t).toMatchObject({ status: 'completed', epoch: 300, assignments: 300, assigned_term: 2 ** 33, lease_until: T0 + 2 ** 40, executions_started: 70_000, result: 'done', completed_by: 'agent-2', completed_at: T0 });
    const restored = new CoordinationMachine();
    restored.restore(b.machine.snapshot());
    expect(restored.tasks.tasks.get('orch-1-1')).toEqual(t);
    expect(restored.snapshot()).toBe(b.machine.snapshot());
  });

  it('a failed task goes back to the end of its priority queue; ids are only the canonical spelling', () => {
    const b = new LogBuilder();
    b.op(createOp(100));
    b.op({ t: 'task.assign', term: 1, lease_ms: 1000, groups: [{ orch: 'orch-1', agent: 'a', seqs: [1, 2, 3], from: [0, 0, 0] }] });
    // The scheduler looks at the queue every tick: its head moves past the assigned tasks.
    expect(b.machine.tasks.pickPending(1, new Set()).map((t) => t.id)).toEqual(['orch-1-4']);
    b.op({ t: 'task.complete', groups: [{ orch: 'orch-1', agent: 'a', seqs: [3], epochs: [1], ok: false }] });
    const ids = b.machine.tasks.pickPending(1000, new Set()).map((t) => t.id);
    expect(ids.length).toBe(98);
    expect(ids.slice(0, 2)).toEqual(['orch-1-4', 'orch-1-5']);
    expect(ids[ids.length - 1]).toBe('orch-1-3');
    expect(b.machine.tasks.tasks.has('orch-1-03')).toBe(false);
    expect(b.machine.tasks.tasks.has('orch-1-101')).toBe(false);
    expect(b.machine.tasks.tasks.get('orch-1-3')?.status).toBe('pending');
    // A report naming a task by a non-canonical id is refused, not applied to orch-1-1.
    expect(b.op({ t: 'task.complete', items: [{ task: 'orch-1-01', agent: 'a', epoch: 1, ok: true, result: null }] })).toEqual({ ok: true, value: { applied: 0, rejected: 1 } });
    expect(b.machine.tasks.tasks.get('orch-1-1')?.status).toBe('assigned');
  });

  it('heldBy names the orchestration only while the task is assigned to that agent at that epoch', () => {
    const b = new LogBuilder();
    b.op(createOp(2));
    const tasks = b.machine.tasks;
    expect(tasks.heldBy('orch-1-1', 0, 'a')).toBeUndefined(); // pending
    b.op({ t: 'task.assign', term: 1, lease_ms: 1000, groups: [{ orch: 'orch-1', agent: 'a', seqs: [1, 2], from: [0, 0] }] });
    expect(tasks.heldBy('orch-1-1', 1, 'a')?.id).toBe('orch-1');
    expect(tasks.heldBy('orch-1-1', 0, 'a')).toBeUndefined();
    expect(tasks.heldBy('orch-1-1', 1, 'b')).toBeUndefined();
    expect(tasks.heldBy('orch-1-01', 1, 'a')).toBeUndefined();
    // Reassigned to b (epoch 2): a's assignment is gone.
    b.op({ t: 'task.assign', term: 2, lease_ms: 1000, groups: [{ orch: 'orch-1', agent: 'b', seqs: [1], from: [1] }] });
    expect(tasks.heldBy('orch-1-1', 1, 'a')).toBeUndefined();
    expect(tasks.heldBy('orch-1-1', 2, 'b')?.id).toBe('orch-1');
    b.op({ t: 'task.complete', groups: [{ orch: 'orch-1', agent: 'b', seqs: [1], epochs: [2], ok: true }] });
    b.op({ t: 'task.complete', groups: [{ orch: 'orch-1', agent: 'a', seqs: [2], epochs: [1], ok: false }] });
    expect(tasks.heldBy('orch-1-1', 2, 'b')).toBeUndefined(); // completed
    expect(tasks.heldBy('orch-1-2', 1, 'a')).toBeUndefined(); // failed once: pending again
    // The same after a restore (the index is rebuilt from the records).
    b.op({ t: 'task.assign', term: 2, lease_ms: 1000, groups: [{ orch: 'orch-1', agent: 'c', seqs: [2], from: [1] }] });
    const r = new CoordinationMachine();
    r.restore(b.machine.snapshot());
    expect(r.tasks.heldBy('orch-1-2', 2, 'c')?.id).toBe('orch-1');
    expect(r.tasks.heldBy('orch-1-1', 2, 'b')).toBeUndefined();
  });
});
