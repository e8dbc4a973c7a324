// One behavioural suite for both LogStorage implementations: MemoryStorage is the reference,
// SqliteStorage must behave identically across close/reopen of its file.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import type { ConfState, Entry, HardState, RestartState, Snapshot } from '../src/raft/types.js';
import { MemoryStorage } from '../src/storage/memory-storage.js';
import { SqliteStorage } from '../src/storage/sqlite-storage.js';
import { CHECKPOINT_TABLES, type CheckpointReader, type CheckpointRow, type CheckpointTable, type LoadedState, type LogStorage, type MachineCheckpoint, type PersistBatch } from '../src/storage/types.js';

const CONF: ConfState = { voters: ['a', 'b', 'c'], learners: [] };
const tempDirs: string[] = [];
const openStores: LogStorage[] = [];

afterEach(() => {
  for (const s of openStores.splice(0)) s.close();
  for (const d of tempDirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** A store plus a way to "restart" it: reopen the file, or reuse the surviving memory object. */
interface Handle {
  store: LogStorage;
  reopen(): LogStorage;
  file?: string;
}

const kinds: { name: string; make: () => Handle }[] = [
  {
    name: 'MemoryStorage',
    make: () => {
      const h: Handle = { store: new MemoryStorage(), reopen: () => (h.store.close(), h.store) };
      return h;
    },
  },
  {
    name: 'SqliteStorage',
    make: () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-storage-'));
      tempDirs.push(dir);
      const file = path.join(dir, 'node-a', 'raft.db'); // parent dir does not exist yet
      const h: Handle = {
        file,
        store: track(SqliteStorage.open(file)),
        reopen: () => (h.store.close(), (h.store = track(SqliteStorage.open(file)))),
      };
      return h;
    },
  },
  {
    // Durability 'full' with the fsync off SQLite's commit: synchronous=NORMAL plus our own
    // WAL fdatasync (inline in save(); saveAsync is tested below).
    name: 'SqliteStorage (fsync threadpool)',
    make: () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-storage-'));
      tempDirs.push(dir);
      const file = path.join(dir, 'node-a', 'raft.db');
      const open = () => track(SqliteStorage.open(file, { fsync: 'threadpool' }));
      const h: Handle = { file, store: open(), reopen: () => (h.store.close(), (h.store = open())) };
      return h;
    },
  },
];

function track<T extends LogStorage>(s: T): T {
  openStores.push(s);
  return s;
}

const ents = (from: number, to: number, term: number): Entry[] =>
  Array.from({ length: to - from + 1 }, (_, i) => ({ index: from + i, term, type: 'normal' as const, data: `v${from + i}·é😀` }));
const snap = (index: number, term: number, data = `state@${index}`): Snapshot => ({ metadata: { index, term, confState: CONF }, data });
const batch = (b: Partial<PersistBatch>): PersistBatch => ({ snapshot: null, entries: [], hardState: null, ...b });

/** A table's rows as jsonRows passes them (unparsed, in ord order). */
const jsonRowsOf = (c: CheckpointReader, t: CheckpointTable): Array<[number, string]> => {
  const out: Array<[number, string]> = [];
  c.jsonRows(t, (ord, json) => out.push([ord, json]));
  return out;
};

/** load() with its checkpoint's rows read out (they are read lazily), parsed and as text. */
const loaded = (s: LogStorage): unknown => {
  const st: LoadedState = s.load(CONF);
  if (!st.checkpoint) return st;
  const c = st.checkpoint;
  return {
    ...st,
    checkpoint: {
      meta: c.meta,
      tables: Object.fromEntries(CHECKPOINT_TABLES.map((t) => [t, [...c.rows(t)].map(([o, v, bin]) => (bin === undefined ? [o, v] : [o, v, [...bin]]))])),
      json: Object.fromEntries(CHECKPOINT_TABLES.map((t) => [t, jsonRowsOf(c, t)])),
    },
  };
};

describe.each(kinds)('$name', ({ make }) => {
  it('loads an empty store with defaults', () => {
    const { store } = make();
    const conf = { voters: ['x'], learners: ['y'] };
    const st = store.load(conf);
    expect(st).toEqual({ hardState: { term: 0, vote: null, commit: 0 }, snapshot: null, entries: [], initialConf: conf });
    expect(st.snapshotData).toBeUndefined();
    expect(store.stats().entryCount).toBe(0);
  });

  it('recovers hard state and entries exactly after reopen', () => {
    const h = make();
    const entries = [...ents(1, 3, 1), { index: 4, term: 2, type: 'conf' as const, data: '{"type":"addVoter","node":"d"}' }, { index: 5, term: 2, type: 'noop' as const, data: '' }];
    h.store.save(batch({ entries, hardState: { term: 2, vote: 'b', commit: 4 } }));
    const st = h.reopen().load(CONF);
    expect(st.hardState).toEqual({ term: 2, vote: 'b', commit: 4 });
    expect(st.entries).toEqual(entries);
    expect(st.snapshot).toBeNull();
    expect(h.store.stats().entryCount).toBe(5);
  });

  it('truncates the stored suffix on a conflicting save', () => {
    const h = make();
    h.store.save(batch({ entries: ents(1, 5, 1) }));
    h.store.save(batch({ entries: ents(3, 4, 2) }));
    const st = h.reopen().load(CONF);
    expect(st.entries).toEqual([...ents(1, 2, 1), ...ents(3, 4, 2)]);
    expect(h.store.stats().entryCount).toBe(4);
  });

  it('drops the whole log when a snapshot is installed via save', () => {
    const h = make();
    h.store.save(batch({ entries: ents(1, 8, 1) }));
    // Installed at 5, below the last index: 6..8 must go too (they may conflict with the leader).
    h.store.save(batch({ snapshot: snap(5, 3), entries: ents(6, 6, 3), hardState: { term: 3, vote: null, commit: 5 } }));
    const st = h.reopen().load(CONF);
    expect(st.snapshot).toEqual({ index: 5, term: 3, confState: CONF });
    expect(st.snapshotData).toBe('state@5');
    expect(st.entries).toEqual(ents(6, 6, 3));
    expect(st.hardState).toEqual({ term: 3, vote: null, commit: 5 });
    h.store.save(batch({ snapshot: snap(20, 4) })); // beyond the log, no entries
    expect(h.reopen().load(CONF)).toMatchObject({ snapshot: { index: 20, term: 4 }, entries: [] });
    expect(h.store.stats().entryCount).toBe(0);
  });

  it('compaction keeps later entries, returned after the snapshot on reopen', () => {
    const h = make();
    h.store.save(batch({ entries: [...ents(1, 4, 1), ...ents(5, 10, 2)] }));
    h.store.compact(snap(6, 2));
    expect(h.store.stats().entryCount).toBe(4);
    h.store.compact(snap(3, 1)); // stale: ignored
    const st = h.reopen().load(CONF);
    expect(st.snapshot).toEqual({ index: 6, term: 2, confState: CONF });
    expect(st.snapshotData).toBe('state@6');
    expect(st.entries).toEqual(ents(7, 10, 2));
    h.store.save(batch({ entries: ents(11, 11, 2) })); // appends continue after compaction
    expect(h.reopen().load(CONF).entries.map((e) => e.index)).toEqual([7, 8, 9, 10, 11]);
  });

  it('rejects malformed batches atomically', () => {
    const h = make();
    h.store.save(batch({ entries: ents(1, 5, 1), hardState: { term: 1, vote: 'a', commit: 2 } }));
    h.store.compact(snap(2, 1));
    const before = h.store.load(CONF);
    const stats = h.store.stats();
    expect(() => h.store.save(batch({ entries: ents(7, 8, 1), hardState: { term: 9, vote: null, commit: 0 } }))).toThrow(/do not attach/);
    expect(() => h.store.save(batch({ entries: ents(2, 3, 1) }))).toThrow(/do not attach/); // covered by snapshot
    expect(() => h.store.save(batch({ entries: [...ents(3, 3, 1), ...ents(5, 5, 1)] }))).toThrow(/not contiguous/);
    expect(() => h.store.save(batch({ snapshot: snap(1, 1) }))).toThrow(/older than the stored snapshot/);
    expect(() => h.store.save(batch({ snapshot: snap(9, 2), entries: ents(11, 11, 2) }))).toThrow(/do not attach/);
    expect(() => h.store.compact(snap(9, 1))).toThrow(/log ends at 5/);
    expect(() => h.store.compact(snap(4, 7))).toThrow(/has term 7 but the log has term 1/);
    expect(h.reopen().load(CONF)).toEqual(before);
    expect(h.store.stats().entryCount).toBe(stats.entryCount);
  });

  it('does not alias caller objects', () => {
    const h = make();
    const entries = ents(1, 2, 1);
    const hs: HardState = { term: 1, vote: 'a', commit: 1 };
    h.store.save(batch({ entries, hardState: hs }));
    entries[0]!.data = 'mutated';
    hs.term = 99;
    const loaded = h.store.load(CONF);
    loaded.entries[1]!.term = 42;
    loaded.hardState.vote = 'z';
    expect(h.store.load(CONF)).toMatchObject({ hardState: { term: 1, vote: 'a', commit: 1 }, entries: ents(1, 2, 1) });
  });

  it('counts bytes, syncs and entries', async () => {
    const h = make();
    h.store.save(batch({})); // nothing durable: no sync
    expect(h.store.stats()).toMatchObject({ bytesWritten: 0, syncs: 0, entryCount: 0 });
    h.store.save(batch({ entries: ents(1, 500, 1), hardState: { term: 1, vote: 'a', commit: 0 } }));
    const s1 = h.store.stats();
    expect(s1.syncs).toBe(1); // hundreds of entries, one transaction
    expect(s1.entryCount).toBe(500);
    expect(s1.bytesWritten).toBeGreaterThan(500 * 10);
    h.store.compact(snap(100, 1));
    // fsync 'threadpool' counts the compaction's fsync when it completed (nothing waits for it).
    for (let i = 0; i < 500 && h.store.stats().syncs < 2; i++) await new Promise((r) => setTimeout(r, 10));
    const s2 = h.store.stats();
    expect(s2.syncs).toBe(2);
    expect(s2.bytesWritten).toBeGreaterThan(s1.bytesWritten);
    expect(s2.entryCount).toBe(400);
    expect(s2.syncMsTotal).toBeGreaterThanOrEqual(s1.syncMsTotal);
  });

  // Reference model: plain arrays, the obvious semantics. The log starts after the newer of
  // the snapshot and the checkpoint rows (which then hold the state).
  interface Rows { index: number; term: number; meta: string; tables: Record<CheckpointTable, Map<number, [json: string, bin?: number[]]>> }
  interface Model { hs: HardState; snap: Snapshot | null; rows: Rows | null; entries: Entry[] }
  const fromRows = (m: Model) => m.rows !== null && m.rows.index >= (m.snap?.metadata.index ?? 0);
  const snapIdx = (m: Model) => Math.max(m.snap?.metadata.index ?? 0, m.rows?.index ?? 0);
  const lastIdx = (m: Model) => m.entries.at(-1)?.index ?? snapIdx(m);
  const baseTerm = (m: Model) => (fromRows(m) ? m.rows!.term : (m.snap?.metadata.term ?? 0));
  const termAt = (m: Model, i: number) => (i === snapIdx(m) ? baseTerm(m) : m.entries.find((e) => e.index === i)!.term);
  const expected = (m: Model): unknown => ({
    hardState: m.hs,
    snapshot: fromRows(m) ? { index: m.rows!.index, term: m.rows!.term, confState: CONF } : (m.snap?.metadata ?? null),
    ...(fromRows(m)
      ? {
          checkpoint: {
            meta: m.rows!.meta,
            tables: Object.fromEntries(CHECKPOINT_TABLES.map((t) => [t, [...m.rows!.tables[t]].sort((a, b) => a[0] - b[0]).map(([o, [j, bin]]) => (bin === undefined ? [o, JSON.parse(j)] : [o, JSON.parse(j), bin]))])),
            json: Object.fromEntries(CHECKPOINT_TABLES.map((t) => [t, [...m.rows!.tables[t]].sort((a, b) => a[0] - b[0]).map(([o, [j]]) => [o, j])])),
          },
        }
      : m.snap
        ? { snapshotData: m.snap.data }
        : {}),
    entries: m.entries,
    initialConf: CONF,
  });

  const op = fc.oneof(
    fc.record({ k: fc.constant('append' as const), back: fc.nat(4), n: fc.integer({ min: 1, max: 6 }), bump: fc.nat(1), withHs: fc.boolean() }),
    fc.record({ k: fc.constant('install' as const), ahead: fc.nat(8), bump: fc.nat(1), n: fc.nat(3) }),
    fc.record({ k: fc.constant('compact' as const), at: fc.nat(1000) }),
    fc.record({ k: fc.constant('hs' as const), bump: fc.nat(1), vote: fc.constantFrom(null, 'a', 'b'), at: fc.nat(1000) }),
    fc.record({
      k: fc.constant('checkpoint' as const),
      at: fc.nat(1000),
      clear: fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
      del: fc.array(fc.nat(12), { maxLength: 4 }),
      // Rows with a binary part (BLOB) too, empty ones included.
      put: fc.array(fc.tuple(fc.nat(12), fc.string({ maxLength: 6 }), fc.option(fc.array(fc.nat(255), { maxLength: 5 }), { nil: undefined })), { maxLength: 6 }),
    }),
    fc.constant({ k: 'reopen' as const }),
  );

  it('matches a reference model under random saves, compactions and restarts', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 30 }), (ops) => {
        const h = make();
        const m: Model = { hs: { term: 0, vote: null, commit: 0 }, snap: null, rows: null, entries: [] };
        for (const o of ops) {
          if (o.k === 'append') {
            const first = Math.max(snapIdx(m) + 1, lastIdx(m) + 1 - o.back);
            const term = termAt(m, first - 1) + o.bump;
            const es = ents(first, first + o.n - 1, term);
            const hs = o.withHs ? { ...m.hs, term: Math.max(m.hs.term, term) } : null;
            h.store.save(batch({ entries: es, hardState: hs }));
            m.entries = [...m.entries.filter((e) => e.index < first), ...es];
            if (hs) m.hs = hs;
          } else if (o.k === 'install') {
            const s = snap(snapIdx(m) + o.ahead, termAt(m, lastIdx(m)) + o.bump);
            const es = ents(s.metadata.index + 1, s.metadata.index + o.n, s.metadata.term);
            h.store.save(batch({ snapshot: s, entries: es }));
            m.snap = s;
            m.entries = es;
          } else if (o.k === 'compact') {
            const span = lastIdx(m) - snapIdx(m);
            if (span === 0) {
              if (m.snap) h.store.compact(snap(snapIdx(m), m.snap.metadata.term, 'stale')); // ignored
              continue;
            }
            const at = snapIdx(m) + 1 + (o.at % span);
            const s = snap(at, termAt(m, at));
            h.store.compact(s);
            m.snap = s;
            m.entries = m.entries.filter((e) => e.index > at);
          } else if (o.k === 'hs') {
            const hs = { term: m.hs.term + o.bump, vote: o.vote, commit: o.at % (lastIdx(m) + 1) };
            h.store.save(batch({ hardState: hs }));
            m.hs = hs;
          } else if (o.k === 'checkpoint') {
            // At a later index; or at an installed snapshot's, then rewriting every table.
            const span = lastIdx(m) - snapIdx(m);
            const overSnap = m.snap !== null && !fromRows(m) && (span === 0 || o.at % 3 === 0);
            if (span === 0 && !overSnap) continue;
            const at = overSnap ? snapIdx(m) : snapIdx(m) + 1 + (o.at % span);
            if (at === 0) continue;
            const term = termAt(m, at);
            const tables = Object.fromEntries(
              CHECKPOINT_TABLES.map((t, i) => [t, { clear: overSnap || m.rows === null || o.clear[i]!, del: o.del.map((d) => d + i), put: o.put.map(([ord, j, bin]): CheckpointRow => (bin === undefined ? [ord + i, JSON.stringify(`${t}:${j}`)] : [ord + i, JSON.stringify(`${t}:${j}`), Uint8Array.from(bin)])) }]),
            ) as MachineCheckpoint['tables'];
            const c: MachineCheckpoint = { metadata: { index: at, term, confState: CONF }, meta: `meta@${at}`, tables };
            expect(h.store.checkpoint!(c)).toBe(true);
            // A stale one (at or below the rows) is refused and changes nothing.
            expect(h.store.checkpoint!({ ...c, meta: 'stale' })).toBe(false);
            const rows: Rows = m.rows ?? { index: 0, term: 0, meta: '', tables: Object.fromEntries(CHECKPOINT_TABLES.map((t) => [t, new Map()])) as Rows['tables'] };
            for (const t of CHECKPOINT_TABLES) {
              const ch = tables[t];
              if (ch.clear) rows.tables[t].clear();
              for (const d of ch.del) rows.tables[t].delete(d);
              for (const [ord, j, bin] of ch.put) rows.tables[t].set(ord, bin === undefined ? [j] : [j, [...bin]]);
            }
            Object.assign(rows, { index: at, term, meta: c.meta });
            m.rows = rows;
            if (m.snap && m.snap.metadata.index <= at) m.snap = null;
            m.entries = m.entries.filter((e) => e.index > at);
          } else {
            expect(loaded(h.reopen())).toEqual(expected(m));
          }
          expect(h.store.stats().entryCount).toBe(m.entries.length);
        }
        expect(loaded(h.reopen())).toEqual(expected(m));
        h.store.close();
      }),
      { numRuns: 80 },
    );
  });

  it('jsonRows passes every row as stored, in ord order: many rows (several chunks), long rows, any text', () => {
    const h = make();
    h.store.save(batch({ entries: ents(1, 3, 1) }));
    // Ords with gaps; JSON with escapes (newline, quote, backslash), non-ASCII, astral
    // characters and line separators; some rows longer than a joined row may be (16 KiB).
    const texts = ['plain', 'line\nbreak "quoted" back\\slash', 'é😀\u2028\u2029\u0000', 'x'.repeat(20_000), '😀'.repeat(9_000)];
    const put: CheckpointRow[] = Array.from({ length: 10_000 }, (_, i) => [3 * i + 1, JSON.stringify({ i, s: texts[i % 97 === 0 ? 3 + (i % 2) : i % 3] })]);
    const empty = { clear: true, del: [], put: [] };
    expect(h.store.checkpoint!({ metadata: { index: 2, term: 1, confState: CONF }, meta: 'm', tables: { memory: { clear: true, del: [], put }, sessions: empty, orchs: empty } })).toBe(true);
    const want = put.map(([o, j]) => [o, j]);
    expect(jsonRowsOf(h.store.load(CONF).checkpoint!, 'memory')).toEqual(want);
    expect(jsonRowsOf(h.reopen().load(CONF).checkpoint!, 'memory')).toEqual(want);
    expect(jsonRowsOf(h.store.load(CONF).checkpoint!, 'sessions')).toEqual([]);
  });
});

