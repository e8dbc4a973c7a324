// The replicated address book (cluster mode's membership): built from the log alone, carried
// in snapshots, with removed ids kept so they are never reused.

import { describe, expect, it } from 'vitest';
import { CoordinationMachine } from '../../src/machine/coordination-machine.js';
import type { Entry } from '../../src/raft/types.js';

let index = 0;
const conf = (type: 'addLearner' | 'addVoter' | 'removeNode', node: string, address?: string): Entry => ({
  index: ++index,
  term: 1,
  type: 'conf',
  data: JSON.stringify({ type, node, context: JSON.stringify(address ? { address } : {}) }),
});
const op = (o: unknown): Entry => ({ index: ++index, term: 1, type: 'normal', data: JSON.stringify({ op: o, now: 1000 }) });

describe('member book', () => {
  it('learns addresses from conf entries, keeps removed ids, binds incarnations once, and survives a snapshot', () => {
    const m = new CoordinationMachine();
    expect(m.apply(op({ t: 'member.seed', cluster_id: 'c1', members: { a: '127.0.0.1:1', b: '127.0.0.1:2' } }))).toMatchObject({ ok: true });
    // A second seed (another leader's, after a retry) changes nothing.
    m.apply(op({ t: 'member.seed', cluster_id: 'c2', members: { a: '10.0.0.1:1' } }));
    m.apply(conf('addLearner', 'd', '127.0.0.1:4'));
    m.apply(conf('addVoter', 'd'));
    expect(m.apply(op({ t: 'member.bind', id: 'd', incarnation: 'i1' }))).toMatchObject({ ok: true });
    expect(m.apply(op({ t: 'member.bind', id: 'd', incarnation: 'i2' }))).toMatchObject({ ok: false, code: 'conflict' });
    m.apply(conf('removeNode', 'b'));
    expect(m.apply(op({ t: 'member.bind', id: 'b', incarnation: 'i3' }))).toMatchObject({ ok: false, code: 'conflict' });
    expect(m.apply(op({ t: 'member.bind', id: 'zz', incarnation: 'i4' }))).toMatchObject({ ok: false, code: 'not_found' });
    const view = m.book.view();
    expect(view).toEqual({
      cluster_id: 'c1',
      members: {
        a: { address: '127.0.0.1:1', state: 'active', incarnation: null },
        b: { address: '127.0.0.1:2', state: 'removed', incarnation: null },
        d: { address: '127.0.0.1:4', state: 'active', incarnation: 'i1' },
      },
    });
    const restored = new CoordinationMachine();
    restored.restore(m.snapshot());
    expect(restored.book.view()).toEqual(view);
    // A snapshot from before the book restores an empty one.
    const old = JSON.parse(m.snapshot());
    delete old.book;
    const older = new CoordinationMachine();
    older.restore(JSON.stringify(old));
    expect(older.book.view()).toEqual({ cluster_id: null, members: {} });
  });
});
