// A leader's append that only carries a new commit index, sent to a follower known to hold
// everything before it, is a COMMIT_NOTICE: the follower commits and sends no answer (it would
// tell the leader nothing). Every other append is still answered: one with entries, an empty
// one not marked as a notice (a probing leader's), and a notice the follower cannot accept.

import { describe, expect, it } from 'vitest';
import { Raft } from '../../src/raft/raft.js';
import { COMMIT_NOTICE, DEFAULT_CONFIG, newMessage, type Message } from '../../src/raft/types.js';
import { SyncNet } from '../helpers/sync-net.js';

const IDS = ['a', 'b', 'c'];

function node(id: string): Raft {
  const cfg = { ...DEFAULT_CONFIG, electionTicksMin: 10, electionTicksMax: 20, heartbeatTicks: 3, id, seed: id.charCodeAt(0) };
  return new Raft(cfg, { hardState: { term: 0, vote: null, commit: 0 }, snapshot: null, entries: [], initialConf: { voters: IDS, learners: [] } });
}

function electA(): SyncNet {
  return new SyncNet(IDS.map(node)).elect('a');
}

describe('commit notices', () => {
  it('a replicating follower commits from a notice and sends no answer; entries are still acknowledged', () => {
    const net = electA();
    const a = net.get('a');
    const { index } = a.propose('x');
    net.settle();
    expect(a.log.committed).toBe(index);
    for (const f of ['b', 'c']) expect(net.get(f).log.committed).toBe(index);
    const appsTo = (f: string) => net.sent.filter((m) => m.type === 'MsgApp' && m.to === f);
    const acksFrom = (f: string) => net.sent.filter((m) => m.type === 'MsgAppResp' && m.from === f);
    for (const f of ['b', 'c']) {
      const apps = appsTo(f);
      expect(apps.map((m) => [m.entries.length, m.context])).toEqual([
        [1, ''],
        [0, COMMIT_NOTICE],
      ]);
      expect(apps[1]?.commit).toBe(index);
      // One answer: the entry's. Before notices every follower answered twice per write.
      expect(acksFrom(f).map((m) => m.index)).toEqual([index]);
    }
  });

  it('keeps writing and committing over many writes with notices unanswered', () => {
    const net = electA();
    const a = net.get('a');
    let last = 0;
    for (let i = 0; i < 50; i++) {
      last = a.propose(`w${i}`).index;
      net.settle();
    }
    for (const id of IDS) expect(net.get(id).log.committed).toBe(last);
    const acks = net.sent.filter((m) => m.type === 'MsgAppResp').length;
    const notices = net.sent.filter((m) => m.type === 'MsgApp' && m.context === COMMIT_NOTICE).length;
    expect(notices).toBe(100);
    expect(acks).toBe(100);
  });

  it('a large commit is not a notice: its answer comes once the follower applied it', () => {
    const net = electA();
    const a = net.get('a');
    const { index } = a.propose('v'.repeat(100 << 10));
    net.settle();
    for (const f of ['b', 'c']) {
      expect(net.get(f).log.committed).toBe(index);
      const apps = net.sent.filter((m) => m.type === 'MsgApp' && m.to === f);
      expect(apps.map((m) => [m.entries.length, m.context])).toEqual([
        [1, ''],
        [0, ''],
      ]);
      expect(net.sent.filter((m) => m.type === 'MsgAppResp' && m.from === f).map((m) => m.index)).toEqual([index, index]);
    }
    // The next small write's notice is marked again.
    a.propose('small');
    net.settle();
    expect(net.sent.filter((m) => m.type === 'MsgApp' && m.context === COMMIT_NOTICE)).toHaveLength(2);
  });

  it('a follower answers an empty append that is not a notice, and a notice it cannot accept', () => {
    const net = electA();
    const b = net.get('b');
    const term = b.term;
    const at = b.log.lastIndex();
    const empty = (context: string, index: number, logTerm: number) =>
      newMessage({ type: 'MsgApp', from: 'a', to: 'b', term, index, logTerm, commit: at, context });
    const answers = (m: Message): Message[] => {
      b.step(m);
      const out: Message[] = [];
      while (b.hasReady()) {
        const rd = b.ready();
        b.advance(rd);
        out.push(...rd.messages);
      }
      return out.filter((x) => x.type === 'MsgAppResp');
    };
    expect(answers(empty('', at, term)).map((m) => [m.index, m.reject])).toEqual([[at, false]]);
    expect(answers(empty(COMMIT_NOTICE, at, term))).toEqual([]);
    // A notice whose previous entry b does not hold (an index past its log) is refused, aloud.
    expect(answers(empty(COMMIT_NOTICE, at + 5, term)).map((m) => m.reject)).toEqual([true]);
  });
});
