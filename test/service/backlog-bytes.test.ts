// A proposal that would take the uncommitted backlog past its byte bound is refused with the
// same backlog_full error as the entry bound, long before max_log_entries is reached.

import { afterAll, describe, expect, it } from 'vitest';
import { UserError } from '../../src/util/errors.js';
import { memoryStore } from '../../src/service/memory.js';
import { networkHeal, networkPartition } from '../../src/service/network.js';
import { removeDir, sleep, swarmWithAgents, tempDataDir } from './service-util.js';

const dir = tempDataDir('backlog-bytes');
afterAll(() => removeDir(dir));

describe('backlog bounded by bytes', () => {
  it('refuses large values with backlog_full while nothing commits, then stores the accepted ones', async () => {
    const { coordinator, swarm } = await swarmWithAgents(dir, { agents: 3 });
    try {
      for (const h of swarm.cluster.hosts.values()) h.reconfigure({ maxUncommittedBytes: 256 * 1024 });
      await networkPartition(swarm, { groups: swarm.activeMembers().map((id) => [id]) });
      const value = 'v'.repeat(64 * 1024);
      const refused: UserError[] = [];
      const attempts = Array.from({ length: 10 }, (_, i) =>
        memoryStore(swarm, { key: `big-${i}`, value }).catch((e: unknown) => {
          if (e instanceof UserError && e.code === 'backlog_full') refused.push(e);
          throw e;
        }),
      );
      const settled = Promise.allSettled(attempts);
      await sleep(60);
      // 10 entries is far below max_log_entries (10,000): the bytes refused them.
      expect(refused.length).toBeGreaterThanOrEqual(5);
      expect(refused[0]!.message).toMatch(/^backlog full: \d+ bytes uncommitted, this proposal adds \d+, the bound is 262144 bytes/);
      await networkHeal(swarm);
      const results = await settled;
      const stored = results.filter((r) => r.status === 'fulfilled').length;
      expect(stored).toBe(10 - refused.length);
      expect(stored).toBeGreaterThanOrEqual(3);
    } finally {
      coordinator.close();
    }
  });
});
