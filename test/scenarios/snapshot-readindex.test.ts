// Snapshot installation (paper section 7) and linearizable ReadIndex reads (dissertation 6.4).

import { describe, expect, it } from 'vitest';
import type { NodeId, Snapshot } from '../../src/raft/types.js';
import { CoreNet, flushPromises, Harness, msg, newCore, takeMessages, track, type Tracked } from '../helpers/scenario.js';

describe('snapshots', () => {
  it('SnapshotInstall: a follower behind the leader\'s compacted log is caught up by a snapshot', () => {
    const h = new Harness({ n: 3, seed: 701, compactionThreshold: 20 }).startAll();
    const leader = h.checkOneLeader();
    h.one('s0', 3);
    const f = h.ids.find((id) => id !== leader) as NodeId;
    h.disconnect(f);
    const cmds = Array.from({ length: 100 }, (_, i) => `s${i + 1}`);
    for (const c of cmds) h.one(c, 2);
    h.runFor(200);

    // The leader compacted past everything the follower has: only a snapshot can help.
    const ls = h.host(leader).status();
    const fs = h.host(f).status();
    expect(ls.snapshotIndex).toBeGreaterThan(0);
    expect(ls.firstIndex).toBeGreaterThan(fs.lastIndex + 1);
    expect(h.host(leader).metrics().snapshotsTaken).toBeGreaterThanOrEqual(1);
    expect(h.host(f).metrics().snapshotsInstalled).toBe(0);

    h.connect(f);
    h.waitFor(() => h.appliedData(f).length === cmds.length + 1, 2000, 'follower caught up');
    expect(h.appliedData(f)).toEqual(['s0', ...cmds]);
    expect(h.host(f).metrics().snapshotsInstalled).toBeGreaterThanOrEqual(1);
    expect(h.machine(f).restores).toBeGreaterThanOrEqual(1);
    const fs2 = h.host(f).status();
    expect(fs2.snapshotIndex).toBeGreaterThan(fs.lastIndex);
    expect(fs2.conf.voters).toEqual(h.ids);
    // Same leader throughout: a snapshot install is not an election.
    expect(h.checkOneLeader()).toBe(leader);

    // Then it follows the log normally again.
    h.one('after', 3);
    expect(h.appliedData(f)).toEqual(['s0', ...cmds, 'after']);

    // And it recovers from its own stored snapshot after a crash.
    h.cluster.crash(f);
    h.cluster.start(f);
    expect(h.machine(f).restores).toBe(1);
    h.one('after2', 3);
    expect(h.appliedData(f)).toEqual(['s0', ...cmds, 'after', 'after2']);
    h.assertSafe();
  });

  it('SnapshotInstall (core): stale snapshots are ignored, matching ones only advance commit, newer ones replace the log', () => {
    const voters = ['a', 'b', 'c'];
    const snap = (index: number, term: number): Snapshot => ({ metadata: { index, term, confState: { voters, learners: [] } }, data: `state@${index}` });

    // Older than our commit: ignored, answered with our commit index.
    const b = newCore({ id: 'b', voters, term: 2, logTerms: [1, 1, 2, 2], commit: 3 });
    takeMessages(b);
    b.step(msg({ type: 'MsgSnap', from: 'a', to: 'b', term: 2, snapshot: snap(2, 1) }));
    let rd = b.ready();
    expect(rd.snapshot).toBeNull();
    expect(rd.messages.map((m) => [m.type, m.index, m.reject])).toEqual([['MsgAppResp', 3, false]]);
    b.advance(rd);
    expect(b.log.lastIndex()).toBe(4);

    // We already hold its last entry: keep the log, just move commit.
    const c = newCore({ id: 'c', voters, term: 2, logTerms: [1, 1, 2, 2, 2], commit: 2 });
    takeMessages(c);
    c.step(msg({ type: 'MsgSnap', from: 'a', to: 'c', term: 2, snapshot: snap(4, 2) }));
    rd = c.ready();
    expect(rd.snapshot).toBeNull();
    expect(c.log.committed).toBe(4);
    expect(c.log.lastIndex()).toBe(5);
    // It answers with the commit (4), not its last index: entry 5 may be a stale suffix of an
    // old term, and claiming it would let the leader count c toward committing index 5.
    expect(rd.messages.map((m) => [m.type, m.index])).toEqual([['MsgAppResp', 4]]);
    c.advance(rd);

    // Newer and conflicting: the whole log is replaced; the host must install it before
    // applying anything, and only then does the member count it as applied.
    const d = newCore({ id: 'b', voters, term: 2, logTerms: [1, 1, 2, 2], commit: 3 });
    takeMessages(d);
    d.step(msg({ type: 'MsgSnap', from: 'a', to: 'b', term: 3, snapshot: snap(6, 3) }));
    rd = d.ready();
    expect(rd.snapshot?.metadata.index).toBe(6);
    expect(rd.snapshot?.data).toBe('state@6');
    expect(rd.committedEntries).toEqual([]);
    expect(rd.messages.map((m) => [m.type, m.index])).toEqual([['MsgAppResp', 6]]);
    d.advance(rd);
    expect(d.log.applied).toBe(6);
    expect(d.log.lastIndex()).toBe(6);
    expect(d.log.term(6)).toBe(3);
    expect(d.log.term(4)).toBeUndefined();
  });
});

