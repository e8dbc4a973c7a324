// A committed config entry is validated when applied (issue 10): an entry proposed around the
// consensus_config tool (a raw proposal, an older version) that the tool would refuse is
// recorded as a no-op with a reason, so no replica adopts a config it cannot start with.

import { describe, expect, it } from 'vitest';
import { configProblem } from '../../src/machine/config-bounds.js';
import { CoordinationMachine } from '../../src/machine/coordination-machine.js';
import { DEFAULT_SWARM_CONFIG, type Op } from '../../src/machine/types.js';
import { LogBuilder } from './machine-util.js';

const bad: Array<[string, Record<string, unknown>, RegExp]> = [
  ['max_log_entries 0 (every restarted member exited with "invalid raft config")', { max_log_entries: 0 }, /max_log_entries=0; accepted: an integer 10\.\.10000000/],
  ['a negative heartbeat', { heartbeat_interval: -5 }, /heartbeat_interval=-5/],
  ['a fractional batch size', { batch_size: 1.5 }, /batch_size=1\.5/],
  ['a string where a number belongs', { election_timeout_min: '150' }, /election_timeout_min="150"/],
  ['max not above min', { election_timeout_min: 300, election_timeout_max: 300 }, /election_timeout_max=300; accepted: greater than election_timeout_min \(300\)/],
  ['a heartbeat longer than half the election timeout', { heartbeat_interval: 100 }, /heartbeat_interval=100; accepted: at most half/],
  ['an unknown field', { fsync: false }, /fsync=false; accepted: one of the fields/],
  ['a quorum of 0', { quorum_size: 0 }, /quorum_size=0/],
];

describe('config entries are validated when applied', () => {
  for (const [what, patch, why] of bad) {
    it(`refuses ${what} as a recorded no-op`, () => {
      const configs: unknown[] = [];
      const b = new LogBuilder();
      const m = new CoordinationMachine({ onConfig: (c) => configs.push(c) });
      const r = b.op({ t: 'config', patch } as Op);
      expect(r).toMatchObject({ ok: false, code: 'invalid' });
      expect(r.ok ? '' : r.message).toMatch(why);
      expect(b.machine.config).toEqual(DEFAULT_SWARM_CONFIG);
      // Replayed on another replica (or after a restart): same outcome, config never announced.
      for (const e of b.entries) m.apply(e);
      expect(m.config).toEqual(DEFAULT_SWARM_CONFIG);
      expect(configs).toEqual([]);
      // A snapshot taken after it restores to a valid config.
      const restored = new CoordinationMachine();
      restored.restore(b.machine.snapshot());
      expect(configProblem(DEFAULT_SWARM_CONFIG, restored.config)).toBeNull();
    });
  }

  it('a valid patch still applies, and a session retry of a refused one gets the same answer', () => {
    const b = new LogBuilder();
    expect(b.op({ t: 'config', patch: { batch_size: 7, max_log_entries: 50 } })).toMatchObject({ ok: true });
    expect(b.machine.config).toMatchObject({ batch_size: 7, max_log_entries: 50 });
    const first = b.push({ op: { t: 'config', patch: { max_log_entries: 0 } }, client: 'c1', seq: 1, ack: 0 });
    const again = b.push({ op: { t: 'config', patch: { max_log_entries: 0 } }, client: 'c1', seq: 1, ack: 0 });
    expect(again).toEqual(first);
    expect(b.machine.config.max_log_entries).toBe(50);
  });
});
