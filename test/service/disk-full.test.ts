// A full disk: writes fail with a clear disk_full error, the process stays up, nothing
// acknowledged is lost, and writes resume by themselves when space returns. Two ways in:
// free space below the reserve (refused before anything is appended: reads keep working),
// and a write that fails with SQLITE_FULL anyway (the member holds that batch and retries).

import { afterEach, describe, expect, it } from 'vitest';
import type { LocalCluster } from '../../src/host/local-cluster.js';
import type { Coordinator } from '../../src/service/coordinator.js';
import { UserError } from '../../src/service/errors.js';
import { memoryRetrieve, memoryStore } from '../../src/service/memory.js';
import type { Swarm } from '../../src/service/swarm.js';
import type { SqliteStorage } from '../../src/storage/sqlite-storage.js';
import { removeDir, swarmWithAgents, tempDataDir, waitUntil } from './service-util.js';

let dir = '';
let coordinator: Coordinator | undefined;
afterEach(() => {
  coordinator?.close();
  coordinator = undefined;
  if (dir) removeDir(dir);
});

async function swarmOf3(tag: string): Promise<{ swarm: Swarm; storages: SqliteStorage[] }> {
  dir = tempDataDir(tag);
  const r = await swarmWithAgents(dir, { agents: 3, durability: 'full' });
  coordinator = r.coordinator;
  const cluster = r.swarm.cluster as LocalCluster;
  return { swarm: r.swarm, storages: r.swarm.activeMembers().map((id) => cluster.storage(id) as SqliteStorage) };
}

async function storeError(swarm: Swarm, key: string): Promise<UserError> {
  const e = await memoryStore(swarm, { key, value: 1 }).then(() => null, (x: unknown) => x);
  expect(e).toBeInstanceOf(UserError);
  return e as UserError;
}

describe('a full disk', () => {
  it('below the free-space reserve: writes refused with disk_full naming the reserve, reads served, writes resume', async () => {
    const { swarm, storages } = await swarmOf3('disk-reserve');
    await memoryStore(swarm, { key: 'before', value: 'kept' });
    for (const s of storages) s.statfs = () => ({ bavail: 100, bsize: 4096 }); // 400 KB free
    await new Promise((r) => setTimeout(r, 150)); // past the free-space cache
    const e = await storeError(swarm, 'during');
    expect(e.code).toBe('disk_full');
    expect(e.message).toMatch(/MiB free, below the 64 MiB reserve/);
    // Raft keeps running: a linearizable read (a ReadIndex round) is answered.
    expect((await memoryRetrieve(swarm, { key: 'before' })).value).toBe('kept');
    await expect(memoryRetrieve(swarm, { key: 'during' })).rejects.toThrow(/not found/);
    for (const s of storages) s.statfs = () => ({ bavail: 1 << 30, bsize: 4096 });
    await new Promise((r) => setTimeout(r, 150));
    await memoryStore(swarm, { key: 'after', value: 'ok' });
    expect((await memoryRetrieve(swarm, { key: 'after' })).value).toBe('ok');
  });

  it('a write failing with SQLITE_FULL: the member holds it and retries, refuses new writes, then catches up', async () => {
    const { swarm, storages } = await swarmOf3('disk-full');
    await memoryStore(swarm, { key: 'before', value: 'kept' });
    let full = true;
    for (const s of storages) {
      const save = s.saveAsync.bind(s);
      // SQLite refuses the transaction before anything is written (and rolls it back).
      s.saveAsync = (b, done) => {
        if (full && b.entries.length > 0) throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
        return save(b, done);
      };
    }
    const first = await storeError(swarm, 'during');
    expect(first.code).toBe('disk_full');
    expect(first.message).toMatch(/disk is full .*nothing acknowledged is lost/);
    // Every member is still running (no crash, no exit).
    expect(swarm.cluster.running().map((h) => h.id).sort()).toEqual(swarm.activeMembers());
    const again = await storeError(swarm, 'during-2');
    expect(again.code).toBe('disk_full');
    full = false;
    // The held batch is written on the next retry; new writes are accepted again.
    await waitUntil(async () => memoryStore(swarm, { key: 'after', value: 'ok' }).then(() => true, () => false), 10_000, 'writes to resume');
    expect((await memoryRetrieve(swarm, { key: 'before' })).value).toBe('kept');
    expect((await memoryRetrieve(swarm, { key: 'after' })).value).toBe('ok');
  });
});
