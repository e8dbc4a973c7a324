// A deposed leader cut off from the majority still believes it leads (until check-quorum
// steps it down; in cluster mode its process only sees itself). A linearizable read served
// through it must not return a value the majority has already overwritten: the ReadIndex
// round cannot be confirmed, so the read fails instead. The in-process cluster normally routes
// reads to the highest-term leader, which hides this case; here the read is routed to the old
// leader on purpose, as a cluster-mode process hosting only that member would.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NodeHost } from '../../src/host/node-host.js';
import type { Coordinator } from '../../src/service/coordinator.js';
import { UserError } from '../../src/util/errors.js';
import { memoryRetrieve, memoryStore } from '../../src/service/memory.js';
import { claimTasks, completeTask, orchestrate, taskStatus } from '../../src/service/tasks.js';
import { networkHeal } from '../../src/service/network.js';
import type { Swarm } from '../../src/swarm/swarm.js';
import { cutOff, removeDir, swarmWithAgents, tempDataDir, waitUntil } from './service-util.js';

const NS = 'stale-read';

/** Run `fn` with the swarm's leader lookup pinned to `host` (what a lone cluster-mode member sees). */
async function routedTo<T>(swarm: Swarm, host: NodeHost, fn: () => Promise<T>): Promise<T> {
  const cluster = swarm.cluster as { leader: () => NodeHost | undefined };
  const real = cluster.leader;
  cluster.leader = () => (host.isRunning && host.core.role === 'leader' ? host : undefined);
  try {
    return await fn();
  } finally {
    cluster.leader = real;
  }
}

/** The key's value in one member's applied state (a local read there). */
function localValue(swarm: Swarm, id: string): { value: unknown } | undefined {
  const m = swarm.machines.get(id)!;
  return m.memory.get(NS, 'k', m.clock);
}

describe('a partitioned deposed leader does not serve stale linearizable reads', () => {
  let dir: string;
  let coordinator: Coordinator;
  let swarm: Swarm;

  beforeAll(async () => {
    dir = tempDataDir('stale-read');
    ({ coordinator, swarm } = await swarmWithAgents(dir, { agents: 5 }));
  });

  afterAll(() => {
    coordinator?.close();
    removeDir(dir);
  });

  it('memory_retrieve through the old leader fails or sees the newer write, never the old value', async () => {
    await memoryStore(swarm, { key: 'k', value: 'old', namespace: NS });
    const old = await swarm.waitForLeader(5_000);
    const oldTerm = old.core.term;
    // Keep the old leader believing it leads while cut off: check-quorum would step it down
    // after an election timeout, and the stale window before that is exactly what ReadIndex
    // closes. Without check-quorum the window never ends, so the test is not a timing race.
    old.reconfigure({ checkQuorum: false });
    // Its own applied state holds 'old' (a local read there would see it).
    await waitUntil(() => localValue(swarm, old.id)?.value === 'old', 2_000, 'the old value applied on the old leader');

    // The old leader keeps one follower: a minority of 2 out of 5. That follower, still in the
    // old term, acknowledges its heartbeats, so a read confirmed by fewer than a majority of
    // acks would be released; only a quorum check refuses it.
    await cutOff(swarm, old, oldTerm);
    const written = await memoryStore(swarm, { key: 'k', value: 'new', namespace: NS });
    expect(written.version).toBe(2);
    // The old leader still leads in its own eyes and still holds the overwritten value.
    expect(old.core.role).toBe('leader');
    expect(localValue(swarm, old.id)?.value).toBe('old');

    const outcome: { read: Record<string, unknown> } | { error: unknown } = await routedTo(swarm, old, async () => {
      try {
        return { read: await memoryRetrieve(swarm, { key: 'k', namespace: NS }) };
      } catch (e) {
        return { error: e };
      }
    });
    if ('read' in outcome) {
      // Only the newest value is acceptable.
      expect(outcome.read.value).toBe('new');
      expect(outcome.read.version).toBe(2);
    } else {
      expect(outcome.error).toBeInstanceOf(UserError);
      expect((outcome.error as UserError).code).toMatch(/^(unavailable|not_leader)$/);
    }

    // After healing, the old leader learns the newer term and the read sees the newest value.
    await networkHeal(swarm);
    await waitUntil(() => old.core.role !== 'leader', 5_000, 'the old leader to step down after the heal');
    const after = await memoryRetrieve(swarm, { key: 'k', namespace: NS });
    expect(after.value).toBe('new');
  });
  it('task_status through the old leader fails or sees the completion the majority committed, never the pending task', async () => {
    await networkHeal(swarm);
    const created = await orchestrate(swarm, { task: 'stale status', count: 1, executor: { kind: 'external' } });
    const id = created.orchestration_id as string;
    const old = await swarm.waitForLeader(5_000);
    const oldTerm = old.core.term;
    old.reconfigure({ checkQuorum: false });
    await waitUntil(() => swarm.machines.get(old.id)!.tasks.orchs.has(id), 2_000, 'the orchestration applied on the old leader');
    await cutOff(swarm, old, oldTerm);
    await waitUntil(() => swarm.machines.get(swarm.cluster.leader()!.id)!.tasks.orchs.has(id), 5_000, 'the orchestration applied on the new leader');
    // The majority claims and completes the task; the old leader still holds it pending.
    const claimed = (await claimTasks(swarm, { agent_id: 'outside', orchestration_id: id })).tasks as Array<{ task_id: string; epoch: number }>;
    expect(claimed).toHaveLength(1);
    expect((await completeTask(swarm, { task_id: claimed[0]!.task_id, agent_id: 'outside', epoch: claimed[0]!.epoch })).accepted).toBe(true);
    expect(old.core.role).toBe('leader');
    expect(swarm.machines.get(old.id)!.tasks.tasks.get(claimed[0]!.task_id)?.status).toBe('pending');

    const outcome: { read: Record<string, unknown> } | { error: unknown } = await routedTo(swarm, old, async () => {
      try {
        return { read: await taskStatus(swarm, id) };
      } catch (e) {
        return { error: e };
      }
    });
    if ('read' in outcome) expect(outcome.read).toMatchObject({ completed: 1 });
    else {
      expect(outcome.error).toBeInstanceOf(UserError);
      expect((outcome.error as UserError).code).toMatch(/^(unavailable|not_leader)$/);
    }
    await networkHeal(swarm);
    await waitUntil(() => old.core.role !== 'leader', 5_000, 'the old leader to step down after the heal');
    old.reconfigure({ checkQuorum: true });
    expect(await taskStatus(swarm, id)).toMatchObject({ completed: 1 });
  });
});
