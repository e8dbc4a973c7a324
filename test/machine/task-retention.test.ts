// Retention of finished orchestrations' task records (issue 12, item 1): records are removed
// through the log (at apply time, from log index and log time only), so every replica removes
// the same records at the same index; the aggregates stay exact; a late report for a removed
// task is refused and counted, never applied.

import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CoordinationMachine } from '../../src/machine/coordination-machine.js';
import { COMPACT_TASKS_PER_ENTRY } from '../../src/machine/task-table.js';
import type { Orchestration } from '../../src/machine/types.js';
import type { Entry } from '../../src/raft/types.js';
import { LogBuilder, createOp, replay, toGroups } from './machine-util.js';

const hash = (m: CoordinationMachine): string => createHash('sha256').update(m.snapshot()).digest('hex');

/** Assign every pending task of `orch` to `agent` and complete it (ok), as the service would. */
function runAll(b: LogBuilder, orch: string, agent = 'a1'): void {
  const o = b.machine.tasks.orchs.get(orch)!;
  const seqs = Array.from({ length: o.count }, (_, i) => i + 1);
  b.op({ t: 'task.assign', term: 1, lease_ms: 60_000, groups: [{ orch, agent, seqs, from: seqs.map(() => 0) }] });
  b.op(toGroups({ t: 'task.complete', items: seqs.map((s) => ({ task: `${orch}-${s}`, agent, epoch: 1, ok: true, result: { seq: s } })) }));
}

function counts(m: CoordinationMachine): Array<[string, Orchestration['counts'], number | null]> {
  return [...m.tasks.orchs.values()].map((o) => [o.id, { ...o.counts }, o.finished_at]);
}

/** A log with retention set to keep 2 orchestrations or 10 s of log time, and 5 orchestrations run. */
function retentionLog(): { b: LogBuilder; orchs: string[] } {
  const b = new LogBuilder();
  b.op({ t: 'config', patch: { task_retention_orchestrations: 2, task_retention_ms: 10_000 } });
  const orchs: string[] = [];
  for (let i = 0; i < 5; i++) {
    const r = b.op(createOp(4 + i));
    const id = (r as { value: { orchestration_id: string } }).value.orchestration_id;
    orchs.push(id);
    runAll(b, id);
    b.now += 1_000;
  }
  return { b, orchs };
}

