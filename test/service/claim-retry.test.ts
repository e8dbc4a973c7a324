// task_claim sent again under the same client session (client, seq): what a cluster client
// does after a lost answer, and what its hedge does when the leader goes silent (the copy
// runs the tool again on the new leader). The retry must be answered as the first attempt
// was: the session table answers the proposal from the first attempt's result, so a retry
// that recomputes its picks from the state the first attempt changed (the tasks it claimed
// are no longer pending) and reports those picks tells the agent it claimed nothing (or other
// tasks) while the first attempt's tasks stay assigned to it, unreported, until their lease
// runs out.

import { afterEach, describe, expect, it } from 'vitest';
import type { Coordinator } from '../../src/service/coordinator.js';
import { claimTasks, orchestrate } from '../../src/service/tasks.js';
import { callSession } from '../../src/swarm/call-session.js';
import { removeDir, swarmWithAgents, tempDataDir } from './service-util.js';

describe('task_claim retried under the same client session', () => {
  let dir = '';
  let coordinator: Coordinator | undefined;
  afterEach(() => {
    coordinator?.close();
    coordinator = undefined;
    if (dir) removeDir(dir);
  });

  it('answers the tasks the first attempt claimed, and claims nothing more', async () => {
    dir = tempDataDir('claim-retry');
    const made = await swarmWithAgents(dir, { agents: 3 });
    coordinator = made.coordinator;
    const swarm = made.swarm;
    await orchestrate(swarm, { task: 'external work', count: 3, executor: { kind: 'external' } });
    const { session } = await swarm.proposer.registerSession();
    type Claimed = { tasks: Array<{ task_id: string; epoch: number }> };
    // The client's call seq 1 (it acknowledged nothing before it): first attempt, then the same
    // call again (its answer was lost, or the leader went silent and the client hedged).
    const attempt = () => callSession.run({ client: session, seq: 1, ack: 1, next: 0 }, () => claimTasks(swarm, { agent_id: 'outside-1', count: 2, lease_ms: 600_000 })) as Promise<Claimed>;
    const first = await attempt();
    expect(first.tasks).toHaveLength(2);
    const retry = await attempt();

    // The state: the first attempt's two tasks are assigned to the agent, the third is pending.
    const m = swarm.localMachine()!.machine;
    const held = [...m.tasks.tasks.values()].filter((t) => t.assignee === 'outside-1' && t.status === 'assigned').map((t) => ({ task_id: t.id, epoch: t.epoch }));
    expect(held.map((t) => t.task_id).sort()).toEqual(first.tasks.map((t) => t.task_id).sort());
    expect([...m.tasks.tasks.values()].filter((t) => t.status === 'pending')).toHaveLength(1);
    // The retry tells the agent what it holds: the same tasks at the same epochs.
    expect(retry.tasks.map((t) => ({ task_id: t.task_id, epoch: t.epoch }))).toEqual(first.tasks.map((t) => ({ task_id: t.task_id, epoch: t.epoch })));
  });
});
