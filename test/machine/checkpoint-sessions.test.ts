// Client sessions across checkpoint rows (incremental snapshots): a member restarted from its
// rows must answer a client's late retry as the members that applied every entry do. A
// session evicted by count (past MAX_SESSIONS, which the random checkpoint property never
// reaches) must leave no row behind, or the restarted member resurrects it: it would apply a
// retry the others refuse (session_expired), and the replicas diverge. A retry of a session it
// still holds is answered from the restored results, never applied again.

import { describe, expect, it } from 'vitest';
import { CoordinationMachine, MAX_SESSIONS, type OpResult } from '../../src/machine/coordination-machine.js';
import type { Command, Op } from '../../src/machine/types.js';
import { CheckpointImage } from '../../src/storage/memory-storage.js';
import { createOp, entry, putOp } from './machine-util.js';

const T0 = 1_700_000_000_000;
const CONF = { voters: ['n1'], learners: [] };

/** One log applied to a live replica; checkpoints go to `image`, restarts come back from it. */
class Member {
  m = new CoordinationMachine();
  readonly image = new CheckpointImage();
  private index = 0;

  push(cmd: Command): OpResult {
    return this.m.apply(entry(++this.index, cmd)) as OpResult;
  }

  register(now: number): string {
    const r = this.push({ op: { t: 'session.register' }, now });
    return (r as { value: { session: string } }).value.session;
  }

  send(client: string, seq: number, op: Op, now: number, ack = 0): OpResult {
    return this.push({ op, now, client, seq, ack });
  }

  checkpoint(): void {
    this.image.apply(structuredClone({ metadata: { index: this.m.appliedIndex, term: 1, confState: CONF }, ...this.m.takeCheckpoint() }));
  }

  /** A crash and a restart from the stored rows (no log tail: the checkpoint is at the last entry). */
  restart(): CoordinationMachine {
    const before = this.m.snapshot();
    const m = new CoordinationMachine();
    m.restoreCheckpoint(this.image.reader());
    expect(m.snapshot()).toBe(before);
    this.m = m;
    return m;
  }
}

describe('client sessions in checkpoint rows', () => {
  it('a session evicted by count between two checkpoints leaves no row: after a restart from rows its retry is refused, not applied', () => {
    const a = new Member();
    const first = a.register(T0);
    expect(a.send(first, 1, putOp('first', 'v'), T0)).toMatchObject({ ok: true, value: { version: 1 } });
    expect(a.send(first, 2, createOp(3), T0)).toMatchObject({ ok: true, value: { deduplicated: false } });
    a.checkpoint(); // the first session's row is stored
    for (let i = 1; i <= MAX_SESSIONS; i++) a.register(T0 + i); // the last one evicts the first (least recently active)
    expect(a.m.sessions.has(first)).toBe(false);
    a.checkpoint(); // incremental: must delete the evicted session's row
    const m = a.restart();
    expect(m.sessions.has(first)).toBe(false);
    expect(m.sessions.size).toBe(MAX_SESSIONS);
    // The first client's answers were lost; it retries both, long after.
    const put = a.send(first, 1, putOp('first', 'v'), T0 + 10 * MAX_SESSIONS);
    const orch = a.send(first, 2, createOp(3), T0 + 10 * MAX_SESSIONS);
    expect(put).toMatchObject({ ok: false, code: 'session_expired' });
    expect(orch).toMatchObject({ ok: false, code: 'session_expired' });
    expect(m.memory.get('default', 'first', m.clock)?.version).toBe(1);
    expect(m.tasks.orchs.size).toBe(1);
  });

  it('a live session restored from rows answers a late retry from its results, and an acknowledged seq stays refused', () => {
    const a = new Member();
    const s = a.register(T0);
    const put = a.send(s, 1, putOp('k', 'v1'), T0);
    const orch = a.send(s, 2, createOp(4, { idempotency_key: null }), T0);
    a.send(s, 3, putOp('k2', 'x'), T0, 3); // acks 1 and 2: below the floor from here
    const other = a.register(T0 + 1);
    a.checkpoint();
    a.send(other, 1, putOp('k', 'v2'), T0 + 2); // another client moves k on
    a.send(s, 4, putOp('k3', 'y'), T0 + 3, 3);
    a.checkpoint();
    const m = a.restart();
    const dups = m.duplicateCommands;
    // seq 4 (its answer was lost): the stored outcome, not a second write.
    expect(a.send(s, 4, putOp('k3', 'y'), T0 + 60_000, 3)).toEqual({ ok: true, value: { key: 'k3', namespace: 'default', version: 1, expires_at: null } });
    // seq 1 and 2 were acknowledged: refused as stale, never re-applied (k stays v2, one orchestration).
    expect(a.send(s, 1, putOp('k', 'v1'), T0 + 60_000, 3)).toMatchObject({ ok: false, code: 'stale_sequence' });
    expect(a.send(s, 2, createOp(4), T0 + 60_000, 3)).toMatchObject({ ok: false, code: 'stale_sequence' });
    expect(m.memory.get('default', 'k', m.clock)?.value).toBe('v2');
    expect(m.memory.get('default', 'k3', m.clock)?.version).toBe(1);
    expect(m.tasks.orchs.size).toBe(1);
    expect(m.duplicateCommands).toBe(dups + 3);
    expect(put.ok && orch.ok).toBe(true);
  });
});