describe('task retention', () => {
  it('removes the records of finished orchestrations beyond the retained count; counts stay exact', () => {
    const { b, orchs } = retentionLog();
    const m = b.machine;
    // Kept: the last 2 finished. Removed: the first 3 (4 + 5 + 6 = 15 records).
    for (const id of orchs.slice(0, 3)) expect(m.tasks.orchs.get(id)!.compacted).toMatchObject({ done_index: expect.any(Number), next_seq: m.tasks.orchs.get(id)!.count + 1 });
    for (const id of orchs.slice(3)) expect(m.tasks.orchs.get(id)!.compacted).toBeUndefined();
    expect(m.tasks.tasks.size).toBe(7 + 8);
    expect(m.tasks.tasks.has(`${orchs[0]}-1`)).toBe(false);
    expect(m.tasks.tasks.has(`${orchs[4]}-1`)).toBe(true);
    // The aggregates of a removed orchestration are those it had when it finished.
    const o = m.tasks.orchs.get(orchs[0]!)!;
    expect(o.counts).toEqual({ pending: 0, assigned: 0, completed: 4, failed: 0, stale_completions_refused: 0, duplicates: 0, recovered: 0, executions_started: 4 });
    expect(o.compacted).toMatchObject({ records_removed: 4, assignments: 4, failed_attempts: 0, late_reports_refused: 0 });
  });

  it('the same removals on a replica that replays the log, and on replicas restored from snapshots at every index', () => {
    const { b } = retentionLog();
    const want = hash(b.machine);
    expect(hash(replay(b.entries))).toBe(want);
    for (let cut = 1; cut < b.entries.length; cut++) {
      const first = replay(b.entries.slice(0, cut));
      const restored = new CoordinationMachine();
      restored.restore(first.snapshot());
      replay(b.entries.slice(cut), restored);
      expect(hash(restored), `snapshot at index ${cut}`).toBe(want);
    }
  });

  it('removes by age in log time, at the first entry applied after the age is reached', () => {
    const b = new LogBuilder();
    b.op({ t: 'config', patch: { task_retention_orchestrations: 1000, task_retention_ms: 5_000 } });
    const id = (b.op(createOp(3)) as { value: { orchestration_id: string } }).value.orchestration_id;
    runAll(b, id);
    b.now += 4_999;
    b.op({ t: 'clock' });
    expect(b.machine.tasks.tasks.size).toBe(3);
    b.now += 1;
    b.op({ t: 'clock' });
    expect(b.machine.tasks.tasks.size).toBe(0);
    expect(b.machine.tasks.orchs.get(id)!.compacted!.done_index).toBe(b.entries.length);
  });

  it('spreads a big orchestration over entries (bounded work per entry); replicas restored mid-way agree', () => {
    const n = COMPACT_TASKS_PER_ENTRY * 2 + 500;
    const b = new LogBuilder();
    const id = (b.op(createOp(n)) as { value: { orchestration_id: string } }).value.orchestration_id;
    runAll(b, id);
    expect(b.machine.tasks.tasks.size).toBe(n);
    b.op({ t: 'config', patch: { task_retention_orchestrations: 0 } });
    // The config entry itself starts it: one budget's worth per entry.
    expect(b.machine.tasks.tasks.size).toBe(n - COMPACT_TASKS_PER_ENTRY);
    expect(b.machine.tasks.orchs.get(id)!.compacted!.done_index).toBeNull();
    const midway = new CoordinationMachine();
    midway.restore(b.machine.snapshot());
    b.op({ t: 'clock' });
    b.op({ t: 'clock' });
    expect(b.machine.tasks.tasks.size).toBe(0);
    replay(b.entries.slice(-2), midway);
    expect(hash(midway)).toBe(hash(b.machine));
    expect(hash(replay(b.entries))).toBe(hash(b.machine));
  });

  it('a report for a removed task is refused and counted in its orchestration, never applied', () => {
    const { b, orchs } = retentionLog();
    const id = orchs[0]!;
    const before = { ...b.machine.tasks.orchs.get(id)!.counts };
    // A late worker's report (epoch 1 was the completing one), as an item and as a group.
    const r1 = b.op({ t: 'task.complete', items: [{ task: `${id}-2`, agent: 'a1', epoch: 1, ok: true, result: 'late' }] });
    const r2 = b.op({ t: 'task.complete', groups: [{ orch: id, agent: 'a1', seqs: [3], epochs: [1], ok: true, starts: [2] }] });
    expect(r1).toEqual({ ok: true, value: { applied: 0, rejected: 1 } });
    expect(r2).toEqual({ ok: true, value: { applied: 0, rejected: 1 } });
    const o = b.machine.tasks.orchs.get(id)!;
    expect(o.counts).toEqual({ ...before, stale_completions_refused: before.stale_completions_refused + 2, executions_started: before.executions_started + 3 });
    expect(o.counts.completed).toBe(before.completed);
    expect(o.counts.duplicates).toBe(0);
    expect(o.compacted!.late_reports_refused).toBe(2);
    expect(b.machine.tasks.compactedReportsRefused).toBe(2);
    // Not resurrected.
    expect(b.machine.tasks.tasks.has(`${id}-2`)).toBe(false);
    // A report for a task that never existed is refused but counted nowhere.
    b.op({ t: 'task.complete', items: [{ task: `${id}-99`, agent: 'a1', epoch: 1, ok: true, result: null }] });
    expect(b.machine.tasks.orchs.get(id)!.counts.stale_completions_refused).toBe(before.stale_completions_refused + 2);
  });

  it('counts before and after removal are identical (what task_results sums)', () => {
    const b = new LogBuilder();
    b.op({ t: 'config', patch: { task_retention_orchestrations: 1000 } });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const id = (b.op(createOp(10)) as { value: { orchestration_id: string } }).value.orchestration_id;
      ids.push(id);
      const seqs = Array.from({ length: 10 }, (_, k) => k + 1);
      b.op({ t: 'task.assign', term: 1, lease_ms: 60_000, groups: [{ orch: id, agent: 'a1', seqs, from: seqs.map(() => 0) }] });
      // Reassigned (recovered) and a stale report, a failure and a retry: every tally moves.
      b.op({ t: 'task.assign', term: 2, lease_ms: 60_000, groups: [{ orch: id, agent: 'a2', seqs: [1, 2], from: [1, 1] }] });
      b.op({ t: 'task.complete', items: [{ task: `${id}-1`, agent: 'a1', epoch: 1, ok: true, result: null }] });
      b.op({ t: 'task.complete', items: [{ task: `${id}-3`, agent: 'a1', epoch: 1, ok: false, result: 'boom' }] });
      b.op({ t: 'task.assign', term: 2, lease_ms: 60_000, groups: [{ orch: id, agent: 'a2', seqs: [3], from: [1] }] });
      const done = [...seqs.filter((s) => s > 3).map((s) => ({ task: `${id}-${s}`, agent: 'a1', epoch: 1, ok: true, result: s })), ...[1, 2, 3].map((s) => ({ task: `${id}-${s}`, agent: 'a2', epoch: 2, ok: true, result: s }))];
      b.op({ t: 'task.complete', items: done });
    }
    const before = counts(b.machine);
    expect(before.every(([, c]) => c.completed === 10)).toBe(true);
    const recordsBefore = [...b.machine.tasks.tasks.values()];
    b.op({ t: 'config', patch: { task_retention_orchestrations: 0 } });
    expect(b.machine.tasks.tasks.size).toBe(0);
    expect(counts(b.machine)).toEqual(before);
    for (const id of ids) {
      const recs = recordsBefore.filter((t) => t.orch === id);
      expect(b.machine.tasks.orchs.get(id)!.compacted).toMatchObject({
        records_removed: 10,
        failed_attempts: recs.reduce((s, t) => s + t.failures, 0),
        assignments: recs.reduce((s, t) => s + t.assignments, 0),
        first_completed_at: Math.min(...recs.map((t) => t.completed_at!)),
        last_completed_at: Math.max(...recs.map((t) => t.completed_at!)),
      });
    }
  });

  it('a running orchestration is never touched, whatever the retention', () => {
    const b = new LogBuilder();
    b.op({ t: 'config', patch: { task_retention_orchestrations: 0, task_retention_ms: 0 } });
    const id = (b.op(createOp(5)) as { value: { orchestration_id: string } }).value.orchestration_id;
    b.op({ t: 'task.assign', term: 1, lease_ms: 60_000, groups: [{ orch: id, agent: 'a1', seqs: [1, 2, 3, 4], from: [0, 0, 0, 0] }] });
    b.op({ t: 'task.complete', groups: [{ orch: id, agent: 'a1', seqs: [1, 2, 3, 4], epochs: [1, 1, 1, 1], ok: true }] });
    b.now += 1e9;
    b.op({ t: 'clock' });
    expect(b.machine.tasks.tasks.size).toBe(5);
    expect(b.machine.tasks.orchs.get(id)!.compacted).toBeUndefined();
  });

  it('config bounds: negative or fractional retention is a recorded no-op', () => {
    const b = new LogBuilder();
    const r = b.op({ t: 'config', patch: { task_retention_orchestrations: -1 } });
    expect(r).toMatchObject({ ok: false, code: 'invalid' });
    expect(r.ok ? '' : r.message).toMatch(/task_retention_orchestrations=-1; accepted: an integer 0\.\.1000000/);
    const r2 = b.op({ t: 'config', patch: { task_retention_ms: 1.5 } });
    expect(r2.ok ? '' : r2.message).toMatch(/task_retention_ms=1\.5/);
    expect(b.machine.config.task_retention_orchestrations).toBe(100);
  });

  it('a v2 snapshot (before retention) restores with the default retention and takes part in it', () => {
    const { b } = retentionLog();
    // A v2 snapshot: no retention config, no compaction state, every record present.
    const plain = new LogBuilder();
    for (let i = 0; i < 3; i++) {
      const id = (plain.op(createOp(2)) as { value: { orchestration_id: string } }).value.orchestration_id;
      runAll(plain, id);
    }
    const v2 = JSON.parse(plain.machine.snapshot());
    v2.v = 2;
    delete v2.config.task_retention_orchestrations;
    delete v2.config.task_retention_ms;
    delete v2.tasks.compacted_refused;
    const m = new CoordinationMachine();
    expect(m.checkSnapshot(JSON.stringify(v2))).toBeNull();
    m.restore(JSON.stringify(v2));
    expect(m.config.task_retention_orchestrations).toBe(100);
    expect(m.config.task_retention_ms).toBe(3_600_000);
    // One hour of log time later, the next entry removes them.
    const e: Entry = { index: m.appliedIndex + 1, term: 1, type: 'normal', data: JSON.stringify({ op: { t: 'clock' }, now: m.clock + 3_600_000 }) };
    m.apply(e);
    expect(m.tasks.tasks.size).toBe(0);
    expect(b.machine.tasks.tasks.size).toBeGreaterThan(0);
  });
});
