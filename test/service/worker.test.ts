// The agent worker: runs each assignment it is told about once, with the assignment's epoch,
// however many times the assignment is announced (log replay, snapshot restore).

import { describe, expect, it } from 'vitest';
import type { CoordinationMachine } from '../../src/machine/coordination-machine.js';
import type { CompleteItem } from '../../src/machine/types.js';
import { AgentWorker } from '../../src/swarm/worker.js';
import { LogBuilder, createOp, replay } from '../machine/machine-util.js';
import { sleep, waitUntil } from './service-util.js';

type Completion = CompleteItem;

function setup(executor: { kind: 'noop' } | { kind: 'sleep'; sleep_ms: number }) {
  const b = new LogBuilder();
  b.op(createOp(3, { executor }));
  b.op({ t: 'task.assign', term: 1, lease_ms: 1000, items: [1, 2, 3].map((i) => ({ task: `orch-1-${i}`, agent: i === 3 ? 'other' : 'me', from_epoch: 0 })) });
  const submitted: Completion[] = [];
  let running = true;
  const worker = new AgentWorker('me', {
    // The replica object outlives its member (embedded mode keeps it in memory): the worker
    // itself must stop, not rely on the host hiding the replica.
    machineOf: () => b.machine,
    isRunning: () => running,
    batchSize: () => 10,
    submitCompletions: async (items) => {
      submitted.push(...items);
      b.op({ t: 'task.complete', items });
    },
  });
  return { b, worker, submitted, stop: () => (running = false), restart: () => (running = true) };
}

const announce = [
  { task: 'orch-1-1', agent: 'me', epoch: 1 },
  { task: 'orch-1-2', agent: 'me', epoch: 1 },
  { task: 'orch-1-3', agent: 'other', epoch: 1 },
];

describe('AgentWorker', () => {
  it('runs a twice-announced assignment once (sleep executor, announced while running)', async () => {
    const { b, worker, submitted } = setup({ kind: 'sleep', sleep_ms: 40 });
    worker.enqueue(announce);
    await sleep(10);
    worker.enqueue(announce); // e.g. a snapshot install announcing the same assignments
    await waitUntil(() => submitted.length >= 2, 2_000, 'two completions');
    await sleep(80);
    expect(worker.executed).toBe(2);
    expect(submitted.map((c) => [c.task, c.epoch, c.agent]).sort()).toEqual([
      ['orch-1-1', 1, 'me'],
      ['orch-1-2', 1, 'me'],
    ]);
    expect(b.machine.tasks.orchs.get('orch-1')!.counts).toMatchObject({ completed: 2, assigned: 1, stale_completions_refused: 0 });
  });

  it('runs a twice-announced assignment once (noop executor, announced in one turn)', async () => {
    const { b, worker, submitted } = setup({ kind: 'noop' });
    worker.enqueue(announce);
    worker.enqueue(announce);
    await waitUntil(() => submitted.length >= 2, 2_000, 'two completions');
    await sleep(20);
    expect(submitted).toHaveLength(2);
    expect(b.machine.tasks.orchs.get('orch-1')!.counts.stale_completions_refused).toBe(0);
  });

  it('skips an announcement whose epoch is no longer current', async () => {
    const { b, worker, submitted } = setup({ kind: 'noop' });
    b.op({ t: 'task.assign', term: 2, lease_ms: 1000, items: [{ task: 'orch-1-1', agent: 'other', from_epoch: 1 }] });
    worker.enqueue(announce);
    await waitUntil(() => submitted.length >= 1, 2_000, 'one completion');
    await sleep(20);
    expect(submitted.map((c) => c.task)).toEqual(['orch-1-2']);
  });

  it('starts no work announced after its member stopped, though the assignment is live', async () => {
    const { b, worker, submitted, stop } = setup({ kind: 'noop' });
    stop();
    // Live: orch-1-1 and orch-1-2 are assigned to this agent at epoch 1 in its replica.
    expect(['orch-1-1', 'orch-1-2'].map((id) => b.machine.tasks.tasks.get(id)!)).toMatchObject([
      { status: 'assigned', assignee: 'me', epoch: 1 },
      { status: 'assigned', assignee: 'me', epoch: 1 },
    ]);
    worker.enqueue(announce);
    await sleep(50);
    expect(worker.executed).toBe(0);
    expect(submitted).toHaveLength(0);
    expect(b.machine.tasks.orchs.get('orch-1')!.counts).toMatchObject({ assigned: 3, completed: 0 });
  });

  it('drops the report of a run its member stopped during; a re-run after restart reports both runs', async () => {
    const { b, worker, submitted, stop, restart } = setup({ kind: 'sleep', sleep_ms: 60 });
    worker.enqueue(announce);
    await sleep(15); // both runs under way
    stop();
    await sleep(120); // the runs finish with the member down
    expect(worker.executed).toBe(2);
    expect(submitted).toHaveLength(0);
    expect(b.machine.tasks.orchs.get('orch-1')!.counts).toMatchObject({ assigned: 3, completed: 0, executions_started: 0 });
    // Restarted while the assignments are still its own (e.g. before the leader took them
    // back): replaying the log announces them again, they run again, and the report says so.
    restart();
    worker.enqueue(announce);
    await waitUntil(() => submitted.length >= 2, 2_000, 'two completions');
    expect(worker.executed).toBe(4);
    expect(submitted.map((c) => [c.task, c.starts]).sort()).toEqual([
      ['orch-1-1', 2],
      ['orch-1-2', 2],
    ]);
    expect(b.machine.tasks.orchs.get('orch-1')!.counts).toMatchObject({ completed: 2, duplicates: 0, executions_started: 4 });
  });
});

