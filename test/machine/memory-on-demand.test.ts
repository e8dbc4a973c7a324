// A machine restarted from checkpoint rows reads its memory records on demand
// (MemoryStore.fromStored): the TTL records at restart, any other when first used, all of them
// when something needs every record. Whatever the history of writes, deletes, expiries,
// checkpoints and restarts, it must answer and hold exactly what a machine that applied the
// whole log holds, on the in-memory image and on a real member file, and a damaged lookup key
// must be caught, not turn into a silently different state.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CoordinationMachine } from '../../src/machine/coordination-machine.js';
import { StoredRecordDamage } from '../../src/machine/memory-store.js';
import type { Op } from '../../src/machine/types.js';
import { CheckpointImage } from '../../src/storage/memory-storage.js';
import { SqliteStorage } from '../../src/storage/sqlite-storage.js';
import type { CheckpointReader } from '../../src/storage/types.js';
import { entry, putOp } from './machine-util.js';

const CONF = { voters: ['n1'], learners: [] };
const dirs: string[] = [];
afterEach(() => {
  vi.restoreAllMocks();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** Where checkpoints go and restarts read from: the simulator's image, or a member file. */
interface Disk {
  checkpoint(m: CoordinationMachine): void;
  reader(): CheckpointReader;
  close(): void;
}

function imageDisk(): Disk & { image: CheckpointImage } {
  const image = new CheckpointImage();
  return {
    image,
    checkpoint: (m) => image.apply({ metadata: { index: m.appliedIndex, term: 1, confState: CONF }, ...m.takeCheckpoint() }),
    reader: () => image.reader(),
    close: () => {},
  };
}

function sqliteDisk(): Disk & { storage: SqliteStorage } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-on-demand-'));
  dirs.push(dir);
  const storage = SqliteStorage.open(path.join(dir, 'm.db'), { durability: 'off' });
  let logged = 0;
  return {
    storage,
    checkpoint: (m) => {
      if (m.appliedIndex === storage.load(CONF).snapshot?.index) return; // stored already
      // The log must hold the checkpoint's index (its entries' content does not matter here).
      const n = m.appliedIndex - logged;
      if (n > 0) storage.save({ snapshot: null, entries: Array.from({ length: n }, (_, i) => ({ index: logged + i + 1, term: 1, type: 'normal' as const, data: '{}' })), hardState: { term: 1, vote: null, commit: m.appliedIndex } });
      logged = Math.max(logged, m.appliedIndex);
      expect(storage.checkpoint({ metadata: { index: m.appliedIndex, term: 1, confState: CONF }, ...m.takeCheckpoint() })).toBe(true);
    },
    reader: () => storage.load(CONF).checkpoint!,
    close: () => storage.close(),
  };
}

// Keys read off the row text, and keys only the parser reads (escapes, NUL, separators).
const KEYS = ['a', 'b', 'c', 'with space', 'quote"k', 'back\\slash', 'nul\u0000k', 'ünï-😀'];

type Step =
  | { k: 'put'; key: number; value: number; ttl: number | null; cas: number | null }
  | { k: 'del'; key: number; cas: number | null }
  | { k: 'tick'; ms: number }
  | { k: 'checkpoint' }
  | { k: 'restart' }
  | { k: 'get'; key: number }
  | { k: 'list' };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ k: fc.constant('put' as const), key: fc.nat(KEYS.length - 1), value: fc.nat(1000), ttl: fc.option(fc.integer({ min: 1, max: 30 }), { freq: 4 }), cas: fc.option(fc.nat(3), { freq: 4 }) }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('del' as const), key: fc.nat(KEYS.length - 1), cas: fc.option(fc.nat(3), { freq: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('tick' as const), ms: fc.integer({ min: 1, max: 20_000 }) }) },
  { weight: 2, arbitrary: fc.constant({ k: 'checkpoint' as const }) },
  { weight: 2, arbitrary: fc.constant({ k: 'restart' as const }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('get' as const), key: fc.nat(KEYS.length - 1) }) },
  { weight: 1, arbitrary: fc.constant({ k: 'list' as const }) },
);

