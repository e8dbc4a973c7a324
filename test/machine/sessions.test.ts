// Registered client sessions (dissertation 6.3) in the replicated machine: a command of an
// unknown, expired or evicted session is refused, never applied a second time; expiry follows
// log time, identically on every replica, and survives snapshot/restore.

import { describe, expect, it } from 'vitest';
import { CoordinationMachine, MAX_SESSIONS, SESSION_TIMEOUT_MS, type OpResult } from '../../src/machine/coordination-machine.js';
import type { Command, Op } from '../../src/machine/types.js';
import type { Entry } from '../../src/raft/types.js';
import { createOp, entry, putOp, replay } from './machine-util.js';

/** A log under construction, applied to `m` as it grows. */
class Log {
  readonly entries: Entry[] = [];
  constructor(readonly m = new CoordinationMachine()) {}

  push(cmd: Command): OpResult {
    const e = entry(this.entries.length + 1, cmd);
    this.entries.push(e);
    return this.m.apply(e) as OpResult;
  }

  register(now: number, timeout_ms?: number): string {
    const r = this.push({ op: { t: 'session.register', ...(timeout_ms === undefined ? {} : { timeout_ms }) }, now });
    expect(r.ok).toBe(true);
    return (r as { value: { session: string } }).value.session;
  }

  send(client: string, seq: number, op: Op, now: number): OpResult {
    return this.push({ op, now, client, seq, ack: seq });
  }
}

const T0 = 1_700_000_000_000;
const MIN = 60_000;

