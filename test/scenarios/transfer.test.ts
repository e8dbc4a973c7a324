// Leadership transfer (dissertation section 3.10; etcd MsgTransferLeader / MsgTimeoutNow).

import { describe, expect, it } from 'vitest';
import type { RoleChange } from '../../src/host/node-host.js';
import { ProposalError, type NodeId } from '../../src/raft/types.js';
import { Harness } from '../helpers/scenario.js';

const TICK_MS = 10;
const ELECTION_MIN_MS = 15 * TICK_MS;

function proposeError(h: Harness, id: NodeId, cmd: string): ProposalError | undefined {
  try {
    h.host(id).propose(cmd).catch(() => {});
  } catch (e) {
    return e as ProposalError;
  }
  return undefined;
}

function watchElections(h: Harness): RoleChange[] {
  const wins: RoleChange[] = [];
  h.cluster.onRoleChange((c) => {
    if (c.role === 'leader' && c.previousRole !== 'leader') wins.push(c);
  });
  return wins;
}

describe('leadership transfer', () => {
  it('LeadershipTransfer: to an up-to-date follower, faster than any election timeout, in the next term', () => {
    const h = new Harness({ n: 3, seed: 501 }).startAll();
    const leader = h.checkOneLeader();
    for (let i = 0; i < 5; i++) h.one(`t${i}`, 3);
    h.runFor(100);
    const term = h.checkTerms();
    const target = h.ids.find((id) => id !== leader) as NodeId;
    const last = h.host(leader).status().lastIndex;
    expect(h.host(leader).status().peers.find((p) => p.id === target)!.match).toBe(last);
    const wins = watchElections(h);

    h.host(leader).transferLeadership(target);
    const took = h.waitFor(() => h.host(target).status().role === 'leader', 1000, 'target leads', 1);
    // MsgTimeoutNow makes the target campaign at once: no election timeout is waited for.
    expect(took).toBeLessThan(ELECTION_MIN_MS);
    expect(h.host(target).status().term).toBe(term + 1);
    expect(wins).toHaveLength(1);
    expect(wins[0]!.id).toBe(target);
    expect(wins[0]!.election?.transfer).toBe(true);
    expect(h.checkOneLeader()).toBe(target);
    expect(h.host(leader).status().role).toBe('follower');

    h.one('after', 3);
    for (const id of h.ids) expect(h.appliedData(id)).toEqual(['t0', 't1', 't2', 't3', 't4', 'after']);
    h.assertSafe();
  });

  it('LeadershipTransfer: to a lagging follower, which is caught up before it campaigns', () => {
    const h = new Harness({ n: 3, seed: 502, raft: { maxEntriesPerMsg: 4 } }).startAll();
    const leader = h.checkOneLeader();
    const target = h.ids.find((id) => id !== leader) as NodeId;
    h.disconnect(target);
    const cmds = Array.from({ length: 40 }, (_, i) => `lag${i}`);
    for (const c of cmds) h.one(c, 2);
    const term = h.checkTerms();
    expect(h.host(leader).status().term).toBe(term);
    const last = h.host(leader).status().lastIndex;
    h.connect(target);
    // Requested the moment it is back, 40 entries behind.
    expect(h.host(target).status().lastIndex).toBeLessThan(last - 30);
    h.host(leader).transferLeadership(target);
    expect(h.host(leader).status().leadTransferee).toBe(target);
    // The leader takes no new proposals while the transfer is in progress.
    expect(proposeError(h, leader, 'during')?.code).toBe('transfer_in_progress');

    h.waitFor(() => h.host(target).status().role === 'leader', 2000, 'target leads');
    expect(h.host(target).status().term).toBe(term + 1);
    // It won with the complete log: every entry the old leader had is there, unchanged.
    const tcore = h.host(target).core;
    const lcore = h.host(leader).core;
    for (let i = 1; i <= last; i++) expect(tcore.log.term(i), `term of ${i}`).toBe(lcore.log.term(i));
    expect(h.checkOneLeader()).toBe(target);
    h.one('after', 3);
    for (const id of h.ids) expect(h.appliedData(id)).toEqual([...cmds, 'after']);
    h.assertSafe();
  });

  it('LeadershipTransfer: to an unreachable follower times out; the leader keeps leading', () => {
    const h = new Harness({ n: 3, seed: 503 }).startAll();
    const leader = h.checkOneLeader();
    h.one('before', 3);
    const term = h.checkTerms();
    const target = h.ids.find((id) => id !== leader) as NodeId;
    h.disconnect(target);

    h.host(leader).transferLeadership(target);
    expect(h.host(leader).status().leadTransferee).toBe(target);
    expect(proposeError(h, leader, 'during')?.code).toBe('transfer_in_progress');
    // Abandoned after transferTimeoutTicks (defaults to electionTicksMin).
    const took = h.waitFor(() => h.host(leader).status().leadTransferee === null, 1000, 'transfer abandoned', 1);
    expect(took).toBeGreaterThanOrEqual(ELECTION_MIN_MS - 2 * TICK_MS);
    expect(took).toBeLessThanOrEqual(ELECTION_MIN_MS + 2 * TICK_MS);
    const st = h.host(leader).status();
    expect(st.role).toBe('leader');
    expect(st.term).toBe(term);
    // Proposals are accepted again, and the cluster works on with the old leader.
    expect(proposeError(h, leader, 'after-abort')).toBeUndefined();
    h.runFor(200);
    h.one('later', 2);
    h.connect(target);
    h.one('all', 3);
    expect(h.checkOneLeader()).toBe(leader);
    expect(h.checkTerms()).toBe(term);
    for (const id of h.ids) expect(h.appliedData(id)).toEqual(['before', 'after-abort', 'later', 'all']);
    h.assertSafe();
  });

  it('LeadershipTransfer: requested at a follower, forwarded to the leader', () => {
    const h = new Harness({ n: 3, seed: 504 }).startAll();
    const leader = h.checkOneLeader();
    h.one('x', 3);
    const term = h.checkTerms();
    const [asker, target] = h.ids.filter((id) => id !== leader) as [NodeId, NodeId];
    h.host(asker).transferLeadership(target);
    h.waitFor(() => h.host(target).status().role === 'leader', 1000, 'target leads');
    expect(h.host(target).status().term).toBe(term + 1);
    expect(h.checkOneLeader()).toBe(target);
    h.assertSafe();
  });
});
