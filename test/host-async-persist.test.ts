// NodeHost with a storage whose fsync completes later (LogStorage.saveAsync, as SqliteStorage
// with fsync 'threadpool' does): the host must hold each Ready until its batch is durable (a
// leader's appends and heartbeats excepted: they depend only on its durable term), and a host
// stopped meanwhile must never act on it. Driven by a VirtualClock: the "fsync" is a
// virtual-time delay, so the run is deterministic.

import { describe, expect, it } from 'vitest';
import { LocalCluster } from '../src/host/local-cluster.js';
import type { StateMachine } from '../src/host/node-host.js';
import type { Entry, HardState, Message, NodeId } from '../src/raft/types.js';
import { MemoryStorage } from '../src/storage/memory-storage.js';
import type { PersistBatch } from '../src/storage/types.js';
import { Prng } from '../src/util/prng.js';
import { VirtualClock } from '../src/util/virtual-clock.js';

/** MemoryStorage whose durability arrives `delayMs` of virtual time after the write. */
class DeferredStorage extends MemoryStorage {
  /** What a power failure would leave: updated when the "fsync" completes. */
  durable: { hs: HardState; last: number } = { hs: { term: 0, vote: null, commit: 0 }, last: 0 };
  pending = 0;
  private written: { hs: HardState; last: number } = { hs: { term: 0, vote: null, commit: 0 }, last: 0 };

  constructor(
    private readonly clock: VirtualClock,
    private readonly delayMs: () => number,
  ) {
    super();
  }

  saveAsync(batch: PersistBatch, done: (err: Error | null) => void): boolean {
    this.save(batch);
    if (batch.hardState) this.written.hs = { ...batch.hardState };
    if (batch.snapshot) this.written.last = batch.snapshot.metadata.index;
    const last = batch.entries.at(-1);
    if (last) this.written.last = last.index;
    const state = { hs: { ...this.written.hs }, last: this.written.last };
    this.pending++;
    this.clock.setTimeout(() => {
      this.pending--;
      this.durable = state;
      done(null);
    }, this.delayMs());
    return false;
  }
}

class Counter implements StateMachine {
  applied: string[] = [];
  apply(e: Entry): unknown {
    if (e.type === 'normal') this.applied.push(e.data);
    return e.data;
  }
  snapshot(): string {
    return JSON.stringify(this.applied);
  }
  restore(data: string): void {
    this.applied = data ? (JSON.parse(data) as string[]) : [];
  }
}

function setup(seed: number) {
  const clock = new VirtualClock();
  const prng = new Prng(seed);
  const delays = new Prng(seed + 1);
  const storages = new Map<NodeId, DeferredStorage>();
  const machines = new Map<NodeId, Counter>();
  const cluster = new LocalCluster({
    ids: ['a', 'b', 'c'],
    clock,
    prng,
    storageFor: (id) => {
      const s = new DeferredStorage(clock, () => delays.int(0, 4));
      storages.set(id, s);
      return s;
    },
    machineFor: (id) => {
      const m = new Counter();
      machines.set(id, m);
      return m;
    },
    tickMs: 10,
    serializeMessages: false,
  });
  // Every message a member sends must depend only on what it has made durable.
  const violations: string[] = [];
  const route = cluster.network.route.bind(cluster.network);
  cluster.network.route = (m: Message, senderClosed: boolean) => {
    const st = storages.get(m.from)!;
    const d = st.durable;
    if (!cluster.hosts.get(m.from)?.isRunning) violations.push(`${m.from} sent ${m.type} while stopped`);
    if (m.type !== 'MsgPreVote' && m.type !== 'MsgPreVoteResp' && m.term > d.hs.term) {
      violations.push(`${m.from} sent ${m.type} in term ${m.term}, durable term ${d.hs.term}`);
    }
    if (m.type === 'MsgVoteResp' && !m.reject && (d.hs.term !== m.term || d.hs.vote !== m.to)) {
      violations.push(`${m.from} granted its vote to ${m.to} in term ${m.term}; durable ${JSON.stringify(d.hs)}`);
    }
    if (m.type === 'MsgAppResp' && !m.reject && m.index > d.last) {
      violations.push(`${m.from} acknowledged index ${m.index}; durable log ends at ${d.last}`);
    }
    route(m, senderClosed);
  };
  return { clock, cluster, storages, machines, violations };
}

describe('NodeHost with off-thread fsync (saveAsync)', () => {
  it('elects, replicates and applies, sending nothing before it is durable', async () => {
    const { clock, cluster, machines, violations } = setup(11);
    cluster.startAll();
    for (let i = 0; i < 300 && !cluster.leader(); i++) clock.runFor(10);
    const leader = cluster.leader()!;
    expect(leader).toBeDefined();
    const acks: string[] = [];
    for (let i = 0; i < 50; i++) void leader.propose(`v${i}`).then(() => acks.push(`v${i}`));
    for (let i = 0; i < 100 && acks.length < 50; i++) {
      clock.runFor(5);
      await Promise.resolve();
    }
    expect(acks.length).toBe(50);
    clock.runFor(200);
    for (const m of machines.values()) expect(m.applied).toEqual(acks.slice().sort((a, b) => Number(a.slice(1)) - Number(b.slice(1))));
    expect(violations).toEqual([]);
    cluster.close();
  });

  it('a member stopped while its fsync is in flight never sends or applies what it held', async () => {
    const { clock, cluster, storages, machines, violations } = setup(5);
    cluster.startAll();
    for (let i = 0; i < 300 && !cluster.leader(); i++) clock.runFor(10);
    const leader = cluster.leader()!;
    const st = storages.get(leader.id)!;
    const before = machines.get(leader.id)!.applied.length;
    const p = leader.propose('held').catch((e: Error) => e);
    // Run until the leader's write of the new entry is waiting for its fsync, then crash it.
    for (let i = 0; i < 50 && st.pending === 0; i++) clock.runFor(0);
    expect(st.pending).toBeGreaterThan(0);
    cluster.crash(leader.id);
    clock.runFor(50); // the fsync completes after the crash
    expect(await p).toBeInstanceOf(Error);
    expect(machines.get(leader.id)!.applied.length).toBe(before);
    expect(violations).toEqual([]);
    // It restarts from storage (which holds the entry: a process crash keeps written data).
    cluster.start(leader.id);
    for (let i = 0; i < 300 && !cluster.leader(); i++) clock.runFor(10);
    clock.runFor(500);
    expect(violations).toEqual([]);
    cluster.close();
  });
});
