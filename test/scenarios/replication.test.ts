// Log replication and agreement (6.824 lab 2B; Raft paper section 5.3).

import { describe, expect, it } from 'vitest';
import { ProposalError, type NodeId } from '../../src/raft/types.js';
import { flushPromises, Harness } from '../helpers/scenario.js';

const others = (ids: NodeId[], ...not: NodeId[]): NodeId[] => ids.filter((id) => !not.includes(id));

describe('replication', () => {
  it('BasicAgree: each command commits on every member at consecutive indexes', () => {
    const h = new Harness({ n: 5, seed: 101 }).startAll();
    const leader = h.checkOneLeader();
    const term = h.checkTerms();
    // The new leader's no-op is index 1; nothing else is in any log yet.
    expect(h.host(leader).status().lastIndex).toBe(1);
    let prev = 1;
    for (let i = 1; i <= 5; i++) {
      const cmd = `basic-${i}`;
      expect(h.nCommitted(prev + 1).count).toBe(0); // nothing committed before start
      const index = h.one(cmd, 5, false);
      expect(index).toBe(prev + 1);
      expect(h.nCommitted(index)).toEqual({ count: 5, data: cmd });
      prev = index;
    }
    expect(h.checkTerms()).toBe(term);
    for (const id of h.ids) expect(h.appliedData(id)).toEqual(['basic-1', 'basic-2', 'basic-3', 'basic-4', 'basic-5']);
    h.assertSafe();
  });

  it('FailAgree: agreement continues without a disconnected follower, which catches up on return', () => {
    const h = new Harness({ n: 3, seed: 102 }).startAll();
    h.one('101', 3);
    const leader = h.checkOneLeader();
    const f = others(h.ids, leader)[0] as NodeId;
    h.disconnect(f);

    const before = h.machine(f).applied.length;
    for (const c of ['102', '103', '104', '105']) h.one(c, 2, false);
    h.runFor(1000);
    // Nothing reached the cut-off follower.
    expect(h.machine(f).applied.length).toBe(before);
    expect(h.checkOneLeader()).toBe(leader);

    h.connect(f);
    // 6.824 expects the reconnected follower to rejoin without an election and catch up.
    const i106 = h.one('106', 3, true);
    const i107 = h.one('107', 3, true);
    expect(i107).toBe(i106 + 1);
    expect(h.checkOneLeader()).toBe(leader);
    for (const id of h.ids) expect(h.appliedData(id)).toEqual(['101', '102', '103', '104', '105', '106', '107']);
    h.assertSafe();
  });

  it('FailNoAgree: no commit without a majority; after the heal the uncommitted entry is decided consistently', () => {
    const h = new Harness({ n: 5, seed: 103 }).startAll();
    const i10 = h.one('10', 5);
    const leader = h.checkOneLeader();
    const term = h.host(leader).status().term;
    const [f1, f2, f3] = others(h.ids, leader) as [NodeId, NodeId, NodeId];
    h.disconnect(f1);
    h.disconnect(f2);
    h.disconnect(f3);

    const r = h.start(leader, '20');
    expect(r).not.toBeNull();
    expect(r!.index).toBe(i10 + 1);
    expect(r!.term).toBe(term);
    h.runFor(2000);
    expect(h.nCommitted(r!.index).count).toBe(0);
    expect(h.host(leader).status().commit).toBeLessThan(r!.index);
    // Cut off from its majority, the leader stepped down (check-quorum).
    expect(h.host(leader).status().role).not.toBe('leader');

    h.connect(f1);
    h.connect(f2);
    h.connect(f3);
    const l2 = h.checkOneLeader();
    const r30 = h.start(l2, '30');
    expect(r30).not.toBeNull();
    // Either '20' survived at i10+1 (the new leader had it) and 30 follows the new no-op,
    // or it was overwritten by the new leader's no-op.
    expect([i10 + 2, i10 + 3]).toContain(r30!.index);
    h.waitFor(() => h.nCommitted(r30!.index).count === 5, 2000, '30 committed');
    const c20 = h.nCommitted(r!.index);
    if (r30!.index === i10 + 3) expect(c20).toEqual({ count: 5, data: '20' });
    else expect(c20.count).toBe(0);
    const expected = c20.count > 0 ? ['10', '20', '30'] : ['10', '30'];
    h.one('1000', 5);
    for (const id of h.ids) expect(h.appliedData(id)).toEqual([...expected, '1000']);
    h.assertSafe();
  });

  it('ConcurrentStarts: proposals made in one turn get distinct consecutive indexes in one term', async () => {
    const h = new Harness({ n: 3, seed: 104 }).startAll();
    const leader = h.checkOneLeader();
    h.one('warmup', 3);
    const term = h.host(leader).status().term;

    const cmds = Array.from({ length: 5 }, (_, i) => `conc-${i}`);
    const got = cmds.map((c) => h.start(leader, c));
    // Followers refuse, naming the leader, rather than silently dropping the request.
    for (const f of others(h.ids, leader)) {
      let err: unknown;
      try {
        void h.host(f).propose('nope');
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ProposalError);
      expect((err as ProposalError).code).toBe('not_leader');
      expect((err as ProposalError).leader).toBe(leader);
    }
    expect(got.every((g) => g !== null && g.term === term)).toBe(true);
    const idx = got.map((g) => g!.index);
    expect(idx).toEqual(idx.map((_, i) => idx[0]! + i));

    h.runFor(500);
    await flushPromises();
    expect(h.acks.filter((a) => a.cmd.startsWith('conc-'))).toEqual(cmds.map((cmd, i) => ({ cmd, index: idx[i] })));
    for (const id of h.ids) {
      expect(h.appliedData(id)).toEqual(['warmup', ...cmds]);
      for (let i = 0; i < cmds.length; i++) expect(h.machine(id).byIndex.get(idx[i]!)).toBe(cmds[i]);
    }
    expect(h.checkTerms()).toBe(term);
    h.assertSafe();
  });

  it('Rejoin: a partitioned leader rejoins; its uncommitted entries are discarded', () => {
    const h = new Harness({ n: 3, seed: 105 }).startAll();
    h.one('101', 3);

    // The leader is cut off and accepts commands that can never commit.
    const l1 = h.checkOneLeader();
    h.disconnect(l1);
    for (const c of ['stale-102', 'stale-103', 'stale-104']) expect(h.start(l1, c)).not.toBeNull();

    // The other two elect a new leader and commit 103.
    h.one('103', 2, true);
    const l2 = h.checkOneLeader();
    expect(l2).not.toBe(l1);

    // The new leader is cut off; the old one comes back.
    h.disconnect(l2);
    h.connect(l1);
    h.one('104', 2, true);
    // The old leader's log ends in an older term: it cannot have won this election.
    const l3 = h.checkOneLeader();
    expect(l3).not.toBe(l1);

    h.connect(l2);
    h.one('105', 3, true);
    for (const id of h.ids) expect(h.appliedData(id)).toEqual(['101', '103', '104', '105']);
    for (const rec of h.checker.committed.values()) expect(rec.data.startsWith('stale')).toBe(false);
    h.assertSafe();
  });

  it('Backup: leaders back up quickly over long divergent logs', () => {
    const h = new Harness({ n: 5, seed: 106 }).startAll();
    h.one('b0', 5);

    // Leader and one follower in a minority.
    const l1 = h.checkOneLeader();
    const [f1, ...rest] = others(h.ids, l1) as [NodeId, NodeId, NodeId, NodeId];
    for (const id of rest) h.disconnect(id);
    for (let i = 0; i < 50; i++) expect(h.start(l1, `stale1-${i}`)).not.toBeNull();
    h.runFor(500);
    expect(h.host(f1).status().lastIndex).toBeGreaterThanOrEqual(h.host(l1).status().lastIndex);

    // The majority side takes over.
    h.disconnect(l1);
    h.disconnect(f1);
    for (const id of rest) h.connect(id);
    const p2 = Array.from({ length: 50 }, (_, i) => `p2-${i}`);
    for (const c of p2) h.one(c, 3, true);

    // Its leader is partitioned with one follower, and piles up uncommitted entries.
    const l2 = h.checkOneLeader();
    const other = rest.find((id) => id !== l2) as NodeId;
    h.disconnect(other);
    for (let i = 0; i < 50; i++) expect(h.start(l2, `stale2-${i}`)).not.toBeNull();
    h.runFor(500);

    // The original leader, its follower, and `other` form the new majority. Only `other`
    // holds every committed entry, so the election restriction makes it the leader.
    for (const id of h.ids) h.disconnect(id);
    h.connect(l1);
    h.connect(f1);
    h.connect(other);
    expect(h.checkOneLeader()).toBe(other);
    const p3 = Array.from({ length: 50 }, (_, i) => `p3-${i}`);
    const t0 = h.clock.now();
    for (const c of p3) h.one(c, 3, true);
    // l1 and f1 had 50 divergent entries each; catching them up must not take one round
    // trip per entry for long (generous bound, virtual time).
    expect(h.clock.now() - t0).toBeLessThan(5000);

    h.connectAll();
    h.one('final', 5, true);
    const expected = ['b0', ...p2, ...p3, 'final'];
    for (const id of h.ids) expect(h.appliedData(id)).toEqual(expected);
    for (const rec of h.checker.committed.values()) expect(rec.data.startsWith('stale')).toBe(false);
    h.assertSafe();
  });
});
