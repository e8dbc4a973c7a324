// The embedded (in-process) swarm sends InstallSnapshot the way TCP members do: in acknowledged
// parts of SNAPSHOT_PART_CHARS, a few in flight, so a large state never travels as one message
// that holds the loop (issue 12: "in both the in-process and the TCP transport").

import { describe, expect, it } from 'vitest';
import { SNAPSHOT_PART_CHARS } from '../../src/host/local-cluster.js';
import { RecordingMachine, simCluster } from '../helpers/sim-cluster.js';

describe('embedded swarm snapshots', () => {
  it('a member restarted behind the compaction point gets a multi-part snapshot and restores it whole', async () => {
    const { clock, cluster } = simCluster({ n: 3, seed: 7, compactionThreshold: 5 });
    cluster.startAll();
    clock.runFor(1000);
    const leader = cluster.leader()!;
    expect(leader).toBeDefined();
    const behind = [...cluster.hosts.keys()].find((id) => id !== leader.id)!;
    cluster.crash(behind);
    // About 3.5 parts of state, in entries the leader compacts away while `behind` is down.
    const big = 'v'.repeat(Math.ceil(SNAPSHOT_PART_CHARS / 8));
    const writes = [];
    for (let i = 0; i < 28; i++) writes.push(leader.propose(`${i}:${big}`));
    clock.runFor(2000);
    await Promise.all(writes);
    expect(leader.core.log.snapshotIndex).toBeGreaterThan(1);
    expect(cluster.network.snapshotPartsDelivered).toBe(0);

    cluster.start(behind);
    clock.runFor(5000);
    const want = (cluster.machine(leader.id) as RecordingMachine).applied;
    const got = (cluster.machine(behind) as RecordingMachine).applied;
    expect(got.length).toBe(want.length);
    expect(got).toEqual(want);
    expect(cluster.network.snapshotPartsDelivered).toBeGreaterThanOrEqual(4);
  });
});
