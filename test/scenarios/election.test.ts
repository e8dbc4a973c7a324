// Leader election (6.824 lab 2A; Raft paper section 5.2 and the election restriction of 5.4.1).

import { describe, expect, it } from 'vitest';
import type { NodeId } from '../../src/raft/types.js';
import { Harness, msg, newCore, takeMessages } from '../helpers/scenario.js';

describe('election', () => {
  for (const seed of [1, 2, 3, 4, 5]) {
    it(`InitialElection: one leader within 5 s and no re-election without failures (seed ${seed})`, () => {
      const h = new Harness({ n: 3, seed }).startAll();
      expect(h.checkTerms()).toBe(0);
      h.checkNoLeader();

      const tookMs = h.waitFor(() => h.stableLeader() !== null, 5000, 'initial leader');
      // The first election needs a timeout (150-300 ms) plus a few message hops.
      expect(tookMs).toBeGreaterThanOrEqual(150);
      const leader = h.checkOneLeader();
      const term = h.checkTerms();
      expect(term).toBeGreaterThanOrEqual(1);
      const st = h.host(leader).status();
      expect(st.votedBy.length).toBeGreaterThanOrEqual(2);
      expect(st.votedBy).toContain(leader);
      expect(st.vote).toBe(leader);

      // With no failures nobody times out: same leader, same term, for a long while.
      for (let i = 0; i < 4; i++) {
        h.runFor(500);
        expect(h.checkTerms()).toBe(term);
        expect(h.checkOneLeader(0)).toBe(leader);
      }
      expect([...h.leaderOfTerm.keys()]).toEqual([term]);
      // Every member persisted the leader's term; voters persisted their vote for it.
      for (const id of h.ids) {
        const s = h.host(id).status();
        expect(s.term).toBe(term);
        expect(s.leader).toBe(leader);
        if (st.votedBy.includes(id)) expect(s.vote).toBe(leader);
      }
      h.assertSafe();
    });
  }

  it('ReElection: a new leader after the leader disconnects; no leader without a quorum', () => {
    const h = new Harness({ n: 3, seed: 21 }).startAll();
    const l1 = h.checkOneLeader();
    const t1 = h.checkTerms();

    // The leader fails: the other two elect one of themselves in a later term.
    h.disconnect(l1);
    const l2 = h.checkOneLeader();
    expect(l2).not.toBe(l1);
    const t2 = h.host(l2).status().term;
    expect(t2).toBeGreaterThan(t1);
    // The cut-off leader notices it lost its quorum and steps down, without bumping its term.
    h.waitFor(() => h.host(l1).status().role !== 'leader', 1000, 'old leader steps down');
    h.runFor(2000);
    expect(h.host(l1).status().term).toBe(t1);

    // The old leader rejoins: it must not disturb the new one.
    h.connect(l1);
    expect(h.checkOneLeader()).toBe(l2);
    h.runFor(1000);
    expect(h.checkOneLeader(0)).toBe(l2);
    expect(h.checkTerms()).toBe(t2);

    // Two of three gone: no quorum, so no leader anywhere, however long we wait.
    const [a, b] = h.ids.filter((id) => id !== l2) as [NodeId, NodeId];
    h.disconnect(l2);
    h.disconnect(a);
    h.runFor(3000);
    h.checkNoLeader(h.ids);

    // A quorum is back: a leader again.
    h.connect(a);
    const l3 = h.checkOneLeader();
    expect([a, b]).toContain(l3);
    expect(h.host(l3).status().term).toBeGreaterThan(t2);

    // Everyone is back: still exactly that leader.
    h.connect(l2);
    expect(h.checkOneLeader()).toBe(l3);
    h.assertSafe();
  });

  it('ManyElections: seven members, three random ones disconnected per round, always one leader', () => {
    const h = new Harness({ n: 7, seed: 31 }).startAll();
    let leader = h.checkOneLeader();
    let term = h.checkTerms();
    for (let iter = 0; iter < 10; iter++) {
      const shuffled = [...h.ids].sort(() => h.rand.next() - 0.5);
      const gone = shuffled.slice(0, 3);
      for (const id of gone) h.disconnect(id);
      // The four connected members (a bare majority of seven) must agree on one leader.
      const l = h.checkOneLeader();
      expect(gone).not.toContain(l);
      const t = h.host(l).status().term;
      if (gone.includes(leader)) expect(t).toBeGreaterThan(term);
      else {
        // The leader kept its quorum: nothing should have happened.
        expect(l).toBe(leader);
        expect(t).toBe(term);
      }
      leader = l;
      term = t;
      for (const id of gone) h.connect(id);
      // After the heal the leader of the majority keeps leading (pre-vote + leases).
      expect(h.checkOneLeader()).toBe(leader);
      expect(h.checkTerms()).toBe(term);
    }
    h.assertSafe();
    // Terms only moved when the leader was among the disconnected, once per such round at most
    // a few elections: far fewer terms than the hundreds of timeouts the cut-off nodes saw.
    expect(term).toBeLessThan(40);
  });

  describe('core rules', () => {
    const voters = ['a', 'b', 'c'];

    it('InitialElection (core): a voter grants one vote per term, and only to an up-to-date log', () => {
      // Voter 'a' holds entries 1@1, 2@1 and sits in term 2 (etcd TestVoter, paper 5.4.1).
      const cases: Array<{ logTerm: number; index: number; grant: boolean }> = [
        { logTerm: 1, index: 1, grant: false }, // same last term, shorter log
        { logTerm: 1, index: 2, grant: true }, // identical
        { logTerm: 1, index: 3, grant: true }, // same last term, longer
        { logTerm: 2, index: 1, grant: true }, // higher last term wins whatever the length
        { logTerm: 0, index: 0, grant: false }, // empty log
      ];
      for (const c of cases) {
        const a = newCore({ id: 'a', voters, term: 2, logTerms: [1, 1], commit: 0, cfg: { preVote: false } });
        a.step(msg({ type: 'MsgVote', from: 'b', to: 'a', term: 3, logTerm: c.logTerm, index: c.index }));
        const out = takeMessages(a);
        expect(out, JSON.stringify(c)).toHaveLength(1);
        expect(out[0]!.type).toBe('MsgVoteResp');
        expect(out[0]!.reject, JSON.stringify(c)).toBe(!c.grant);
        // Seeing term 3 moves the voter to term 3 either way; only a grant records a vote.
        expect(a.term).toBe(3);
        expect(a.vote).toBe(c.grant ? 'b' : null);
      }

      // One vote per term: after voting for b, c is refused in the same term; b again is fine.
      const a = newCore({ id: 'a', voters, term: 1, cfg: { preVote: false } });
      a.step(msg({ type: 'MsgVote', from: 'b', to: 'a', term: 2 }));
      expect(takeMessages(a)[0]!.reject).toBe(false);
      a.step(msg({ type: 'MsgVote', from: 'c', to: 'a', term: 2 }));
      expect(takeMessages(a)[0]!.reject).toBe(true);
      a.step(msg({ type: 'MsgVote', from: 'b', to: 'a', term: 2 }));
      expect(takeMessages(a)[0]!.reject).toBe(false);
      expect(a.vote).toBe('b');
    });

    it('ReElection (core): a candidate with a stale log cannot win; one with the longest log does', () => {
      // a: [1,1]   b: [1,1,2]   c: [1,1]   all in term 2; b has the only term-2 entry.
      const cfg = { preVote: false, checkQuorum: false };
      const a = newCore({ id: 'a', voters, term: 2, logTerms: [1, 1], cfg });
      const b = newCore({ id: 'b', voters, term: 2, logTerms: [1, 1, 2], cfg });
      const c = newCore({ id: 'c', voters, term: 2, logTerms: [1, 1], cfg });

      a.campaign();
      const req = takeMessages(a);
      expect(req.map((m) => [m.type, m.to, m.term, m.logTerm, m.index])).toEqual([
        ['MsgVote', 'b', 3, 1, 2],
        ['MsgVote', 'c', 3, 1, 2],
      ]);
      b.step(req[0]!);
      const rb = takeMessages(b)[0]!;
      expect(rb.reject).toBe(true); // b's log is more up to date
      a.step(rb);
      expect(a.role).toBe('candidate'); // one grant (itself) of three; c not heard yet
      c.step(req[1]!);
      a.step(takeMessages(c)[0]!);
      // a + c is a majority: a wins even though b refused. That is allowed: a holds every
      // entry c and a know about; b's term-2 entry was never committed.
      expect(a.role).toBe('leader');
      expect(a.term).toBe(3);

      // Now b campaigns in term 4 against a (leader of 3, log [1,1,3]) and c ([1,1]).
      const b2 = newCore({ id: 'b', voters, term: 3, logTerms: [1, 1, 2], cfg });
      b2.campaign();
      const breq = takeMessages(b2);
      const a2 = newCore({ id: 'a', voters, term: 3, logTerms: [1, 1, 3], cfg });
      a2.step(breq.find((m) => m.to === 'a')!);
      expect(takeMessages(a2)[0]!.reject).toBe(true); // last term 3 > 2
      const c2 = newCore({ id: 'c', voters, term: 3, logTerms: [1, 1], cfg });
      c2.step(breq.find((m) => m.to === 'c')!);
      expect(takeMessages(c2)[0]!.reject).toBe(false);
    });
  });
});
