// Embedded members checkpoint their WAL on the worker thread, not inside a commit on the loop
// every member of the process shares (see EMBEDDED_CHECKPOINT in src/swarm/swarm.ts): SQLite's
// automatic checkpoint held that loop for a member's whole WAL (1000+ pages) at every fourth
// 1 MiB write. Checked by the counts the storages keep, not by timing.

import { describe, expect, it } from 'vitest';
import { memoryStore } from '../../src/service/memory.js';
import type { SqliteStorage } from '../../src/storage/sqlite-storage.js';
import { swarmWithAgents, testResources, waitUntil } from './service-util.js';

const res = testResources();

describe('embedded members and WAL checkpoints', () => {
  it('run them on the worker thread, none inline', async () => {
    const { coordinator, swarm } = await swarmWithAgents(res.dir('wal-ckpt'), { agents: 3, durability: 'full' });
    res.keep(coordinator);
    const value = 'w'.repeat((1 << 20) - 16);
    // 6 MiB per member: past 1000 WAL pages (4 KiB) more than once.
    for (let i = 0; i < 6; i++) await memoryStore(swarm, { key: `ckpt/${i}`, value });
    const storages = [...swarm.cluster.hosts.values()].map((h) => (h as unknown as { opts: { storage: SqliteStorage } }).opts.storage);
    expect(storages).toHaveLength(3);
    await waitUntil(() => storages.every((s) => s.checkpointCounts().worker >= 1), 20_000, 'a worker checkpoint on every member');
    for (const s of storages) expect(s.checkpointCounts().inline).toBe(0);
  }, 60_000);
});