describe('SqliteStorage specifics', () => {
  const fresh = () => kinds[1]!.make();

  it('reports disk usage and refuses a file whose log has a hole, naming the file', () => {
    const h = fresh();
    h.store.save(batch({ entries: ents(1, 5, 1) }));
    expect(h.store.stats().diskBytes).toBeGreaterThan(0);
    h.store.close();
    h.store.close(); // idempotent
    const raw = new Database(h.file!);
    raw.prepare('DELETE FROM entries WHERE idx = 3').run();
    raw.close();
    const reopened = track(SqliteStorage.open(h.file!));
    expect(() => reopened.load(CONF)).toThrow(new RegExp(`${h.file!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}.*expected entry 3`));
  });

  it('a checkpoint that fails halfway (its last row is refused) leaves the previous checkpoint and the whole log', () => {
    const h = fresh();
    const tables = (clear: boolean, put: CheckpointRow[], del: number[] = []): MachineCheckpoint['tables'] =>
      Object.fromEntries(CHECKPOINT_TABLES.map((t) => [t, { clear, del, put }])) as MachineCheckpoint['tables'];
    h.store.save(batch({ entries: ents(1, 10, 1), hardState: { term: 1, vote: 'a', commit: 10 } }));
    expect(h.store.checkpoint!({ metadata: { index: 4, term: 1, confState: CONF }, meta: 'm4', tables: tables(true, [[1, '"one"'], [2, '"two"']]) })).toBe(true);
    const before = loaded(h.reopen());
    // Clear, deletes and puts run before the bad row; the transaction must undo all of them.
    const bad = { metadata: { index: 8, term: 1, confState: CONF }, meta: 'm8', tables: tables(true, [[3, '"three"'], [4, null as unknown as string]], [1]) };
    expect(() => h.store.checkpoint!(bad)).toThrow(/NOT NULL/);
    expect(h.store.stats().entryCount).toBe(6);
    expect(loaded(h.store)).toEqual(before);
    expect(loaded(h.reopen())).toEqual(before);
    expect((before as { entries: Entry[] }).entries.map((e) => e.index)).toEqual([5, 6, 7, 8, 9, 10]);
    // The same checkpoint, well formed, then applies.
    expect(h.store.checkpoint!({ ...bad, tables: tables(false, [[3, '"three"']], [1]) })).toBe(true);
    const after = loaded(h.reopen()) as { snapshot: { index: number }; checkpoint: { meta: string; tables: Record<string, unknown> }; entries: Entry[] };
    expect(after.snapshot.index).toBe(8);
    expect(after.checkpoint.meta).toBe('m8');
    expect(after.checkpoint.tables.memory).toEqual([[2, 'two'], [3, 'three']]);
    expect(after.entries.map((e) => e.index)).toEqual([9, 10]);
  });

  it('jsonRows refuses rows it cannot cut apart (a raw newline in a row), naming the file and table', () => {
    const h = fresh();
    h.store.save(batch({ entries: ents(1, 3, 1) }));
    const empty = { clear: true, del: [], put: [] };
    const put: CheckpointRow[] = [[1, '"a"'], [2, '"b"'], [3, '"c"']];
    expect(h.store.checkpoint!({ metadata: { index: 2, term: 1, confState: CONF }, meta: 'm', tables: { memory: { clear: true, del: [], put }, sessions: empty, orchs: empty } })).toBe(true);
    h.store.close();
    const raw = new Database(h.file!);
    // Not JSON that stringify writes (it escapes newlines): damage from outside.
    raw.prepare(`UPDATE machine_memory SET json = ? WHERE ord = 2`).run('"b\n9 x"');
    raw.close();
    const c = track(SqliteStorage.open(h.file!)).load(CONF).checkpoint!;
    expect(() => jsonRowsOf(c, 'memory')).toThrow(/machine_memory rows after ord -Infinity cannot be read: a row holds a raw newline/);
  });

  it('upgrades a schema-1 file (no checkpoint tables) in place', () => {
    const h = fresh();
    h.store.save(batch({ entries: ents(1, 3, 1) }));
    h.store.close();
    const raw = new Database(h.file!);
    for (const t of CHECKPOINT_TABLES) raw.exec(`DROP TABLE machine_${t}`);
    raw.exec('DROP TABLE machine_checkpoint');
    raw.prepare(`UPDATE meta SET value = '1' WHERE key = 'schema_version'`).run();
    raw.close();
    const s = track(SqliteStorage.open(h.file!));
    expect(s.load(CONF).entries).toHaveLength(3);
    expect(s.checkpoint({ metadata: { index: 2, term: 1, confState: CONF }, meta: 'm', tables: Object.fromEntries(CHECKPOINT_TABLES.map((t) => [t, { clear: true, del: [], put: [[1, JSON.stringify(t)]] as Array<[number, string]> }])) as unknown as MachineCheckpoint['tables'] })).toBe(true);
    s.close();
    const raw2 = new Database(h.file!);
    expect(raw2.prepare(`SELECT value FROM meta WHERE key = 'schema_version'`).pluck().get()).toBe('3');
    raw2.close();
  });

  it('refuses an unknown schema version', () => {
    const h = fresh();
    h.store.close();
    const raw = new Database(h.file!);
    raw.prepare(`UPDATE meta SET value = '999' WHERE key = 'schema_version'`).run();
    raw.close();
    expect(() => SqliteStorage.open(h.file!)).toThrow(/schema version 999/);
  });

  it('opens in WAL mode with the requested durability', () => {
    const h = fresh();
    h.store.close();
    for (const durability of ['full', 'normal', 'off'] as const) {
      const s = track(SqliteStorage.open(h.file!, { durability }));
      s.save(batch({ hardState: { term: 1, vote: null, commit: 0 } }));
      expect(s.load(CONF).hardState.term).toBe(1);
      s.close();
    }
    const raw = new Database(h.file!, { readonly: true });
    expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    raw.close();
  });
});

