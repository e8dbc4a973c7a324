// NodeHost.knownCommit / commitUnknown, which the worker uses to hold assignments while its
// restarted member catches up (swarm.ts: catching up = commitUnknown || applied < knownCommit).
// A restarted follower cannot tell how far behind it is until a leader's append reaches it:
// commitUnknown holds until then, however long it is cut off. From that append knownCommit is
// the leader's commit, though the follower's own commit index is still behind it while it
// catches up. A leader knows its commit; a stopped host knows nothing.

import { describe, expect, it } from 'vitest';
import { LocalCluster } from '../../src/host/local-cluster.js';
import type { Entry, NodeId } from '../../src/raft/types.js';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import { Prng } from '../../src/util/prng.js';
import { VirtualClock } from '../../src/util/virtual-clock.js';
import { RecordingMachine } from '../helpers/sim-cluster.js';

/** What the member's host said as each entry was applied. */
interface Sample {
  index: number;
  commitUnknown: boolean;
  knownCommit: number;
  ownCommit: number;
}

class SampledMachine extends RecordingMachine {
  constructor(private readonly sample: (index: number) => void) {
    super();
  }
  override apply(e: Entry): unknown {
    this.sample(e.index);
    return super.apply(e);
  }
}

function setup() {
  const clock = new VirtualClock();
  const samples = new Map<NodeId, Sample[]>();
  const storages = new Map<NodeId, MemoryStorage>();
  const cluster: LocalCluster = new LocalCluster({
    ids: ['n1', 'n2', 'n3'],
    clock,
    prng: new Prng(21),
    storageFor: (id) => {
      const s = new MemoryStorage();
      storages.set(id, s);
      return s;
    },
    machineFor: (id) => {
      const list: Sample[] = [];
      samples.set(id, list);
      return new SampledMachine((index) => {
        const h = cluster.hosts.get(id)!;
        list.push({ index, commitUnknown: h.commitUnknown, knownCommit: h.knownCommit, ownCommit: h.core.log.committed });
      });
    },
    tickMs: 10,
    // Catch-up in many small appends, one in flight: it spans many applies.
    raft: { maxEntriesPerMsg: 4, maxInflightMsgs: 1 },
    compactionThreshold: 1_000_000,
    requestTimeoutMs: 60_000,
  });
  const run = (ms: number) => clock.runFor(ms);
  const write = async (n: number) => {
    const leader = cluster.leader()!;
    const ps = Array.from({ length: n }, (_, i) => leader.propose(`w${i}`));
    let done = false;
    void Promise.all(ps).then(() => (done = true));
    for (let t = 0; !done && t < 60_000; t += 10) {
      run(10);
      await Promise.resolve();
    }
    await Promise.all(ps);
  };
  return { clock, cluster, samples, run, write };
}

describe('NodeHost.knownCommit / commitUnknown', () => {
  it('a restarted follower: unknown until a leader is heard (however long it is cut off), then the leader commit while it catches up', async () => {
    const c = setup();
    c.cluster.startAll();
    c.run(1000);
    const leader = c.cluster.leader()!;
    await c.write(20);
    c.run(200);
    const f = (['n1', 'n2', 'n3'] as const).find((id) => id !== leader.id)!;
    const fh = c.cluster.hosts.get(f)!;
    // Members that heard the leader know its commit; the leader knows its own.
    expect(leader.commitUnknown).toBe(false);
    expect(fh.commitUnknown).toBe(false);
    expect(fh.knownCommit).toBe(leader.core.log.committed);

    c.cluster.crash(f);
    expect(fh.commitUnknown).toBe(false);
    expect(fh.knownCommit).toBe(0);
    const ownBefore = fh.core.log.committed;
    await c.write(200);
    const leaderCommit = leader.core.log.committed;
    expect(leaderCommit).toBeGreaterThan(ownBefore + 150);

    // Restarted while cut off: it replays its own log, and cannot know it is behind.
    c.cluster.network.isolate(f);
    const host = c.cluster.start(f);
    expect(host.commitUnknown).toBe(true);
    expect(host.knownCommit).toBe(host.core.log.committed);
    expect(host.knownCommit).toBeLessThan(leaderCommit);
    c.run(3000);
    expect(host.isRunning).toBe(true);
    expect(host.commitUnknown).toBe(true);
    expect(host.knownCommit).toBeLessThan(leaderCommit);
    const replayed = c.samples.get(f)!.splice(0);
    expect(replayed.length).toBeGreaterThan(0);
    expect(replayed.every((s) => s.commitUnknown)).toBe(true);

    // Healed: the first append tells it the leader's commit; it applies up to it in steps.
    c.cluster.network.heal();
    for (let t = 0; t < 10_000 && host.core.log.applied < leaderCommit; t += 10) c.run(10);
    expect(host.core.log.applied).toBe(leaderCommit);
    expect(host.commitUnknown).toBe(false);
    expect(host.knownCommit).toBe(leaderCommit);
    const caughtUp = c.samples.get(f)!;
    expect(caughtUp.map((s) => s.index)).toEqual(Array.from({ length: leaderCommit - replayed.at(-1)!.index }, (_, i) => replayed.at(-1)!.index + 1 + i));
    for (const s of caughtUp) {
      expect(s.commitUnknown).toBe(false);
      expect(s.knownCommit).toBe(leaderCommit);
    }
    // Its own commit index lagged the leader's for most of the catch-up: knownCommit was
    // the leader's, not its own.
    expect(caughtUp.filter((s) => s.ownCommit < leaderCommit).length).toBeGreaterThan(caughtUp.length / 2);
    c.cluster.close();
  });

  it('after a full restart: the new leader knows its commit at once; followers are unknown until its first append', async () => {
    const c = setup();
    c.cluster.startAll();
    c.run(1000);
    await c.write(30);
    c.run(200);
    const commit = c.cluster.leader()!.core.log.committed;
    for (const id of ['n1', 'n2', 'n3']) c.cluster.crash(id);
    const seen: Array<{ id: NodeId; unknown: Record<string, boolean>; known: number }> = [];
    c.cluster.onRoleChange((rc) => {
      if (rc.role !== 'leader') return;
      const unknown = Object.fromEntries([...c.cluster.hosts].map(([id, h]) => [id, h.commitUnknown]));
      seen.push({ id: rc.id, unknown, known: c.cluster.hosts.get(rc.id)!.knownCommit });
    });
    for (const id of ['n1', 'n2', 'n3']) c.cluster.start(id);
    for (const h of c.cluster.hosts.values()) expect(h.commitUnknown).toBe(true);
    for (let t = 0; t < 10_000 && seen.length === 0; t += 10) c.run(10);
    expect(seen.length).toBe(1);
    const won = seen[0]!;
    // At the moment it won: the leader is not unknown (it decides the commit), the others are.
    expect(won.unknown[won.id]).toBe(false);
    for (const [id, u] of Object.entries(won.unknown)) if (id !== won.id) expect(u).toBe(true);
    expect(won.known).toBeGreaterThanOrEqual(commit);
    c.run(500);
    for (const h of c.cluster.hosts.values()) {
      expect(h.commitUnknown).toBe(false);
      expect(h.knownCommit).toBe(c.cluster.leader()!.core.log.committed);
    }
    c.cluster.close();
  });
});
