// The scheduler sleeps while its swarm has no work (no timer, no ticks: many idle swarms in
// one process each cost a 2 ms wakeup otherwise) and wakes at the apply of new work.

import { describe, expect, it } from 'vitest';
import { orchestrate, taskResults } from '../../src/service/tasks.js';
import { sleep, swarmWithAgents, testResources, waitUntil } from './service-util.js';

const res = testResources();

describe('scheduler on an idle swarm', () => {
  it('sleeps with nothing to do, wakes for a new orchestration, runs it, and sleeps again', async () => {
    const { coordinator, swarm } = await swarmWithAgents(res.dir('sched-idle'), { agents: 3 });
    res.keep(coordinator);
    const s = swarm.scheduler;
    await waitUntil(() => s.sleeping, 5_000, 'the scheduler of an idle swarm to sleep');
    const ticks = s.ticks;
    await sleep(300);
    // Asleep: not one look at the task table in 300 ms (awake, it ticks every 2 ms).
    expect(s.ticks).toBe(ticks);
    expect(s.sleeping).toBe(true);

    const id = (await orchestrate(swarm, { task: 'wake', count: 20, executor: { kind: 'noop' } })).orchestration_id as string;
    await waitUntil(async () => ((await taskResults(swarm, id)).completed as number) === 20, 10_000, 'all 20 tasks completed');
    expect(s.ticks).toBeGreaterThan(ticks);
    await waitUntil(() => s.sleeping, 5_000, 'the scheduler to sleep again once the work is done');
  });

  it('a new leader\'s scheduler sleeps too, and still hands out work created after the election', async () => {
    const { coordinator, swarm } = await swarmWithAgents(res.dir('sched-idle-failover'), { agents: 3 });
    res.keep(coordinator);
    const old = swarm.cluster.leader()!;
    swarm.cluster.crash(old.id);
    await waitUntil(() => {
      const l = swarm.cluster.leader();
      return l !== undefined && l.id !== old.id;
    }, 10_000, 'a new leader');
    await waitUntil(() => swarm.scheduler.sleeping, 5_000, 'the scheduler to sleep under the new leader');
    const id = (await orchestrate(swarm, { task: 'after', count: 5, executor: { kind: 'noop' } })).orchestration_id as string;
    await waitUntil(async () => ((await taskResults(swarm, id)).completed as number) === 5, 10_000, 'all 5 tasks completed');
  });
});
