// Log time comes from the leader that appends an entry: a command another member forwarded
// is stamped with the leader's clock (stampForwarded) and its own `now` is ignored, so a
// member with a fast clock cannot move TTLs forward for everyone. Same log, same clock.

import { describe, expect, it } from 'vitest';
import { CoordinationMachine, type OpResult } from '../../src/machine/coordination-machine.js';
import { stampForwarded, type Command } from '../../src/machine/types.js';
import type { Entry } from '../../src/raft/types.js';
import { entry, putOp, replay } from './machine-util.js';

const T = 1_700_000_000_000;
const HOUR = 3_600_000;

function forwarded(index: number, cmd: Command, leaderNow: number): Entry {
  return { index, term: 1, type: 'normal', data: stampForwarded(JSON.stringify(cmd), leaderNow) };
}

describe('log time follows the appending leader clock', () => {
  const log: Entry[] = [
    entry(1, { op: putOp('ttl', 'v', { ttl_s: 1800 }), now: T }),
    // Forwarded by a member whose clock is an hour ahead; the leader appended it at T + 1 s.
    forwarded(2, { op: { t: 'clock' }, now: T + HOUR }, T + 1_000),
    forwarded(3, { op: putOp('other', 'w'), now: T + HOUR, client: 'c1', seq: 1 }, T + 2_000),
  ];

  it('a forwarded command with a clock an hour ahead does not expire TTL memory early', () => {
    const m = replay(log);
    expect(m.clock).toBe(T + 2_000);
    expect(m.memory.get('default', 'ttl', m.clock)?.value).toBe('v');
    // Its write is stamped with log time, not the forwarder's clock.
    expect(m.memory.get('default', 'other', m.clock)?.updated_at).toBe(T + 2_000);
  });

  it('the leader clock moves log time; it never goes backwards; replicas agree', () => {
    const more = [...log, forwarded(4, { op: { t: 'clock' }, now: 0 }, T + 1_900_000), entry(5, { op: { t: 'clock' }, now: T }), entry(6, { op: { t: 'clock' }, now: T + 1_950_000 })];
    const a = replay(more.slice(0, 4));
    expect(a.clock).toBe(T + 1_900_000);
    expect(a.memory.get('default', 'ttl', a.clock)).toBeUndefined();
    // An older stamp (entry 5) leaves log time where it was.
    expect(replay(more.slice(0, 5)).clock).toBe(T + 1_900_000);
    const b = replay(more);
    expect(b.clock).toBe(T + 1_950_000);
    expect(replay(more).snapshot()).toBe(b.snapshot());
  });

  it('sessions of forwarded commands still deduplicate', () => {
    const m = replay(log);
    const again = m.apply(forwarded(4, { op: putOp('other', 'w2'), now: T, client: 'c1', seq: 1 }, T + 3_000)) as OpResult;
    expect(again.ok).toBe(true);
    expect(m.duplicateCommands).toBe(1);
    expect(m.memory.get('default', 'other', m.clock)?.value).toBe('w');
  });

  it('a key named lnow inside the forwarded data cannot override the leader stamp', () => {
    const m = new CoordinationMachine();
    // Unbalanced on purpose: wrapped, it becomes a top-level "lnow" before the leader's.
    const smuggled = `{"op":{"t":"clock"},"now":${T}},"lnow":${T + HOUR}`;
    m.apply({ index: 1, term: 1, type: 'normal', data: stampForwarded(smuggled, T) });
    expect(m.clock).toBe(T);
  });
});
