// Whole-process restart: Coordinator.close() is the process stopping mid-orchestration; a new
// Coordinator on the same data dir must finish every task exactly once and bring back memory,
// election history and agents from SQLite. Plus the data-dir lock held by another process.

import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { listAgents } from '../../src/service/agents.js';
import { configure, electionHistory } from '../../src/service/consensus.js';
import { Coordinator } from '../../src/service/coordinator.js';
import { UserError } from '../../src/util/errors.js';
import { memoryRetrieve, memoryStore } from '../../src/service/memory.js';
import { orchestrate, taskResults, taskStatus } from '../../src/service/tasks.js';
import type { TaskRecord } from '../../src/machine/types.js';
import { sleep, swarmWithAgents, testResources, waitUntil } from './service-util.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const res = testResources();
const coordinatorOn = res.coordinatorOn;

async function resultsOf(c: Coordinator, orch: string) {
  return (await taskResults(c.swarm('work'), orch, 1000)) as Record<string, unknown> & { tasks: TaskRecord[] };
}

describe('process restart (Coordinator.close, then a new Coordinator on the same data dir)', () => {
  it('finishes every task exactly once and restores memory, elections and agents', async () => {
    const dir = res.dir('restart');
    const first = await swarmWithAgents(dir, { name: 'work', agents: 3, durability: 'full' });
    res.keep(first.coordinator);
    const swarm = first.swarm;
    // Two tasks per agent at a time, 1 s each: the first six are assigned (and running) at once.
    await configure(swarm, { batch_size: 2 });
    await memoryStore(swarm, { key: 'plan', value: { step: 1 } });
    await memoryStore(swarm, { key: 'plan', value: { step: 2 } });
    await memoryStore(swarm, { key: 'owner', value: 'alice', namespace: 'team' });
    const slow = (await orchestrate(swarm, { task: 'slow', count: 12, executor: { kind: 'sleep', sleep_ms: 1000 }, idempotency_key: 'slow-1' })).orchestration_id as string;
    const quick = (await orchestrate(swarm, { task: 'quick', count: 30, priority: 'low' })).orchestration_id as string;
    await waitUntil(async () => (await taskStatus(swarm, slow)).assigned === 6, 2_000, 'six slow tasks assigned');
    // Enough log traffic that the leader checkpoints too (every 1,000 applied entries times a
    // per-member jitter of 1-1.5, doubled on the leader: up to 3,000): after the restart, the
    // running assignments exist only inside a snapshot, not as log entries.
    let written = 0;
    for (let round = 0; round < 8 && !(written >= 1100 && swarm.cluster.leader()!.status().snapshotIndex > 0); round++) {
      await Promise.all(Array.from({ length: 550 }, (_, i) => memoryStore(swarm, { key: `bulk-${(written + i) % 20}`, value: written + i })));
      written += 550;
    }
    const before = await resultsOf(first.coordinator, slow);
    expect(before.completed as number).toBeLessThan(12);
    const electionsBefore = electionHistory(swarm, 1000).elections as Array<{ term: number; new_leader: string }>;
    const snapshotIndex = swarm.cluster.leader()!.status().snapshotIndex;
    expect(snapshotIndex).toBeGreaterThan(0);

    // ---- the process stops: everything in flight is lost ----
    first.coordinator.close();
    expect(fs.existsSync(path.join(dir, 'concord.lock'))).toBe(false);

    const t0 = performance.now();
    // The new process finds its data dir through CONCORD_DATA_DIR, as the CLI would.
    const saved = process.env.CONCORD_DATA_DIR;
    process.env.CONCORD_DATA_DIR = dir;
    let second: Coordinator;
    try {
      second = new Coordinator({ durability: 'full' });
      res.keep(second);
    } finally {
      if (saved === undefined) delete process.env.CONCORD_DATA_DIR;
      else process.env.CONCORD_DATA_DIR = saved;
    }
    expect(second.dataDir).toBe(dir);
    expect(second.names()).toEqual(['work']);
    const s2 = second.swarm('work');
    await s2.waitForLeader(5_000);
    await waitUntil(async () => {
      const r = (await taskResults(s2)) as { completed: number };
      return r.completed === 42;
    }, 15_000, 'both orchestrations to finish after the restart');
    const finishMs = performance.now() - t0;

    for (const id of [slow, quick]) {
      const r = await resultsOf(second, id);
      const total = id === slow ? 12 : 30;
      expect(r).toMatchObject({ total_tasks: total, completed: total, failed: 0, in_progress: 0, duplicates: 0, execution_guarantee: expect.stringMatching(/^completion committed exactly once per task/) });
      expect(r.tasks).toHaveLength(total);
      for (const t of r.tasks) {
        expect(t.status).toBe('completed');
        expect(t.completions_applied).toBe(1);
      }
    }
    // Nothing waited out a 30 s lease: work held in a snapshot was picked up straight away.
    expect(finishMs).toBeLessThan(10_000);
    // The same idempotency key after the restart names the same orchestration.
    expect(await orchestrate(s2, { task: 'slow', count: 12, executor: { kind: 'sleep', sleep_ms: 1000 }, idempotency_key: 'slow-1' })).toMatchObject({
      orchestration_id: slow,
      deduplicated: true,
    });

    // Memory, from SQLite.
    expect(await memoryRetrieve(s2, { key: 'plan' })).toMatchObject({ value: { step: 2 }, version: 2 });
    expect(await memoryRetrieve(s2, { key: 'owner', namespace: 'team' })).toMatchObject({ value: 'alice', version: 1 });
    expect(await memoryRetrieve(s2, { key: 'bulk-0' })).toMatchObject({ version: Math.ceil(written / 20) });
    // Configuration, elections and agents come back too.
    expect(s2.config().batch_size).toBe(2);
    await waitUntil(() => (electionHistory(s2).total_elections as number) > electionsBefore.length, 3_000, 'the post-restart election record');
    const after = electionHistory(s2, 1000).elections as Array<{ term: number; new_leader: string; cause: string }>;
    const oldMax = Math.max(...electionsBefore.map((e) => e.term));
    // Newest first: the restart's election(s), then every earlier record, unchanged.
    const fresh = after.filter((e) => e.term > oldMax);
    expect(after.slice(fresh.length)).toEqual(electionsBefore);
    expect(fresh.length).toBeGreaterThanOrEqual(1);
    expect(fresh.at(-1)!.cause).toBe('startup');
    expect(listAgents(s2).map((a) => [a.agent_id, a.status])).toEqual([
      ['raft-agent-1', 'active'],
      ['raft-agent-2', 'active'],
      ['raft-agent-3', 'active'],
    ]);
  });
});

