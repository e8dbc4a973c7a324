// Issue 12 item 5 (peak RSS of a snapshot install): a checkpointing leader serializes its state
// for a follower that needs a snapshot, and held that data (the whole state: 15 MiB for a
// million tasks) until its next checkpoint, long after the follower had installed it. Now it
// lets it go once the follower has it; a follower that needs one later gets a fresh one.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LocalCluster } from '../../src/host/local-cluster.js';
import { CoordinationMachine } from '../../src/machine/coordination-machine.js';
import { SqliteStorage } from '../../src/storage/sqlite-storage.js';
import { Prng } from '../../src/util/prng.js';
import { VirtualClock } from '../../src/util/virtual-clock.js';
import { createOp, putOp } from '../machine/machine-util.js';

describe('a leader\'s snapshot for a follower', () => {
  it('is not held once the follower installed it, and a later install gets a fresh one', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-leader-release-'));
    const clock = new VirtualClock();
    const files: SqliteStorage[] = [];
    const cluster = new LocalCluster({
      ids: ['n1', 'n2', 'n3'],
      clock,
      prng: new Prng(21),
      storageFor: (id) => {
        const s = SqliteStorage.open(path.join(dir, `${id}.db`), { durability: 'off' });
        files.push(s);
        return s;
      },
      machineFor: () => new CoordinationMachine(),
      compactionThreshold: 20,
    });
    try {
      cluster.startAll();
      clock.runFor(1000);
      const leader = cluster.leader()!;
      const behind = cluster.ids.find((id) => id !== leader.id)!;
      const cmd = (op: unknown, now: number): string => JSON.stringify({ op, now });
      /** Writes enough that the leader's log no longer reaches back to `behind`'s position. */
      const leaveBehind = async (from: number): Promise<void> => {
        cluster.crash(behind);
        const writes: Array<Promise<unknown>> = [leader.propose(cmd(createOp(5000), from))];
        for (let i = 0; i < 120; i++) writes.push(leader.propose(cmd(putOp(`k/${from}/${i}`, `${i}`.padEnd(2000, 'x')), from + 1 + i)));
        clock.runFor(3000);
        await Promise.all(writes);
        expect(leader.core.log.snapshotIndex).toBeGreaterThan(from === 2000 ? 50 : 200);
      };

      await leaveBehind(2000);
      cluster.start(behind);
      clock.runFor(10_000);
      expect(cluster.host(behind).metrics().snapshotsInstalled).toBe(1);
      expect(leader.metrics().snapshotsForFollowers).toBe(1);
      const a = cluster.machine(leader.id) as CoordinationMachine;
      expect((cluster.machine(behind) as CoordinationMachine).snapshot()).toBe(a.snapshot());
      // The follower has it: the leader holds no copy of the state for it (nor does the follower).
      expect(leader.core.log.snapshot).toBeNull();
      expect(cluster.host(behind).core.log.snapshot).toBeNull();
      expect(cluster.leader()!.id).toBe(leader.id);

      // Behind again: the leader serializes a new snapshot for it, and it installs.
      await leaveBehind(5000);
      cluster.start(behind);
      clock.runFor(10_000);
      expect(cluster.host(behind).metrics().snapshotsInstalled).toBe(1);
      expect(leader.metrics().snapshotsForFollowers).toBe(2);
      expect((cluster.machine(behind) as CoordinationMachine).snapshot()).toBe(a.snapshot());
      expect(leader.core.log.snapshot).toBeNull();
      // And it keeps up with writes after the install.
      const after = leader.propose(cmd(putOp('after', 1), 9000));
      clock.runFor(2000);
      await after;
      expect((cluster.machine(behind) as CoordinationMachine).memory.get('default', 'after', 1e12)?.value).toBe(1);
      cluster.close();
    } finally {
      for (const f of files) f.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
