// Raft paper, section 5.1: "If a server receives a request with a stale term number, it
// rejects the request." A deposed leader that never heard of the newer term keeps sending
// appends in its old term; a follower that processed them would overwrite entries it had
// already acknowledged to the current leader, entries that leader has committed.

import { describe, expect, it } from 'vitest';
import type { Entry, Message } from '../../src/raft/types.js';
import { CoreNet, newCore } from '../helpers/scenario.js';

const THREE = ['s1', 's2', 's3'];

function committedAt(net: CoreNet, id: string, index: number): Entry | undefined {
  return net.committed.get(id)!.find((e) => e.index === index);
}

describe('a server rejects requests with a stale term number', () => {
  for (const preVote of [false, true]) {
    it(`a deposed leader's appends cannot overwrite entries the new leader committed (preVote ${preVote ? 'on' : 'off'})`, () => {
      // preVote on: the stale branch also answers the deposed leader with the newer term.
      const cfg = { preVote, checkQuorum: false, maxEntriesPerMsg: 64 };
      const net = new CoreNet(THREE.map((id, i) => newCore({ id, voters: THREE, cfg: { ...cfg, seed: i + 1 } })));
      const s1 = net.node('s1');
      const s2 = net.node('s2');
      const s3 = net.node('s3');

      // s1 leads term 1 and commits "a" at 2 everywhere.
      s1.campaign();
      net.settle();
      expect(s1.role).toBe('leader');
      s1.propose('a');
      net.settle();
      for (const id of THREE) expect(committedAt(net, id, 2)?.data, id).toBe('a');

      // s1 is cut off. s2 wins term 2 (s3 votes); its first appends to s3 are lost, and
      // anything telling s3 of a commit beyond 2 keeps getting lost.
      let appendsToS3 = false;
      let s1ReachesS3 = false;
      net.intercept = (m: Message) => {
        if (m.from === 's1' && m.to === 's3' && s1ReachesS3) return m;
        if (m.from === 's1' || m.to === 's1') return null;
        if (m.from === 's2' && m.to === 's3' && (m.commit > 2 || (m.type === 'MsgApp' && !appendsToS3))) return null;
        return m;
      };
      s2.campaign();
      net.settle();
      expect(s2.role).toBe('leader');
      const term2 = s2.term;
      s2.propose('b');
      net.settle();
      // A heartbeat round: s2 learns s3 lacks its entries and sends them (no-op and "b") in
      // one append; s3 acknowledges, so s2 commits both. s3 still has commit 2.
      appendsToS3 = true;
      net.tick(6, ['s2']);
      const last = s2.log.lastIndex();
      expect(last).toBe(4);
      expect(s2.log.committed).toBe(last);
      expect(s3.log.term(last)).toBe(term2);
      expect(s3.log.committed).toBe(2);

      // s1, still leader of term 1 in its own view, appends "x" and "y" at 3 and 4 and its
      // append reaches s3: a request with a stale term number, which s3 must reject.
      expect(s1.role).toBe('leader');
      s1.propose('x');
      s1.propose('y');
      s1ReachesS3 = true;
      net.settle();
      expect(net.delivered.some((m) => m.from === 's1' && m.to === 's3' && m.type === 'MsgApp' && m.entries.length === 2)).toBe(true);
      expect(s3.term).toBe(term2);
      expect(s3.log.term(3)).toBe(term2);
      expect(s3.log.term(last)).toBe(term2);

      // The commit news finally reaches s3: it applies what s2 committed, not s1's entries.
      net.intercept = (m: Message) => (m.from === 's1' || m.to === 's1' ? null : m);
      net.tick(6, ['s2']);
      expect(s3.log.committed).toBe(last);
      for (let i = 1; i <= last; i++) {
        const e2 = committedAt(net, 's2', i);
        const e3 = committedAt(net, 's3', i);
        expect(e3 && `${e3.term}:${e3.data}`, `s3 index ${i}`).toBe(e2 && `${e2.term}:${e2.data}`);
      }
    });
  }
});
