// Incremental snapshots: the machine's state written as rows (takeCheckpoint) at random
// points and rebuilt from them (restoreCheckpoint) must be the state of the machine that
// applied every entry: same snapshot() string (map orders included: memory insertion order,
// sessions' LRU order, tasks and orchestrations by creation), same pending-task order.
// Tasks are checkpointed per orchestration: a metadata row and a row per block of tasks (the
// block's slice of every column as bytes), only changed blocks written again. Orchestrations
// here are small (plain-array columns) and large (typed arrays, widened by long leases and
// late completions, side maps for fractional or odd values); blocks are 16 or 64 tasks, so a
// large orchestration has several and a checkpoint often writes only some of them.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CoordinationMachine } from '../../src/machine/coordination-machine.js';
import { MAX_TRACKED_ROWS } from '../../src/machine/dirty-rows.js';
import type { Command, CompleteItem, Op, Priority } from '../../src/machine/types.js';
import type { Entry, SnapshotData } from '../../src/raft/types.js';
import { CheckpointImage } from '../../src/storage/memory-storage.js';
import { TASKS_PER_BLOCK } from '../../src/machine/task-columns.js';
import { ordStride } from '../../src/machine/task-table.js';
import { CHECKPOINT_TABLES, type MachineCheckpoint } from '../../src/storage/types.js';
import { createOp, entry, putOp } from './machine-util.js';

type Action =
  | { k: 'put'; key: number; ttl: number | null; v: number }
  | { k: 'del'; key: number }
  | { k: 'tick'; dt: number }
  | { k: 'register'; timeout: number }
  | { k: 'session'; pick: number; key: number; ack: boolean }
  | { k: 'legacy'; client: number; key: number }
  | { k: 'create'; count: number; prio: Priority; idem: number | null }
  | { k: 'assign'; n: number; pick: number; lease: number }
  | { k: 'complete'; n: number; pick: number; ok: boolean; stale: boolean; result: number }
  | { k: 'retention'; keep: number; ms: number }
  | { k: 'election'; timing: boolean }
  | { k: 'agent'; id: number; remove: boolean }
  | { k: 'checkpoint' }
  | { k: 'restart' }
  | { k: 'install' };

const actionArb: fc.Arbitrary<Action> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ k: fc.constant('put' as const), key: fc.nat(12), ttl: fc.option(fc.integer({ min: 1, max: 6 }), { nil: null }), v: fc.nat(1000) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('del' as const), key: fc.nat(12) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('tick' as const), dt: fc.oneof(fc.integer({ min: 0, max: 4000 }), fc.integer({ min: 0, max: 200_000 })) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('register' as const), timeout: fc.integer({ min: 1000, max: 8000 }) }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('session' as const), pick: fc.nat(20), key: fc.nat(12), ack: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('legacy' as const), client: fc.nat(3), key: fc.nat(12) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('create' as const), count: fc.oneof(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 60, max: 300 })), prio: fc.constantFrom<Priority>('low', 'medium', 'high', 'critical'), idem: fc.option(fc.nat(3), { nil: null }) }) },
  // Leases: small, past a 2-byte slot, past 4 bytes, or fractional (side map).
  { weight: 3, arbitrary: fc.record({ k: fc.constant('assign' as const), n: fc.integer({ min: 1, max: 40 }), pick: fc.nat(500), lease: fc.constantFrom(1000, 70_000, 5_000_000_000, 1000.5) }) },
  // Results: an object, null, or none at all (the record then has no result field).
  { weight: 3, arbitrary: fc.record({ k: fc.constant('complete' as const), n: fc.integer({ min: 1, max: 40 }), pick: fc.nat(500), ok: fc.boolean(), stale: fc.boolean(), result: fc.nat(2) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('retention' as const), keep: fc.nat(2), ms: fc.integer({ min: 1000, max: 10_000 }) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('election' as const), timing: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('agent' as const), id: fc.nat(3), remove: fc.boolean() }) },
  { weight: 3, arbitrary: fc.constant({ k: 'checkpoint' as const }) },
  { weight: 2, arbitrary: fc.constant({ k: 'restart' as const }) },
  { weight: 1, arbitrary: fc.constant({ k: 'install' as const }) },
);

