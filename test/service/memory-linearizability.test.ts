// Concurrent histories of replicated memory recorded against a real Swarm (real clock, SQLite
// files in a temporary CONCORD data dir) through the service functions, under leader crashes
// and network partitions, then checked for linearizability.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { restartAgent, terminateAgent } from '../../src/service/agents.js';
import { electionHistory } from '../../src/service/consensus.js';
import type { Coordinator } from '../../src/service/coordinator.js';
import { UserError } from '../../src/util/errors.js';
import { memoryDelete, memoryRetrieve, memoryStore } from '../../src/service/memory.js';
import { networkHeal, networkPartition } from '../../src/service/network.js';
import type { Swarm } from '../../src/swarm/swarm.js';
import { Prng } from '../../src/util/prng.js';
import { HistoryRecorder, checkKvHistory, type KvOutput } from '../helpers/linearizability.js';
import { removeDir, sleep, swarmWithAgents, tempDataDir, waitUntil } from './service-util.js';

const KEYS = ['x', 'y', 'z'];

/** A write's outcome: definite when the machine answered, unknown when the request gave up. */
function writeOutcome(r: { value: Record<string, unknown> } | { error: unknown }, kind: 'put' | 'delete'): KvOutput | null {
  if ('value' in r) {
    return kind === 'put' ? { ok: true, version: r.value.version as number } : { ok: true, deleted: r.value.deleted as boolean };
  }
  // version_mismatch surfaces as a conflict: the operation was applied and refused, no effect.
  if (r.error instanceof UserError && r.error.code === 'conflict') return { ok: false };
  return null;
}

interface Stats {
  ops: number;
  reads: number;
  readsFound: number;
  writes: number;
  casRefused: number;
  unknown: number;
  maxLatencyMs: number;
}

/** One client: a sequence of random operations, each recorded with its invoke/response times. */
async function client(id: number, swarm: Swarm, NS: string, impatient: boolean, rec: HistoryRecorder, stopAt: () => boolean, stats: Stats): Promise<void> {
  const prng = new Prng(1000 + id);
  const lastVersion = new Map<string, number>();
  let n = 0;
  while (!stopAt()) {
    const key = prng.pick(KEYS);
    // Clients 0 and 1 are impatient in that mode: they only write, and give up after 150 ms.
    const hurried = impatient && id < 2;
    const r = hurried ? prng.next() * 0.45 : prng.next();
    let op;
    if (r < 0.3) {
      const value = `c${id}-${n++}`;
      // An impatient client gives up after 150 ms (same proposal path as memory_store, with a
      // short deadline): its write may still commit later, so its outcome is unknown.
      const write = hurried
        ? async () => (await swarm.proposeOk({ t: 'mem.put', key, namespace: NS, value, ttl_s: null, if_version: null }, 150)) as Record<string, unknown>
        : () => memoryStore(swarm, { key, value, namespace: NS });
      op = await rec.record(id, { op: 'put', key, value }, write, (o) => writeOutcome(o, 'put'));
      stats.writes++;
    } else if (r < 0.45) {
      // Compare-and-set from the version this client last saw (often stale under concurrency).
      const value = `c${id}-${n++}`;
      const ifVersion = lastVersion.get(key) ?? 0;
      const write = hurried
        ? async () => (await swarm.proposeOk({ t: 'mem.put', key, namespace: NS, value, ttl_s: null, if_version: ifVersion }, 150)) as Record<string, unknown>
        : () => memoryStore(swarm, { key, value, namespace: NS, if_version: ifVersion });
      op = await rec.record(id, { op: 'put', key, value, ifVersion }, write, (o) => writeOutcome(o, 'put'));
      if (op?.output && 'ok' in op.output && !op.output.ok) stats.casRefused++;
      stats.writes++;
    } else if (r < 0.9) {
      op = await rec.record(
        id,
        { op: 'get', key },
        () => memoryRetrieve(swarm, { key, namespace: NS }),
        (o) => {
          if ('value' in o) return { found: true, value: o.value.value, version: o.value.version as number };
          if (o.error instanceof UserError && o.error.code === 'not_found') return { found: false };
          return 'skip'; // a read that failed changed nothing
        },
      );
      stats.reads++;
      if (op?.output && 'found' in op.output && op.output.found) {
        stats.readsFound++;
        lastVersion.set(key, op.output.version);
      }
    } else {
      const ifVersion = prng.chance(0.5) ? (lastVersion.get(key) ?? 1) : undefined;
      op = await rec.record(
        id,
        { op: 'delete', key, ifVersion: ifVersion ?? null },
        () => memoryDelete(swarm, { key, namespace: NS, if_version: ifVersion }),
        (o) => writeOutcome(o, 'delete'),
      );
      stats.writes++;
    }
    if (op) {
      stats.ops++;
      if (op.output === null) stats.unknown++;
      else stats.maxLatencyMs = Math.max(stats.maxLatencyMs, op.ret - op.call);
      if (op.output && 'version' in op.output && !('found' in op.output)) lastVersion.set(key, op.output.version);
    }
  }
}

/** Each scenario uses its own namespace, so every key starts absent as the checker assumes. */
async function recordUnderFaults(swarm: Swarm, ns: string, faults: () => Promise<void>, impatient = false, clients = 6): Promise<{ rec: HistoryRecorder; stats: Stats }> {
  const rec = new HistoryRecorder();
  const stats: Stats = { ops: 0, reads: 0, readsFound: 0, writes: 0, casRefused: 0, unknown: 0, maxLatencyMs: 0 };
  let stop = false;
  const running = Array.from({ length: clients }, (_, i) => client(i, swarm, ns, impatient, rec, () => stop, stats));
  try {
    await faults();
  } finally {
    stop = true;
    await Promise.all(running);
  }
  return { rec, stats };
}

