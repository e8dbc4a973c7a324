// Single-server membership changes (dissertation chapter 4): learners, promotion, removal,
// one change at a time, and removing the leader itself.

import { describe, expect, it } from 'vitest';
import type { ConfChange, NodeId } from '../../src/raft/types.js';
import { ProposalError } from '../../src/raft/types.js';
import { Harness } from '../helpers/scenario.js';

/** Propose a conf change at the current leader, retrying while the leader is not ready. */
function change(h: Harness, cc: ConfChange, among?: () => NodeId[]): NodeId {
  let done = false;
  let leader: NodeId = '';
  h.waitFor(
    () => {
      if (done) return true;
      const byTerm = h.leadersByTerm(among ? among() : undefined);
      if (byTerm.size === 0) return false;
      const l = byTerm.get(Math.max(...byTerm.keys()))![0]!;
      try {
        h.host(l).proposeConfChange(cc).catch(() => {});
        leader = l;
        done = true;
      } catch (e) {
        if (!(e instanceof ProposalError) || e.code === 'invalid') throw e;
      }
      return done;
    },
    5000,
    `propose ${cc.type} ${cc.node}`,
  );
  return leader;
}

function voters(h: Harness, id: NodeId): NodeId[] {
  return h.host(id).status().conf.voters;
}

