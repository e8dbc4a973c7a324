// A leader asks for a heartbeat answer only when the answer can tell it something: a follower
// it has not heard from within the last heartbeat interval, one that is behind or has appends
// in flight, every follower while a read waits for its quorum or a transfer is under way.
// Otherwise the heartbeat is marked HEARTBEAT_NO_ANSWER: the follower resets its election
// timer and takes the commit index as before, and sends nothing. These tests try to make the
// leader go without hearing a follower for longer than its quorum check and health views allow.

import { describe, expect, it } from 'vitest';
import { Raft } from '../../src/raft/raft.js';
import { DEFAULT_CONFIG, HEARTBEAT_NO_ANSWER, type Message } from '../../src/raft/types.js';
import { SyncNet } from '../helpers/sync-net.js';

const IDS = ['a', 'b', 'c'];
const HB = 5;
const EMIN = 15;

function node(id: string, heartbeatTicks = HB): Raft {
  const cfg = { ...DEFAULT_CONFIG, electionTicksMin: EMIN, electionTicksMax: 30, heartbeatTicks, id, seed: id.charCodeAt(0) };
  return new Raft(cfg, { hardState: { term: 0, vote: null, commit: 0 }, snapshot: null, entries: [], initialConf: { voters: IDS, learners: [] } });
}

function electA(heartbeatTicks = HB): SyncNet {
  return new SyncNet(IDS.map((id) => node(id, heartbeatTicks))).elect('a');
}

const heartbeatsTo = (net: SyncNet, f: string) => net.sent.filter((m) => m.type === 'MsgHeartbeat' && m.to === f);
const answersFrom = (net: SyncNet, f: string) => net.sent.filter((m) => m.type === 'MsgHeartbeatResp' && m.from === f);

describe('heartbeat answers', () => {
  it('an idle leader asks each caught-up follower for an answer every other heartbeat, and stays leader with a healthy view', () => {
    const net = electA();
    const a = net.get('a');
    net.tick(EMIN * 20);
    expect(a.role).toBe('leader');
    for (const f of ['b', 'c']) {
      const hbs = heartbeatsTo(net, f);
      expect(hbs.length).toBeGreaterThanOrEqual(EMIN * 4 - 2);
      const asked = hbs.filter((m) => m.context !== HEARTBEAT_NO_ANSWER).length;
      // Half of them (the other half would repeat what the leader just heard).
      expect(asked).toBeGreaterThanOrEqual(Math.floor(hbs.length / 2));
      expect(asked).toBeLessThanOrEqual(Math.ceil(hbs.length / 2) + 1);
      expect(answersFrom(net, f).length).toBe(asked);
      // Never two unasked in a row: the leader hears every follower at least every other interval.
      for (let i = 1; i < hbs.length; i++) {
        expect(hbs[i - 1]!.context === HEARTBEAT_NO_ANSWER && hbs[i]!.context === HEARTBEAT_NO_ANSWER).toBe(false);
      }
      // The follower still follows: no election anywhere, its commit kept up.
      expect(net.get(f).role).toBe('follower');
      expect(net.get(f).log.committed).toBe(a.log.committed);
    }
    // The health views' measure: every follower heard within one election timeout.
    for (const p of a.status().peers) expect(p.ticksSinceResponse).toBeLessThanOrEqual(2 * HB);
    expect(a.status().quorumActive).toBe(true);
  });

  it('asks at every heartbeat while a follower\'s answers are lost, and the leader steps down only when a quorum is silent', () => {
    const net = electA();
    const a = net.get('a');
    net.tick(HB * 4);
    net.sent.length = 0;
    net.drop = (m) => m.type === 'MsgHeartbeatResp' && m.from === 'b';
    net.tick(EMIN * 6);
    // b is never heard: every heartbeat to it asks again (none marked unanswerable).
    const toB = heartbeatsTo(net, 'b');
    expect(toB.length).toBeGreaterThan(EMIN);
    expect(toB.slice(1).every((m) => m.context !== HEARTBEAT_NO_ANSWER)).toBe(true);
    // c alone keeps the quorum (a, c of three).
    expect(a.role).toBe('leader');
    // Now c's answers are lost too: no quorum heard within the check window: the leader steps down.
    net.drop = (m) => m.type === 'MsgHeartbeatResp';
    net.tick(EMIN * 3);
    expect(a.role).not.toBe('leader');
  });

  it('asks every follower while a read waits for its heartbeat round', () => {
    const net = electA();
    const a = net.get('a');
    net.tick(HB * 4);
    net.sent.length = 0;
    a.readIndex('r:1:1');
    net.settle();
    net.tick(HB);
    const withContext = net.sent.filter((m) => m.type === 'MsgHeartbeat' && m.context === 'r:1:1');
    expect(withContext.map((m) => m.to).sort()).toEqual(['b', 'c']);
    expect(net.sent.filter((m) => m.type === 'MsgHeartbeatResp' && m.context === 'r:1:1').length).toBe(2);
  });

  it('asks a follower that is behind (its answer is what makes the leader resend)', () => {
    const net = electA();
    const a = net.get('a');
    net.tick(HB * 4);
    // c misses an append: the leader believes it still has entries in flight to c.
    net.drop = (m) => m.type === 'MsgApp' && m.to === 'c' && m.entries.length > 0;
    a.propose('lost-for-c');
    net.settle();
    net.drop = () => false;
    // Every heartbeat to c asks for an answer until c holds the whole log again; c was heard
    // within the interval all along (its heartbeat answers), so only being behind asks.
    const whileBehind: Message[] = [];
    for (let t = 0; t < HB * 6 && net.get('c').log.lastIndex() < a.log.lastIndex(); t++) {
      net.sent.length = 0;
      net.tick(1);
      whileBehind.push(...heartbeatsTo(net, 'c'));
    }
    expect(whileBehind.length).toBeGreaterThan(0);
    expect(whileBehind.every((m) => m.context !== HEARTBEAT_NO_ANSWER)).toBe(true);
    // And c caught up through those answers.
    expect(net.get('c').log.lastIndex()).toBe(a.log.lastIndex());
    expect(net.get('c').log.committed).toBe(a.log.committed);
  });

  it('never skips answers when two heartbeat intervals would not fit well inside the election timeout', () => {
    const net = electA(6); // 3 x 6 > 15
    net.tick(EMIN * 6);
    expect(net.sent.some((m) => m.type === 'MsgHeartbeat' && m.context === HEARTBEAT_NO_ANSWER)).toBe(false);
  });

  it('reads an answer to an unanswerable heartbeat (a member that predates the marker) as a plain answer, not a read acknowledgement', () => {
    const net = electA();
    const a = net.get('a');
    a.step({ type: 'MsgHeartbeatResp', from: 'b', to: 'a', term: a.term, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0, logTermHint: 0, context: HEARTBEAT_NO_ANSWER });
    expect(a.takeReadAcks()).toEqual([]);
    expect(a.role).toBe('leader');
  });
});