describe('CoordinationMachine: registered sessions', () => {
  it('5,000 clients (more than the session cap), then the first retries: its put and its orchestration are not applied again', () => {
    const log = new Log();
    const first = log.register(T0);
    expect(log.send(first, 1, putOp('first', 'v'), T0)).toMatchObject({ ok: true, value: { version: 1 } });
    expect(log.send(first, 2, createOp(3), T0)).toMatchObject({ ok: true, value: { orchestration_id: 'orch-3', deduplicated: false } });
    for (let i = 1; i < 5_000; i++) {
      const c = log.register(T0 + i);
      expect(log.send(c, 1, putOp(`k${i}`, i), T0 + i)).toMatchObject({ ok: true });
    }
    expect(log.m.sessions.size).toBeLessThanOrEqual(MAX_SESSIONS);
    // The first client's answers were lost; it retries both with the same (client, seq).
    const retryPut = log.send(first, 1, putOp('first', 'v'), T0 + 6_000);
    const retryOrch = log.send(first, 2, createOp(3), T0 + 6_000);
    for (const r of [retryPut, retryOrch]) {
      // Evicted: refused (the outcome of the original is for the client to check), not applied.
      expect(r).toMatchObject({ ok: false, code: 'session_expired' });
      expect((r as { message: string }).message).toMatch(new RegExp(`session ${first} is unknown or expired`));
    }
    expect(log.m.memory.get('default', 'first', log.m.clock)?.version).toBe(1);
    expect(log.m.tasks.orchs.size).toBe(1);
    expect(log.m.tasks.tasks.size).toBe(3);
    expect(log.m.expiredCommands).toBe(2);
  });

  it('expires a session idle longer than the timeout, by log time; an active one lives on', () => {
    const log = new Log();
    const a = log.register(T0);
    const b = log.register(T0);
    expect(log.send(a, 1, putOp('a', 1), T0 + 10 * MIN)).toMatchObject({ ok: true, value: { version: 1 } });
    expect(log.send(b, 1, putOp('b', 1), T0 + 10 * MIN)).toMatchObject({ ok: true, value: { version: 1 } });
    // Exactly the timeout idle: still alive.
    expect(log.send(a, 2, putOp('a', 2), T0 + 10 * MIN + SESSION_TIMEOUT_MS)).toMatchObject({ ok: true, value: { version: 2 } });
    // One ms past it: b is expired when the next entry applies, even one without a session.
    expect(log.push({ op: { t: 'clock' }, now: T0 + 10 * MIN + SESSION_TIMEOUT_MS + 1 }).ok).toBe(true);
    expect(log.m.sessions.has(b)).toBe(false);
    expect(log.m.sessions.has(a)).toBe(true);
    // b's retry of an applied seq, and a new seq of b: both refused, neither applied.
    expect(log.send(b, 1, putOp('b', 1), T0 + 10 * MIN + SESSION_TIMEOUT_MS + 2)).toMatchObject({ ok: false, code: 'session_expired' });
    expect(log.send(b, 2, putOp('b', 2), T0 + 10 * MIN + SESSION_TIMEOUT_MS + 2)).toMatchObject({ ok: false, code: 'session_expired' });
    expect(log.m.memory.get('default', 'b', log.m.clock)?.version).toBe(1);
    // a keeps working; its retry is still answered from the session.
    expect(log.send(a, 2, putOp('a', 2), T0 + 2 * SESSION_TIMEOUT_MS)).toMatchObject({ ok: true, value: { version: 2 } });
    expect(log.send(a, 3, putOp('a', 3), T0 + 2 * SESSION_TIMEOUT_MS)).toMatchObject({ ok: true, value: { version: 3 } });
    // A proposer's clock behind the log's never revives an expired session.
    expect(log.send(b, 3, putOp('b', 3), T0)).toMatchObject({ ok: false, code: 'session_expired' });
    expect(log.m.expiredCommands).toBe(3);
  });

  it('a shorter timeout asked at registration is honoured (clamped to the machine bounds)', () => {
    const log = new Log();
    const quick = log.register(T0, 5_000);
    const tiny = log.register(T0, 1);
    const huge = log.register(T0, 10 * SESSION_TIMEOUT_MS);
    expect([quick, tiny, huge].map((s) => log.m.sessions.get(s)!.timeout_ms)).toEqual([5_000, 1_000, SESSION_TIMEOUT_MS]);
    expect(log.send(quick, 1, putOp('q', 1), T0 + 5_000)).toMatchObject({ ok: true });
    expect(log.send(quick, 2, putOp('q', 2), T0 + 10_001)).toMatchObject({ ok: false, code: 'session_expired' });
    expect(log.m.memory.get('default', 'q', log.m.clock)?.version).toBe(1);
  });

  it('replicas applying the same log, and one restored from a snapshot mid-way, hold identical session tables', () => {
    const log = new Log();
    let now = T0;
    const ids: string[] = [];
    const seqs = new Map<string, number>();
    let mid = '';
    // Clients come and go, idle for varying times (some past the timeout), some re-register.
    for (let step = 0; step < 400; step++) {
      now += ((step * 7919) % 13) * 60_000;
      if (step % 5 === 0 || ids.length === 0) ids.push(log.register(now, step % 3 === 0 ? 20 * MIN : undefined));
      const c = ids[(step * 31) % ids.length]!;
      const seq = (seqs.get(c) ?? 0) + 1;
      seqs.set(c, seq);
      log.send(c, seq, putOp(`k${step % 9}`, step), now);
      if (step % 7 === 0) log.send(c, seq, putOp(`k${step % 9}`, step), now); // a retry
      if (step === 200) mid = log.m.snapshot();
    }
    expect(log.m.expiredCommands).toBeGreaterThan(20);
    expect(log.m.duplicateCommands).toBeGreaterThan(5);
    const other = replay(log.entries);
    const restored = new CoordinationMachine();
    restored.restore(mid);
    for (const e of log.entries.slice(restored.appliedIndex)) restored.apply(e);
    for (const m of [other, restored]) {
      expect([...m.sessions.entries()]).toEqual([...log.m.sessions.entries()]);
      expect(m.expiredCommands).toBe(log.m.expiredCommands);
      expect(m.snapshot()).toBe(log.m.snapshot());
    }
  });

  it('one-shot sessions with a short timeout do not evict a long-lived session once they expire', () => {
    const log = new Log();
    const longLived = log.register(T0);
    expect(log.send(longLived, 1, putOp('l', 1), T0)).toMatchObject({ ok: true });
    for (let i = 1; i < MAX_SESSIONS; i++) log.register(T0, 1_000);
    expect(log.m.sessions.size).toBe(MAX_SESSIONS);
    // Past the one-shots' timeout, more registrations arrive: the expired ones go first.
    for (let i = 0; i < 100; i++) log.register(T0 + 2_000);
    expect(log.m.sessions.has(longLived)).toBe(true);
    expect(log.m.sessions.size).toBe(101);
    expect(log.send(longLived, 1, putOp('l', 1), T0 + 3_000)).toMatchObject({ ok: true, value: { version: 1 } });
    expect(log.m.duplicateCommands).toBe(1);
    // A second wave fills the table again, then expires: the long-lived session still stays
    // (the scan for expired sessions must see the wave registered after the previous scan).
    for (let i = log.m.sessions.size; i < MAX_SESSIONS; i++) log.register(T0 + 4_000, 1_000);
    expect(log.m.sessions.size).toBe(MAX_SESSIONS);
    for (let i = 0; i < 10; i++) log.register(T0 + 6_000);
    expect(log.m.sessions.has(longLived)).toBe(true);
    expect(log.m.sessions.size).toBe(1 + 100 + 10);
  });

  it('a log written before registration existed replays as it did (implicit sessions) until the first registration', () => {
    const log = new Log();
    expect(log.send('legacy', 1, putOp('k', 1), T0)).toMatchObject({ ok: true, value: { version: 1 } });
    expect(log.send('legacy', 1, putOp('k', 1), T0)).toMatchObject({ ok: true, value: { version: 1 } });
    expect(log.m.explicitSessions).toBe(false);
    log.register(T0 + 1);
    // The legacy session, created before, lives on; an unknown client is now refused.
    expect(log.send('legacy', 2, putOp('k', 2), T0 + 2)).toMatchObject({ ok: true, value: { version: 2 } });
    expect(log.send('stranger', 1, putOp('k', 3), T0 + 2)).toMatchObject({ ok: false, code: 'session_expired' });
    expect(log.m.memory.get('default', 'k', log.m.clock)?.version).toBe(2);
  });

  it('restores a version 1 snapshot: its sessions keep deduplicating and expire by the default timeout', () => {
    const log = new Log();
    expect(log.send('old', 1, putOp('k', 1), T0)).toMatchObject({ ok: true, value: { version: 1 } });
    const v2 = JSON.parse(log.m.snapshot()) as Record<string, unknown> & { sessions: unknown[][] };
    const v1 = { ...v2, v: 1, sessions: v2.sessions.map((s) => s.slice(0, 3)) };
    delete (v1 as Record<string, unknown>).explicitSessions;
    delete (v1 as Record<string, unknown>).expiredCommands;
    const m = new CoordinationMachine();
    m.restore(JSON.stringify(v1));
    expect(m.snapshot()).toBe(log.m.snapshot());
    const next = new Log(m);
    next.entries.push(...log.entries);
    expect(next.send('old', 1, putOp('k', 1), T0 + 1)).toMatchObject({ ok: true, value: { version: 1 } });
    next.register(T0 + 2);
    expect(next.send('old', 2, putOp('k', 2), T0 + 1 + SESSION_TIMEOUT_MS + 1)).toMatchObject({ ok: false, code: 'session_expired' });
    expect(m.memory.get('default', 'k', m.clock)?.version).toBe(1);
  });
});
