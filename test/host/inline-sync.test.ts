// NodeHost with inlineLightSyncs (cluster mode: one member per process): a light Ready is made
// durable on the loop thread (storage.save, fsync inline) instead of waiting for the
// threadpool's callback (saveAsync); a leader with several writes in flight, or a heavy Ready,
// still uses saveAsync. Either way nothing is sent before what it depends on is durable.
// VirtualClock: the threadpool "fsync" is a virtual-time delay, so runs are deterministic.

import { describe, expect, it } from 'vitest';
import { LocalCluster, type LocalClusterOptions } from '../../src/host/local-cluster.js';
import type { NodeHost } from '../../src/host/node-host.js';
import type { HardState, Message, NodeId } from '../../src/raft/types.js';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import type { PersistBatch } from '../../src/storage/types.js';
import { Prng } from '../../src/util/prng.js';
import { electLeader as elect, RecordingMachine } from '../helpers/sim-cluster.js';
import { VirtualClock } from '../../src/util/virtual-clock.js';

interface Image {
  seq: number;
  hs: HardState;
  last: number;
}

/**
 * MemoryStorage with both paths: save() is durable when it returns (an inline fsync);
 * saveAsync() becomes durable `delayMs` of virtual time later. An fsync flushes every earlier
 * write too, so the durable image only moves forward.
 */
class TwoPathStorage extends MemoryStorage {
  durable: Image = { seq: 0, hs: { term: 0, vote: null, commit: 0 }, last: 0 };
  private written: Image = { seq: 0, hs: { term: 0, vote: null, commit: 0 }, last: 0 };
  /** Batches with entries, by the path that made them durable. */
  entryBatches = { inline: 0, async: 0 };
  /** The member's transport sends and flushes, and its inline saves, in order. */
  readonly events: string[] = [];

  constructor(
    private readonly clock: VirtualClock,
    private readonly delayMs: number,
  ) {
    super();
  }

  private record(batch: PersistBatch): Image {
    super.save(batch);
    const w = this.written;
    w.seq++;
    if (batch.hardState) w.hs = { ...batch.hardState };
    if (batch.snapshot) w.last = batch.snapshot.metadata.index;
    const last = batch.entries.at(-1);
    if (last) w.last = last.index;
    return { seq: w.seq, hs: { ...w.hs }, last: w.last };
  }

  private makeDurable(img: Image): void {
    if (img.seq > this.durable.seq) this.durable = img;
  }

  override save(batch: PersistBatch): void {
    if (batch.entries.length > 0) this.entryBatches.inline++;
    this.events.push(batch.entries.length > 0 ? 'save entries' : 'save');
    this.makeDurable(this.record(batch));
  }

  saveAsync(batch: PersistBatch, done: (err: Error | null) => void): boolean {
    if (batch.entries.length > 0) this.entryBatches.async++;
    const img = this.record(batch);
    this.clock.setTimeout(() => {
      this.makeDurable(img);
      done(null);
    }, this.delayMs);
    return false;
  }
}

function setup(inlineLightSyncs: boolean, raft: LocalClusterOptions['raft'] = {}) {
  const clock = new VirtualClock();
  const storages = new Map<NodeId, TwoPathStorage>();
  const machines = new Map<NodeId, RecordingMachine>();
  const cluster = new LocalCluster({
    ids: ['a', 'b', 'c'],
    clock,
    prng: new Prng(7),
    storageFor: (id) => {
      const s = new TwoPathStorage(clock, 3);
      storages.set(id, s);
      return s;
    },
    machineFor: (id) => {
      const m = new RecordingMachine();
      machines.set(id, m);
      return m;
    },
    tickMs: 10,
    serializeMessages: false,
    inlineLightSyncs,
    raft,
  });
  // Endpoints with a flush() (as the TCP transport has), recording sends and flushes.
  const endpoint = cluster.network.endpoint.bind(cluster.network);
  cluster.network.endpoint = (id: NodeId) => {
    const ep = endpoint(id);
    const send = ep.send.bind(ep);
    const events = (): string[] => storages.get(id)?.events ?? [];
    ep.send = (m: Message) => {
      events().push(`send ${m.type}`);
      send(m);
    };
    (ep as typeof ep & { flush(): void }).flush = () => void events().push('flush');
    return ep;
  };
  // Every message a member sends must depend only on what it has made durable.
  const violations: string[] = [];
  const route = cluster.network.route.bind(cluster.network);
  cluster.network.route = (m: Message, senderClosed: boolean) => {
    const d = storages.get(m.from)!.durable;
    if (m.type !== 'MsgPreVote' && m.type !== 'MsgPreVoteResp' && m.term > d.hs.term) violations.push(`${m.from} sent ${m.type} in term ${m.term}, durable term ${d.hs.term}`);
    if (m.type === 'MsgVoteResp' && !m.reject && (d.hs.term !== m.term || d.hs.vote !== m.to)) violations.push(`${m.from} granted its vote to ${m.to} in term ${m.term}; durable ${JSON.stringify(d.hs)}`);
    if (m.type === 'MsgAppResp' && !m.reject && m.index > d.last) violations.push(`${m.from} acknowledged index ${m.index}; durable log ends at ${d.last}`);
    route(m, senderClosed);
  };
  return { clock, cluster, storages, machines, violations };
}