const CONF = { voters: ['n1'], learners: [] };

/** The live replica: applies every entry, checkpoints into `image`, restarts from it. */
class Replica {
  m: CoordinationMachine;
  /**
   * The same replica restarted from JSON snapshots (restore) instead of rows: the caches that
   * are not replicated state (the pending queues' order depends on when the scheduler looked)
   * must come back as they do from a JSON snapshot.
   */
  twin = new CoordinationMachine();
  private twinJson = '';
  readonly image = new CheckpointImage();
  restarts = 0;
  installs = 0;
  /** Installs sent as multi-part (v5: task block rows), not as the v3 string. */
  partInstalls = 0;
  rowsRestored = 0;
  bytesRestored = 0;
  /** Orchestrations written with some but not all of their blocks (a partially dirty one). */
  partial = 0;
  /** Block rows written, and block rows restored. */
  blocksWritten = 0;
  blocksRestored = 0;
  private readonly stride: number;

  constructor(readonly tasksPerBlock: number) {
    this.m = new CoordinationMachine({ tasksPerBlock });
    this.stride = ordStride(Math.log2(tasksPerBlock));
  }

  catchUp(log: readonly Entry[]): void {
    for (let i = this.m.appliedIndex; i < log.length; i++) this.m.apply(log[i] as Entry);
    for (let i = this.twin.appliedIndex; i < log.length; i++) this.twin.apply(log[i] as Entry);
  }

  checkpoint(): MachineCheckpoint {
    this.twinJson = this.m.snapshot();
    const c = { metadata: { index: this.m.appliedIndex, term: 1, confState: CONF }, ...this.m.takeCheckpoint() };
    // Per orchestration written: its block rows against its block count (metadata row).
    const written = new Map<number, { blocks: number; rows: number }>();
    for (const [ord, json] of c.tables.orchs.put) {
      const base = ord - (ord % this.stride);
      const w = written.get(base) ?? { blocks: 0, rows: 0 };
      if (ord === base) w.blocks = (JSON.parse(json) as [unknown, number?])[1] ?? 0;
      else w.rows++;
      written.set(base, w);
    }
    for (const w of written.values()) {
      this.blocksWritten += w.rows;
      if (w.rows > 0 && w.rows < w.blocks) this.partial++;
    }
    this.image.apply(structuredClone(c));
    return c;
  }

  /** Crash: a fresh machine from the stored rows, then the log after them. */
  restart(log: readonly Entry[]): void {
    if (this.image.metadata === null) return;
    // Restored by a machine configured with other blocks: the stored rows say theirs.
    const m = new CoordinationMachine({ tasksPerBlock: 1024 });
    const reader = this.image.reader();
    for (const t of CHECKPOINT_TABLES) {
      for (const [ord, , bin] of reader.rows(t)) {
        this.rowsRestored++;
        this.bytesRestored += bin?.byteLength ?? 0;
        if (t === 'orchs' && ord % this.stride !== 0) this.blocksRestored++;
      }
    }
    m.restoreCheckpoint(reader);
    expect(m.appliedIndex).toBe(this.image.index);
    this.m = m;
    this.twin = new CoordinationMachine();
    this.twin.restore(this.twinJson);
    // Rebuilt from rows as from the JSON snapshot of the same index: the records, and the
    // derived structures (assigned set and slots, queues, retention queue, idempotency).
    expect(m.snapshot()).toBe(this.twinJson);
    expect(m.tasks.derivedForTest()).toBe(this.twin.tasks.derivedForTest());
    this.restarts++;
    this.catchUp(log);
  }
}

