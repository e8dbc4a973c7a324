// Figure 8 of the Raft paper (a leader must not commit an entry of an earlier term by counting
// replicas) and 6.824 lab 2C's Figure8 / Figure8Unreliable / UnreliableChurn stress tests.

import { describe, expect, it } from 'vitest';
import type { Message, NodeId } from '../../src/raft/types.js';
import { CoreNet, flushPromises, Harness, newCore } from '../helpers/scenario.js';

const FIVE = ['s1', 's2', 's3', 's4', 's5'];

/**
 * Figure 8 (b): S1 led term 2 and put 2@2 on S1, S2; S5 led term 3 and wrote 2@3 on itself
 * only (votes from S3, S4). Everyone committed index 1. Appends carry one entry at a time.
 */
function figure8b(): CoreNet {
  const cfg = { preVote: false, checkQuorum: false, maxEntriesPerMsg: 1 };
  return new CoreNet([
    newCore({ id: 's1', voters: FIVE, term: 3, logTerms: [1, 2], commit: 1, cfg: { ...cfg, seed: 1 } }),
    newCore({ id: 's2', voters: FIVE, term: 3, logTerms: [1, 2], commit: 1, cfg: { ...cfg, seed: 2 } }),
    newCore({ id: 's3', voters: FIVE, term: 3, vote: 's5', logTerms: [1], commit: 1, cfg: { ...cfg, seed: 3 } }),
    newCore({ id: 's4', voters: FIVE, term: 3, vote: 's5', logTerms: [1], commit: 1, cfg: { ...cfg, seed: 4 } }),
    newCore({ id: 's5', voters: FIVE, term: 3, vote: 's5', logTerms: [1, 3], commit: 1, cfg: { ...cfg, seed: 5 } }),
  ]);
}

/**
 * Figure 8 (c): S5 is down; S1 wins term 4 (votes S2, S3, S4) and replicates its old-term
 * entry 2@2 to S2 and S3, but its own term-4 entry (the no-op at 3) reaches nobody unless
 * `deliverCurrentTerm`.
 */
function figure8c(net: CoreNet, deliverCurrentTerm: boolean): void {
  net.intercept = (m: Message) => {
    if (m.from === 's5' || m.to === 's5') return null;
    if (m.type === 'MsgApp' && m.to === 's4') return null;
    if (m.type === 'MsgApp' && !deliverCurrentTerm) return { ...m, entries: m.entries.filter((e) => e.index <= 2) };
    return m;
  };
  const s1 = net.node('s1');
  s1.campaign();
  net.settle();
  expect(s1.role).toBe('leader');
  expect(s1.term).toBe(4);
  expect(s1.log.term(3)).toBe(4); // its no-op
  // A few heartbeat rounds, so every follower has answered everything it will get.
  net.tick(12, ['s1']);
}

