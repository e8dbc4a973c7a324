// The uncommitted backlog is bounded in bytes as well as entries (etcd's
// MaxUncommittedEntriesSize): 10,000 entries of 1 MiB would otherwise be 10 GiB in memory.

import { describe, expect, it } from 'vitest';
import { ProposalError } from '../src/raft/types.js';
import { simCluster } from './helpers/sim-cluster.js';

function refusal(fn: () => unknown): ProposalError | null {
  try {
    fn();
    return null;
  } catch (e) {
    if (e instanceof ProposalError) return e;
    throw e;
  }
}

describe('uncommitted backlog bounded by bytes', () => {
  it('refuses a proposal past the byte bound with backlog_full; accepts again once committed', async () => {
    const { clock, cluster, ids } = simCluster({ n: 3, seed: 31, raft: { maxUncommittedBytes: 10_000 } });
    cluster.startAll();
    clock.runFor(1000);
    const leader = cluster.leader()!;
    // Nothing commits: each member alone.
    cluster.network.partition(ids.map((id) => [id]));
    const kib = 'x'.repeat(1024);
    const pending: Array<Promise<unknown>> = [];
    let accepted = 0;
    let refused: ProposalError | null = null;
    for (let i = 0; i < 20 && !refused; i++) {
      refused = refusal(() => pending.push(leader.propose(kib, 60_000).catch(() => undefined)));
      if (!refused) accepted++;
    }
    expect(accepted).toBe(9); // 9 KiB uncommitted; a 10th KiB would pass 10,000 bytes
    expect(refused?.code).toBe('backlog_full');
    expect(refused?.message).toContain('9216 bytes uncommitted, this proposal adds 1024, the bound is 10000 bytes');
    expect(leader.status().uncommittedBytes).toBe(9 * 1024);
    // Far below the entry bound: only bytes refused it.
    expect(leader.status().uncommittedEntries).toBeLessThan(leader.config.maxUncommittedEntries);
    cluster.network.heal();
    clock.runFor(200);
    await Promise.all(pending);
    expect(leader.core.role).toBe('leader');
    expect(leader.status().uncommittedBytes).toBe(0);
    expect(refusal(() => pending.push(leader.propose(kib)))).toBeNull();
  });

  it('one entry larger than the bound is accepted when nothing is uncommitted', () => {
    const { clock, cluster, ids } = simCluster({ n: 3, seed: 32, raft: { maxUncommittedBytes: 1000 } });
    cluster.startAll();
    clock.runFor(1000);
    const leader = cluster.leader()!;
    cluster.network.partition(ids.map((id) => [id]));
    expect(refusal(() => leader.propose('y'.repeat(5000), 60_000).catch(() => undefined))).toBeNull();
    expect(refusal(() => leader.propose('z', 60_000))?.code).toBe('backlog_full');
  });
});
