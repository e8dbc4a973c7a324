// A peer's snapshot is checked before it is installed: the machine's own snapshots must always
// pass (a check that refused the current format left members unable to catch up: the cluster
// chaos test found followers stuck 3,700 entries behind), and garbage must not.

import { describe, expect, it } from 'vitest';
import { CoordinationMachine } from '../../src/machine/coordination-machine.js';

describe('CoordinationMachine.checkSnapshot', () => {
  it('accepts what snapshot() writes, empty or not, and a v1 snapshot', () => {
    const m = new CoordinationMachine();
    expect(m.checkSnapshot(m.snapshot())).toBeNull();
    m.apply({ index: 1, term: 1, type: 'normal', data: JSON.stringify({ op: { t: 'session.register' }, now: 1 }) });
    m.apply({ index: 2, term: 1, type: 'normal', data: JSON.stringify({ op: { t: 'mem.put', key: 'k', namespace: 'default', value: 1, ttl_s: null, if_version: null }, now: 2 }) });
    const snap = m.snapshot();
    expect(m.checkSnapshot(snap)).toBeNull();
    const v1 = { ...JSON.parse(snap), v: 1, sessions: [] };
    expect(m.checkSnapshot(JSON.stringify(v1))).toBeNull();
    const r = new CoordinationMachine();
    r.restore(snap);
    expect(r.memory.get('default', 'k', 10)?.value).toBe(1);
  });

  it('refuses what restore() cannot read', () => {
    const m = new CoordinationMachine();
    expect(m.checkSnapshot('')).toBe('not JSON');
    expect(m.checkSnapshot('[]')).toBe('not a JSON object');
    expect(m.checkSnapshot(JSON.stringify({ ...JSON.parse(m.snapshot()), v: 99 }))).toMatch(/snapshot version 99/);
    expect(m.checkSnapshot(JSON.stringify({ v: 2, config: {} }))).toBe('not a complete coordination snapshot');
  });
});