function expectLinearizable(rec: HistoryRecorder): void {
  const r = checkKvHistory(rec.ops);
  if (!r.linearizable) expect.fail(r.explanation);
  expect(r.linearizable).toBe(true);
  // The same history with one read forged to a version never written must be refused: the
  // recorded history is rich enough for the checker to catch a bad read.
  const i = rec.ops.findIndex((o) => o.output !== null && 'found' in o.output && o.output.found);
  expect(i).toBeGreaterThanOrEqual(0);
  const forged = rec.ops.map((o, j) => (j === i ? { ...o, output: { ...(o.output as { found: true; value: unknown; version: number }), version: 10_000 } } : o));
  expect(checkKvHistory(forged).linearizable).toBe(false);
}

// 'full' runs the production write path (fsync on the threadpool before a message leaves),
// which the other real-swarm tests skip for speed: its ordering is what these histories check.
describe.each(['off', 'full'] as const)('replicated memory is linearizable under faults (real swarm, durability %s)', (durability) => {
  let dir: string;
  let coordinator: Coordinator;
  let swarm: Swarm;

  beforeAll(async () => {
    dir = tempDataDir('lin');
    ({ coordinator, swarm } = await swarmWithAgents(dir, { agents: 5, durability }));
  });

  afterAll(() => {
    coordinator?.close();
    removeDir(dir);
  });

  it('with the leader crashed and restarted repeatedly', async () => {
    const electionsBefore = electionHistory(swarm).total_elections as number;
    const crashedLeaders: string[] = [];
    const { rec, stats } = await recordUnderFaults(swarm, 'lin-crash', async () => {
      await sleep(250);
      for (let i = 0; i < 3; i++) {
        const leader = (await swarm.waitForLeader(5_000)).id;
        await terminateAgent(swarm, leader, 'crash');
        crashedLeaders.push(leader);
        await sleep(350);
        await restartAgent(swarm, leader);
        await sleep(250);
      }
    });
    console.log('leader crashes:', JSON.stringify(stats));
    expectLinearizable(rec);
    // The history is substantial and the faults bit: new leaders were elected.
    expect(stats.ops).toBeGreaterThan(80);
    expect(stats.readsFound).toBeGreaterThan(20);
    expect(stats.writes).toBeGreaterThan(20);
    expect(crashedLeaders).toHaveLength(3);
    await waitUntil(() => (electionHistory(swarm).total_elections as number) >= electionsBefore + 3, 3_000, 'election records of the 3 new leaders');
    const causes = (electionHistory(swarm, 3).elections as Array<{ cause: string }>).map((e) => e.cause);
    expect(causes).toContain('leader crash');
    // Some operations were in flight across a crash (they waited for the new leader).
    expect(stats.maxLatencyMs).toBeGreaterThan(100);
  });

  it('with the leader partitioned into a minority, then isolated', async () => {
    const termBefore = (await swarm.waitForLeader()).status().term;
    const { rec, stats } = await recordUnderFaults(swarm, 'lin-partition', async () => {
      await sleep(250);
      const leader = (await swarm.waitForLeader(5_000)).id;
      const others = swarm.activeMembers().filter((id) => id !== leader);
      // Old leader + one follower on one side: it can neither commit nor confirm reads.
      await networkPartition(swarm, { groups: [[leader, others[0]!], others.slice(1)] });
      await waitUntil(() => {
        const l = swarm.cluster.leader();
        return !!l && l.id !== leader && l.status().term > termBefore && others.slice(1).includes(l.id);
      }, 3_000, 'a leader in the majority');
      await sleep(400);
      await networkHeal(swarm);
      await sleep(300);
      const second = (await swarm.waitForLeader(5_000)).id;
      await networkPartition(swarm, { isolate: second });
      await waitUntil(() => {
        const l = swarm.cluster.leader();
        return !!l && l.id !== second;
      }, 3_000, 'a leader other than the isolated one');
      await sleep(400);
      await networkHeal(swarm);
      await sleep(300);
    });
    console.log('partitions:', JSON.stringify(stats));
    expectLinearizable(rec);
    expect(stats.ops).toBeGreaterThan(80);
    expect(stats.readsFound).toBeGreaterThan(20);
    expect((await swarm.waitForLeader()).status().term).toBeGreaterThan(termBefore);
  });

  it('with a majority crashed (no quorum) and impatient writers whose outcome is unknown', async () => {
    const { rec, stats } = await recordUnderFaults(
      swarm,
      'lin-quorum',
      async () => {
        await sleep(250);
        for (let round = 0; round < 2; round++) {
          const leader = (await swarm.waitForLeader(5_000)).id;
          // Three followers go down: the leader keeps accepting writes it cannot commit.
          const victims = swarm.activeMembers().filter((id) => id !== leader).slice(0, 3);
          for (const v of victims) await terminateAgent(swarm, v, 'crash');
          await sleep(500);
          for (const v of victims) await restartAgent(swarm, v);
          await sleep(300);
        }
      },
      true,
    );
    console.log('quorum loss:', JSON.stringify(stats));
    expectLinearizable(rec);
    expect(stats.ops).toBeGreaterThan(60);
    // Writes did give up without knowing their outcome, and the checker handled them.
    expect(stats.unknown).toBeGreaterThan(0);
  });
});