describe('figure8', () => {
  it('Figure8 (core): an old-term entry on a majority is not committed by counting replicas', () => {
    const net = figure8b();
    figure8c(net, false);
    const [s1, s2, s3] = ['s1', 's2', 's3'].map((id) => net.node(id));
    // 2@2 is now on S1, S2, S3: a majority of five...
    for (const r of [s1, s2, s3]) expect(r!.log.term(2)).toBe(2);
    expect(s1!.status().peers.find((p) => p.id === 's2')!.match).toBe(2);
    expect(s1!.status().peers.find((p) => p.id === 's3')!.match).toBe(2);
    // ...but it is from term 2, and S1 leads term 4: it must not count replicas to commit it.
    expect(s1!.log.committed).toBe(1);
    for (const id of ['s1', 's2', 's3', 's4']) {
      expect(net.node(id).log.committed).toBe(1);
      expect(net.committed.get(id)!.map((e) => e.index)).toEqual([1]);
    }

    // Figure 8 (d): S1 crashes; S5 (last term 3) wins term 5 with S2, S3, S4 and overwrites
    // index 2 everywhere. Had S1 committed 2@2, a committed entry would now be lost.
    net.intercept = (m) => (m.from === 's1' || m.to === 's1' ? null : m);
    const s5 = net.node('s5');
    for (let i = 0; i < 3 && s5.role !== 'leader'; i++) {
      s5.campaign();
      net.settle();
    }
    expect(s5.role).toBe('leader');
    expect(s5.term).toBeGreaterThanOrEqual(5);
    net.tick(12, ['s5']);
    for (const id of ['s2', 's3', 's4', 's5']) {
      const r = net.node(id);
      expect(r.log.term(2), id).toBe(3);
      expect(r.log.committed, id).toBe(3);
      expect(net.committed.get(id)!.map((e) => `${e.index}@${e.term}`), id).toEqual(['1@1', '2@3', `3@${s5.term}`]);
    }
  });

  it('Figure8 (core): once an entry of the current term is on a majority, it and its predecessors commit', () => {
    const net = figure8b();
    figure8c(net, true);
    // Figure 8 (e): 3@4 reached S2 and S3, so index 3 commits, and 2@2 with it.
    const s1 = net.node('s1');
    expect(s1.log.committed).toBe(3);
    for (const id of ['s1', 's2', 's3']) {
      expect(net.committed.get(id)!.map((e) => `${e.index}@${e.term}`), id).toEqual(['1@1', '2@2', '3@4']);
    }
    // And now S5 can never win: S1, S2, S3 hold a term-4 entry, more up to date than 2@3.
    net.intercept = (m) => (m.from === 's1' || m.to === 's1' ? null : m);
    const s5 = net.node('s5');
    for (let i = 0; i < 5; i++) {
      s5.campaign();
      net.settle();
      expect(s5.role).not.toBe('leader');
    }
    for (const id of ['s2', 's3']) expect(net.node(id).log.term(2)).toBe(2);
  });

  it('Figure8: leaders crash at random moments; committed entries never change', () => {
    const h = new Harness({ n: 5, seed: 301 }).startAll();
    h.one('f8-first', 1);
    let nup = 5;
    let maxTerm = 0;
    for (let iter = 0; iter < 1000; iter++) {
      let leader: NodeId | null = null;
      for (const id of h.ids) if (h.start(id, `f8-${iter}-${id}`)) leader = id;
      // Mostly crash the leader right away; sometimes give it time to commit something.
      h.runFor(h.rand.chance(0.1) ? h.rand.int(0, 300) : h.rand.int(0, 13));
      if (leader !== null) {
        maxTerm = Math.max(maxTerm, h.host(leader).status().term);
        h.cluster.crash(leader);
        nup--;
      }
      if (nup < 3) {
        const s = h.rand.pick(h.ids);
        if (!h.isRunning(s)) {
          h.cluster.start(s);
          nup++;
        }
      }
      h.assertSafe();
    }
    for (const id of h.ids) if (!h.isRunning(id)) h.cluster.start(id);
    h.one('f8-final', 5);
    h.assertSafe();
    // Many leaders came and went, and commands from several of them committed.
    expect(maxTerm).toBeGreaterThan(20);
    const data = h.appliedData(h.ids[0]!);
    expect(data.length).toBeGreaterThan(10);
    for (const id of h.ids) expect(h.appliedData(id)).toEqual(data);
    expect(data[data.length - 1]).toBe('f8-final');
  });

  it('Figure8Unreliable: the same under loss, delay, reordering and partitions', () => {
    const h = new Harness({ n: 5, seed: 302 }).startAll();
    const net = h.cluster.network;
    net.setGlobalFaults({ lossRate: 0.1, delayMs: { min: 0, max: 27 }, reorder: true });
    h.one('u-first', 1);
    let nup = 5;
    for (let iter = 0; iter < 1000; iter++) {
      // Long reordering from iteration 200 on: some messages arrive hundreds of ms late.
      if (iter === 200) net.setGlobalFaults({ lossRate: 0.1, delayMs: { min: 0, max: 250 }, reorder: true });
      let leader: NodeId | null = null;
      for (const id of h.ids) if (h.start(id, `u-${iter}-${id}`)) leader = id;
      h.runFor(h.rand.chance(0.1) ? h.rand.int(0, 300) : h.rand.int(0, 13));
      if (leader !== null && h.rand.chance(0.5)) {
        h.disconnect(leader);
        nup--;
      }
      if (nup < 3) {
        const s = h.rand.pick(h.ids);
        if (!h.isConnected(s)) {
          h.connect(s);
          nup++;
        }
      }
      h.assertSafe();
    }
    h.connectAll();
    net.clearFaults();
    h.one('u-final', 5);
    h.assertSafe();
    const data = h.appliedData(h.ids[0]!);
    expect(data.length).toBeGreaterThan(10);
    for (const id of h.ids) expect(h.appliedData(id)).toEqual(data);
  });

  it('UnreliableChurn: crashes, restarts and partitions under a lossy network; acknowledged commands survive', async () => {
    const h = new Harness({ n: 5, seed: 303, requestTimeoutMs: 3000 }).startAll();
    const net = h.cluster.network;
    net.setGlobalFaults({ lossRate: 0.1, delayMs: { min: 0, max: 27 }, reorder: true, duplicateRate: 0.05 });
    let proposed = 0;
    for (let iter = 0; iter < 150; iter++) {
      // Three clients, each trying the members from a random one on until one (a leader)
      // takes its command.
      for (let c = 0; c < 3; c++) {
        const from = h.rand.int(0, h.ids.length);
        for (let k = 0; k < h.ids.length; k++) {
          if (h.start(h.ids[(from + k) % h.ids.length]!, `churn-${iter}-${c}`)) {
            proposed++;
            break;
          }
        }
      }
      if (h.rand.chance(0.2)) h.disconnect(h.rand.pick(h.ids));
      if (h.rand.chance(0.5)) {
        const i = h.rand.pick(h.ids);
        if (!h.isRunning(i)) h.cluster.start(i);
        h.connect(i);
      }
      if (h.rand.chance(0.2)) {
        const i = h.rand.pick(h.ids);
        if (h.isRunning(i)) h.cluster.crash(i);
      }
      h.runFor(70);
      h.assertSafe();
    }
    net.clearFaults();
    for (const id of h.ids) if (!h.isRunning(id)) h.cluster.start(id);
    h.connectAll();
    h.runFor(1000);
    h.one('churn-final', 5);
    h.runFor(500);
    await flushPromises();
    h.assertSafe();

    // Progress happened despite the churn, and every acknowledged command is in every
    // member's state machine at the index it was acknowledged at.
    expect(proposed).toBeGreaterThan(100);
    const churnAcks = h.acks.filter((a) => a.cmd.startsWith('churn-') && a.cmd !== 'churn-final');
    expect(churnAcks.length).toBeGreaterThan(50);
    const data = h.appliedData(h.ids[0]!);
    for (const id of h.ids) {
      expect(h.appliedData(id)).toEqual(data);
      for (const a of h.acks) expect(h.machine(id).byIndex.get(a.index), `${id}@${a.index}`).toBe(a.cmd);
    }
    // Each command was proposed once, so none may appear twice.
    expect(new Set(data).size).toBe(data.length);
  });
});
