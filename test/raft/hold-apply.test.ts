// Raft.holdApply: while any hold is taken, Readys carry no committed entries (the host copies
// the state over several turns and it must not change under it). Holds are counted: a member's
// own snapshot for a follower and a backup may copy at once, and the first to finish must not
// let entries apply under the other's copy.

import { describe, expect, it } from 'vitest';
import { Raft } from '../../src/raft/raft.js';
import { DEFAULT_CONFIG, type Entry } from '../../src/raft/types.js';

const entries: Entry[] = [1, 2, 3].map((index) => ({ index, term: 1, type: 'normal', data: `e${index}` }));

/** A lone voter holding three entries, all committed (commit 3), none applied yet. */
function single(): Raft {
  return new Raft({ ...DEFAULT_CONFIG, id: 'a', seed: 1 }, { hardState: { term: 1, vote: 'a', commit: 3 }, snapshot: null, entries, initialConf: { voters: ['a'], learners: [] } });
}

/** Committed entries handed out by the Readys available now. */
function applied(r: Raft): number[] {
  const out: number[] = [];
  while (r.hasReady()) {
    const rd = r.ready();
    out.push(...rd.committedEntries.map((e) => e.index));
    r.advance(rd);
  }
  return out;
}

describe('holding applies', () => {
  it('no committed entry is handed out while a hold is taken; all of them once it is released', () => {
    const r = single();
    const release = r.holdApply();
    expect(applied(r)).toEqual([]);
    release();
    expect(applied(r)).toEqual([1, 2, 3]);
  });

  it('two holds: releasing one keeps the other, and a release called twice counts once', () => {
    const r = single();
    const backup = r.holdApply();
    const member = r.holdApply();
    member();
    member();
    expect(applied(r)).toEqual([]);
    backup();
    expect(applied(r)).toEqual([1, 2, 3]);
  });
});
