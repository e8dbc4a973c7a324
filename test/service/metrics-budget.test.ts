// /metrics sizes memory values on the member's event loop: a scrape after a burst of large
// values held a leader 2.6 s (1,076 values of 1 MiB), past its followers' election timeout.
// A scrape now sizes new values within a time budget; when the budget runs out it reports no
// byte total at all (never a partial sum) and how many keys are left, and later scrapes finish
// the sizing (sizes stay cached per record) and report the exact total again.

import { afterEach, describe, expect, it } from 'vitest';
import { memoryDelete, memoryStore } from '../../src/service/memory.js';
import { sampleSwarm } from '../../src/service/metrics-source.js';
import type { Coordinator } from '../../src/service/coordinator.js';
import { removeDir, swarmWithAgents, tempDataDir } from './service-util.js';

const open: Array<{ coordinator: Coordinator; dir: string }> = [];
afterEach(() => {
  for (const o of open.splice(0)) {
    o.coordinator.close();
    removeDir(o.dir);
  }
});

describe('memory bytes in /metrics', () => {
  it('a scrape out of sizing budget reports no byte total and the keys left; later scrapes report the exact total', async () => {
    const dir = tempDataDir('metrics-budget');
    const { coordinator, swarm } = await swarmWithAgents(dir, { agents: 3 });
    open.push({ coordinator, dir });
    const values = Array.from({ length: 12 }, (_, i) => ({ key: `big/${i}`, value: { i, text: `${i}:`.padEnd(50_000, 'é') } }));
    for (const v of values) await memoryStore(swarm, v);
    await memoryStore(swarm, { key: 'gone', value: 'soon' });
    await memoryDelete(swarm, { key: 'gone' });
    // What each live key counts (the election history's system key too): its key and its
    // value's JSON, as UTF-8 bytes.
    const m = swarm.localMachine()!.machine;
    const total = (): number => [...m.memory.values()].reduce((n, r) => n + Buffer.byteLength(r.key) + Buffer.byteLength(JSON.stringify(r.value)), 0);
    const exact = total();
    const keys = values.length + 1;
    expect(m.memory.size).toBe(keys);

    // No budget: nothing new is sized, so no total; every key is counted as left.
    const none = sampleSwarm(swarm, 0);
    expect(none.memory).toEqual({ keys, bytes: null, unsized: keys });
    // With time: every value sized, the exact total, nothing left.
    const full = sampleSwarm(swarm);
    expect(full.memory).toEqual({ keys, bytes: exact, unsized: 0 });
    // Sizes are kept per record: a later scrape without budget still has the exact total.
    expect(sampleSwarm(swarm, 0).memory).toEqual({ keys, bytes: exact, unsized: 0 });

    // A value written since: only it is left to size.
    await memoryStore(swarm, { key: 'big/0', value: 'replaced' });
    const after = total();
    expect(after).toBe(exact - Buffer.byteLength(JSON.stringify(values[0]!.value)) + Buffer.byteLength(JSON.stringify('replaced')));
    expect(sampleSwarm(swarm, 0).memory).toEqual({ keys, bytes: null, unsized: 1 });
    expect(sampleSwarm(swarm).memory).toEqual({ keys, bytes: after, unsized: 0 });
  });
});
