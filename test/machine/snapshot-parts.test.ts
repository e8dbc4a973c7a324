// Issue 12: snapshotData() writes a state larger than one part as format v4, bounded JSON parts
// (meta, then slices of each table), which restore() rebuilds exactly and checkSnapshot()
// vets as a whole; a state that fits in one part is still the v3 string older members read.

import { describe, expect, it, vi } from 'vitest';
import { CoordinationMachine } from '../../src/machine/coordination-machine.js';
import { LogBuilder, createOp, putOp } from './machine-util.js';

function bigState(): CoordinationMachine {
  const b = new LogBuilder();
  b.op({ t: 'session.register' } as never, { client: 'c1', seq: 1 } as never);
  for (let i = 0; i < 40; i++) b.op(putOp(`k/${i}`, `${i}`.padEnd(5000, 'x')));
  b.op(createOp(500));
  b.op(createOp(3, { idempotency_key: 'once' }));
  for (let i = 0; i < 10; i++) b.op(putOp(`small/${i}`, { i, s: 'é€😀' }));
  return b.machine;
}

describe('snapshot parts (format v4)', () => {
  it('splits a large state into parts of at most the limit and restores it exactly', () => {
    const m = bigState();
    const max = 16 << 10;
    const data = m.snapshotData(max);
    expect(Array.isArray(data)).toBe(true);
    const parts = data as readonly string[];
    expect(parts.length).toBeGreaterThan(10);
    for (const p of parts) expect(p.length).toBeLessThanOrEqual(max);
    expect(JSON.parse(parts[0]!)).toMatchObject({ v: 4, parts: parts.length });
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
