// Issue 12: snapshotData() writes a state larger than one part as format v5, bounded JSON parts
// (meta, then slices of each table; the tasks as the task table's checkpoint rows, a block of
// tasks' column bytes as base64), which restore() rebuilds exactly and checkSnapshot() vets as
// a whole, every block's bytes included; a state that fits in one part is still the v3 string
// older members read. v4 parts (one JSON record per task) are still read.

import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { describe, expect, it, vi } from 'vitest';
import { CoordinationMachine } from '../../src/machine/coordination-machine.js';
import { ordStride } from '../../src/machine/task-table.js';
import type { Op } from '../../src/machine/types.js';
import { CheckpointImage } from '../../src/storage/memory-storage.js';
import { CHECKPOINT_TABLES } from '../../src/storage/types.js';
import { LogBuilder, createOp, entry, putOp } from './machine-util.js';

function bigState(): CoordinationMachine {
  const b = new LogBuilder();
  b.op({ t: 'session.register' } as never, { client: 'c1', seq: 1 } as never);
  for (let i = 0; i < 40; i++) b.op(putOp(`k/${i}`, `${i}`.padEnd(5000, 'x')));
  b.op(createOp(500));
  b.op(createOp(3, { idempotency_key: 'once' }));
  for (let i = 0; i < 10; i++) b.op(putOp(`small/${i}`, { i, s: 'é€😀' }));
  return b.machine;
}

describe('snapshot parts (format v5)', () => {
  it('splits a large state into parts of at most the limit and restores it exactly', () => {
    const m = bigState();
    const max = 16 << 10;
    const data = m.snapshotData(max);
    expect(Array.isArray(data)).toBe(true);
    const parts = data as readonly string[];
    expect(parts.length).toBeGreaterThan(10);
    for (const p of parts) expect(p.length).toBeLessThanOrEqual(max);
    expect(JSON.parse(parts[0]!)).toMatchObject({ v: 5, parts: parts.length });
    expect(m.checkSnapshot(parts)).toBeNull();
    const r = new CoordinationMachine();
    r.restore(parts);
    // Same state as the machine that wrote it (snapshot() is the whole state as one string).
    expect(r.snapshot()).toBe(m.snapshot());
    // Restored through the parse checkSnapshot made, and without it: the same.
    const r2 = new CoordinationMachine();
    r2.restore([...parts]);
    expect(r2.snapshot()).toBe(m.snapshot());
  });

  it('writes v3 (one string) when the state fits in one part', () => {
    const m = bigState();
    const one = m.snapshotData(64 << 20);
    expect(typeof one).toBe('string');
    expect(one).toBe(m.snapshot());
    expect(JSON.parse(one as string).v).toBe(3);
  });

  it('refuses parts missing, extra, reordered or garbled, before anything is restored', () => {
    const m = bigState();
    const parts = [...(m.snapshotData(16 << 10) as readonly string[])];
    const fresh = new CoordinationMachine();
    expect(fresh.checkSnapshot(parts.slice(0, -1))).toMatch(/parts, the snapshot says/);
    expect(fresh.checkSnapshot([...parts, parts[1]!])).toMatch(/parts, the snapshot says/);
    expect(fresh.checkSnapshot([parts[1]!, parts[0]!, ...parts.slice(2)])).toMatch(/the snapshot says undefined/);
    const garbled = [...parts];
    garbled[3] = garbled[3]!.slice(0, -1);
    expect(fresh.checkSnapshot(garbled)).toBe('part 3 is not JSON');
    const wrongKind = [...parts];
    wrongKind[2] = JSON.stringify({ v: 4, k: 'nope', rows: [] });
    expect(fresh.checkSnapshot(wrongKind)).toBe('part 2 is not a table part');
    const before = fresh.snapshot();
    expect(() => fresh.restore(garbled)).toThrow(/part 3 is not JSON/);
    expect(fresh.snapshot()).toBe(before);
  });

  it('parts checked as they arrive are not parsed again by the check of the whole, and restore the same state', () => {
    const m = bigState();
    const parts = m.snapshotData(16 << 10) as readonly string[];
    const fresh = new CoordinationMachine();
    // As a transport fills them in: one array, each part handed over once it is complete.
    const arriving: string[] = [];
    for (const [i, p] of parts.entries()) {
      arriving.push(p);
      fresh.prepareSnapshotPart(arriving, i);
    }
    const parse = vi.spyOn(JSON, 'parse');
    try {
      expect(fresh.checkSnapshot(arriving)).toBeNull();
      expect(parse).not.toHaveBeenCalled();
    } finally {
      parse.mockRestore();
    }
    expect(fresh.preparedPartsUsed).toBe(parts.length);
    fresh.restore(arriving);
    expect(fresh.snapshot()).toBe(m.snapshot());
  });

  it('a part found broken as it arrived refuses the whole; parts of another transfer, or dropped, are not used', () => {
    const m = bigState();
    const parts = [...(m.snapshotData(16 << 10) as readonly string[])];
    const fresh = new CoordinationMachine();
    const garbled = [...parts];
    garbled[3] = garbled[3]!.slice(0, -1);
    garbled.forEach((_, i) => fresh.prepareSnapshotPart(garbled, i));
    expect(fresh.checkSnapshot(garbled)).toBe('part 3 is not JSON');
    const used = fresh.preparedPartsUsed;
    // Prepared for one array, checked with another (a different transfer): parsed afresh.
    parts.forEach((_, i) => fresh.prepareSnapshotPart(parts, i));
    const other = [...parts];
    expect(fresh.checkSnapshot(other)).toBeNull();
    expect(fresh.preparedPartsUsed).toBe(used);
    // Dropped (its transfer was given up): parsed afresh too.
    parts.forEach((_, i) => fresh.prepareSnapshotPart(parts, i));
    fresh.dropSnapshotParts(parts);
    expect(fresh.checkSnapshot(parts)).toBeNull();
    expect(fresh.preparedPartsUsed).toBe(used);
    const before = fresh.snapshot();
    expect(() => fresh.restore(garbled)).toThrow(/part 3 is not JSON/);
    expect(fresh.snapshot()).toBe(before);
  });

  it('two transfers arriving interleaved (a deposed leader still sending) each keep their parsed parts', () => {
    const m = bigState();
    const parts = m.snapshotData(16 << 10) as readonly string[];
    const fresh = new CoordinationMachine();
    const fromOld: string[] = [];
    const fromNew: string[] = [];
    for (const [i, p] of parts.entries()) {
      fromOld.push(p);
      fresh.prepareSnapshotPart(fromOld, i);
      fromNew.push(p);
      fresh.prepareSnapshotPart(fromNew, i);
    }
    const parse = vi.spyOn(JSON, 'parse');
    try {
      expect(fresh.checkSnapshot(fromNew)).toBeNull();
      expect(parse).not.toHaveBeenCalled();
    } finally {
      parse.mockRestore();
    }
    expect(fresh.preparedPartsUsed).toBe(parts.length);
  });
});