describe('AgentWorker on a replica catching up', () => {
  it('runs no assignment the entries it has not applied yet complete or take back; runs the one still held once caught up', async () => {
    // The cluster's log: three assignments to `me` (epoch 1); then `me` completed the first
    // (before a crash) and the second was taken back and given to `other`.
    const b = new LogBuilder();
    b.op(createOp(3));
    b.op({ t: 'task.assign', term: 1, lease_ms: 1000, items: [1, 2, 3].map((i) => ({ task: `orch-1-${i}`, agent: 'me', from_epoch: 0 })) });
    const assignedAt = b.entries.length;
    b.op({ t: 'task.complete', items: [{ task: 'orch-1-1', agent: 'me', epoch: 1, ok: true, result: null }] });
    b.op({ t: 'task.assign', term: 2, lease_ms: 1000, items: [{ task: 'orch-1-2', agent: 'other', from_epoch: 1 }] });
    // `me` restarted: its replica has applied up to the assignments only.
    const replica = replay(b.entries.slice(0, assignedAt));
    const submitted: Completion[] = [];
    const worker = new AgentWorker('me', {
      machineOf: () => replica,
      isRunning: () => true,
      batchSize: () => 10,
      submitCompletions: async (items) => {
        submitted.push(...items);
      },
      catchingUp: () => replica.appliedIndex < b.entries.length,
    });
    worker.enqueue([1, 2, 3].map((i) => ({ task: `orch-1-${i}`, agent: 'me', epoch: 1 })));
    await sleep(30);
    // Without the wait it ran all three, two of them for nothing (refused as stale).
    expect(worker.executed).toBe(0);
    for (const e of b.entries.slice(assignedAt)) {
      replica.apply(e);
      worker.applied();
    }
    await waitUntil(() => submitted.length >= 1, 2_000, 'the held assignment reported');
    await sleep(30);
    expect(worker.executed).toBe(1);
    expect(submitted.map((c) => [c.task, c.epoch])).toEqual([['orch-1-3', 1]]);
  });

  it('drains a large replayed queue in linear time (a restarted member held the event loop for seconds)', async () => {
    // A member restarted 500,000 tasks behind replays ~100,000 of its own old assignments,
    // all completed since: each is checked and dropped. With Array.shift() per item the
    // drain was quadratic (200,000 items: ~60 s of one turn on the shared machine).
    const n = 200_000;
    const checked: number[] = [];
    const worker = new AgentWorker('me', {
      machineOf: () => ({ tasks: { heldBy: (task: string) => void checked.push(Number(task.slice(7))) } }) as unknown as CoordinationMachine,
      isRunning: () => true,
      batchSize: () => 10,
      submitCompletions: async () => undefined,
    });
    worker.enqueue(Array.from({ length: n }, (_, i) => ({ task: `orch-1-${i + 1}`, agent: 'me', epoch: 1 })));
    const t0 = performance.now();
    await waitUntil(() => checked.length === n, 100_000, 'every queued item checked');
    // Generous: only the quadratic drain comes near it (linear: well under a second).
    expect(performance.now() - t0).toBeLessThan(15_000);
    expect(worker.executed).toBe(0);
    expect(worker.queued).toBe(0);
    // Every item checked once, in queue order.
    expect(checked.length).toBe(n);
    expect(checked.every((v, i) => v === i + 1)).toBe(true);
  });
});
