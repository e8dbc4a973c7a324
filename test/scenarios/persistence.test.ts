// Persistence and crash recovery (6.824 lab 2C Persist*; the durability contract of Ready:
// persist before send, acknowledge only what a majority holds durably).

import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { Raft } from '../../src/raft/raft.js';
import { DEFAULT_CONFIG, type ConfState, type Entry, type NodeId } from '../../src/raft/types.js';
import { SqliteStorage } from '../../src/storage/sqlite-storage.js';
import { flushPromises, Harness, msg, tempDir } from '../helpers/scenario.js';

const dirs: string[] = [];
const harnesses: Harness[] = [];
afterEach(() => {
  for (const h of harnesses.splice(0)) h.close();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function sqliteHarness(n: number, seed: number): Harness {
  const dir = tempDir();
  dirs.push(dir);
  const h = new Harness({ n, seed, storage: { sqliteDir: dir } });
  harnesses.push(h);
  return h;
}

interface Durable {
  term: number;
  vote: NodeId | null;
  commit: number;
  entries: Entry[];
  applied: string[];
}

describe('persistence', () => {
  it('Persist: crash every member, reopen the SQLite files, recover term/vote/log/applied state, continue', () => {
    const h = sqliteHarness(3, 201).startAll();
    const l1 = h.checkOneLeader();
    const cmds = Array.from({ length: 10 }, (_, i) => `a${i}`);
    for (const c of cmds) h.one(c, 3);
    h.runFor(200); // followers learn the final commit index from a heartbeat

    const before = new Map<NodeId, Durable>();
    for (const id of h.ids) {
      const core = h.host(id).core;
      // Quiescent: every member has made all of its state durable.
      expect(core.log.stableIndex).toBe(core.log.lastIndex());
      before.set(id, {
        term: core.term,
        vote: core.vote,
        commit: core.log.committed,
        entries: structuredClone(core.log.entries),
        applied: h.appliedData(id),
      });
      expect(h.appliedData(id)).toEqual(cmds);
    }
    const oldTerm = before.get(l1)!.term;

    // Crash them all: hosts and database handles are gone; only the files remain.
    h.crashAllAndReopen(false);

    // The files alone hold exactly the hard state and log each member had.
    const conf: ConfState = { voters: h.ids, learners: [] };
    for (const id of h.ids) {
      const s = SqliteStorage.open(h.dbFile(id));
      const rs = s.load(conf);
      s.close();
      const b = before.get(id)!;
      expect(rs.hardState).toEqual({ term: b.term, vote: b.vote, commit: b.commit });
      expect(rs.entries).toEqual(b.entries);
    }

    // Restart from the files. Before any virtual time passes, each core resumed its term,
    // vote and log, and its machine replayed the log up to the durable commit index.
    h.startAll();
    for (const id of h.ids) {
      const core = h.host(id).core;
      const b = before.get(id)!;
      expect(core.term).toBe(b.term);
      expect(core.vote).toBe(b.vote);
      expect(core.log.entries).toEqual(b.entries);
      expect(h.appliedData(id)).toEqual(b.applied);
      expect(h.host(id).status().role).toBe('follower');
    }

    // The cluster continues: a new election in a later term, and new commands commit after
    // the recovered ones.
    const l2 = h.checkOneLeader();
    expect(h.host(l2).status().term).toBeGreaterThan(oldTerm);
    h.one('b0', 3);
    h.one('b1', 3);
    for (const id of h.ids) expect(h.appliedData(id)).toEqual([...cmds, 'b0', 'b1']);

    // And once more, to be sure a recovered log is itself recoverable.
    h.runFor(200);
    h.crashAllAndReopen();
    h.checkOneLeader();
    h.one('c0', 3);
    for (const id of h.ids) expect(h.appliedData(id)).toEqual([...cmds, 'b0', 'b1', 'c0']);
    h.assertSafe();
  });

  it('Persist: repeated crash and restart of leaders and minorities (SQLite)', () => {
    const h = sqliteHarness(5, 202).startAll();
    const expected: string[] = [];
    const commit = (c: string, n: number) => {
      h.one(c, n);
      expected.push(c);
    };
    commit('x0', 5);
    for (let iter = 0; iter < 4; iter++) {
      const leader = h.checkOneLeader();
      const fs2 = h.ids.filter((id) => id !== leader).slice(0, 2);
      // Two followers crash: three remain, still a majority.
      for (const id of fs2) h.cluster.crash(id);
      commit(`y${iter}`, 3);
      // The leader crashes too: two of five, no progress possible.
      h.cluster.crash(leader);
      const r = h.live().map((id) => h.start(id, `never-${iter}`));
      h.runFor(1000);
      expect(r.every((x) => x === null)).toBe(true);
      h.checkNoLeader();
      // Everyone restarts from disk and must agree on everything committed so far.
      for (const id of [...fs2, leader]) h.cluster.start(id);
      h.checkOneLeader();
      commit(`z${iter}`, 5);
    }
    for (const id of h.ids) expect(h.appliedData(id)).toEqual(expected);
    h.assertSafe();
  });

  it('Persist (core): a vote survives a crash, so a member never votes twice in one term', () => {
    const dir = tempDir();
    dirs.push(dir);
    const file = `${dir}/a.db`;
    const conf: ConfState = { voters: ['a', 'b', 'c'], learners: [] };
    const cfg = { ...DEFAULT_CONFIG, id: 'a', seed: 7, preVote: false };

    let store = SqliteStorage.open(file);
    let r = new Raft(cfg, store.load(conf));
    r.step(msg({ type: 'MsgVote', from: 'b', to: 'a', term: 5 }));
    const rd = r.ready();
    // The grant is only in the messages of a Ready that also carries the hard state to persist.
    expect(rd.hardState).toEqual({ term: 5, vote: 'b', commit: 0 });
    expect(rd.messages.map((m) => [m.type, m.to, m.reject])).toEqual([['MsgVoteResp', 'b', false]]);
    store.save({ snapshot: rd.snapshot, entries: rd.entries, hardState: rd.hardState });
    r.advance(rd);
    store.close(); // crash

    store = SqliteStorage.open(file);
    r = new Raft(cfg, store.load(conf));
    expect(r.term).toBe(5);
    expect(r.vote).toBe('b');
    r.step(msg({ type: 'MsgVote', from: 'c', to: 'a', term: 5 }));
    let out = r.ready();
    r.advance(out);
    expect(out.messages.map((m) => [m.type, m.to, m.reject])).toEqual([['MsgVoteResp', 'c', true]]);
    r.step(msg({ type: 'MsgVote', from: 'b', to: 'a', term: 5 }));
    out = r.ready();
    expect(out.messages.map((m) => [m.type, m.to, m.reject])).toEqual([['MsgVoteResp', 'b', false]]);
    store.close();
  });

  it('CrashBeforeAck: a proposal lost in a crash before persistence is never acknowledged; acknowledged ones survive any crash', async () => {
    const h = sqliteHarness(3, 203).startAll();
    const l1 = h.checkOneLeader();
    const ok1 = Array.from({ length: 20 }, (_, i) => `ok${i}`);
    for (const c of ok1) expect(h.start(l1, c)).not.toBeNull();
    h.runFor(300);
    await flushPromises();
    expect(h.acks.map((a) => a.cmd)).toEqual(ok1);

    // Propose and crash in the same turn: the entry is in the leader's memory only.
    const lost = h.start(l1, 'lost');
    expect(lost).not.toBeNull();
    const core = h.host(l1).core;
    expect(core.log.lastIndex()).toBe(lost!.index);
    expect(core.log.stableIndex).toBeLessThan(lost!.index);
    h.cluster.crash(l1);
    await flushPromises();
    expect(h.nacks.map((n) => n.cmd)).toContain('lost');
    const loaded = h.cluster.storage(l1)!.load({ voters: h.ids, learners: [] });
    expect(loaded.entries.some((e) => e.data === 'lost')).toBe(false);

    // A follower that crashes after receiving an entry but before persisting it must not
    // count toward its commit: step the clock event by event to crash it at that moment.
    const l2 = h.checkOneLeader();
    expect(l2).not.toBe(l1);
    const f = h.live().find((id) => id !== l2) as NodeId;
    const pending = h.start(l2, 'pending');
    expect(pending).not.toBeNull();
    const fcore = h.host(f).core;
    let steps = 0;
    while (!(fcore.log.lastIndex() >= pending!.index && fcore.log.stableIndex < pending!.index)) {
      expect(h.clock.step()).toBe(true);
      expect(++steps).toBeLessThan(10_000);
    }
    h.cluster.crash(f);
    expect(h.cluster.storage(f)!.load({ voters: h.ids, learners: [] }).entries.some((e) => e.data === 'pending')).toBe(false);
    h.runFor(1000);
    await flushPromises();
    // l2 alone holds it durably: one of three is no majority, so no commit, no acknowledgement.
    expect(h.acks.map((a) => a.cmd)).not.toContain('pending');
    expect(h.nCommitted(pending!.index).count).toBe(0);

    // Everyone back; more acknowledged writes.
    h.cluster.start(l1);
    h.cluster.start(f);
    const l3 = h.checkOneLeader();
    const ok2 = Array.from({ length: 10 }, (_, i) => `ok2-${i}`);
    for (const c of ok2) expect(h.start(l3, c)).not.toBeNull();
    h.runFor(500);
    await flushPromises();
    const acked = h.acks.map((a) => a.cmd);
    expect(acked).toEqual(expect.arrayContaining([...ok1, ...ok2]));

    // Crash every member at once and reopen the files: every acknowledged entry survives at
    // the index it was acknowledged at, and the lost proposal appears nowhere.
    h.crashAllAndReopen();
    h.checkOneLeader();
    h.one('after', 3);
    for (const id of h.ids) {
      const m = h.machine(id);
      for (const a of h.acks) expect(m.byIndex.get(a.index), `${id} @${a.index}`).toBe(a.cmd);
      expect(m.data()).not.toContain('lost');
    }
    for (const rec of h.checker.committed.values()) expect(rec.data).not.toBe('lost');
    h.assertSafe();
  });
});