function run(actions: Action[], tasksPerBlock: number): Replica {
  // The leader: its block size is the replica's (snapshots it sends carry its block rows).
  const ref = new CoordinationMachine({ tasksPerBlock });
  const log: Entry[] = [];
  const r = new Replica(tasksPerBlock);
  let now = 1_000_000;
  let term = 1;
  const sessions: string[] = [];
  const seqs = new Map<string, number>();
  const push = (cmd: Omit<Command, 'now'>): unknown => {
    const e = entry(log.length + 1, { ...cmd, now } as Command);
    log.push(e);
    return ref.apply(e);
  };
  const op = (o: Op): unknown => push({ op: o });
  const tasksWith = (status: string): string[] => [...ref.tasks.tasks.values()].filter((t) => t.status === status).map((t) => t.id);
  let removedIds: string[] = [];
  for (const a of actions) {
    switch (a.k) {
      case 'put':
        op(putOp(`k${a.key}`, { v: a.v }, { ttl_s: a.ttl }));
        break;
      case 'del':
        op({ t: 'mem.del', key: `k${a.key}`, namespace: 'default', if_version: null });
        break;
      case 'tick':
        now += a.dt;
        op({ t: 'clock' });
        break;
      case 'register': {
        const res = op({ t: 'session.register', timeout_ms: a.timeout }) as { value: { session: string } };
        sessions.push(res.value.session);
        break;
      }
      case 'session': {
        if (sessions.length === 0) break;
        const id = sessions[a.pick % sessions.length] as string;
        const seq = (seqs.get(id) ?? 0) + 1;
        seqs.set(id, seq);
        push({ op: putOp(`k${a.key}`, seq), client: id, seq, ack: a.ack ? seq : 0 });
        break;
      }
      case 'legacy': {
        const id = `c${a.client}`;
        const seq = (seqs.get(id) ?? 0) + 1;
        seqs.set(id, seq);
        push({ op: putOp(`k${a.key}`, seq), client: id, seq });
        break;
      }
      case 'create':
        op(createOp(a.count, { priority: a.prio, idempotency_key: a.idem === null ? null : `idem-${a.idem}` }));
        break;
      case 'assign': {
        const pending = tasksWith('pending');
        const assigned = tasksWith('assigned');
        const pool = [...pending, ...assigned];
        if (pool.length === 0) break;
        const items = Array.from({ length: Math.min(a.n, pool.length) }, (_, i) => pool[(a.pick + i) % pool.length] as string);
        const uniq = [...new Set(items)];
        op({ t: 'task.assign', term, lease_ms: a.lease, items: uniq.map((task) => ({ task, agent: `a${a.pick % 3}`, from_epoch: ref.tasks.tasks.get(task)!.epoch })) });
        break;
      }
      case 'complete': {
        const assigned = tasksWith('assigned');
        const items: Array<{ task: string; agent: string; epoch: number; ok: boolean; result?: unknown; starts: number }> = [];
        for (let i = 0; i < Math.min(a.n, assigned.length); i++) {
          const t = ref.tasks.tasks.get(assigned[(a.pick + i) % assigned.length] as string)!;
          if (items.some((x) => x.task === t.id)) continue;
          const item = { task: t.id, agent: t.assignee as string, epoch: a.stale ? t.epoch - 1 : t.epoch, ok: a.ok, starts: 1 + (a.pick % 2) };
          items.push(a.result === 0 ? { ...item, result: { r: a.pick } } : a.result === 1 ? { ...item, result: null } : item);
        }
        // Reports for records retention removed (refused, counted in their orchestration).
        for (const id of removedIds.slice(0, a.n % 2)) items.push({ task: id, agent: 'a0', epoch: 1, ok: true, result: null, starts: 1 });
        // A missing result field reaches the machine as undefined (JSON drops it).
        if (items.length > 0) op({ t: 'task.complete', items: items as CompleteItem[] });
        break;
      }
      case 'retention':
        op({ t: 'config', patch: { task_retention_orchestrations: a.keep, task_retention_ms: a.ms } });
        break;
      case 'election': {
        term++;
        op({ t: 'election', record: { term, old_leader: 'n1', new_leader: 'n2', voted_by: ['n2'], election_duration_ms: 5, cause: 'leader crash' } });
        if (a.timing) op({ t: 'election.timing', term, failover_ms: 42 });
        break;
      }
      case 'agent':
        if (a.remove) op({ t: 'agent.remove', id: `a${a.id}` });
        else op({ t: 'agent.register', agent: { id: `a${a.id}`, name: `agent ${a.id}`, type: 'worker', capabilities: [] } });
        break;
      case 'checkpoint':
        r.catchUp(log);
        r.checkpoint();
        break;
      case 'restart':
        r.restart(log);
        break;
      case 'install': {
        // A snapshot from the leader: the state replaced whole, so the next checkpoint must
        // rewrite every table. Every other one as the leader sends a large state: parts
        // (forced small), the tasks as their block rows, checked before they are restored.
        r.catchUp(log);
        const m = new CoordinationMachine({ tasksPerBlock });
        let data: SnapshotData = ref.snapshot();
        if (r.installs % 2 === 1) {
          process.env.CONCORD_SNAPSHOT_PART_CHARS = '1024';
          try {
            data = ref.snapshotData();
          } finally {
            delete process.env.CONCORD_SNAPSHOT_PART_CHARS;
          }
          if (typeof data !== 'string') r.partInstalls++;
        }
        expect(m.checkSnapshot(data)).toBeNull();
        m.restore(data);
        r.m = m;
        r.twin = new CoordinationMachine();
        r.twin.restore(ref.snapshot());
        expect(m.tasks.derivedForTest()).toBe(r.twin.tasks.derivedForTest());
        r.installs++;
        const c = r.checkpoint();
        for (const t of CHECKPOINT_TABLES) expect(c.tables[t].clear).toBe(true);
        break;
      }
    }
    removedIds = [...ref.tasks.orchs.values()].filter((o) => o.compacted).map((o) => `${o.id}-1`);
    r.catchUp(log);
    expect(r.m.snapshot()).toBe(ref.snapshot());
  }
  // The scheduler's view: pending tasks, highest priority first, in queue order.
  const pick = (m: CoordinationMachine) => m.tasks.pickPending(1_000_000, new Set()).map((t) => t.id);
  expect(pick(r.m)).toEqual(pick(r.twin));
  expect(new Set(pick(r.m))).toEqual(new Set(pick(ref)));
  expect([...r.m.tasks.assigned].sort()).toEqual([...ref.tasks.assigned].sort());
  expect([...r.m.tasks.idempotency]).toEqual([...ref.tasks.idempotency]);
  return r;
}

