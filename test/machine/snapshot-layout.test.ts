// The byte layout of what the machine writes: snapshot() (v3, hashed into state hashes and
// compared across replicas and versions), the multi-part meta part and the checkpoint meta row.
// Each is pinned to a SHA-256 recorded from the code before they shared their field list
// (coordination-machine.ts scalarFields): a change of key order or of a field changes a
// hash. If a format change is intended, record new hashes and say so. (The meta part's hash
// was recorded again for v5, whose `tasks` adds the agent names and the block size; v4's
// was 84ea7939….)

import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CoordinationMachine } from '../../src/machine/coordination-machine.js';
import { snapshotParts } from '../../src/raft/types.js';
import { createOp, LogBuilder, putOp } from './machine-util.js';

const sha = (s: string): string => createHash('sha256').update(s).digest('hex');

/** Every kind of state the snapshot holds, each scalar field away from its default. */
function populated(): CoordinationMachine {
  const b = new LogBuilder();
  b.op({ t: 'config', patch: { batch_size: 7, task_retention_orchestrations: 50 } });
  b.op({ t: 'agent.register', agent: { id: 'a1', name: 'one', type: 'worker', capabilities: ['x'] } });
  b.op({ t: 'agent.register', agent: { id: 'a2', name: 'two', type: 'worker', capabilities: [] } });
  b.op({ t: 'agent.remove', id: 'a2' });
  b.op({ t: 'member.seed', cluster_id: 'c-1', members: { a1: '127.0.0.1:1', a2: '127.0.0.1:2' } });
  b.op({ t: 'member.bind', id: 'a1', incarnation: 'inc-1' });
  b.op({ t: 'election', record: { term: 1, old_leader: null, new_leader: 'a1', voted_by: ['a1', 'a2'], election_duration_ms: 12, detection_ms: null, failover_ms: null, timing_note: 'first', cause: 'startup' } });
  b.op({ t: 'election.timing', term: 1, failover_ms: 34 });
  const orch = b.op(createOp(6, { idempotency_key: 'idem-1' })) as { ok: true; value: { orchestration_id: string } };
  const oid = orch.value.orchestration_id;
  b.now += 10;
  b.op({ t: 'task.assign', term: 1, lease_ms: 60_000, items: [0, 1, 2].map((s) => ({ task: `${oid}-${s}`, agent: 'a1', from_epoch: 0 })) });
  b.op({ t: 'task.complete', items: [{ task: `${oid}-0`, agent: 'a1', epoch: 1, ok: true, result: { r: 1 } }, { task: `${oid}-1`, agent: 'a1', epoch: 1, ok: false, result: null }] });
  b.op(putOp('plain', { v: 1 }));
  b.op(putOp('ttl', 'short', { ttl_s: 3600 }));
  b.op(putOp('gone', 1));
  b.op({ t: 'mem.del', key: 'gone', namespace: 'default', if_version: null });
  // Sessions: the old (implicit) kind, then registered ones; a duplicate and an expired one.
  b.push({ op: putOp('s', 1), client: 'old-client', seq: 1 });
  const reg = b.op({ t: 'session.register', timeout_ms: 5_000 }) as { ok: true; value: { session: string } };
  const sid = reg.value.session;
  b.push({ op: putOp('s', 2), client: sid, seq: 1 });
  b.push({ op: putOp('s', 2), client: sid, seq: 1 });
  b.push({ op: putOp('s', 3), client: 'never-registered', seq: 1 });
  b.now += 1_000;
  b.op({ t: 'clock' });
  const m = b.machine;
  expect(m.duplicateCommands).toBe(1);
  expect(m.expiredCommands).toBe(1);
  expect(m.explicitSessions).toBe(true);
  expect(m.book.toJSON()).toBeTruthy();
  return m;
}

describe('snapshot and checkpoint layout', () => {
  it('snapshot(), the v5 meta part and the checkpoint meta are byte-identical to the recorded ones', () => {
    const m = populated();
    expect(sha(m.snapshot())).toBe(V3_SHA);
    expect(m.stateHash()).toBe(V3_SHA);
    const parts = snapshotParts(m.snapshotData(200));
    expect(parts.length).toBeGreaterThan(2);
    expect(sha(parts[0]!)).toBe(V5_META_SHA);
    expect(sha(m.takeCheckpoint().meta)).toBe(CHECKPOINT_META_SHA);
    // Each restores to the same state.
    const fromParts = new CoordinationMachine();
    fromParts.restore(parts);
    expect(fromParts.stateHash()).toBe(V3_SHA);
    const fromV3 = new CoordinationMachine();
    fromV3.restore(m.snapshot());
    expect(fromV3.snapshot()).toBe(m.snapshot());
  });
});

const V3_SHA = '5eaa62c6b2655880a58e4f653ed3aa03bd2ad066ec35e288811cbd5e2c93d547';
const V5_META_SHA = '16f456085e91af6562c8ed99f860d88ab4e956509f22e405d0b10dfe871f81e9';
const CHECKPOINT_META_SHA = '165f8a254d4ea07b680ddfb66160c5de2fb9ad8746637177d9243666a57e2c16';