/** Tasks in several blocks of 64: typed columns, widened ones, side maps, results, failures, a removed orchestration. */
function blockState(tasksPerBlock = 64): CoordinationMachine {
  const m = new CoordinationMachine({ tasksPerBlock });
  let i = 0;
  const op = (o: Op) => m.apply(entry(++i, { op: o, now: 1_000 + i * 10 }));
  const seqs = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, k) => from + k);
  for (let k = 0; k < 5; k++) op(putOp(`k${k}`, { v: k }));
  op(createOp(20, { priority: 'high', idempotency_key: 'small' })); // orch-6: plain-array columns
  op(createOp(1000)); // orch-7: 16 blocks of typed arrays
  op(createOp(100)); // orch-8: finished, then its records removed
  op({ t: 'task.assign', term: 1, lease_ms: 1000, groups: [{ orch: 'orch-6', agent: 'a1', seqs: seqs(1, 12), from: seqs(1, 12).map(() => 0) }] });
  op({ t: 'task.complete', items: [{ task: 'orch-6-1', agent: 'a1', epoch: 1, ok: true, result: { r: 1 } }, { task: 'orch-6-2', agent: 'a1', epoch: 1, ok: false, result: 'boom' }] });
  op({ t: 'task.assign', term: 2, lease_ms: 5_000_000_000, groups: [{ orch: 'orch-7', agent: 'a2', seqs: seqs(1, 700), from: seqs(1, 700).map(() => 0) }] });
  op({ t: 'task.assign', term: 2, lease_ms: 1000.5, items: [{ task: 'orch-7-900', agent: 'a3', from_epoch: 0 }] });
  op({ t: 'task.complete', items: [], groups: [{ orch: 'orch-7', agent: 'a2', seqs: seqs(1, 500), epochs: seqs(1, 500).map(() => 1), ok: true, results: seqs(1, 500).map((q) => (q % 7 === 0 ? { q } : null)) }] });
  op({ t: 'task.assign', term: 3, lease_ms: 1000, groups: [{ orch: 'orch-8', agent: 'a1', seqs: seqs(1, 100), from: seqs(1, 100).map(() => 0) }] });
  op({ t: 'task.complete', items: [], groups: [{ orch: 'orch-8', agent: 'a1', seqs: seqs(1, 100), epochs: seqs(1, 100).map(() => 1), ok: true }] });
  op({ t: 'config', patch: { task_retention_orchestrations: 0 } });
  op({ t: 'clock' });
  expect(m.tasks.orchs.get('orch-8')!.compacted?.done_index).not.toBeNull();
  return m;
}

