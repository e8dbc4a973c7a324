// The election timer restarts when a member hears its leader or grants a vote (Raft 5.2), not
// when a vote request merely shows it a newer term. A member whose log is more up to date than
// the candidates' refuses them and must still reach its own timeout: restarted by each refused
// request, it could lose every race to candidates that cannot win (simulator seed 3077 with
// --snapshot-parts: no pre-vote, a bare majority of 4 of 6 voters, only one able to win).

import { describe, expect, it } from 'vitest';
import { Raft } from '../../src/raft/raft.js';
import { DEFAULT_CONFIG, newMessage, type Entry, type Message } from '../../src/raft/types.js';

const VOTERS = ['a', 'b', 'c'];

function member(id: string, entries: Entry[]): Raft {
  const cfg = { ...DEFAULT_CONFIG, preVote: false, checkQuorum: true, electionTicksMin: 10, electionTicksMax: 20, heartbeatTicks: 3, id, seed: 7 };
  return new Raft(cfg, { hardState: { term: 2, vote: null, commit: 1 }, snapshot: null, entries, initialConf: { voters: VOTERS, learners: [] } });
}

function drain(r: Raft): Message[] {
  const out: Message[] = [];
  while (r.hasReady()) {
    const rd = r.ready();
    r.advance(rd);
    out.push(...rd.messages);
  }
  return out;
}

const e = (index: number, term: number): Entry => ({ index, term, type: 'normal', data: `e${index}` });
const voteFrom = (from: string, term: number, lastIndex: number, lastTerm: number) =>
  newMessage({ type: 'MsgVote', from, to: 'a', term, index: lastIndex, logTerm: lastTerm });

/** Ticks a until its election timeout is one tick away. */
function nearTimeout(a: Raft): void {
  drain(a);
  while (a.ticksUntilTimeout() > 1) a.tick();
  expect(a.role).toBe('follower');
}

describe('election timer and vote requests', () => {
  it('a member that refuses a stale candidate keeps its own deadline and campaigns at it', () => {
    const a = member('a', [e(1, 1), e(2, 2)]);
    nearTimeout(a);
    // b is at a newer term but its log ends at term 1: a refuses it.
    a.step(voteFrom('b', 5, 1, 1));
    const answers = drain(a).filter((m) => m.type === 'MsgVoteResp');
    expect(answers.map((m) => m.reject)).toEqual([true]);
    expect(a.term).toBe(5);
    expect(a.ticksUntilTimeout()).toBe(1);
    a.tick();
    expect(a.role).toBe('candidate');
    expect(a.term).toBe(6);
    expect(drain(a).filter((m) => m.type === 'MsgVote').map((m) => m.to).sort()).toEqual(['b', 'c']);
  });

  it('a member that grants a vote restarts its timer (it does not disrupt the candidate it voted for)', () => {
    const a = member('a', [e(1, 1)]);
    nearTimeout(a);
    a.step(voteFrom('b', 5, 2, 2));
    expect(drain(a).filter((m) => m.type === 'MsgVoteResp').map((m) => m.reject)).toEqual([false]);
    expect(a.ticksUntilTimeout()).toBeGreaterThan(1);
    a.tick();
    expect(a.role).toBe('follower');
  });
});
