// A member that holds the membership change making it a voter, but never heard it committed
// (the leader's notice was lost, then the leader), keeps its old view: it never campaigns,
// and with the longest log it refuses the others. A candidate's vote request carries the
// candidate's commit index and the term of its entry there; a member whose entry at that index
// has the same term commits that far (log matching), applies the change and campaigns.
// (Simulator seed 1947 found the deadlock once leaders held commit notices: see
// test/host/commit-notice.test.ts.)

import { describe, expect, it } from 'vitest';
import { Raft } from '../../src/raft/raft.js';
import { DEFAULT_CONFIG, newMessage, type Entry, type Message } from '../../src/raft/types.js';

const cfg = { ...DEFAULT_CONFIG, electionTicksMin: 10, electionTicksMax: 20, heartbeatTicks: 3, id: 'd', seed: 4 };
const log: Entry[] = [
  { index: 1, term: 2, type: 'normal', data: 'x' },
  { index: 2, term: 2, type: 'conf', data: JSON.stringify({ type: 'addVoter', node: 'd' }) },
  { index: 3, term: 2, type: 'normal', data: 'y' },
];

function learnerD(): Raft {
  return new Raft(cfg, { hardState: { term: 2, vote: null, commit: 1 }, snapshot: null, entries: log, initialConf: { voters: ['a', 'b', 'c'], learners: ['d'] } });
}

/** Ready-advance loop; returns every message sent. */
function drain(r: Raft): Message[] {
  const out: Message[] = [];
  while (r.hasReady()) {
    const rd = r.ready();
    out.push(...rd.messages);
    r.advance(rd);
  }
  return out;
}

function preVote(commit: number, commitTerm: number): Message {
  return newMessage({ type: 'MsgPreVote', from: 'a', to: 'd', term: 3, index: 2, logTerm: 2, commit, logTermHint: commitTerm });
}

describe('commit index learned from a candidate', () => {
  it('a member learns the commit of its own promotion from a pre-vote, applies it and campaigns', () => {
    const d = learnerD();
    drain(d);
    d.step(preVote(2, 2));
    const sent = drain(d);
    // It refuses a's shorter log all the same.
    expect(sent.filter((m) => m.type === 'MsgPreVoteResp').map((m) => m.reject)).toEqual([true]);
    expect(d.log.committed).toBe(2);
    let campaigned = false;
    for (let i = 0; i < 40 && !campaigned; i++) {
      d.tick();
      campaigned = drain(d).some((m) => m.type === 'MsgPreVote' && m.from === 'd');
    }
    expect(campaigned).toBe(true);
  });

  it('never commits past a mismatch: another term at that index, or an index beyond its log', () => {
    const d = learnerD();
    drain(d);
    d.step(preVote(2, 1));
    d.step(preVote(5, 2));
    drain(d);
    expect(d.log.committed).toBe(1);
    for (let i = 0; i < 40; i++) {
      d.tick();
      expect(drain(d).some((m) => m.type === 'MsgPreVote' && m.from === 'd')).toBe(false);
    }
  });
});
