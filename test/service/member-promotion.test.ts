// Cluster mode promotes a caught-up learner to voter only once its id is bound to the
// incarnation of the data directory it runs on (member.bind). A voter counts toward commits and
// grants votes; if its directory is wiped before the binding, nothing tells the new directory
// from the old one: checkJoin lets an unbound id join again on an empty directory, as a voter
// that forgot what it acknowledged and voted for. A learner that forgets is harmless.

import { describe, expect, it } from 'vitest';
import { MemberBook } from '../../src/machine/member-book.js';
import type { ConfChange } from '../../src/raft/types.js';
import { promoteCaughtUpLearners } from '../../src/service/members.js';
import type { Swarm } from '../../src/swarm/swarm.js';

/** A leader of voters a1..a3 with learner x, caught up (match = commit), as promoteCaughtUpLearners sees it. */
function fakeSwarm(book: MemberBook): { swarm: Swarm; proposed: ConfChange[] } {
  const proposed: ConfChange[] = [];
  const leader = {
    status: () => ({
      commit: 40,
      conf: { voters: ['a1', 'a2', 'a3'], learners: ['x'] },
      peers: [
        { id: 'a2', match: 40 },
        { id: 'a3', match: 40 },
        { id: 'x', match: 40 },
      ],
    }),
    proposeConfChange: async (cc: ConfChange) => {
      proposed.push(cc);
    },
  };
  const swarm = { cluster: { leader: () => leader }, localMachine: () => ({ id: 'a1', machine: { book } }) } as unknown as Swarm;
  return { swarm, proposed };
}

function bookWithLearner(): MemberBook {
  const b = new MemberBook();
  b.seed('cluster-1', { a1: '127.0.0.1:1', a2: '127.0.0.1:2', a3: '127.0.0.1:3' });
  for (const id of ['a1', 'a2', 'a3']) b.bind(id, `inc-${id}`);
  b.applyConf({ index: 7, term: 1, type: 'conf', data: JSON.stringify({ type: 'addLearner', node: 'x', context: JSON.stringify({ address: '127.0.0.1:4' }) }) });
  return b;
}

describe('promotion of caught-up learners (cluster mode)', () => {
  it('does not promote a caught-up learner whose id is not bound to a data directory yet', async () => {
    const { swarm, proposed } = fakeSwarm(bookWithLearner());
    expect(await promoteCaughtUpLearners(swarm)).toEqual([]);
    expect(proposed).toEqual([]);
  });

  it('promotes it once its incarnation is bound', async () => {
    const book = bookWithLearner();
    expect(book.bind('x', 'inc-x').ok).toBe(true);
    const { swarm, proposed } = fakeSwarm(book);
    expect(await promoteCaughtUpLearners(swarm)).toEqual(['x']);
    expect(proposed.map((c) => [c.type, c.node])).toEqual([['addVoter', 'x']]);
  });
});