/** Runs `steps` on a machine that checkpoints and restarts and on one that never does; they must agree throughout. */
function run(steps: Step[], disk: Disk): void {
  let m = new CoordinationMachine();
  const ref = new CoordinationMachine();
  let now = 10_000;
  let index = 0;
  const apply = (op: Op, dt = 1): void => {
    now += dt;
    const e = entry(++index, { op, now });
    expect(m.apply(e)).toEqual(ref.apply(e));
  };
  // Something stored to restart from, with a TTL record among the rows.
  apply(putOp('seed', 0));
  apply(putOp('ttl-seed', 0, { ttl_s: 3600 }));
  disk.checkpoint(m);
  for (const s of steps) {
    switch (s.k) {
      case 'put':
        apply(putOp(KEYS[s.key]!, { v: s.value }, { ttl_s: s.ttl, if_version: s.cas }));
        break;
      case 'del':
        apply({ t: 'mem.del', key: KEYS[s.key]!, namespace: 'default', if_version: s.cas });
        break;
      case 'tick':
        apply({ t: 'clock' }, s.ms);
        break;
      case 'checkpoint':
        disk.checkpoint(m);
        break;
      case 'restart':
        // The state at the last checkpoint is this machine's when it checkpoints first.
        disk.checkpoint(m);
        m = new CoordinationMachine();
        m.restoreCheckpoint(disk.reader());
        break;
      case 'get':
        expect(m.memory.get('default', KEYS[s.key]!, m.clock)).toEqual(ref.memory.get('default', KEYS[s.key]!, ref.clock));
        break;
      case 'list':
        expect(m.memory.list('default', '', m.clock, 100)).toEqual(ref.memory.list('default', '', ref.clock, 100));
        break;
    }
    // The count needs no row read (it paces checkpoints).
    expect(m.memory.size).toBe(ref.memory.size);
  }
  expect(m.snapshot()).toBe(ref.snapshot());
  disk.checkpoint(m);
  const again = new CoordinationMachine();
  again.restoreCheckpoint(disk.reader());
  expect(again.snapshot()).toBe(ref.snapshot());
}

