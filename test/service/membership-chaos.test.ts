// Embedded chaos with the faults the review found unguarded: a member removed gracefully and
// spawned again under its name, leader crashes, and a session-eviction load (thousands of
// one-shot client sessions while long-lived and sleepy clients keep writing). Checks: the
// memory history is linearizable (a retry applied twice shows as a version skip), no term has
// two leaders, and every running replica ends with the same memory.

import { afterAll, describe, expect, it } from 'vitest';
import { restartAgent, spawnAgent, terminateAgent } from '../../src/service/agents.js';
import { UserError } from '../../src/util/errors.js';
import { memoryRetrieve } from '../../src/service/memory.js';
import { Proposer } from '../../src/swarm/proposer.js';
import type { Swarm } from '../../src/swarm/swarm.js';
import { Prng } from '../../src/util/prng.js';
import { HistoryRecorder, checkKvHistory, type KvOutput } from '../helpers/linearizability.js';
import { removeDir, sleep, swarmWithAgents, tempDataDir } from './service-util.js';

const SEED = process.env.CONCORD_CHAOS_SEED ? Number(process.env.CONCORD_CHAOS_SEED) >>> 0 : Math.floor(Date.now() / 86_400_000);
const RUN_MS = 12_000;
const KEYS = ['a', 'b', 'c'];
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) removeDir(d);
});

function putOutcome(r: { value: Record<string, unknown> } | { error: unknown }): KvOutput | null {
  if ('value' in r) return { ok: true, version: r.value.version as number };
  if (r.error instanceof UserError && r.error.code === 'conflict') return { ok: false };
  return null; // unknown: it may or may not have applied
}

/** A client with its own session: writes through its Proposer, reads linearizably. */
async function kvClient(id: string, swarm: Swarm, rec: HistoryRecorder, prng: Prng, stop: () => boolean, idleMs: number, sessionTimeoutMs: number | null = null): Promise<void> {
  const proposer = new Proposer(swarm.cluster, id, () => undefined, sessionTimeoutMs);
  let n = 0;
  while (!stop()) {
    const key = prng.pick(KEYS);
    if (prng.chance(0.5)) {
      const value = `${id}-${n++}`;
      await rec.record(id, { op: 'put', key, value }, async () => {
        const r = await proposer.propose({ t: 'mem.put', key, namespace: 'chaos', value, ttl_s: null, if_version: null }, 3_000);
        if (!r.ok) throw new UserError(r.code === 'version_mismatch' ? 'conflict' : 'invalid_argument', r.message);
        return r.value as Record<string, unknown>;
      }, putOutcome);
    } else {
      await rec.record(id, { op: 'get', key }, () => memoryRetrieve(swarm, { key, namespace: 'chaos' }), (o) => {
        if ('value' in o) return { found: true, value: o.value.value, version: o.value.version as number };
        if (o.error instanceof UserError && o.error.code === 'not_found') return { found: false };
        return 'skip';
      });
    }
    await sleep(idleMs);
  }
}

/** One-shot sessions: each registers and makes one write, as a CLI call would. */
async function sessionChurn(swarm: Swarm, stop: () => boolean, counter: { n: number }): Promise<void> {
  while (!stop()) {
    const p = new Proposer(swarm.cluster, `oneshot-${counter.n}`, () => undefined, 60_000);
    await p.propose({ t: 'clock' }, 3_000).catch(() => undefined);
    counter.n++;
  }
}

