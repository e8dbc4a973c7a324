// A compare-and-set whose first attempt was applied but its answer lost, re-sent under a new
// session because the old one expired meanwhile (the Proposer re-sends CAS writes: they are
// never applied twice). The re-send is refused by version, since the first attempt already
// moved it on; answering that refusal says "your write was not applied" about a write that
// was. A caller's read-modify-write loop (an increment: read v, CAS v -> v+1) then reads its
// own write, takes it for someone else's, and increments again: one increment applied twice.
// The outcome is unknown, and must be answered as such (session_expired), as for other writes.

import { afterEach, describe, expect, it } from 'vitest';
import type { Op } from '../../src/machine/types.js';
import type { Coordinator } from '../../src/service/coordinator.js';
import { Proposer } from '../../src/swarm/proposer.js';
import type { Swarm } from '../../src/swarm/swarm.js';
import { lossy, removeDir, swarmWithAgents, tempDataDir } from './service-util.js';

const HOUR_MS = 3_600_000;
const put = (key: string, value: unknown, if_version: number | null): Op => ({ t: 'mem.put', key, namespace: 'default', value, ttl_s: null, if_version });
const del = (key: string, if_version: number | null): Op => ({ t: 'mem.del', key, namespace: 'default', if_version });

describe('Proposer: a compare-and-set re-sent after its session expired', () => {
  let dir = '';
  let coordinator: Coordinator | undefined;
  afterEach(() => {
    coordinator?.close();
    coordinator = undefined;
    if (dir) removeDir(dir);
  });

  it('applied, answer lost: answered outcome unknown (session_expired), not a refusal by version; applied once', async () => {
    dir = tempDataDir('cas-retry');
    const made = await swarmWithAgents(dir, { agents: 3 });
    coordinator = made.coordinator;
    const swarm: Swarm = made.swarm;
    const record = (key: string) => {
      const m = swarm.localMachine()!.machine;
      return m.memory.get('default', key, m.clock);
    };
    // A proposer whose clock is 2 h ahead commits meanwhile: every session idles past its timeout.
    const { backend, lose } = lossy(swarm.cluster, async () => {
      await swarm.cluster.leader()!.propose(JSON.stringify({ op: { t: 'clock' }, now: swarm.localMachine()!.machine.clock + 2 * HOUR_MS }));
    });
    const p = new Proposer(backend, 'cas');
    expect(await p.propose(put('ctr', 5, null))).toMatchObject({ ok: true, value: { version: 1 } });

    // The increment 5 -> 6 (CAS on version 1): applied, its answer lost.
    lose.next = true;
    const inc = await p.propose(put('ctr', 6, 1)).then(
      (r) => ({ answered: r as unknown }),
      (e: unknown) => ({ error: e as { code?: string; message: string } }),
    );
    expect(record('ctr')).toMatchObject({ value: 6, version: 2 });
    expect(inc).toMatchObject({ error: { code: 'session_expired' } });
    expect((inc as { error: { message: string } }).error.message).toMatch(/may or may not have been applied/);

    // The same for a conditional delete: applied, then refused by version on the re-send.
    lose.next = true;
    const gone = await p.propose(del('ctr', 2)).then(
      (r) => ({ answered: r as unknown }),
      (e: unknown) => ({ error: e as { code?: string } }),
    );
    expect(record('ctr')).toBeUndefined();
    expect(gone).toMatchObject({ error: { code: 'session_expired' } });

    // A CAS whose first attempt was refused without effect (session gone before it) is still
    // re-sent transparently and applied once.
    await swarm.cluster.leader()!.propose(JSON.stringify({ op: { t: 'clock' }, now: swarm.localMachine()!.machine.clock + 2 * HOUR_MS }));
    expect(await p.propose(put('ctr', 1, 0))).toMatchObject({ ok: true, value: { version: 1 } });
  }, 30_000);
});