type TaskRow = [number, unknown, string?];
const partOf = (p: string) => JSON.parse(p) as { v: number; k: string; rows: unknown[] };

/** The parts with one task row changed by `edit` (the first row `pick` accepts). */
function damaged(parts: readonly string[], pick: (r: TaskRow) => boolean, edit: (r: TaskRow, rows: unknown[], at: number) => void): { parts: string[]; part: number } {
  const out = [...parts];
  for (let i = 1; i < out.length; i++) {
    const p = partOf(out[i]!);
    if (p.k !== 'taskrows') continue;
    const at = p.rows.findIndex((r) => pick(r as TaskRow));
    if (at < 0) continue;
    edit(p.rows[at] as TaskRow, p.rows, at);
    out[i] = JSON.stringify(p);
    return { parts: out, part: i };
  }
  throw new Error('no such task row');
}

describe('snapshot parts: tasks as block rows (v5)', () => {
  // Row keys: created_index * stride, blocks after it (ordStride for blocks of 64 tasks).
  const STRIDE = ordStride(6);
  it('carry each orchestration as its metadata row and a row per block of column bytes, not a record per task', () => {
    const m = blockState();
    const parts = m.snapshotData(4096) as readonly string[];
    expect(Array.isArray(parts)).toBe(true);
    const meta = JSON.parse(parts[0]!);
    expect(meta).toMatchObject({ v: 5, tasks: { agents: ['a1', 'a2', 'a3'], block: 64 } });
    const kinds = new Set(parts.slice(1).map((p) => partOf(p).k));
    expect([...kinds].sort()).toEqual(['memory', 'taskrows']);
    const rows = parts
      .slice(1)
      .map(partOf)
      .filter((p) => p.k === 'taskrows')
      .flatMap((p) => p.rows as TaskRow[]);
    const stride = ordStride(Math.log2(64));
    // orch-6: metadata + 1 block; orch-7: metadata + 16 blocks (1,000 tasks); orch-8: its summary only.
    expect(rows.map(([ord]) => [Math.floor(ord / stride), ord % stride])).toEqual([
      [6, 0],
      [6, 1],
      [7, 0],
      ...Array.from({ length: 16 }, (_, b) => [7, b + 1]),
      [8, 0],
    ]);
    // Typed columns travel as base64 bytes; no part holds a task record.
    expect(rows.filter((r) => typeof r[2] === 'string')).toHaveLength(16);
    expect(parts.join('')).not.toContain('"orch-7-1"');
    const taskChars = parts.filter((p) => partOf(p).k === 'taskrows').reduce((n, p) => n + p.length, 0);
    expect(taskChars / 1120).toBeLessThan(40);
    expect(m.checkSnapshot(parts)).toBeNull();
    const r = new CoordinationMachine();
    r.restore(parts);
    expect(r.snapshot()).toBe(m.snapshot());
    // The derived structures (pending queues, assigned set, retention, idempotency) as a v3 restore builds them.
    const twin = new CoordinationMachine();
    twin.restore(m.snapshot());
    expect(r.tasks.derivedForTest()).toBe(twin.tasks.derivedForTest());
  });

  it('sends parts when the block rows fit in one part but the v3 string would not, without building that string', () => {
    const m = blockState();
    const v3 = m.snapshot().length;
    const parts = m.snapshotData(4 << 20) as readonly string[];
    // Fits whole: v3 (what older members read).
    expect(parts).toBe(m.snapshot());
    const max = Math.floor(v3 / 4);
    const toString = vi.spyOn(m, 'snapshot');
    try {
      const data = m.snapshotData(max);
      expect(Array.isArray(data)).toBe(true);
      expect((data as string[]).length).toBe(3); // meta, task rows, memory
      expect((data as string[]).join('').length).toBeLessThan(v3 / 10);
      // 1,120 records of at least 256 characters do not fit in `max`: v3 was never built.
      expect(toString).not.toHaveBeenCalled();
    } finally {
      toString.mockRestore();
    }
  });

  it('restores on a member with another block size, and its next checkpoint rewrites every table, read back exactly', () => {
    const m = blockState(64);
    const r = new CoordinationMachine();
    const parts = m.snapshotData(2048);
    expect(r.checkSnapshot(parts)).toBeNull();
    r.restore(parts);
    expect(r.snapshot()).toBe(m.snapshot());
    const c = r.takeCheckpoint();
    for (const t of CHECKPOINT_TABLES) expect(c.tables[t].clear).toBe(true);
    const image = new CheckpointImage();
    image.apply({ metadata: { index: r.appliedIndex, term: 1, confState: { voters: ['n1'], learners: [] } }, ...c });
    const back = new CoordinationMachine();
    back.restoreCheckpoint(image.reader());
    expect(back.snapshot()).toBe(m.snapshot());
  });

  it('taking a snapshot leaves the checkpoint tracking alone (the next checkpoint writes what it would have)', () => {
    const a = blockState();
    const b = blockState();
    a.takeCheckpoint();
    b.takeCheckpoint();
    const seqs = Array.from({ length: 50 }, (_, k) => 801 + k);
    for (const m of [a, b]) m.apply(entry(m.appliedIndex + 1, { op: { t: 'task.assign', term: 4, lease_ms: 10, groups: [{ orch: 'orch-7', agent: 'a9', seqs, from: seqs.map(() => 0) }] }, now: 99_999 }));
    expect(Array.isArray(a.snapshotData(2048))).toBe(true);
    expect(a.dirtyRows()).toBe(b.dirtyRows());
    expect(a.takeCheckpoint()).toEqual(b.takeCheckpoint());
  });

  it('refuses a damaged block row before anything is restored, naming the part and the orchestration', () => {
    const m = blockState();
    const parts = m.snapshotData(4096) as readonly string[];
    const isBlock = (ord: number, b: number) => (r: TaskRow) => r[0] === ord * STRIDE + 1 + b;
    const cases: Array<[string, { parts: string[]; part: number }, RegExp]> = [
      // Not base64 (Buffer.from would skip the character and decode the rest).
      ['bad base64', damaged(parts, isBlock(7, 3), (r) => (r[2] = `${r[2]!.slice(0, 10)}!${r[2]!.slice(11)}`)), /^part (\d+), orch-7 block 3: its column bytes are not base64/],
      ['bytes cut short', damaged(parts, isBlock(7, 5), (r) => (r[2] = r[2]!.slice(0, -8))), /^part (\d+), orch-7 block 5: .*column bytes end at/],
      ['bytes left over', damaged(parts, isBlock(7, 15), (r) => (r[2] = `AAAA${r[2]}`)), /^part (\d+), orch-7 block 15: .*3 column bytes left over/],
      // The lease column's width said 4 bytes a slot where 2 were written.
      [
        'widths that do not match',
        damaged(parts, isBlock(7, 0), (r) => {
          const lease = ((r[1] as unknown[])[1] as unknown[])[3] as [number, string, unknown];
          lease[0] = lease[0] === 2 ? 1 : 2;
        }),
        /^part (\d+), orch-7 block 0: .*column bytes/,
      ],
      ['a width no column has', damaged(parts, isBlock(7, 1), (r) => ((((r[1] as unknown[])[1] as unknown[])[0] as unknown[])[0] = 7)), /^part (\d+), orch-7 block 1: .*byte column of width 7/],
      ['a status of the wrong length', damaged(parts, isBlock(6, 0), (r) => ((r[1] as unknown[])[0] = [0, 1])), /^part (\d+), orch-6 block 0: .*status is not 20 JSON slots/],
      ['a block twice', damaged(parts, isBlock(7, 2), (_r, rows, at) => rows.splice(at, 0, rows[at])), /^part (\d+), orch-7 block 2: .*block 2 is not one of its 16 or came twice/],
      // Found missing when the next orchestration's row comes (part 10 here): both are named.
      ['a block missing', damaged(parts, isBlock(7, 9), (_r, rows, at) => rows.splice(at, 1)), /^part \d+, orch-8 \(its metadata row\): task rows of orch-7: 15 of its 16 task blocks/],
      ['a row that is not one', damaged(parts, isBlock(7, 4), (_r, rows, at) => (rows[at] = { x: 1 })), /^part (\d+), after orch-7: a task row is not/],
    ];
    for (const [what, bad, msg] of cases) {
      const fresh = new CoordinationMachine();
      const before = fresh.snapshot();
      const why = fresh.checkSnapshot(bad.parts);
      expect(why, what).toMatch(msg);
      // The part named is the damaged one (the regex captures it, but for a missing block).
      const named = msg.exec(why!)![1];
      if (named !== undefined) expect(Number(named), what).toBe(bad.part);
      expect(() => fresh.restore(bad.parts), what).toThrow(/^snapshot: part \d+/);
      expect(fresh.snapshot(), what).toBe(before);
      // The same when the task rows were loaded as their parts arrived (TaskRowsFeed).
      const arriving: string[] = [];
      const fed = new CoordinationMachine();
      for (const [i, p] of bad.parts.entries()) {
        arriving.push(p);
        fed.prepareSnapshotPart(arriving, i);
      }
      expect(fed.checkSnapshot(arriving), what).toBe(why);
      expect(() => fed.restore(arriving), what).toThrow(/^snapshot: part \d+/);
      expect(fed.snapshot(), what).toBe(before);
    }
    // The undamaged parts are accepted.
    expect(new CoordinationMachine().checkSnapshot(parts)).toBeNull();
  });

  it('reads v4 parts (one JSON record per task) written before v5, as they arrive or at once', () => {
    const f = JSON.parse(fs.readFileSync(new URL('./fixtures/v4-parts.json', import.meta.url), 'utf8')) as { snapshot_sha256: string; parts: string[] };
    expect(JSON.parse(f.parts[0]!).v).toBe(4);
    expect(f.parts.slice(1).map((p) => partOf(p).k)).toContain('tasks');
    const sha = (s: string) => createHash('sha256').update(s).digest('hex');
    const r = new CoordinationMachine();
    expect(r.checkSnapshot(f.parts)).toBeNull();
    r.restore(f.parts);
    expect(sha(r.snapshot())).toBe(f.snapshot_sha256);
    const arriving: string[] = [];
    const r2 = new CoordinationMachine();
    for (const [i, p] of f.parts.entries()) {
      arriving.push(p);
      r2.prepareSnapshotPart(arriving, i);
    }
    expect(r2.checkSnapshot(arriving)).toBeNull();
    r2.restore(arriving);
    expect(sha(r2.snapshot())).toBe(f.snapshot_sha256);
    // Written again, it is v5, and restores to the same state.
    const again = r.snapshotData(4096) as readonly string[];
    expect(JSON.parse(again[0]!).v).toBe(5);
    const r3 = new CoordinationMachine();
    r3.restore(again);
    expect(sha(r3.snapshot())).toBe(f.snapshot_sha256);
    // A part of one version among parts of the other is refused.
    const mixed = [...again];
    mixed[1] = f.parts[1]!;
    expect(new CoordinationMachine().checkSnapshot(mixed)).toBe('part 1 is of version 4, part 0 of 5');
  });
});

describe('a state without rows', () => {
  it('is v3 whatever the part size (a one-element v5 array is read as v3 and refused: simulator seed 8818)', () => {
    const m = new CoordinationMachine();
    const d = m.snapshotData(8);
    expect(typeof d).toBe('string');
    const other = new CoordinationMachine();
    expect(other.checkSnapshot(d)).toBeNull();
    other.restore(d);
    expect(other.snapshot()).toBe(m.snapshot());
  });
});
