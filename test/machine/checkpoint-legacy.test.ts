// Checkpoints written before task blocks (meta v1: one row per orchestration, all its task
// columns in one BLOB) must still restore to the same state, and the next checkpoint rewrites
// the table as blocks. The fixture is a SQLite file written by that code (see
// fixtures/make-legacy-checkpoint.ts): plain-array and typed-array columns, 4-byte slots, a
// 1,500-entry side map, results, a failed attempt, and an orchestration removed by retention.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CoordinationMachine } from '../../src/machine/coordination-machine.js';
import { ordStride } from '../../src/machine/task-table.js';
import type { Command, Op } from '../../src/machine/types.js';
import { SqliteStorage } from '../../src/storage/sqlite-storage.js';
import { entry } from './machine-util.js';

const FIXTURE = path.join(import.meta.dirname, 'fixtures');
const CONF = { voters: ['n1'], learners: [] };
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function restoreFrom(st: SqliteStorage, tasksPerBlock?: number): CoordinationMachine {
  const loaded = st.load(CONF);
  expect(loaded.checkpoint).toBeDefined();
  const m = new CoordinationMachine(tasksPerBlock === undefined ? {} : { tasksPerBlock });
  m.restoreCheckpoint(loaded.checkpoint!);
  return m;
}

describe('checkpoints from before task blocks', () => {
  for (const tasksPerBlock of [undefined, 256]) {
    it(`restore to the same state hash and are rewritten as blocks by the next checkpoint (${tasksPerBlock ?? 'default'} tasks a block)`, () => {
      const want = JSON.parse(fs.readFileSync(path.join(FIXTURE, 'legacy-orch-rows.json'), 'utf8')) as { index: number; records: number; hash: string };
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-legacy-ckpt-'));
      dirs.push(dir);
      const file = path.join(dir, 'a.db');
      fs.copyFileSync(path.join(FIXTURE, 'legacy-orch-rows.sqlite'), file);
      let st = SqliteStorage.open(file, { durability: 'off' });
      const m = restoreFrom(st, tasksPerBlock);
      expect(m.appliedIndex).toBe(want.index);
      expect(m.tasks.tasks.size).toBe(want.records);
      expect(m.stateHash()).toBe(want.hash);
      // A fractional lease end: held in a side map, not the column.
      expect(m.tasks.record('orch-7-2000')?.lease_until).toBe(2000.5);
      // More entries, then a checkpoint: the orchestration table is rewritten whole, in blocks.
      let index = m.appliedIndex;
      const more: Op[] = [
        { t: 'task.assign', term: 3, lease_ms: 1000, items: [{ task: 'orch-7-2500', agent: 'a4', from_epoch: 0 }] },
        { t: 'task.complete', items: [{ task: 'orch-7-2500', agent: 'a4', epoch: 1, ok: true, result: { done: true } }] },
        { t: 'task.complete', items: [{ task: 'orch-6-12', agent: 'a1', epoch: 1, ok: true, result: 7 }] },
      ];
      const entries = more.map((op) => entry(++index, { op, now: 500_000 + index } as Command, 3));
      for (const e of entries) m.apply(e);
      st.save({ entries, hardState: { term: 3, vote: null, commit: index }, messages: [] } as never);
      const c = m.takeCheckpoint();
      expect(c.tables.orchs.clear).toBe(true);
      const stride = ordStride(Math.log2(tasksPerBlock ?? 16_384));
      // orch-6 (created at index 6): metadata and 1 block; orch-7: metadata and its blocks; orch-8: metadata only.
      const blocks7 = Math.ceil(3000 / (tasksPerBlock ?? 16_384));
      expect(c.tables.orchs.put.map(([ord]) => ord)).toEqual([6 * stride, 6 * stride + 1, 7 * stride, ...Array.from({ length: blocks7 }, (_, b) => 7 * stride + 1 + b), 8 * stride]);
      expect(st.checkpoint({ metadata: { index, term: 3, confState: CONF }, ...c })).toBe(true);
      const hash = m.stateHash();
      st.close();
      // Restarted from the rewritten rows, then once more after an incremental checkpoint.
      st = SqliteStorage.open(file, { durability: 'off' });
      const r = restoreFrom(st);
      expect(r.stateHash()).toBe(hash);
      expect(r.snapshot()).toBe(m.snapshot());
      const e2 = entry(++index, { op: { t: 'task.assign', term: 3, lease_ms: 1000, items: [{ task: 'orch-7-2999', agent: 'a4', from_epoch: 0 }] }, now: 600_000 } as Command, 3);
      r.apply(e2);
      st.save({ entries: [e2], hardState: { term: 3, vote: null, commit: index }, messages: [] } as never);
      const c2 = r.takeCheckpoint();
      expect(c2.tables.orchs.clear).toBe(false);
      expect(c2.tables.orchs.put.map(([ord]) => ord)).toEqual([7 * stride, 7 * stride + blocks7]);
      expect(st.checkpoint({ metadata: { index, term: 3, confState: CONF }, ...c2 })).toBe(true);
      st.close();
      st = SqliteStorage.open(file, { durability: 'off' });
      expect(restoreFrom(st).snapshot()).toBe(r.snapshot());
      st.close();
    });
  }
});
