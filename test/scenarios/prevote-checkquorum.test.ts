// Pre-vote and check-quorum (dissertation sections 9.6 and 6.2; etcd's PreVote/CheckQuorum).

import { describe, expect, it } from 'vitest';
import { ProposalError, type NodeId } from '../../src/raft/types.js';
import { CoreNet, flushPromises, Harness, msg, newCore, takeMessages, track } from '../helpers/scenario.js';

const TICK_MS = 10;
const ELECTION_MIN_MS = 15 * TICK_MS;

function isolateFollower(preVote: boolean, seed: number) {
  const h = new Harness({ n: 3, seed, raft: { preVote } }).startAll();
  const leader = h.checkOneLeader();
  h.one('a', 3);
  const term = h.checkTerms();
  const f = h.ids.find((id) => id !== leader) as NodeId;
  const sentBefore = h.cluster.network.endpointStats(f).messagesOut;
  h.disconnect(f);
  h.runFor(3000); // 10-20 election timeouts for the cut-off follower
  const campaignMsgs = h.cluster.network.endpointStats(f).messagesOut - sentBefore;
  return { h, leader, term, f, campaignMsgs };
}

describe('prevote and check-quorum', () => {
  it('PreVoteDisruptiveRejoin: a partitioned member neither bumps its term nor disrupts the leader on rejoin', () => {
    const { h, leader, term, f, campaignMsgs } = isolateFollower(true, 401);
    // It kept trying (pre-vote requests went out) but its term never moved.
    expect(campaignMsgs).toBeGreaterThanOrEqual(10);
    expect(h.host(f).status().term).toBe(term);
    expect(h.host(f).status().role).not.toBe('leader');
    // The majority carried on under the same leader.
    h.one('b', 2);
    expect(h.checkOneLeader()).toBe(leader);

    h.connect(f);
    h.runFor(2000);
    expect(h.checkOneLeader(0)).toBe(leader);
    expect(h.checkTerms()).toBe(term);
    expect([...h.leaderOfTerm.keys()]).toEqual([term]);
    h.one('c', 3);
    expect(h.appliedData(f)).toEqual(['a', 'b', 'c']);
    h.assertSafe();
  });

  it('PreVoteDisruptiveRejoin (control): without pre-vote the same rejoin forces a new term', () => {
    const { h, term, f } = isolateFollower(false, 401);
    const fTerm = h.host(f).status().term;
    expect(fTerm).toBeGreaterThan(term + 5); // one term per timeout
    h.connect(f);
    h.checkOneLeader();
    // Its inflated term deposed the leader: everyone moved past it.
    expect(h.checkTerms()).toBeGreaterThanOrEqual(fTerm);
    h.assertSafe();
  });

  it('PreVoteDisruptiveRejoin (core): pre-votes never change terms or votes, granted or not', () => {
    const voters = ['a', 'b', 'c'];
    const cfg = { preVote: true, checkQuorum: false };
    // a is behind (log [1,5]); b and c have [1,5,5]. All in term 5, no leader known.
    const a = newCore({ id: 'a', voters, term: 5, logTerms: [1, 5], cfg });
    const b = newCore({ id: 'b', voters, term: 5, vote: 'c', logTerms: [1, 5, 5], cfg });
    const c = newCore({ id: 'c', voters, term: 5, vote: 'c', logTerms: [1, 5, 5], cfg });
    a.campaign();
    expect(a.role).toBe('preCandidate');
    expect(a.term).toBe(5);
    const reqs = takeMessages(a);
    expect(reqs.map((m) => [m.type, m.to, m.term, m.logTerm, m.index])).toEqual([
      ['MsgPreVote', 'b', 6, 5, 2],
      ['MsgPreVote', 'c', 6, 5, 2],
    ]);
    for (const r of [b, c]) {
      r.step(reqs.find((m) => m.to === r.id)!);
      expect(r.term).toBe(5);
      expect(r.vote).toBe('c');
      const resp = takeMessages(r);
      expect(resp.map((m) => [m.type, m.reject])).toEqual([['MsgPreVoteResp', true]]);
      a.step(resp[0]!);
    }
    // Lost the pre-vote: back to follower, still term 5, nobody disturbed.
    expect(a.role).toBe('follower');
    expect(a.term).toBe(5);

    // An up-to-date pre-candidate gets grants, still without anyone's term moving, and only
    // then starts the real election in term 6.
    const net = new CoreNet([
      newCore({ id: 'a', voters, term: 5, logTerms: [1, 5, 5], cfg }),
      newCore({ id: 'b', voters, term: 5, logTerms: [1, 5, 5], cfg }),
      newCore({ id: 'c', voters, term: 5, logTerms: [1, 5, 5], cfg }),
    ]);
    const seen: Array<[string, number]> = [];
    net.intercept = (m) => {
      if (m.type === 'MsgPreVote') seen.push([m.to, net.node(m.to).term]);
      if (m.type === 'MsgPreVoteResp') {
        expect(m.reject).toBe(false);
        expect(net.node(m.from).term).toBe(5); // granted a pre-vote for term 6 while in term 5
        expect(net.node(m.from).vote).toBe(null);
      }
      return m;
    };
    net.node('a').campaign();
    net.settle();
    expect(seen).toEqual([
      ['b', 5],
      ['c', 5],
    ]);
    expect(net.node('a').role).toBe('leader');
    expect(net.node('a').term).toBe(6);
  });

  it('CheckQuorumStepDown: a leader cut off from its majority steps down within an election timeout or two', async () => {
    const h = new Harness({ n: 5, seed: 402 }).startAll();
    const leader = h.checkOneLeader();
    h.one('x', 5);
    const term = h.checkTerms();
    h.disconnect(leader);
    const tookMs = h.waitFor(() => h.host(leader).status().role !== 'leader', 2000, 'step down');
    expect(tookMs).toBeLessThanOrEqual(2 * ELECTION_MIN_MS + 5 * TICK_MS);
    // Stepping down is not an election: same term, and it no longer accepts proposals.
    const st = h.host(leader).status();
    expect(st.term).toBe(term);
    expect(st.role).toBe('follower');
    let err: unknown;
    try {
      void h.host(leader).propose('stale');
    } catch (e) {
      err = e;
    }
    expect((err as ProposalError).code).toBe('not_leader');
    // Reads there fail too, instead of returning stale data.
    const read = track(h.host(leader).readIndex());
    await flushPromises();
    expect(read.error).toMatchObject({ name: 'ProposalError', code: 'not_leader' });
    // The majority elects a new leader in a later term.
    const l2 = h.checkOneLeader();
    expect(l2).not.toBe(leader);
    expect(h.host(l2).status().term).toBeGreaterThan(term);
    h.assertSafe();
  });

  it('CheckQuorumStepDown (control): without check-quorum the cut-off leader lingers as a stale leader', () => {
    const h = new Harness({ n: 5, seed: 402, raft: { checkQuorum: false } }).startAll();
    const leader = h.checkOneLeader();
    const term = h.checkTerms();
    h.disconnect(leader);
    const l2 = h.checkOneLeader();
    h.runFor(3000);
    expect(h.host(leader).status().role).toBe('leader');
    expect(h.host(leader).status().term).toBe(term);
    expect(h.host(l2).status().term).toBeGreaterThan(term);
  });

  it('CheckQuorumStepDown (core): a follower in a live leader\'s lease ignores campaigns; a transfer campaign is not ignored', () => {
    const voters = ['a', 'b', 'c'];
    const b = newCore({ id: 'b', voters, term: 3, logTerms: [1, 3], cfg: { preVote: true, checkQuorum: true } });
    // b hears from leader a in term 3.
    b.step(msg({ type: 'MsgHeartbeat', from: 'a', to: 'b', term: 3, commit: 2 }));
    takeMessages(b);
    expect(b.lead).toBe('a');
    // c (cut off for a while) campaigns with an up-to-date log: b ignores it outright.
    for (const type of ['MsgPreVote', 'MsgVote'] as const) {
      b.step(msg({ type, from: 'c', to: 'b', term: 9, logTerm: 3, index: 2 }));
      expect(takeMessages(b)).toEqual([]);
      expect(b.term).toBe(3);
      expect(b.lead).toBe('a');
    }
    // Once the lease ran out (no leader contact for an election timeout) it votes.
    for (let i = 0; i < 15; i++) b.tick();
    takeMessages(b);
    b.step(msg({ type: 'MsgPreVote', from: 'c', to: 'b', term: 4, logTerm: 3, index: 2 }));
    const out = takeMessages(b).filter((m) => m.to === 'c');
    expect(out.map((m) => [m.type, m.reject])).toEqual([['MsgPreVoteResp', false]]);

    // A leadership-transfer campaign bypasses the lease (the leader asked for it).
    const b2 = newCore({ id: 'b', voters, term: 3, logTerms: [1, 3], cfg: { preVote: true, checkQuorum: true } });
    b2.step(msg({ type: 'MsgHeartbeat', from: 'a', to: 'b', term: 3, commit: 2 }));
    takeMessages(b2);
    b2.step(msg({ type: 'MsgVote', from: 'c', to: 'b', term: 4, logTerm: 3, index: 2, context: 'transfer' }));
    expect(takeMessages(b2).map((m) => [m.type, m.reject])).toEqual([['MsgVoteResp', false]]);
    expect(b2.term).toBe(4);
    expect(b2.vote).toBe('c');
  });
});