describe('SqliteStorage saveAsync (fsync on the threadpool)', () => {
  const fresh = () => kinds[2]!.make();
  const saveAsync = (s: LogStorage, b: PersistBatch): { durable: boolean; done: Promise<Error | null>; calls: () => number } => {
    let calls = 0;
    let resolve!: (e: Error | null) => void;
    const done = new Promise<Error | null>((r) => (resolve = r));
    const durable = s.saveAsync!(b, (err) => {
      calls++;
      resolve(err);
    });
    return { durable, done, calls: () => calls };
  };

  it('writes at once, calls back asynchronously once durable, and counts the fsync', async () => {
    const h = fresh();
    const raw = new Database(h.file!);
    expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    raw.close();
    const r = saveAsync(h.store, batch({ entries: ents(1, 3, 1), hardState: { term: 1, vote: 'a', commit: 0 } }));
    expect(r.durable).toBe(false);
    expect(r.calls()).toBe(0); // never synchronously
    expect(h.store.load(CONF).entries).toEqual(ents(1, 3, 1)); // written before the fsync
    expect(h.store.stats().syncs).toBe(0);
    expect(await r.done).toBeNull();
    expect(r.calls()).toBe(1);
    const st = h.store.stats();
    expect(st.syncs).toBe(1);
    expect(st.syncMsTotal).toBeGreaterThan(0);
    expect(st.loopMsTotal).toBeGreaterThan(0);
    // Commit-index-only: written, nothing to fsync, durable enough at once.
    const c = saveAsync(h.store, batch({ hardState: { term: 1, vote: 'a', commit: 3 } }));
    expect(c.durable).toBe(true);
    expect(h.store.load(CONF).hardState.commit).toBe(3);
    expect(h.store.stats().syncs).toBe(1);
    // A vote change must be fsynced.
    const v = saveAsync(h.store, batch({ hardState: { term: 2, vote: 'b', commit: 3 } }));
    expect(v.durable).toBe(false);
    expect(await v.done).toBeNull();
    expect(h.store.stats().syncs).toBe(2);
    h.reopen();
    expect(h.store.load(CONF)).toMatchObject({ hardState: { term: 2, vote: 'b', commit: 3 }, entries: ents(1, 3, 1) });
  });

  it('a commit-only batch waits too while an earlier fsync is still running', async () => {
    const h = fresh();
    const a = saveAsync(h.store, batch({ entries: ents(1, 2, 1), hardState: { term: 1, vote: null, commit: 0 } }));
    const b = saveAsync(h.store, batch({ hardState: { term: 1, vote: null, commit: 2 } }));
    expect([a.durable, b.durable]).toEqual([false, false]);
    expect(await Promise.all([a.done, b.done])).toEqual([null, null]);
    expect(h.store.stats().syncs).toBe(1); // only the entries needed one
  });

  it('close() with an fsync in flight: the callback still runs, the data is on disk', async () => {
    const h = fresh();
    const r = saveAsync(h.store, batch({ entries: ents(1, 5, 1), hardState: { term: 1, vote: 'a', commit: 0 } }));
    h.store.close();
    expect(await r.done).toBeNull();
    h.store = track(SqliteStorage.open(h.file!, { fsync: 'threadpool' }));
    expect(h.store.load(CONF).entries).toEqual(ents(1, 5, 1));
  });

  it('a failed fsync is reported to done, and every later write fails with it', async () => {
    const h = fresh();
    (h.store as unknown as { walFdCache: number }).walFdCache = 2 ** 30; // not an open descriptor
    const r = saveAsync(h.store, batch({ entries: ents(1, 2, 1) }));
    expect(r.durable).toBe(false);
    expect((await r.done)?.message).toMatch(/EBADF/);
    expect(h.store.stats().syncs).toBe(0);
    expect(() => h.store.saveAsync!(batch({ entries: ents(3, 3, 1) }), () => undefined)).toThrow(/EBADF/);
    expect(() => h.store.save(batch({ entries: ents(3, 3, 1) }))).toThrow(/EBADF/);
    (h.store as unknown as { walFdCache: number | null }).walFdCache = null;
  });

  it('inline mode (the default) is durable on return: saveAsync is save()', () => {
    const h = kinds[1]!.make();
    const r = saveAsync(h.store, batch({ entries: ents(1, 2, 1) }));
    expect(r.durable).toBe(true);
    expect(r.calls()).toBe(0);
    expect(h.store.stats().syncs).toBe(1);
  });

  it('counts UTF-8 bytes of entry data (multi-row inserts)', () => {
    const h = fresh();
    const data = 'é'.repeat(10); // 10 UTF-16 units, 20 UTF-8 bytes
    const es: Entry[] = Array.from({ length: 130 }, (_, i) => ({ index: i + 1, term: 1, type: 'normal', data }));
    h.store.save(batch({ entries: es }));
    expect(h.store.stats().bytesWritten).toBe(130 * (16 + 'normal'.length + 20));
    expect(h.store.load(CONF).entries).toEqual(es);
  });
});
