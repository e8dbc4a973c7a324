// The Proposer's registered session: registered before first use, registered again when the
// machine no longer knows it. A command whose first attempt may have applied before its
// session expired is never re-sent blindly: the caller gets session_expired, outcome unknown.

import { afterEach, describe, expect, it } from 'vitest';
import type { OpResult } from '../../src/machine/coordination-machine.js';
import type { Op } from '../../src/machine/types.js';
import { Proposer } from '../../src/swarm/proposer.js';
import type { Swarm } from '../../src/swarm/swarm.js';
import type { Coordinator } from '../../src/service/coordinator.js';
import { lossy, removeDir, swarmWithAgents, tempDataDir } from './service-util.js';

const HOUR_MS = 3_600_000;

const put = (key: string, value: unknown, if_version: number | null = null): Op => ({ t: 'mem.put', key, namespace: 'default', value, ttl_s: null, if_version });

describe('Proposer: registered sessions', () => {
  let dir = '';
  let coordinator: Coordinator | undefined;
  afterEach(() => {
    coordinator?.close();
    coordinator = undefined;
    if (dir) removeDir(dir);
  });

  /** Move log time forward: a command from a proposer whose clock is `ms` ahead. */
  const advanceLogTime = async (swarm: Swarm, ms: number): Promise<void> => {
    await swarm.cluster.leader()!.propose(JSON.stringify({ op: { t: 'clock' }, now: swarm.localMachine()!.machine.clock + ms }));
  };
  const version = (swarm: Swarm, key: string): number | undefined => {
    const m = swarm.localMachine()!.machine;
    return m.memory.get('default', key, m.clock)?.version;
  };

  it('a retry after its session expired surfaces session_expired (outcome unknown); the next command and a fresh Proposer register again', async () => {
    dir = tempDataDir('proposer-sessions');
    const made = await swarmWithAgents(dir, { agents: 3 });
    coordinator = made.coordinator;
    const swarm = made.swarm;
    const { backend, lose } = lossy(swarm.cluster, () => advanceLogTime(swarm, 2 * HOUR_MS));
    const p = new Proposer(backend, 'test');

    expect(await p.propose(put('k', 1))).toMatchObject({ ok: true, value: { version: 1 } });
    expect(p.sessionsRegistered).toBe(1);
    const first = p.sessionId;
    expect(swarm.localMachine()!.machine.sessions.has(first!)).toBe(true);

    // Applied, answer lost, and the session expires before the retry: not re-sent.
    lose.next = true;
    const err = await p.propose(put('k', 2)).then(
      () => null,
      (e: unknown) => e as { name: string; code: string; message: string; field?: string },
    );
    expect(err).toMatchObject({ name: 'UserError', code: 'session_expired', field: 'session' });
    expect(err!.message).toMatch(new RegExp(`^session=${first} expired .*mem\\.put request .*may or may not have been applied.*Check its effect`));
    expect(version(swarm, 'k')).toBe(2);

    // The next command registers a new session and is applied once.
    expect(await p.propose(put('k', 3))).toMatchObject({ ok: true, value: { version: 3 } });
    expect(p.sessionsRegistered).toBe(2);
    expect(p.sessionId).not.toBe(first);

    // Idle past the timeout: the first attempt is refused without effect, so the Proposer
    // registers again and sends it under the new session, transparently, once.
    await advanceLogTime(swarm, 2 * HOUR_MS);
    expect(await p.propose(put('k', 4))).toMatchObject({ ok: true, value: { version: 4 } });
    expect(p.sessionsRegistered).toBe(3);

    // A compare-and-set is re-sent (never applied twice): applied once, the re-send is refused
    // by version, which says nothing about the first attempt: outcome unknown (cas-retry.test.ts).
    lose.next = true;
    const cas = await p.propose(put('cas', 'x', 0)).then(
      (r: OpResult) => r,
      (e: unknown) => e as { code: string },
    );
    expect(cas).toMatchObject({ code: 'session_expired' });
    expect(p.sessionsRegistered).toBe(4);
    expect(version(swarm, 'cas')).toBe(1);

    // A fresh Proposer registers its own session and works.
    const q = new Proposer(swarm.cluster, 'fresh');
    expect(await q.propose(put('k', 5))).toMatchObject({ ok: true, value: { version: 5 } });
    expect(q.sessionsRegistered).toBe(1);
    expect(q.sessionId).not.toBe(p.sessionId);
  }, 30_000);

  it('concurrent first proposals share one registration', async () => {
    dir = tempDataDir('proposer-sessions');
    const made = await swarmWithAgents(dir, { agents: 3 });
    coordinator = made.coordinator;
    const p = new Proposer(made.swarm.cluster, 'burst');
    const rs = await Promise.all(Array.from({ length: 20 }, (_, i) => p.propose(put(`burst-${i}`, i))));
    expect(rs.every((r) => r.ok)).toBe(true);
    expect(p.sessionsRegistered).toBe(1);
  }, 30_000);
});
