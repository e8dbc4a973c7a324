// A follower that learns its leader's process is gone (its address refused a connection, see
// Raft.leaderUnreachable) ends the leader's lease at once: only the randomized part of its
// election timeout is left to run. Followers that heard nothing keep their lease, so a wrong
// report about a live leader disrupts nobody.

import { describe, expect, it } from 'vitest';
import type { NodeId } from '../../src/raft/types.js';
import { Harness } from '../helpers/scenario.js';

// 10 ms ticks: a 1 s minimum election timeout with a 100 ms random spread, heartbeats every
// 100 ms. Without the report a follower cannot campaign until 1 s after the last heartbeat
// (at least 900 ms after the crash); with it, within the 100 ms spread.
const RAFT = { electionTicksMin: 100, electionTicksMax: 110, heartbeatTicks: 10 };
const ELECTION_MIN_MS = 1000;

describe('leader gone (refused connection) ends the lease', () => {
  for (const seed of [1, 2, 3]) {
    it(`a crashed leader reported gone by its followers is replaced well before the minimum election timeout (seed ${seed})`, () => {
      const h = new Harness({ n: 5, seed, raft: RAFT }).startAll();
      const old = h.checkOneLeader(10_000);
      h.one('a', 5);
      const term = h.checkTerms();
      h.runFor(h.rand.int(0, 100)); // any phase of the heartbeat cycle
      h.cluster.crash(old);
      const followers = h.ids.filter((id) => id !== old);
      for (const f of followers) h.host(f).leaderUnreachable(old);
      const tookMs = h.waitFor(() => {
        const l = h.stableLeader(followers);
        return l !== null && l !== old;
      }, 5_000, 'a new leader');
      expect(tookMs).toBeLessThan(ELECTION_MIN_MS / 2);
      expect(h.checkTerms(followers)).toBe(term + 1);
      h.one('b', 4);
      h.assertSafe();
    });
  }

  it('a report about a live leader disrupts nobody: the others keep their lease, the term does not move', () => {
    const h = new Harness({ n: 3, seed: 7, raft: RAFT }).startAll();
    const leader = h.checkOneLeader(10_000);
    h.one('a', 3);
    const term = h.checkTerms();
    const f = h.ids.find((id) => id !== leader) as NodeId;
    for (let i = 0; i < 5; i++) {
      h.host(f).leaderUnreachable(leader);
      h.runFor(700);
    }
    expect(h.checkOneLeader(0)).toBe(leader);
    expect(h.checkTerms()).toBe(term);
    expect([...h.leaderOfTerm.keys()]).toEqual([term]);
    h.one('b', 3);
    h.assertSafe();
  });

  it('only the leader it follows: a report about another member, or from a non-follower, changes nothing', () => {
    const h = new Harness({ n: 3, seed: 8, raft: RAFT }).startAll();
    const leader = h.checkOneLeader(10_000);
    const [f, g] = h.ids.filter((id) => id !== leader) as [NodeId, NodeId];
    const before = h.host(f).core.ticksUntilTimeout();
    h.host(f).leaderUnreachable(g);
    expect(h.host(f).core.ticksUntilTimeout()).toBe(before);
    h.host(leader).leaderUnreachable(f);
    expect(h.host(leader).status().role).toBe('leader');
    // The leader it follows: only the random part (at most max - min ticks) is left.
    h.host(f).leaderUnreachable(leader);
    expect(h.host(f).core.ticksUntilTimeout()).toBeLessThanOrEqual(RAFT.electionTicksMax - RAFT.electionTicksMin);
  });
});
