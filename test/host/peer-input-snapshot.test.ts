// A MsgSnap at or below the member's commit index is only answered by the core (its data is
// never restored): the state machine's check, which parses the whole state (seconds for a
// large one), is skipped for it. Above the commit it still runs and can refuse.

import { describe, expect, it } from 'vitest';
import { refusePeerMessage } from '../../src/host/peer-input.js';
import { newMessage } from '../../src/raft/types.js';

const snap = (index: number) =>
  newMessage({ type: 'MsgSnap', from: 'a', to: 'b', term: 3, snapshot: { metadata: { index, term: 2, confState: { voters: ['a', 'b'], learners: [] } }, data: ['meta', 'part'] } });

describe('refusePeerMessage: MsgSnap', () => {
  it('checks a snapshot above the commit index, not one at or below it', () => {
    let checks = 0;
    const ctx = { checkSnapshot: () => (checks++, 'bad state'), committed: () => 100 };
    expect(refusePeerMessage(snap(100), ctx)).toBeNull();
    expect(refusePeerMessage(snap(50), ctx)).toBeNull();
    expect(checks).toBe(0);
    expect(refusePeerMessage(snap(101), ctx)).toMatch(/bad state/);
    expect(checks).toBe(1);
  });
});