/** Proposes `values` together and runs until all are answered. */
async function writeAll(clock: VirtualClock, leader: NodeHost, values: string[]): Promise<void> {
  let answered = 0;
  for (const v of values) void leader.propose(v).then(() => answered++);
  for (let i = 0; i < 400 && answered < values.length; i++) {
    clock.runFor(1);
    await Promise.resolve();
  }
  expect(answered).toBe(values.length);
}

describe('NodeHost inlineLightSyncs', () => {
  it('one write in flight: every member fsyncs its entry inline, and sends nothing before it is durable', async () => {
    const { clock, cluster, storages, machines, violations } = setup(true);
    const leader = await elect(clock, cluster);
    const before = new Map([...storages].map(([id, s]) => [id, { ...s.entryBatches }]));
    for (let i = 0; i < 20; i++) await writeAll(clock, leader, [`w${i}`]);
    clock.runFor(100);
    for (const [id, s] of storages) {
      const b = before.get(id)!;
      // Leader and followers alike: 20 light Readies, none through the threadpool.
      expect(s.entryBatches.inline - b.inline, id).toBeGreaterThanOrEqual(20);
      expect(s.entryBatches.async - b.async, id).toBe(0);
    }
    for (const m of machines.values()) expect(m.applied.map((a) => a.data)).toEqual(Array.from({ length: 20 }, (_, i) => `w${i}`));
    expect(violations).toEqual([]);
    cluster.close();
  });

  it('before it blocks on an inline fsync, the leader flushes what it sent (its appends)', async () => {
    const { clock, cluster, storages, violations } = setup(true);
    const leader = await elect(clock, cluster);
    const ev = storages.get(leader.id)!.events;
    ev.length = 0;
    for (let i = 0; i < 5; i++) await writeAll(clock, leader, [`w${i}`]);
    const saves = ev.flatMap((e, i) => (e === 'save entries' ? [i] : []));
    expect(saves.length).toBeGreaterThanOrEqual(5);
    // Each inline save that fsyncs comes right after a flush; its write's appends were sent
    // before. (A commit-index-only save does not block: its messages leave with the task.)
    for (const i of saves) expect(ev[i - 1], ev.slice(Math.max(0, i - 4), i + 1).join(', ')).toBe('flush');
    expect(ev.filter((e) => e === 'send MsgApp').length).toBeGreaterThanOrEqual(10);
    expect(violations).toEqual([]);
    cluster.close();
  });

  it('with other writes in flight, leader and followers keep their loops free: their Readies fsync on the threadpool', async () => {
    // A window wide enough that each append carries one entry.
    const { clock, cluster, storages, machines, violations } = setup(true, { maxInflightMsgs: 256 });
    const leader = await elect(clock, cluster);
    const asyncBefore = new Map([...storages].map(([id, s]) => [id, s.entryBatches.async]));
    // One new write every 4 ms (longer than a threadpool fsync, 3 ms), so each Ready, and
    // each append, carries one entry, while earlier ones wait for commit (each hop: 20 ms).
    cluster.network.setGlobalFaults({ delayMs: { min: 20, max: 20 } });
    const values = Array.from({ length: 30 }, (_, i) => `m${i}`);
    let answered = 0;
    for (const v of values) {
      void leader.propose(v).then(() => answered++);
      clock.runFor(4);
      await Promise.resolve();
    }
    for (let i = 0; i < 400 && answered < values.length; i++) {
      clock.runFor(1);
      await Promise.resolve();
    }
    expect(answered).toBe(values.length);
    clock.runFor(100);
    // Followers too: each append carries one entry, but their logs run ahead of the commit.
    for (const [id, s] of storages) expect(s.entryBatches.async - asyncBefore.get(id)!, id).toBeGreaterThan(0);
    for (const m of machines.values()) expect(m.applied.slice(-30).map((a) => a.data)).toEqual(values);
    expect(violations).toEqual([]);
    cluster.close();
  });

  it('off (the default, members sharing a loop): every entry batch goes through saveAsync', async () => {
    const { clock, cluster, storages, violations } = setup(false);
    const leader = await elect(clock, cluster);
    for (let i = 0; i < 5; i++) await writeAll(clock, leader, [`w${i}`]);
    for (const s of storages.values()) expect(s.entryBatches.inline).toBe(0);
    expect(violations).toEqual([]);
    cluster.close();
  });
});