describe('CoordinationMachine checkpoints (incremental snapshots)', () => {
  for (const tasksPerBlock of [16, 64]) {
    it(`random ops, checkpoints, restarts from rows and snapshot installs (${tasksPerBlock} tasks a block): the state equals the one that applied every entry`, () => {
      let restarts = 0;
      let rows = 0;
      let bytes = 0;
      let partial = 0;
      let blocksWritten = 0;
      let blocksRestored = 0;
      let partInstalls = 0;
      fc.assert(
        fc.property(fc.array(actionArb, { minLength: 20, maxLength: 120 }), (actions) => {
          const o = run(actions, tasksPerBlock);
          restarts += o.restarts;
          rows += o.rowsRestored;
          bytes += o.bytesRestored;
          partial += o.partial;
          blocksWritten += o.blocksWritten;
          blocksRestored += o.blocksRestored;
          partInstalls += o.partInstalls;
        }),
        { numRuns: 150, seed: 4242 },
      );
      // The property exercised what it claims to.
      expect(restarts).toBeGreaterThan(100);
      expect(rows).toBeGreaterThan(500);
      // Large orchestrations' columns came back from bytes, not only small ones from JSON.
      // (seed 4242, 16 a block: 41,060 bytes; blocks with no value in a column write none)
      expect(bytes).toBeGreaterThan(30_000);
      // Orchestrations of several blocks, checkpointed with only some of them changed, then
      // restarted from blocks written at different checkpoints.
      // (seed 4242: 51 / 45 partial, 2,353 / 894 blocks written, 1,285 / 467 restored)
      expect(partial).toBeGreaterThan(30);
      expect(blocksWritten).toBeGreaterThan(800);
      expect(blocksRestored).toBeGreaterThan(400);
      // Installs sent as parts (v5: the tasks as block rows) that restored the exact state.
      // (seed 4242: 43 / 43)
      expect(partInstalls).toBeGreaterThan(20);
    });
  }

  it('a checkpoint writes only the rows that changed since the previous one; tasks as a metadata row and a row per changed block, columns as bytes', () => {
    const m = new CoordinationMachine();
    let i = 0;
    const apply = (op: Op) => m.apply(entry(++i, { op, now: 1000 + i }));
    for (let k = 0; k < 50; k++) apply(putOp(`k${k}`, k));
    apply(createOp(100));
    // Row keys: created_index * 64 (16,384 tasks a block: at most 62 blocks), blocks after it.
    const stride = ordStride(Math.log2(TASKS_PER_BLOCK));
    expect(stride).toBe(64);
    const first = m.takeCheckpoint();
    expect(first.tables.memory.clear).toBe(true);
    expect(first.tables.memory.put).toHaveLength(50);
    // 100 tasks: the metadata row, and one block row: status bytes only (no other column written yet).
    expect(first.tables.orchs.put.map(([ord]) => ord)).toEqual([51 * stride, 51 * stride + 1]);
    expect(first.tables.orchs.put[0]![2]).toBeUndefined();
    expect(first.tables.orchs.put[1]![2]?.byteLength).toBe(100);
    apply(putOp('k3', 'new'));
    apply({ t: 'mem.del', key: 'k4', namespace: 'default', if_version: null });
    apply({ t: 'task.assign', term: 1, lease_ms: 1000, items: [{ task: 'orch-51-7', agent: 'a', from_epoch: 0 }] });
    // A stale assignment changes nothing: no row.
    apply(createOp(3));
    const mid = m.takeCheckpoint();
    apply({ t: 'task.assign', term: 1, lease_ms: 1000, items: [{ task: 'orch-54-1', agent: 'a', from_epoch: 5 }] });
    expect(m.dirtyRows()).toBe(0);
    apply({ t: 'task.assign', term: 1, lease_ms: 1000, items: [{ task: 'orch-51-8', agent: 'b', from_epoch: 0 }] });
    // Its metadata row and its one block.
    expect(m.dirtyRows()).toBe(2);
    const next = m.takeCheckpoint();
    expect(next.tables.memory).toMatchObject({ clear: false, del: [], put: [] });
    expect(next.tables.orchs.put.map(([ord]) => ord)).toEqual([51 * stride, 51 * stride + 1]);
    // status, epoch, assignee codes, assigned_term, assignments: one byte a task each;
    // lease_until two (1,000 ms past the orchestration's creation does not fit one).
    expect(next.tables.orchs.put[1]![2]?.byteLength).toBe(700);
    expect(m.dirtyRows()).toBe(0);
    // A large orchestration: 40,000 tasks are 3 blocks, all written when it is created.
    apply(createOp(40_000));
    const big = `orch-${i}`;
    const bigOrd = i * stride;
    expect(m.dirtyRows()).toBe(4);
    const third = m.takeCheckpoint();
    expect(third.tables.orchs.put.map(([ord]) => ord)).toEqual([bigOrd, bigOrd + 1, bigOrd + 2, bigOrd + 3]);
    expect(third.tables.orchs.put.map(([, , bin]) => bin?.byteLength)).toEqual([undefined, 16_384, 16_384, 40_000 - 2 * 16_384]);
    // Tasks of its second block only: that block is written, not the others.
    const seqs = Array.from({ length: 100 }, (_, k) => 20_000 + k);
    apply({ t: 'task.assign', term: 1, lease_ms: 1000, groups: [{ orch: big, agent: 'a', seqs, from: seqs.map(() => 0) }] });
    apply({ t: 'task.complete', items: [], groups: [{ orch: big, agent: 'a', seqs: seqs.slice(0, 50), epochs: seqs.slice(0, 50).map(() => 1), ok: true }] });
    expect(m.dirtyRows()).toBe(2);
    const fourth = m.takeCheckpoint();
    expect(fourth.tables.orchs.put.map(([ord]) => ord)).toEqual([bigOrd, bigOrd + 2]);
    // A lease that needs 4-byte slots widens the column of every block, but only the block
    // it is in changes value: the others, written narrower, read back the same.
    apply({ t: 'task.assign', term: 1, lease_ms: 5_000_000, items: [{ task: `${big}-39000`, agent: 'b', from_epoch: 0 }] });
    const fifth = m.takeCheckpoint();
    expect(fifth.tables.orchs.put.map(([ord]) => ord)).toEqual([bigOrd, bigOrd + 3]);
    // Restored from the checkpoints' rows: every task back, in creation order.
    const image = new CheckpointImage();
    const restored = () => {
      const r = new CoordinationMachine();
      r.restoreCheckpoint(image.reader());
      return r;
    };
    // Derived structures as a restore from the JSON snapshot builds them.
    const derived = () => {
      const twin = new CoordinationMachine();
      twin.restore(m.snapshot());
      return twin.tasks.derivedForTest();
    };
    for (const c of [first, mid, next, third, fourth, fifth]) {
      image.apply({ metadata: { index: m.appliedIndex, term: 1, confState: CONF }, ...c });
    }
    const r = restored();
    expect(r.tasks.tasks.size).toBe(40_103);
    expect(r.snapshot()).toBe(m.snapshot());
    expect(r.tasks.derivedForTest()).toBe(derived());
    expect(r.tasks.derivedForTest()).toContain('"assigned":["orch-51-7","orch-51-8"');
    // Retention removes the big one's records over several entries (10,000 a entry): each
    // checkpoint in between holds the blocks removed so far; at the end its block rows go.
    for (const seqsAll of [Array.from({ length: 40_000 }, (_, k) => k + 1)]) {
      const todo = seqsAll.filter((q) => !m.tasks.tasks.get(`${big}-${q}`) || m.tasks.tasks.get(`${big}-${q}`)!.status !== 'completed');
      for (let k = 0; k < todo.length; k += 5000) {
        const part = todo.slice(k, k + 5000);
        const from = part.map((q) => m.tasks.tasks.get(`${big}-${q}`)!.epoch);
        apply({ t: 'task.assign', term: 2, lease_ms: 1000, groups: [{ orch: big, agent: 'c', seqs: part, from }] });
        apply({ t: 'task.complete', items: [], groups: [{ orch: big, agent: 'c', seqs: part, epochs: from.map((e) => e + 1), ok: true }] });
      }
    }
    apply({ t: 'config', patch: { task_retention_orchestrations: 0 } });
    let removedRows: number[] = [];
    let checkpoints = 0;
    for (; checkpoints < 6 && removedRows.length === 0; checkpoints++) {
      const c = m.takeCheckpoint();
      image.apply({ metadata: { index: m.appliedIndex, term: 1, confState: CONF }, ...c });
      removedRows = c.tables.orchs.del;
      const back = restored();
      expect(back.snapshot()).toBe(m.snapshot());
      expect(back.tasks.derivedForTest()).toBe(derived());
      apply({ t: 'clock' });
    }
    expect(removedRows).toEqual([bigOrd + 1, bigOrd + 2, bigOrd + 3]);
    // 40,000 records at 10,000 an entry: checkpoints while part of them were removed.
    expect(checkpoints).toBeGreaterThanOrEqual(4);
    expect(m.tasks.orchs.get(big)!.compacted!.done_index).not.toBeNull();
  });

  it('tracking without checkpoints is bounded: past MAX_TRACKED_ROWS the next checkpoint rewrites the table', () => {
    const m = new CoordinationMachine();
    m.takeCheckpoint();
    let i = 0;
    for (let k = 0; k <= MAX_TRACKED_ROWS; k++) m.apply(entry(++i, { op: putOp(`k${k}`, 1), now: 1000 }));
    const c = m.takeCheckpoint();
    expect(c.tables.memory.clear).toBe(true);
    expect(c.tables.memory.put).toHaveLength(MAX_TRACKED_ROWS + 1);
  });
});