describe('membership', () => {
  it('MembershipAddRemove: add a learner, promote it, remove a voter; quorums follow the configuration', () => {
    const h = new Harness({ n: 3, seed: 601 }).startAll();
    const l = h.checkOneLeader();
    const base = ['a0', 'a1', 'a2', 'a3', 'a4'];
    for (const c of base) h.one(c, 3);
    const term = h.checkTerms();

    // A joining member knows no configuration: it waits, it does not campaign.
    h.cluster.startJoining('n4');
    h.runFor(1000);
    expect(h.host('n4').status()).toMatchObject({ term: 0, role: 'follower', conf: { voters: [], learners: [] } });

    // Add it as a learner. A second change is refused until the first is applied.
    h.host(l).proposeConfChange({ type: 'addLearner', node: 'n4' }).catch(() => {});
    let pending: unknown;
    try {
      h.host(l).proposeConfChange({ type: 'addVoter', node: 'n4' }).catch(() => {});
    } catch (e) {
      pending = e;
    }
    expect((pending as ProposalError).code).toBe('conf_change_pending');
    // Every member, the joiner included, ends up with the same configuration: the joiner
    // must learn the bootstrap voters too, not just the change that added it.
    const withLearner = { voters: ['n1', 'n2', 'n3'], learners: ['n4'] };
    h.waitFor(
      () => ['n1', 'n2', 'n3', 'n4'].every((id) => JSON.stringify(h.host(id).status().conf) === JSON.stringify(withLearner)),
      2000,
      'learner everywhere',
    );
    // The learner catches up on everything committed (log or snapshot) but is no voter.
    h.waitFor(() => h.appliedData('n4').length === base.length, 2000, 'learner caught up');
    expect(h.appliedData('n4')).toEqual(base);
    expect(voters(h, l)).toEqual(['n1', 'n2', 'n3']);
    expect(h.host(l).status().peers.find((p) => p.id === 'n4')!.isLearner).toBe(true);

    // Promote it. From now on a commit needs 3 of 4 voters, n4 included: with one old
    // follower cut off, the leader can only commit if n4 acknowledges.
    change(h, { type: 'addVoter', node: 'n4' });
    h.waitFor(() => ['n1', 'n2', 'n3', 'n4'].every((id) => voters(h, id).join() === 'n1,n2,n3,n4'), 2000, 'n4 voter everywhere');
    // A voter now, n4 cut off alone must not elect itself: it needs 3 of 4 votes.
    h.disconnect('n4');
    h.runFor(2000);
    expect(h.host('n4').status().role).not.toBe('leader');
    h.connect('n4');
    h.one('n4-back', 4);
    const f1 = ['n1', 'n2', 'n3'].find((id) => id !== l) as NodeId;
    h.disconnect(f1);
    h.one('b0', 3);
    expect(h.appliedData('n4')).toContain('b0');
    // ...and with n4 cut off as well, 2 of 4 voters cannot commit (and the leader, unable
    // to hear from a quorum, steps down).
    h.disconnect('n4');
    const r = h.start(l, 'b1-never');
    h.runFor(1000);
    expect(h.nCommitted(r!.index).count).toBe(0);
    expect(h.host(l).status().role).not.toBe('leader');
    h.connectAll();
    h.one('b2', 4);

    // Remove an old voter that is not the leader.
    const l2 = h.checkOneLeader();
    const f2 = ['n1', 'n2', 'n3'].find((id) => id !== l2) as NodeId;

    // The leader and the others drop it from their configuration, and it does not disturb
    // them afterwards even though it keeps running.
    const leaderNow = change(h, { type: 'removeNode', node: f2 });
    expect(leaderNow).toBe(l2);
    const rest = ['n1', 'n2', 'n3', 'n4'].filter((id) => id !== f2);
    h.waitFor(() => rest.every((id) => voters(h, id).length === 3 && !voters(h, id).includes(f2)), 2000, 'removal applied');
    const termAfter = h.host(leaderNow).status().term;
    h.runFor(2000);
    expect(h.checkOneLeader(0, () => rest)).toBe(leaderNow);
    expect(h.host(leaderNow).status().term).toBe(termAfter);

    // Three voters remain, so a quorum is 2: one of them can be cut off (the removed one crashed).
    h.cluster.crash(f2);
    const gone = rest.find((id) => id !== leaderNow) as NodeId;
    h.disconnect(gone);
    h.one('c0', 2);
    h.connect(gone);
    h.one('c1', 3);
    const seq = h.appliedData(leaderNow);
    expect(seq.filter((d) => d !== 'b1-never')).toEqual([...base, 'n4-back', 'b0', 'b2', 'c0', 'c1']);
    for (const id of rest) expect(h.appliedData(id)).toEqual(seq);
    expect(term).toBeLessThanOrEqual(h.host(leaderNow).status().term);
    h.assertSafe();
  });

  it('MembershipAddRemove: a promoted member can lead', () => {
    const h = new Harness({ n: 3, seed: 602 }).startAll();
    const l = h.checkOneLeader();
    h.one('x', 3);
    h.cluster.startJoining('n4');
    change(h, { type: 'addLearner', node: 'n4' });
    h.waitFor(() => voters(h, l).length === 3 && h.host(l).status().conf.learners.length === 1, 2000, 'learner');
    change(h, { type: 'addVoter', node: 'n4' });
    h.waitFor(() => ['n1', 'n2', 'n3', 'n4'].every((id) => voters(h, id).join() === 'n1,n2,n3,n4'), 2000, 'voter');
    h.one('y', 4);
    const term = h.host(l).status().term;
    h.host(l).transferLeadership('n4');
    h.waitFor(() => h.host('n4').status().role === 'leader', 1000, 'n4 leads');
    expect(h.host('n4').status().term).toBe(term + 1);
    h.one('z', 4);
    for (const id of h.allIds()) expect(h.appliedData(id)).toEqual(['x', 'y', 'z']);
    h.assertSafe();
  });

  it('RemoveLeader: the leader commits its own removal, steps down, and the rest elect a new leader', () => {
    const h = new Harness({ n: 3, seed: 603 }).startAll();
    const l = h.checkOneLeader();
    h.one('a', 3);
    const term = h.checkTerms();
    const rest = h.ids.filter((id) => id !== l);

    change(h, { type: 'removeNode', node: l });
    // It steps down once its removal is committed (and applied) on its side.
    h.waitFor(() => h.host(l).status().role !== 'leader', 1000, 'removed leader steps down');
    expect(voters(h, l)).toEqual(rest);

    const l2 = h.checkOneLeader(5000, () => rest);
    expect(rest).toContain(l2);
    expect(h.host(l2).status().term).toBeGreaterThan(term);
    h.waitFor(() => rest.every((id) => voters(h, id).join() === rest.join()), 2000, 'removal applied by the rest');

    // The two remaining voters commit on their own...
    h.one('b', 2);
    // ...and need each other: 1 of 2 is no quorum.
    const other = rest.find((id) => id !== l2) as NodeId;
    h.disconnect(other);
    const r = h.start(l2, 'never');
    h.runFor(1000);
    if (r) expect(h.nCommitted(r.index).count).toBe(0);
    h.connect(other);
    h.one('c', 2);

    // The removed member, still running and connected, never leads again.
    h.runFor(3000);
    expect(h.host(l).status().role).not.toBe('leader');
    for (const [t, who] of h.leaderOfTerm) if (t > term) expect(who).not.toBe(l);
    for (const id of rest) expect(h.appliedData(id).filter((d) => d !== 'never')).toEqual(['a', 'b', 'c']);
    h.assertSafe();
  });
});
