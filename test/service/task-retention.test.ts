// Task retention through the service (issue 12): task_results gives the same figures before
// and after the records are removed, task_status says the records were compacted (not "not
// found"), a late task_complete for a removed task is refused and counted, and every replica
// holds the same state afterwards.

import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { configure } from '../../src/service/consensus.js';
import { completeTask, orchestrate, taskResults, taskStatus } from '../../src/service/tasks.js';
import { swarmWithAgents, testResources, waitUntil } from './service-util.js';

const res = testResources();

describe('task retention through the service', () => {
  it('task_results exact across compaction; task_status and task_complete say compacted', async () => {
    const { coordinator, swarm } = await swarmWithAgents(res.dir('retention'), { agents: 3 });
    res.keep(coordinator);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await orchestrate(swarm, { task: `batch ${i}`, count: 20 + i })).orchestration_id as string);
    for (const id of ids) await waitUntil(async () => (await taskStatus(swarm, id)).status === 'finished', 30_000, `${id} finished`);
    const leaderMachine = () => swarm.machines.get(swarm.cluster.leader()!.id)!;
    const recordsBefore = leaderMachine().tasks.tasks.size;
    expect(recordsBefore).toBe(20 + 21 + 22);
    const strip = (r: Record<string, unknown>) => {
      const { counted_from: _c, ...rest } = r;
      return rest;
    };
    const allBefore = strip(await taskResults(swarm));
    const oneBefore = strip(await taskResults(swarm, ids[0]));
    const st0 = await taskStatus(swarm, ids[0]);
    expect(st0.task_records).toBe('kept');

    // Keep one finished orchestration's records: the first two are compacted by this entry.
    await configure(swarm, { task_retention_orchestrations: 1 });
    expect(leaderMachine().tasks.tasks.size).toBe(22);
    expect(strip(await taskResults(swarm))).toEqual(allBefore);
    expect(strip(await taskResults(swarm, ids[0]))).toEqual(oneBefore);
    const st = await taskStatus(swarm, ids[0]);
    expect(st).toMatchObject({ status: 'finished', completed: 20, total_tasks: 20, task_records: 'compacted', compaction: { records_removed: 20, late_reports_refused: 0 } });
    expect((await taskStatus(swarm, ids[2])).task_records).toBe('kept');
    const withTasks = await taskResults(swarm, ids[0], 5);
    expect(withTasks.tasks).toEqual([]);
    expect(withTasks.task_records).toMatchObject({ task_records: 'compacted' });

    // A late report for a removed task: refused, counted (a run reported, a report refused).
    const late = await completeTask(swarm, { task_id: `${ids[0]}-3`, agent_id: 'someone', epoch: 1, result: 'late' });
    expect(late).toMatchObject({ accepted: false });
    expect(String(late.status)).toMatch(/^compacted/);
    const after = await taskResults(swarm, ids[0]);
    expect(after).toMatchObject({
      completed: oneBefore.completed,
      duplicates: 0,
      stale_completions_refused: (oneBefore.stale_completions_refused as number) + 1,
      executions_started: (oneBefore.executions_started as number) + 1,
    });
    expect((await taskStatus(swarm, ids[0])).compaction).toMatchObject({ late_reports_refused: 1 });

    // Every replica removed the same records at the same index: identical state.
    await waitUntil(() => new Set([...swarm.machines.values()].map((m) => m.appliedIndex)).size === 1, 10_000, 'replicas caught up');
    const hashes = new Set([...swarm.machines.values()].map((m) => createHash('sha256').update(m.snapshot()).digest('hex')));
    expect(hashes.size).toBe(1);
  });
});
