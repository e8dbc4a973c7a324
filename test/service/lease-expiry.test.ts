// A task whose lease ran out is taken back even though its agent is alive and answering
// heartbeats: here the agent's completion report is lost (its proposal fails and the worker
// drops it, relying on the lease), so only the lease can bring the task back.

import { afterEach, describe, expect, it } from 'vitest';
import type { Op } from '../../src/machine/types.js';
import { configure } from '../../src/service/consensus.js';
import { orchestrate, taskResults } from '../../src/service/tasks.js';
import { swarmWithAgents, testResources, waitUntil } from './service-util.js';

const res = testResources();
const realNow = Date.now;
afterEach(() => {
  Date.now = realNow;
});

describe('lease expiry', () => {
  it('reassigns a task whose 30 s lease ran out while its agent stays alive', async () => {
    const { coordinator, swarm } = await swarmWithAgents(res.dir('lease'), { agents: 3 });
    res.keep(coordinator);
    await configure(swarm, { batch_size: 1 });
    // Lose exactly one completion report: the first one proposed.
    let lost: string | null = null;
    const propose = swarm.propose.bind(swarm);
    swarm.propose = async (op: Op, timeoutMs?: number, opts?: Parameters<typeof propose>[2]) => {
      if (op.t === 'task.complete' && lost === null && op.groups?.[0]) {
        lost = `${op.groups[0].orch}-${op.groups[0].seqs[0]}`;
        throw new Error('completion lost (test)');
      }
      return propose(op, timeoutMs, opts);
    };
    const id = (await orchestrate(swarm, { task: 'lease', count: 6, executor: { kind: 'sleep', sleep_ms: 20 } })).orchestration_id as string;
    await waitUntil(async () => lost !== null && ((await taskResults(swarm, id)).completed as number) === 5, 10_000, 'every task but the lost one done');
    const machine = () => swarm.localMachine()!.machine;
    const before = machine().tasks.tasks.get(lost!)!;
    expect(before.status).toBe('assigned');
    const holder = before.assignee!;
    const epochBefore = before.epoch;
    const assignmentsBefore = before.assignments;
    expect(swarm.liveAgents().has(holder)).toBe(true); // alive: only the lease can free it
    // 31 s pass (the lease is 30 s): the leader's clock moves, nothing else does.
    Date.now = () => realNow() + 31_000;
    await waitUntil(() => machine().tasks.tasks.get(lost!)!.status === 'completed', 10_000, 'the expired task to be reassigned and completed');
    const after = machine().tasks.tasks.get(lost!)!;
    expect(after.epoch).toBeGreaterThan(epochBefore);
    expect(after.assignments).toBeGreaterThan(assignmentsBefore);
    expect((await taskResults(swarm, id)).duplicates).toBe(0);
  });
});