describe('read index', () => {
  it('ReadIndexFreshLeader (core): a new leader answers reads only after committing an entry of its term', () => {
    const voters = ['a', 'b', 'c'];
    const cfg = { preVote: false, checkQuorum: false };
    // Entries 1..3 are committed (b and c know it); a missed the last commit news.
    const net = new CoreNet([
      newCore({ id: 'a', voters, term: 1, logTerms: [1, 1, 1], commit: 1, cfg: { ...cfg, seed: 1 } }),
      newCore({ id: 'b', voters, term: 1, logTerms: [1, 1, 1], commit: 3, cfg: { ...cfg, seed: 2 } }),
      newCore({ id: 'c', voters, term: 1, logTerms: [1, 1, 1], commit: 3, cfg: { ...cfg, seed: 3 } }),
    ]);
    net.settle();
    let appendsBlocked = true;
    net.intercept = (m) => (appendsBlocked && (m.type === 'MsgApp' || m.type === 'MsgAppResp') ? null : m);
    const a = net.node('a');
    a.campaign();
    net.settle();
    expect(a.role).toBe('leader');
    expect(a.term).toBe(2);
    expect(a.log.committed).toBe(1); // its commit index is behind the cluster's (3)

    net.tick(5, ['a']); // a heartbeat tells b who leads (appends are still blocked)
    expect(net.node('b').lead).toBe('a');
    expect(a.log.committed).toBe(1);

    // Reads arrive now, at the leader and via a follower.
    a.readIndex('r-leader');
    net.node('b').readIndex('r-follower');
    net.settle();
    net.tick(10, ['a']); // heartbeats flow, but they must not confirm these reads yet
    expect(net.readStates.get('a')).toEqual([]);
    expect(net.readStates.get('b')).toEqual([]);

    // Once its no-op (index 4, term 2) commits, the reads are served at index >= 4, never at
    // the stale commit index 1.
    appendsBlocked = false;
    net.tick(10, ['a']);
    expect(a.log.committed).toBe(4);
    expect(net.readStates.get('a')).toEqual([{ index: 4, context: 'r-leader' }]);
    expect(net.readStates.get('b')).toEqual([{ index: 4, context: 'r-follower' }]);
  });

  it('ReadIndexFreshLeader: reads at a new leader reflect every acknowledged write; a deposed leader serves none', async () => {
    const h = new Harness({ n: 3, seed: 702 }).startAll();
    const l1 = h.checkOneLeader();
    const w = h.one('w1', 3);

    // A read at the leader, and one forwarded by a follower, both cover w1.
    const f = h.ids.find((id) => id !== l1) as NodeId;
    const reads: Array<{ who: NodeId; index: number; applied: number }> = [];
    const read = (who: NodeId) =>
      h.host(who).readIndex().then((index) => {
        reads.push({ who, index, applied: h.host(who).status().applied });
        return index;
      });
    void read(l1);
    void read(f);
    h.runFor(100);
    await flushPromises();
    expect(reads).toHaveLength(2);
    for (const r of reads) {
      expect(r.index).toBeGreaterThanOrEqual(w);
      expect(r.applied).toBeGreaterThanOrEqual(r.index); // resolved only once applied locally
    }

    // Hook the next leader's first moment: read right as it wins, before its no-op commits.
    let fresh: { id: NodeId; noop: number; commitAtWin: number; read: Tracked<number> } | null = null;
    h.cluster.onRoleChange((c) => {
      if (fresh || c.role !== 'leader' || c.id === l1) return;
      const core = h.host(c.id).core;
      fresh = { id: c.id, noop: core.log.lastIndex(), commitAtWin: core.log.committed, read: track(h.host(c.id).readIndex()) };
    });

    // The old leader is cut off. A read there must never be answered (it may still think it
    // leads for a while, but it cannot confirm that with a quorum).
    h.disconnect(l1);
    const stale = track(h.host(l1).readIndex());
    const w2 = h.one('w2', 2);
    expect(fresh).not.toBeNull();
    const fr = fresh as unknown as { id: NodeId; noop: number; commitAtWin: number; read: Tracked<number> };
    expect(fr.noop).toBeGreaterThan(w);
    h.runFor(100);
    await flushPromises();
    expect(fr.read.error).toBeUndefined();
    expect(fr.read.settled).toBe(true);
    // Served no earlier than the leader's own no-op, so it covers everything committed before.
    expect(fr.read.value).toBeGreaterThanOrEqual(fr.noop);
    expect(fr.read.value).toBeGreaterThanOrEqual(w);
    // And a read after w2 was acknowledged covers w2.
    const after = track(h.host(fr.id).readIndex());
    h.runFor(100);
    await flushPromises();
    expect(after.value).toBeGreaterThanOrEqual(w2);

    h.runFor(3000);
    await flushPromises();
    expect(stale.settled).toBe(true);
    expect(stale.value).toBeUndefined();
    expect(stale.error?.name).toMatch(/ProposalError|RequestTimeoutError/);
    h.assertSafe();
  });
});