describe('embedded chaos: remove + re-spawn under the same name, leader crashes, session eviction', () => {
  it('keeps memory linearizable, one leader per term, and replicas identical', { timeout: 120_000 }, async () => {
    console.log(`membership chaos: seed ${SEED} (replay with CONCORD_CHAOS_SEED=${SEED})`);
    const prng = new Prng(SEED);
    const dir = tempDataDir('membership-chaos');
    dirs.push(dir);
    const { coordinator, swarm } = await swarmWithAgents(dir, { agents: 5, durability: 'full' });
    try {
      const leadersByTerm = new Map<number, Set<string>>();
      swarm.onRoleChangeEvent((c) => {
        if (c.role !== 'leader') return;
        const s = leadersByTerm.get(c.term) ?? new Set<string>();
        s.add(c.id);
        leadersByTerm.set(c.term, s);
      });
      const rec = new HistoryRecorder();
      let stop = false;
      const churn = { n: 0 };
      const clients = [
        ...[0, 1, 2].map((i) => kvClient(`busy${i}`, swarm, rec, prng.fork(), () => stop, 5)),
        // Sleepy clients: their 1 s sessions expire (by log time) between their writes, so
        // each write after a nap meets session_expired and must re-register, never re-apply.
        ...[0, 1].map((i) => kvClient(`sleepy${i}`, swarm, rec, prng.fork(), () => stop, 1_500, 1_000)),
        ...Array.from({ length: 6 }, () => sessionChurn(swarm, () => stop, churn)),
      ];
      const faults = { respawn: 0, respawnLeader: 0, crash: 0 };
      const np = prng.fork();
      const t0 = performance.now();
      while (performance.now() - t0 < RUN_MS) {
        await sleep(np.int(300, 900));
        const leader = (await swarm.waitForLeader(10_000)).id;
        const members = swarm.activeMembers();
        if (np.chance(0.6)) {
          // Graceful remove, then a plain spawn that reuses the freed name.
          const victim = np.chance(0.3) ? leader : np.pick(members.filter((m) => m !== leader));
          await terminateAgent(swarm, victim, 'graceful');
          const again = (await spawnAgent(swarm, {})) as { agent_id: string };
          expect(again.agent_id).toBe(victim);
          faults.respawn++;
          if (victim === leader) faults.respawnLeader++;
        } else {
          await terminateAgent(swarm, leader, 'crash');
          await sleep(np.int(100, 400));
          await restartAgent(swarm, leader);
          faults.crash++;
        }
      }
      stop = true;
      await Promise.all(clients);
      console.log('membership chaos:', JSON.stringify({ ops: rec.ops.length, one_shot_sessions: churn.n, ...faults, expired_commands: Math.max(...swarm.cluster.running().map((h) => swarm.machines.get(h.id)!.expiredCommands)) }));

      const r = checkKvHistory(rec.ops);
      if (!r.linearizable) expect.fail(r.explanation);
      for (const [term, ids] of leadersByTerm) expect([term, [...ids]]).toEqual([term, [...ids].slice(0, 1)]);
      expect(faults.respawn).toBeGreaterThan(0);
      expect(faults.crash + faults.respawn).toBeGreaterThanOrEqual(5);
      expect(churn.n).toBeGreaterThan(500);
      // Expired sessions were met (commands refused, not applied) and the sleepy clients
      // still got writes through by registering again.
      const expired = Math.max(...swarm.cluster.running().map((h) => swarm.machines.get(h.id)!.expiredCommands));
      expect(expired).toBeGreaterThan(0);
      expect(rec.ops.filter((o) => String(o.client).startsWith('sleepy') && o.input.op === 'put' && o.output !== null).length).toBeGreaterThan(2);

      // Every running replica converges on the same memory.
      const leader = await swarm.waitForLeader(10_000);
      await memoryRetrieve(swarm, { key: 'a', namespace: 'chaos' }).catch(() => undefined);
      const commit = leader.status().commit;
      const snapshotOf = (id: string) => JSON.stringify(swarm.machines.get(id)!.memory.list('chaos', '', Number.MAX_SAFE_INTEGER, 100).map((x) => [x.key, x.version, x.value]));
      const deadline = performance.now() + 10_000;
      while (performance.now() < deadline && swarm.cluster.running().some((h) => h.status().applied < commit)) await sleep(20);
      const views = swarm.cluster.running().map((h) => snapshotOf(h.id));
      expect(new Set(views).size).toBe(1);
    } finally {
      coordinator.close();
    }
  });
});