describe('data-dir lock', () => {
  let child: ChildProcess | null = null;
  afterEach(() => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    child = null;
  });

  it('a second process gets an error naming the holder; a dead holder is taken over', async () => {
    const dir = res.dir('lock');
    // Another process (a tsx child running the real lock code) takes the data dir and holds it.
    const script = `
      import { DataDirLock } from ${JSON.stringify(path.join(ROOT, 'src/service/data-dir.ts'))};
      DataDirLock.acquire(${JSON.stringify(dir)});
      console.log('locked ' + process.pid);
      setInterval(() => {}, 1000);
    `;
    child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
    await waitUntil(() => out.includes('locked ') || child!.exitCode !== null, 15_000, 'the child to take the lock');
    expect(out).toContain(`locked ${child.pid}`);

    let err: unknown;
    try {
      coordinatorOn(dir);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).code).toBe('locked');
    expect((err as UserError).message).toContain(`in use by pid ${child.pid}`);
    expect((err as UserError).message).toContain(dir);
    // The lock file still names the child: the failed attempt did not disturb it.
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'concord.lock'), 'utf8')).pid).toBe(child.pid);

    // The holder dies without releasing (SIGKILL): its stale lock is taken over.
    child.kill('SIGKILL');
    await waitUntil(() => child!.exitCode !== null || child!.signalCode !== null, 5_000, 'the child to die');
    const c = coordinatorOn(dir);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'concord.lock'), 'utf8')).pid).toBe(process.pid);
    c.close();
    expect(fs.existsSync(path.join(dir, 'concord.lock'))).toBe(false);
  });
});