describe('memory records read on demand after a restart', () => {
  it('random histories of puts, deletes, expiry, checkpoints and restarts: the same answers and state as a machine that applied the log (image)', () => {
    fc.assert(
      fc.property(fc.array(stepArb, { minLength: 1, maxLength: 60 }), (steps) => run(steps, imageDisk())),
      { numRuns: 300 },
    );
  });

  it('the same on a member file (SQLite lookups by key)', () => {
    fc.assert(
      fc.property(fc.array(stepArb, { minLength: 1, maxLength: 40 }), (steps) => {
        const disk = sqliteDisk();
        try {
          run(steps, disk);
        } finally {
          disk.close();
        }
      }),
      { numRuns: 40 },
    );
  });

  it('a restart from a member file reads the TTL rows only; a read, a write and the count read no other row', () => {
    const disk = sqliteDisk();
    const m = new CoordinationMachine();
    let index = 0;
    const apply = (mm: CoordinationMachine, op: Op) => mm.apply(entry(++index, { op, now: 10_000 + index }));
    for (let k = 0; k < 3000; k++) apply(m, putOp(`key-${k}`, `value ${k}`, { ttl_s: k % 1000 === 0 ? 3600 : null }));
    disk.checkpoint(m);
    const reader = disk.reader();
    const stored = reader.storedRows!('memory')!;
    const seen = { find: 0, eager: 0, all: 0 };
    const counted = {
      count: stored.count,
      find: (key: number) => (seen.find++, stored.find(key)),
      eager: (each: (ord: number, json: string) => void) => stored.eager((o, j) => (seen.eager++, each(o, j))),
      all: (each: (ord: number, json: string) => void) => stored.all((o, j) => (seen.all++, each(o, j))),
    };
    const r = new CoordinationMachine();
    r.restoreCheckpoint({ ...reader, storedRows: () => counted });
    expect(seen).toEqual({ find: 0, eager: 3, all: 0 });
    expect(r.memory.size).toBe(3000);
    expect(r.memory.get('default', 'key-1234', r.clock)?.value).toBe('value 1234');
    for (const op of [putOp('key-77', 'changed'), putOp('brand-new', 1)]) {
      const e = entry(++index, { op, now: 10_000 + index });
      expect(r.apply(e)).toEqual(m.apply(e));
    }
    expect(seen).toEqual({ find: 3, eager: 3, all: 0 });
    expect(r.memory.size).toBe(3001);
    // Everything at once (a list): every row read once, in the order the log gave them.
    expect(r.memory.list('default', 'key-', r.clock, 5000)).toEqual(m.memory.list('default', 'key-', m.clock, 5000));
    expect(seen.all).toBe(3000);
    expect(r.snapshot()).toBe(m.snapshot());
    disk.close();
  });

  it('a record created and deleted since the restart stays deleted though its row is still stored', () => {
    for (const disk of [imageDisk(), sqliteDisk()]) {
      const m = new CoordinationMachine();
      const ref = new CoordinationMachine();
      let index = 0;
      const both = (op: Op) => {
        const e = entry(++index, { op, now: 10_000 + index });
        expect(m.apply(e)).toEqual(ref.apply(e));
      };
      both(putOp('old', 1));
      disk.checkpoint(m);
      const r = new CoordinationMachine();
      r.restoreCheckpoint(disk.reader());
      const e1 = entry(++index, { op: putOp('new', 1), now: 10_000 + index });
      r.apply(e1);
      ref.apply(e1);
      disk.checkpoint(r); // the new record's row is stored
      const e2 = entry(++index, { op: { t: 'mem.del', key: 'new', namespace: 'default', if_version: null }, now: 10_000 + index });
      r.apply(e2);
      ref.apply(e2);
      // Its row is removed only by the next checkpoint: it must not be found meanwhile.
      expect(r.memory.get('default', 'new', r.clock)).toBeUndefined();
      expect(r.memory.size).toBe(ref.memory.size);
      expect(r.snapshot()).toBe(ref.snapshot());
      disk.close();
    }
  });

  it('a file whose rows have no lookup keys (written before them) is read whole, and its next checkpoint writes the keys', () => {
    const disk = imageDisk();
    const m = new CoordinationMachine();
    for (let k = 0; k < 50; k++) m.apply(entry(k + 1, { op: putOp(`k${k}`, k), now: 10_000 + k }));
    disk.checkpoint(m);
    const rows = disk.image.tables.get('memory')!;
    for (const [ord, row] of rows) rows.set(ord, [ord, row[1]]);
    expect(disk.reader().storedRows!('memory')).toBeNull();
    const r = new CoordinationMachine();
    r.restoreCheckpoint(disk.reader());
    // The rewrite is due at once: every row.
    expect(r.dirtyRows()).toBe(50);
    disk.checkpoint(r);
    expect([...rows.values()].every((row) => typeof row[3] === 'number')).toBe(true);
    const again = new CoordinationMachine();
    again.restoreCheckpoint(disk.reader());
    expect(again.snapshot()).toBe(m.snapshot());
  });

  it('a member file from before lookup keys (no such columns) opens, is read whole, and its next checkpoint writes the keys', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-on-demand-legacy-'));
    dirs.push(dir);
    const file = path.join(dir, 'a.db');
    fs.copyFileSync(path.join(import.meta.dirname, 'fixtures', 'legacy-orch-rows.sqlite'), file);
    let st = SqliteStorage.open(file, { durability: 'off' });
    let loaded = st.load(CONF);
    expect(loaded.checkpoint!.storedRows!('memory')).toBeNull();
    const m = new CoordinationMachine();
    m.restoreCheckpoint(loaded.checkpoint!);
    const hash = m.stateHash();
    expect(m.memory.size).toBeGreaterThan(0);
    const index = m.appliedIndex;
    const e = entry(index + 1, { op: putOp('after', 1), now: 900_000 }, 3);
    m.apply(e);
    st.save({ snapshot: null, entries: [e], hardState: { term: 3, vote: null, commit: index + 1 } });
    expect(st.checkpoint({ metadata: { index: index + 1, term: 3, confState: CONF }, ...m.takeCheckpoint() })).toBe(true);
    st.close();
    st = SqliteStorage.open(file, { durability: 'off' });
    loaded = st.load(CONF);
    const rows = loaded.checkpoint!.storedRows!('memory');
    expect(rows?.count).toBe(m.memory.size);
    const again = new CoordinationMachine();
    again.restoreCheckpoint(loaded.checkpoint!);
    expect(again.snapshot()).toBe(m.snapshot());
    expect(hash).not.toBe(m.stateHash());
    st.close();
  });

  it('a damaged row found by its key is reported when read, never served', () => {
    const disk = imageDisk();
    const m = new CoordinationMachine();
    m.apply(entry(1, { op: putOp('good', 'fine'), now: 10_001 }));
    m.apply(entry(2, { op: putOp('bad', 'will be damaged'), now: 10_002 }));
    disk.checkpoint(m);
    const rows = disk.image.tables.get('memory')!;
    for (const [ord, row] of rows) if (row[1].includes('"bad"')) rows.set(ord, [ord, row[1].replace('will be damaged"', 'will be dam'), undefined, row[3], row[4]]);
    const r = new CoordinationMachine();
    r.restoreCheckpoint(disk.reader());
    expect(r.memory.get('default', 'good', r.clock)?.value).toBe('fine');
    expect(() => r.memory.get('default', 'bad', r.clock)).toThrow(StoredRecordDamage);
    expect(() => r.apply(entry(3, { op: putOp('bad', 'over'), now: 10_003 }))).toThrow(StoredRecordDamage);
  });

  it('a damaged lookup key: the record written anew is caught when the rows are read whole, and the machine stops', () => {
    const disk = imageDisk();
    const m = new CoordinationMachine();
    m.apply(entry(1, { op: putOp('x', 'v1'), now: 10_001 }));
    m.apply(entry(2, { op: putOp('y', 'v1'), now: 10_002 }));
    disk.checkpoint(m);
    const rows = disk.image.tables.get('memory')!;
    for (const [ord, row] of rows) if (row[1].includes('"key":"x"')) rows.set(ord, [ord, row[1], undefined, (row[3]! + 1) >>> 0, row[4]]);
    const r = new CoordinationMachine();
    r.restoreCheckpoint(disk.reader());
    // The lookup misses x: a put makes it version 1 again (the others have version 2).
    r.apply(entry(3, { op: putOp('x', 'v2'), now: 10_003 }));
    expect(() => r.snapshot()).toThrow(StoredRecordDamage);
    expect(() => r.snapshot()).toThrow(/"default\/x" .*not found by its lookup key/);
  });

  it('a record with a TTL not stored as a restart row is caught when the rows are read whole', () => {
    const disk = imageDisk();
    const m = new CoordinationMachine();
    m.apply(entry(1, { op: putOp('t', 'v', { ttl_s: 60 }), now: 10_001 }));
    disk.checkpoint(m);
    const rows = disk.image.tables.get('memory')!;
    for (const [ord, row] of rows) rows.set(ord, [ord, row[1], undefined, row[3], false]);
    const r = new CoordinationMachine();
    r.restoreCheckpoint(disk.reader());
    expect(() => r.snapshot()).toThrow(/has a TTL but was not stored as a row read at restart/);
  });
});
