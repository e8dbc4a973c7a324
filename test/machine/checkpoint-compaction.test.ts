// Retention compacts at most COMPACT_TASKS_PER_ENTRY task records per applied entry, so a large
// finished orchestration is compacted across several entries. A checkpoint taken half-way
// (records 1..10,000 removed, the rest still held, the summary mid-way) must restart into the
// same state, and the restarted member must go on compacting exactly where the others do:
// same records removed at the same indices, same summary, same state hash. The random
// checkpoint property uses orchestrations of at most 300 tasks, which compact in one entry.

import { describe, expect, it } from 'vitest';
import { CoordinationMachine } from '../../src/machine/coordination-machine.js';
import { COMPACT_TASKS_PER_ENTRY } from '../../src/machine/task-table.js';
import type { Command, Op } from '../../src/machine/types.js';
import type { Entry } from '../../src/raft/types.js';
import { CheckpointImage } from '../../src/storage/memory-storage.js';
import { createOp, entry, putOp } from './machine-util.js';

const CONF = { voters: ['n1'], learners: [] };
const N = 2 * COMPACT_TASKS_PER_ENTRY + 5_000;

describe('checkpoint in the middle of a multi-entry compaction', () => {
  it('a member restarted from rows taken half-way through compacting a 25,000-task orchestration ends identical to one that applied every entry', () => {
    const log: Entry[] = [];
    let now = 1_000_000;
    const ref = new CoordinationMachine();
    const add = (op: Op): void => {
      const e = entry(log.length + 1, { op, now } as Command);
      log.push(e);
      ref.apply(e);
    };
    add({ t: 'config', patch: { task_retention_orchestrations: 0, task_retention_ms: 3_600_000 } });
    add(createOp(N));
    const orch = [...ref.tasks.orchs.keys()][0]!;
    const seqs = Array.from({ length: N }, (_, i) => i + 1);
    add({ t: 'task.assign', term: 1, lease_ms: 60_000, groups: [{ orch, agent: 'a', seqs, from: seqs.map(() => 0) }] });
    now += 10;
    // The completing entry finishes it and compacts its first COMPACT_TASKS_PER_ENTRY records.
    add({ t: 'task.complete', groups: [{ orch, agent: 'a', seqs, epochs: seqs.map(() => 1), ok: true }] });
    const mid = ref.tasks.orchs.get(orch)!.compacted!;
    expect(mid.records_removed).toBe(COMPACT_TASKS_PER_ENTRY);
    expect(mid.done_index).toBeNull();

    // The member applied the same entries and checkpoints here, half-way.
    const member = new CoordinationMachine();
    for (const e of log) member.apply(e);
    const image = new CheckpointImage();
    image.apply(structuredClone({ metadata: { index: member.appliedIndex, term: 1, confState: CONF }, ...member.takeCheckpoint() }));

    // Later entries: compaction goes on, one batch per entry, and stops when done.
    for (let i = 0; i < 4; i++) {
      now += 10;
      add(putOp(`k${i}`, i));
    }
    const done = ref.tasks.orchs.get(orch)!.compacted!;
    expect(done.records_removed).toBe(N);
    expect(done.done_index).toBe(log.length - 2);

    // Crash and restart from the rows, then the log tail.
    const restarted = new CoordinationMachine();
    restarted.restoreCheckpoint(image.reader());
    expect(restarted.tasks.tasks.size).toBe(N - COMPACT_TASKS_PER_ENTRY);
    for (const e of log.slice(restarted.appliedIndex)) restarted.apply(e);
    expect(restarted.stateHash()).toBe(ref.stateHash());
    expect(restarted.tasks.tasks.size).toBe(0);
    // The scheduler's view (its queues are a cache that depends on when it looked): nothing pending or assigned.
    expect(restarted.tasks.pickPending(10, new Set())).toEqual(ref.tasks.pickPending(10, new Set()));
    expect([...restarted.tasks.assigned]).toEqual([]);
    // Going on from here (a new orchestration, compacted too) keeps them identical.
    for (const m of [ref, restarted]) {
      const e = entry(log.length + 1, { op: createOp(3), now: now + 10 } as Command);
      m.apply(e);
    }
    expect(restarted.stateHash()).toBe(ref.stateHash());
  });
});
