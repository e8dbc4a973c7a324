// A client's retry of the same (session, seq) at the edge of its session's expiry, in log time
// (the clock the entries carry, injected here). At exactly the timeout the session lives: the
// retry is answered from the session table, not applied again. One millisecond later it is
// refused (session_expired), never applied, and so is a new seq. The same holds for a short
// session that sits behind a live long one in the LRU order (expiry by scan stops at the first
// live session, so the lookup itself must check), and on a replica restored from a snapshot
// taken just before the edge.

import { describe, expect, it } from 'vitest';
import { CoordinationMachine, SESSION_TIMEOUT_MS, type OpResult } from '../../src/machine/coordination-machine.js';
import type { Command, Op } from '../../src/machine/types.js';
import { entry, putOp } from './machine-util.js';

const T0 = 1_700_000_000_000;

class Log {
  index = 0;
  constructor(readonly replicas: CoordinationMachine[]) {}

  /** Applies to every replica; they must agree. */
  push(cmd: Command): OpResult {
    const e = entry(++this.index, cmd);
    const rs = this.replicas.map((m) => m.apply(e) as OpResult);
    for (const r of rs) expect(r).toEqual(rs[0]);
    return rs[0]!;
  }

  register(now: number, timeout_ms?: number): string {
    const r = this.push({ op: { t: 'session.register', ...(timeout_ms === undefined ? {} : { timeout_ms }) }, now });
    return (r as { value: { session: string } }).value.session;
  }

  send(client: string, seq: number, op: Op, now: number): OpResult {
    return this.push({ op, now, client, seq, ack: 0 });
  }
}

const version = (m: CoordinationMachine, key: string): number | undefined => (m.memory.get('default', key, T0) as { version?: number } | undefined)?.version;

describe('a retry of the same (session, seq) at the edge of the session timeout (log time)', () => {
  it('at exactly the timeout: answered from the table; 1 ms later: refused, not applied, on every replica', () => {
    const a = new CoordinationMachine();
    const log = new Log([a]);
    const s = log.register(T0);
    expect(log.send(s, 1, putOp('k', 'v1'), T0)).toMatchObject({ ok: true, value: { version: 1 } });
    // A replica restored from a snapshot taken here joins the log.
    const b = new CoordinationMachine();
    b.restore(a.snapshot());
    log.replicas.push(b);
    const dupBefore = a.duplicateCommands;
    expect(log.send(s, 1, putOp('k', 'v1'), T0 + SESSION_TIMEOUT_MS)).toMatchObject({ ok: true, value: { version: 1 } });
    expect(a.duplicateCommands).toBe(dupBefore + 1);
    // Touched by that retry: alive a whole timeout more. Then idle past it by 1 ms.
    const edge = T0 + 2 * SESSION_TIMEOUT_MS;
    expect(log.send(s, 1, putOp('k', 'v1'), edge + 1)).toMatchObject({ ok: false, code: 'session_expired' });
    expect(log.send(s, 2, putOp('k', 'v2'), edge + 1)).toMatchObject({ ok: false, code: 'session_expired' });
    for (const m of [a, b]) expect(version(m, 'k')).toBe(1);
    expect(a.snapshot()).toBe(b.snapshot());
  });

  it('a short session behind a live long one in LRU order expires by its own timeout: its retry and new seqs are refused', () => {
    const m = new CoordinationMachine();
    const log = new Log([m]);
    const long = log.register(T0);
    const short = log.register(T0 + 1, 5_000);
    expect(log.send(long, 1, putOp('l', 1), T0 + 1)).toMatchObject({ ok: true });
    expect(log.send(short, 1, putOp('s', 1), T0 + 2)).toMatchObject({ ok: true, value: { version: 1 } });
    // short: last active T0+2, timeout 5 s. At T0+5002 (exactly the timeout) its retry is
    // answered from the table, and touches it: LRU order is now [long, short], long live.
    expect(log.send(short, 1, putOp('s', 1), T0 + 5_002)).toMatchObject({ ok: true, value: { version: 1 } });
    expect([...m.sessions.keys()]).toEqual([long, short]);
    // At T0+10003 short is idle 5,001 ms: the scan stops at long (live), the lookup refuses it.
    expect(log.send(short, 2, putOp('s', 2), T0 + 10_003)).toMatchObject({ ok: false, code: 'session_expired' });
    expect(log.send(short, 1, putOp('s', 1), T0 + 10_003)).toMatchObject({ ok: false, code: 'session_expired' });
    expect(version(m, 's')).toBe(1);
  });
});
