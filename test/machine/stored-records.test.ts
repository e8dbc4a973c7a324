// A machine restarted from checkpoint rows keeps each memory record without a TTL as its
// row's text until the record is read (MemoryStore.fromRows). Everything a replica does with
// such a record (read, list, overwrite, delete, expire others, checkpoint again, snapshot)
// must give what the machine that applied the log gives, and a damaged row must be reported
// when it is read, never served.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CoordinationMachine } from '../../src/machine/coordination-machine.js';
import { StoredRecordDamage } from '../../src/machine/memory-store.js';
import type { Op } from '../../src/machine/types.js';
import { CheckpointImage } from '../../src/storage/memory-storage.js';
import { SqliteStorage } from '../../src/storage/sqlite-storage.js';
import { entry, putOp } from './machine-util.js';

const CONF = { voters: ['n1'], learners: [] };
const dirs: string[] = [];
afterEach(() => {
  vi.restoreAllMocks();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** A machine and a reference applying the same log; `checkpoint` stores rows in `image`. */
function pair() {
  const m = new CoordinationMachine();
  const ref = new CoordinationMachine();
  const image = new CheckpointImage();
  let i = 0;
  let now = 10_000;
  const apply = (op: Op, dt = 1): unknown => {
    now += dt;
    const e = entry(++i, { op, now });
    ref.apply(e);
    return m.apply(e);
  };
  const checkpoint = (on = m) => image.apply({ metadata: { index: on.appliedIndex, term: 1, confState: CONF }, ...on.takeCheckpoint() });
  return { m, ref, image, apply, checkpoint, now: () => now };
}

// Keys the fast path reads off the text, and keys it must leave to the parser (escapes).
const KEYS = ['plain', 'with space', 'ünïcødé-😀', 'quote"inside', 'back\\slash', 'tab\there', 'nul\u0000key', 'line\u2028sep'];

describe('memory records restored from checkpoint rows (kept as text until read)', () => {
  it('reads, lists, overwrites, deletes and checkpoints them as the machine that applied the log does', () => {
    const p = pair();
    for (const [n, k] of KEYS.entries()) p.apply(putOp(k, { n, nested: [k, null, 1.5, -0, 1e21] }));
    p.apply(putOp('obj', { a: { b: ['c'] }, __proto__: 'own' }, { namespace: 'other' }));
    p.apply(putOp('ttl', 'short', { ttl_s: 5 }));
    p.apply(putOp('plain', 'v2')); // version 2, created_at kept
    // A put without a value (proposed around the tools): its row has no value field.
    p.apply(putOp('novalue', undefined));
    p.checkpoint();
    const stored = new CoordinationMachine();
    stored.restoreCheckpoint(p.image.reader());

    // Reads: the stored version, times and value.
    for (const k of KEYS) expect(stored.memory.get('default', k, stored.clock)).toEqual(p.ref.memory.get('default', k, p.ref.clock));
    expect(stored.memory.list('other', '', stored.clock, 10)).toEqual(p.ref.memory.list('other', '', p.ref.clock, 10));
    expect(stored.memory.list('default', 'p', stored.clock, 10).map((r) => r.key)).toEqual(['plain']);
    expect(stored.memory.has('default', 'line\u2028sep')).toBe(true);
    expect(stored.memory.size).toBe(p.ref.memory.size);

    // Writes on a restored machine that nobody read yet: same results, same state.
    const m = new CoordinationMachine();
    m.restoreCheckpoint(p.image.reader());
    const q = { ...p, m };
    const ops: Op[] = [
      putOp('with space', 'cas', { if_version: 1 }),
      putOp('quote"inside', 'cas-fails', { if_version: 7 }),
      { t: 'mem.del', key: 'ünïcødé-😀', namespace: 'default', if_version: 1 },
      { t: 'mem.del', key: 'tab\there', namespace: 'default', if_version: 9 },
      putOp('new', 1),
    ];
    for (const op of ops) {
      const e = entry(m.appliedIndex + 1, { op, now: p.now() + 1 });
      expect(m.apply(e)).toEqual(p.ref.apply(e));
    }
    // The TTL key expires on the restored machine too (its row was parsed at restore).
    const tick = entry(m.appliedIndex + 1, { op: { t: 'clock' }, now: p.now() + 60_000 });
    m.apply(tick);
    p.ref.apply(tick);
    expect(m.memory.has('default', 'ttl')).toBe(false);
    // A checkpoint of the restored machine writes only what changed; restored from it, and
    // from a full rewrite of unread rows (their text as stored), the state is the same.
    q.checkpoint(m);
    m.markCheckpointLost();
    const full = new CheckpointImage();
    full.apply({ metadata: { index: m.appliedIndex, term: 1, confState: CONF }, ...m.takeCheckpoint() });
    for (const reader of [p.image.reader(), full.reader()]) {
      const again = new CoordinationMachine();
      again.restoreCheckpoint(reader);
      expect(again.snapshot()).toBe(p.ref.snapshot());
    }
    expect(m.snapshot()).toBe(p.ref.snapshot());
    expect(m.stateHash()).toBe(p.ref.stateHash());
  });

  it('an unread row written again whole (checkpoint lost) is its stored text, byte for byte', () => {
    const p = pair();
    for (let k = 0; k < 20; k++) p.apply(putOp(`k${k}`, { k, s: 'x'.repeat(k) }));
    p.checkpoint();
    const stored = [...p.image.tables.get('memory')!.values()].map(([ord, json]) => [ord, json]);
    const m = new CoordinationMachine();
    m.restoreCheckpoint(p.image.reader());
    m.markCheckpointLost();
    const c = m.takeCheckpoint();
    expect(c.tables.memory.clear).toBe(true);
    expect(c.tables.memory.put.map(([ord, json]) => [ord, json])).toEqual(stored);
  });

  it('restarting from a member file parses no memory row before it is read', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-stored-'));
    dirs.push(dir);
    const p = pair();
    for (let k = 0; k < 2000; k++) p.apply(putOp(`key-${k}`, `value ${k} ${'v'.repeat(200)}`));
    const file = path.join(dir, 'm.db');
    const st = SqliteStorage.open(file, { durability: 'off' });
    st.save({ snapshot: null, entries: Array.from({ length: p.m.appliedIndex }, (_, i) => ({ index: i + 1, term: 1, type: 'normal' as const, data: '{}' })), hardState: { term: 1, vote: null, commit: p.m.appliedIndex } });
    expect(st.checkpoint({ metadata: { index: p.m.appliedIndex, term: 1, confState: CONF }, ...p.m.takeCheckpoint() })).toBe(true);
    st.close();

    const st2 = SqliteStorage.open(file, { durability: 'off' });
    const reader = st2.load(CONF).checkpoint!;
    const m = new CoordinationMachine();
    const parse = vi.spyOn(JSON, 'parse');
    m.restoreCheckpoint(reader);
    // Meta and the other tables' rows only: no memory row (2,000 of them) was parsed.
    expect(parse.mock.calls.length).toBeLessThan(20);
    expect(m.memory.get('default', 'key-1234', m.clock)?.value).toBe(`value 1234 ${'v'.repeat(200)}`);
    expect(parse.mock.calls.length).toBeLessThan(21);
    parse.mockRestore();
    expect(m.snapshot()).toBe(p.ref.snapshot());
    st2.close();
  });

  it('a damaged stored row is reported when it is read, never served', () => {
    const p = pair();
    p.apply(putOp('good', 'fine'));
    p.apply(putOp('bad', 'will be damaged'));
    p.apply(putOp('swapped', 'names another key'));
    p.checkpoint();
    const rows = p.image.tables.get('memory')!;
    for (const [ord, row] of rows) {
      // A value cut short (torn text), and a row that parses but holds another record's key.
      if (row[1].includes('"bad"')) rows.set(ord, [ord, row[1].replace('will be damaged"', 'will be dam')]);
      if (row[1].includes('"swapped"')) rows.set(ord, [ord, row[1].replace('"names another key"', '"x","key":"other"')]);
    }
    const m = new CoordinationMachine();
    m.restoreCheckpoint(p.image.reader());
    expect(m.memory.get('default', 'good', m.clock)?.value).toBe('fine');
    expect(() => m.memory.get('default', 'bad', m.clock)).toThrow(StoredRecordDamage);
    expect(() => m.memory.get('default', 'bad', m.clock)).toThrow(/"default\/bad" \(checkpoint row \d+\) is damaged: not JSON/);
    expect(() => m.memory.get('default', 'swapped', m.clock)).toThrow(/is damaged: it holds key "other"/);
    // Every path that reads the record reports it: list, overwrite, snapshot.
    expect(() => m.memory.list('default', '', m.clock, 10)).toThrow(StoredRecordDamage);
    expect(() => m.apply(entry(m.appliedIndex + 1, { op: putOp('bad', 'over'), now: p.now() + 1 }))).toThrow(StoredRecordDamage);
    expect(() => m.snapshot()).toThrow(StoredRecordDamage);
  });
});
