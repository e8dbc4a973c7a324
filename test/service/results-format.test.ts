// The spec's flags as tool arguments: task_results --format summary | detailed | json (rows
// bounded by limit), and consensus config --election-timeout-min alone past the max (etcd's
// [ET, 2 x ET]: the max moves with it, and the answer says so).

import { describe, expect, it } from 'vitest';
import { configure } from '../../src/service/consensus.js';
import { orchestrate, taskResults } from '../../src/service/tasks.js';
import { swarmWithAgents, testResources, waitUntil } from './service-util.js';

const res = testResources();

describe('task_results format', () => {
  it('summary is the aggregates; detailed adds bounded per-orchestration and per-task rows; json the full records', async () => {
    const { coordinator, swarm } = await swarmWithAgents(res.dir('results'), { agents: 3 });
    res.keep(coordinator);
    const a = (await orchestrate(swarm, { task: 'a', count: 5 })).orchestration_id as string;
    const b = (await orchestrate(swarm, { task: 'b', count: 4 })).orchestration_id as string;
    await waitUntil(async () => (await taskResults(swarm)).completed === 9, 10_000, 'all 9 tasks done');

    const summary = await taskResults(swarm, undefined, { format: 'summary' });
    expect(summary).toMatchObject({ total_tasks: 9, completed: 9, duplicates: 0 });
    expect(summary).not.toHaveProperty('tasks');
    expect(summary).not.toHaveProperty('orchestrations');

    const detailed = await taskResults(swarm, undefined, { format: 'detailed', limit: 6 });
    expect(detailed).toMatchObject({ format: 'detailed', total_tasks: 9, tasks_shown: 6, tasks_truncated: true });
    expect(detailed.orchestrations).toEqual([
      expect.objectContaining({ orchestration_id: a, total_tasks: 5, completed: 5, duplicates: 0 }),
      expect.objectContaining({ orchestration_id: b, total_tasks: 4, completed: 4, duplicates: 0 }),
    ]);
    const rows = detailed.tasks as Array<Record<string, unknown>>;
    expect(rows.map((t) => t.id)).toEqual([`${a}-1`, `${a}-2`, `${a}-3`, `${a}-4`, `${a}-5`, `${b}-1`]);
    expect(rows[0]).toMatchObject({ orchestration_id: a, status: 'completed', completions_applied: 1 });
    expect(rows[0]).not.toHaveProperty('result');

    const json = await taskResults(swarm, b, { format: 'json' });
    expect(json).toMatchObject({ format: 'json', total_tasks: 4, tasks_shown: 4, tasks_truncated: false });
    expect((json.tasks as Array<Record<string, unknown>>)[0]).toMatchObject({ id: `${b}-1`, orch: b, status: 'completed', result: null, epoch: expect.any(Number) });

    await expect(taskResults(swarm, undefined, { format: 'xml' as never })).rejects.toThrow(/format="xml" is not valid; accepted: summary \| detailed \| json/);
    await expect(taskResults(swarm, undefined, { format: 'detailed', limit: 0 })).rejects.toThrow(/limit=0/);
  });
});

describe('consensus config: election timeout range', () => {
  it('raising only the min to the max moves the max to 2 x min and says so; an explicit max is kept', async () => {
    const { coordinator, swarm } = await swarmWithAgents(res.dir('et'), { agents: 1 });
    res.keep(coordinator);
    const r = await configure(swarm, { election_timeout_min: 300 });
    expect(r.config).toMatchObject({ election_timeout_min: 300, election_timeout_max: 600 });
    expect(r.adjusted).toEqual([expect.objectContaining({ field: 'election_timeout_max', from: 300, to: 600, reason: expect.stringMatching(/2 x min/) })]);
    expect(swarm.config()).toMatchObject({ election_timeout_min: 300, election_timeout_max: 600 });
    // Below the max: nothing moves, nothing said.
    const below = await configure(swarm, { election_timeout_min: 200 });
    expect(below.config).toMatchObject({ election_timeout_min: 200, election_timeout_max: 600 });
    expect(below).not.toHaveProperty('adjusted');
    // Both given: the caller's range, validated as before.
    await expect(configure(swarm, { election_timeout_min: 700, election_timeout_max: 650 })).rejects.toThrow(/election_timeout_max/);
  });
});
