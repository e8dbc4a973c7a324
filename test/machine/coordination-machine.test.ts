// Pure properties of the replicated coordination machine (no Raft underneath): determinism,
// client-session deduplication, epoch fencing, snapshot/restore and log-time TTL.

import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CoordinationMachine, type OpResult } from '../../src/machine/coordination-machine.js';
import type { Command, Op, Priority, TaskRecord } from '../../src/machine/types.js';
import type { Entry } from '../../src/raft/types.js';
import { LogBuilder, createOp, entry, putOp, replay, toGroups, toItems, type AssignOp, type CompleteOp } from './machine-util.js';

// ---- a generator of realistic command logs -----------------------------------------------

const AGENTS = ['a0', 'a1', 'a2'];
const KEYS = ['k0', 'k1', 'k2', 'shared/k3'];
const NAMESPACES = ['default', 'team'];
const PRIOS: Priority[] = ['low', 'medium', 'high', 'critical'];

type Action =
  | { k: 'create'; count: number; prio: number; idem: number | null; bad: boolean }
  | { k: 'assign'; orch: number; seq: number; agent: number; epochDelta: number; termBump: boolean; takeBack: boolean; lease: number; extra: number; compact: boolean }
  | { k: 'complete'; orch: number; seq: number; agent: number | 'assignee'; epochDelta: number; ok: boolean; extra: number; compact: boolean; nullResult: boolean }
  | { k: 'put'; key: number; ns: number; ttl: number | null; ifVersion: number | null; value: number }
  | { k: 'del'; key: number; ns: number; ifVersion: number | null }
  | { k: 'config'; batch: number }
  | { k: 'register'; agent: number }
  | { k: 'remove'; agent: number }
  | { k: 'election'; termBump: boolean }
  | { k: 'clock' }
  | { k: 'noop' }
  | { k: 'replay'; back: number };

const actionArb: fc.Arbitrary<Action> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ k: fc.constant('create' as const), count: fc.integer({ min: 1, max: 5 }), prio: fc.nat(3), idem: fc.option(fc.nat(2)), bad: fc.nat(9).map((x) => x === 0) }) },
  {
    weight: 5,
    arbitrary: fc.record({
      k: fc.constant('assign' as const),
      orch: fc.nat(7),
      seq: fc.nat(7),
      agent: fc.nat(2),
      epochDelta: fc.constantFrom(0, 0, 0, -1, 1),
      termBump: fc.nat(7).map((x) => x === 0),
      takeBack: fc.boolean(),
      lease: fc.integer({ min: 100, max: 5_000 }),
      // Further tasks in the same command (possibly the same task again), and the encoding.
      extra: fc.constantFrom(0, 0, 1, 2),
      compact: fc.boolean(),
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      k: fc.constant('complete' as const),
      orch: fc.nat(7),
      seq: fc.nat(7),
      agent: fc.oneof(fc.constant('assignee' as const), fc.constant('assignee' as const), fc.nat(2)),
      epochDelta: fc.constantFrom(0, 0, 0, -1, 1),
      ok: fc.nat(3).map((x) => x !== 0),
      extra: fc.constantFrom(0, 0, 1, 2),
      compact: fc.boolean(),
      nullResult: fc.boolean(),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      k: fc.constant('put' as const),
      key: fc.nat(3),
      ns: fc.nat(1),
      ttl: fc.option(fc.integer({ min: 1, max: 4 })),
      ifVersion: fc.option(fc.nat(3)),
      value: fc.nat(1000),
    }),
  },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('del' as const), key: fc.nat(3), ns: fc.nat(1), ifVersion: fc.option(fc.nat(3)) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('config' as const), batch: fc.integer({ min: 1, max: 500 }) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('register' as const), agent: fc.nat(2) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('remove' as const), agent: fc.nat(2) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('election' as const), termBump: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('clock' as const) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('noop' as const) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('replay' as const), back: fc.nat(30) }) },
);

/** A step: an action, a move of the proposer's clock (may go backwards), an optional session. */
const stepArb = fc.record({
  action: actionArb,
  dt: fc.oneof(fc.integer({ min: 0, max: 400 }), fc.integer({ min: -2_000, max: 3_000 })),
  client: fc.option(fc.nat(2), { nil: undefined }),
});
type Step = { action: Action; dt: number; client: number | undefined };

interface BuiltLog {
  entries: Entry[];
  /** Result the builder's machine returned per entry. */
  results: OpResult[];
  /** For complete commands applied fresh: whether the fencing rules said it should apply. */
  expectations: Array<{ index: number; expectApplied: number; expectRejected: number } | null>;
}

/** Re-encode every assignment and completion of a log (same indices, same sessions). */
function reencode(entries: Entry[], f: (op: AssignOp | CompleteOp) => AssignOp | CompleteOp): Entry[] {
  return entries.map((e) => {
    if (e.type !== 'normal') return e;
    const cmd = JSON.parse(e.data) as Command;
    if (cmd.op.t !== 'task.assign' && cmd.op.t !== 'task.complete') return e;
    return { ...e, data: JSON.stringify({ ...cmd, op: f(cmd.op) }) };
  });
}

/**
 * Turn abstract steps into a concrete log, resolving task references against the state the
 * log has built so far (so assignments and completions hit real tasks and epochs).
 */
function buildLog(steps: Step[]): BuiltLog {
  const b = new LogBuilder();
  const seqs = [0, 0, 0];
  const expectations: BuiltLog['expectations'] = [];
  let term = 1;
  let proposerNow = 1_000;
  // Registered sessions with a short idle timeout: the clock's jumps expire some of them, and
  // the client registers again (like the Proposer), so logs mix live and expired sessions.
  const register = (c: number): void => {
    const r = b.push({ op: { t: 'session.register', timeout_ms: 5_000 }, now: proposerNow }) as { ok: true; value: { session: string } };
    expectations.push(null);
    sessionIds[c] = r.value.session;
  };
  const sessionIds: string[] = [];
  for (let c = 0; c < 3; c++) register(c);
  const pickTask = (orch: number, seq: number): TaskRecord | undefined => {
    const orchs = [...b.machine.tasks.orchs.values()];
    if (orchs.length === 0) return undefined;
    const o = orchs[orch % orchs.length]!;
    return b.machine.tasks.tasks.get(`${o.id}-${1 + (seq % o.count)}`);
  };
  for (const s of steps) {
    proposerNow = Math.max(0, proposerNow + s.dt);
    const a = s.action;
    let expectation: BuiltLog['expectations'][number] = null;
    if (a.k === 'replay') {
      // A verbatim re-delivery of an earlier entry at a new index (a retried proposal).
      const src = b.entries[b.entries.length - 1 - (a.back % Math.max(1, b.entries.length))];
      if (src) {
        const e: Entry = { ...src, index: b.nextIndex, term };
        b.entries.push(e);
        b.results.push(b.machine.apply(e) as OpResult);
        expectations.push(null);
      }
      continue;
    }
    if (a.k === 'noop') {
      const e: Entry = { index: b.nextIndex, term, type: 'noop', data: '' };
      b.entries.push(e);
      b.results.push(b.machine.apply(e) as OpResult);
      expectations.push(null);
      continue;
    }
    let op: Op;
    switch (a.k) {
      case 'create':
        op = createOp(a.bad ? 0 : a.count, { priority: PRIOS[a.prio]!, idempotency_key: a.idem === null ? null : `idem-${a.idem}` });
        break;
      case 'assign': {
        if (a.termBump) term++;
        // Half the time a take-back: reassign a task that is currently assigned (lease expiry).
        const assigned = [...b.machine.tasks.assigned];
        const items = [];
        for (let j = 0; j <= a.extra; j++) {
          const t = a.takeBack && assigned.length > 0 ? b.machine.tasks.tasks.get(assigned[(a.seq + j) % assigned.length]!) : pickTask(a.orch, a.seq + j);
          items.push({ task: t?.id ?? 'orch-0-1', agent: AGENTS[a.agent]!, from_epoch: (t?.epoch ?? 0) + a.epochDelta });
        }
        op = { t: 'task.assign', term, lease_ms: a.lease, items };
        if (a.compact) op = toGroups(op);
        break;
      }
      case 'complete': {
        // Mostly the current assignee of an assigned task (the common, successful case).
        const assigned = [...b.machine.tasks.assigned];
        const items = [];
        const touched = new Set<string>();
        let expectApplied = 0;
        for (let j = 0; j <= a.extra; j++) {
          const t = a.agent === 'assignee' && assigned.length > 0 ? b.machine.tasks.tasks.get(assigned[(a.seq + j) % assigned.length]!) : pickTask(a.orch, a.seq + j);
          const agent = a.agent === 'assignee' ? (t?.assignee ?? 'a0') : AGENTS[a.agent]!;
          const epoch = (t?.epoch ?? 0) + a.epochDelta;
          // The fencing rule, evaluated on the state before the command; a task completed or
          // failed earlier in the same command is no longer assigned for the later item.
          const fresh = !!t && t.status === 'assigned' && t.epoch === epoch && t.assignee === agent && !touched.has(t.id);
          if (fresh) {
            expectApplied++;
            touched.add(t.id);
          }
          items.push({ task: t?.id ?? 'orch-0-1', agent, epoch, ok: a.ok, result: a.nullResult ? null : { by: agent, epoch } });
        }
        expectation = { index: b.nextIndex, expectApplied, expectRejected: items.length - expectApplied };
        op = { t: 'task.complete', items };
        if (a.compact) op = toGroups(op);
        break;
      }
      case 'put':
        op = putOp(KEYS[a.key]!, { v: a.value }, { namespace: NAMESPACES[a.ns]!, ttl_s: a.ttl, if_version: a.ifVersion });
        break;
      case 'del':
        op = { t: 'mem.del', key: KEYS[a.key]!, namespace: NAMESPACES[a.ns]!, if_version: a.ifVersion };
        break;
      case 'config':
        op = { t: 'config', patch: { batch_size: a.batch } };
        break;
      case 'register':
        op = { t: 'agent.register', agent: { id: AGENTS[a.agent]!, name: AGENTS[a.agent]!, type: 'worker', capabilities: ['x'] } };
        break;
      case 'remove':
        op = { t: 'agent.remove', id: AGENTS[a.agent]! };
        break;
      case 'election':
        if (a.termBump) term++;
        op = { t: 'election', record: { term, old_leader: 'n1', new_leader: 'n2', voted_by: ['n2', 'n3'], election_duration_ms: 7, cause: 'leader crash' } };
        break;
      case 'clock':
        op = { t: 'clock' };
        break;
    }
    const cmd: Omit<Command, 'now'> = { op };
    if (s.client !== undefined) {
      const seq = ++seqs[s.client]!;
      Object.assign(cmd, { client: sessionIds[s.client], seq, ack: seq });
    }
    b.term = term;
    const r = b.push({ ...cmd, now: proposerNow });
    expectations.push(expectation);
    if (s.client !== undefined && !r.ok && r.code === 'session_expired') register(s.client);
  }
  return { entries: b.entries, results: b.results, expectations };
}

/** Structural invariants every reachable state must satisfy; returns the violations. */
function invariantViolations(m: CoordinationMachine): string[] {
  const bad: string[] = [];
  const perOrchRejected = new Map<string, number>();
  const perOrchStarted = new Map<string, number>();
  const assignedIds: string[] = [];
  for (const t of m.tasks.tasks.values()) {
    if (t.completions_applied > 1) bad.push(`${t.id}: completions=${t.completions_applied}`);
    if (t.status === 'completed' && t.completions_applied !== 1) bad.push(`${t.id}: completed with completions=${t.completions_applied}`);
    if (t.status === 'assigned') assignedIds.push(t.id);
    perOrchRejected.set(t.orch, (perOrchRejected.get(t.orch) ?? 0) + t.stale_completions_refused);
    perOrchStarted.set(t.orch, (perOrchStarted.get(t.orch) ?? 0) + t.executions_started);
    // Every report is at least one run here (the generator never sends starts), and every
    // applied or refused report is one.
    if (t.executions_started !== t.completions_applied + t.failures + t.stale_completions_refused) bad.push(`${t.id}: executions_started=${t.executions_started}`);
  }
  if ([...m.tasks.assigned].sort().join() !== assignedIds.sort().join()) bad.push('assigned index differs from task statuses');
  for (const o of m.tasks.orchs.values()) {
    const c = o.counts;
    if (c.duplicates !== 0) bad.push(`${o.id}: duplicates=${c.duplicates}`);
    if (c.pending + c.assigned + c.completed + c.failed !== o.count) bad.push(`${o.id}: counts do not add up to ${o.count}`);
    if (Math.min(c.pending, c.assigned, c.completed, c.failed) < 0) bad.push(`${o.id}: negative count`);
    if (c.stale_completions_refused !== (perOrchRejected.get(o.id) ?? 0)) bad.push(`${o.id}: rejected counter mismatch`);
    if (c.executions_started !== (perOrchStarted.get(o.id) ?? 0)) bad.push(`${o.id}: executions_started counter mismatch`);
    if ((o.finished_at !== null) !== (c.completed + c.failed === o.count)) bad.push(`${o.id}: finished_at inconsistent`);
  }
  return bad;
}

const logArb = fc.array(stepArb, { minLength: 1, maxLength: 150, size: 'large' });

/** A snapshot with the task lists of stored assignment results removed (see withValue). */
function withoutListedTasks(snapshot: string): string {
  const o = JSON.parse(snapshot) as { sessions?: unknown };
  const strip = (x: unknown): unknown => {
    if (Array.isArray(x)) return x.map(strip);
    if (x === null || typeof x !== 'object') return x;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(x)) if (!(k === 'tasks' && Array.isArray(v) && 'assigned' in x)) out[k] = strip(v);
    return out;
  };
  return JSON.stringify({ ...o, sessions: strip(o.sessions) });
}

/** An apply result flattened to its value's fields (plus ok/error), for comparing encodings. */
function withValue(r: unknown): Record<string, unknown> {
  const o = r as { ok?: boolean; value?: unknown };
  return o.value !== null && typeof o.value === 'object' ? { ok: o.ok, ...(o.value as Record<string, unknown>) } : { ...(r as Record<string, unknown>) };
}

describe('CoordinationMachine: pure properties', () => {
  afterEach(() => {
    vi.useRealTimers();
    vi.restoreAllMocks();
  });

  it('the same command log gives identical snapshots on two machines, at checkpoints along the log', () => {
    fc.assert(
      fc.property(logArb, (steps) => {
        const { entries } = buildLog(steps);
        const a = new CoordinationMachine();
        const b = new CoordinationMachine();
        entries.forEach((e, i) => {
          a.apply(e);
          b.apply(e);
          if (i % 10 === 9 || i === entries.length - 1) {
            const sa = a.snapshot();
            if (b.snapshot() !== sa) expect(b.snapshot()).toBe(sa);
          }
        });
        expect(a.appliedIndex).toBe(entries.length);
      }),
      { numRuns: 100 },
    );
  });

  it('the compact (grouped) and the per-item encodings of assignments and completions are equivalent', () => {
    let grouped = 0;
    fc.assert(
      fc.property(logArb, (steps) => {
        const { entries } = buildLog(steps);
        const asItems = reencode(entries, toItems);
        const asGroups = reencode(entries, toGroups);
        grouped += asGroups.filter((e, i) => e.data !== asItems[i]!.data).length;
        const a = new CoordinationMachine();
        const b = new CoordinationMachine();
        for (let i = 0; i < entries.length; i++) {
          // The item form (task_claim) also lists the tasks it assigned; the grouped form
          // (the scheduler's) does not: compare the rest.
          const { tasks: _listed, ...ra } = withValue(a.apply(asItems[i]!));
          const rb = withValue(b.apply(asGroups[i]!));
          if (JSON.stringify(ra) !== JSON.stringify(rb)) expect(rb).toEqual(ra);
        }
        // Sessions store each command's result, so the item form's also hold its task list.
        expect(withoutListedTasks(b.snapshot() as string)).toBe(withoutListedTasks(a.snapshot() as string));
        expect(withoutListedTasks(a.snapshot() as string)).toBe(withoutListedTasks(replay(entries).snapshot() as string));
      }),
      { numRuns: 100 },
    );
    expect(grouped).toBeGreaterThan(100);
  });

  it('malformed compact groups (unknown orchestration, seq 0 or past the end, short epoch lists) are refused item by item', () => {
    const groupArb = fc.record({
      orch: fc.constantFrom('orch-1', 'orch-2', 'orch-9', 'orch-1-1', ''),
      agent: fc.constantFrom('a0', 'a1'),
      seqs: fc.array(fc.integer({ min: -1, max: 6 }), { maxLength: 6 }),
      epochs: fc.array(fc.nat(3), { maxLength: 6 }),
      ok: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), groupArb), { minLength: 1, maxLength: 40 }), (cmds) => {
        const b = new LogBuilder();
        b.op(createOp(4));
        b.op(createOp(2));
        for (const [assign, g] of cmds) {
          const r = assign
            ? b.op({ t: 'task.assign', term: 1, lease_ms: 100, groups: [{ orch: g.orch, agent: g.agent, seqs: g.seqs, from: g.epochs }] })
            : b.op({ t: 'task.complete', groups: [{ orch: g.orch, agent: g.agent, seqs: g.seqs, epochs: g.epochs, ok: g.ok }] });
          expect(r.ok).toBe(true);
          const v = (r as { value: { assigned?: number; stale?: number; applied?: number; rejected?: number } }).value;
          // Every listed seq is accounted for: taken, or refused.
          if (assign) expect(v.assigned! + v.stale!).toBe(g.seqs.length);
          else expect(v.applied! + v.rejected!).toBe(g.seqs.length);
          const bad = invariantViolations(b.machine);
          if (bad.length > 0) expect.fail(bad.join('; '));
        }
        expect(replay(b.entries).snapshot()).toBe(b.machine.snapshot());
      }),
      { numRuns: 200 },
    );
  });

  it('does not depend on the wall clock: a log replayed in 1970 and in 2100 gives the same state', () => {
    const { entries } = buildLog(fc.sample(logArb, { numRuns: 1, seed: 42 })[0]!);
    vi.useFakeTimers();
    vi.setSystemTime(new Date('1970-01-02T00:00:00Z'));
    const early = replay(entries).snapshot();
    vi.setSystemTime(new Date('2100-01-01T00:00:00Z'));
    vi.spyOn(performance, 'now').mockReturnValue(9e12);
    const late = replay(entries).snapshot();
    expect(late).toBe(early);
  });

  it('keeps its invariants and fences completions: stale epoch or wrong agent is rejected and counted', () => {
    let rejectedSeen = 0;
    let appliedSeen = 0;
    fc.assert(
      fc.property(logArb, (steps) => {
        const { entries, results, expectations } = buildLog(steps);
        const m = new CoordinationMachine();
        for (let i = 0; i < entries.length; i++) {
          const r = m.apply(entries[i]!) as OpResult;
          if (JSON.stringify(r) !== JSON.stringify(results[i])) expect(r).toEqual(results[i]);
          const bad = invariantViolations(m);
          if (bad.length > 0) expect.fail(`after entry ${i + 1}: ${bad.join('; ')}`);
          const exp = expectations[i];
          // Deduplicated session retries answer from the session; skip those.
          if (exp && r.ok && (r.value as { applied?: number }).applied !== undefined) {
            const v = r.value as { applied: number; rejected: number };
            expect({ applied: v.applied, rejected: v.rejected }).toEqual({ applied: exp.expectApplied, rejected: exp.expectRejected });
            rejectedSeen += v.rejected;
            appliedSeen += v.applied;
          }
        }
      }),
      { numRuns: 150 },
    );
    // The generator must actually exercise both sides of the fence.
    expect(rejectedSeen).toBeGreaterThan(20);
    expect(appliedSeen).toBeGreaterThan(20);
  });

  it('fencing, by hand: old epoch, other agent and a repeated completion are stale_completions_refused', () => {
    const b = new LogBuilder();
    b.op(createOp(2)); // orch-1, tasks orch-1-1 and orch-1-2
    const assign = (agent: string, from: number) => b.op({ t: 'task.assign', term: 1, lease_ms: 1000, items: [{ task: 'orch-1-1', agent, from_epoch: from }] });
    const complete = (agent: string, epoch: number) => b.op({ t: 'task.complete', items: [{ task: 'orch-1-1', agent, epoch, ok: true, result: agent }] });
    expect(assign('a', 0)).toEqual({ ok: true, value: { assigned: 1, stale: 0, tasks: ['orch-1-1'] } });
    // The scheduler reassigns after lease expiry: epoch 2, agent b. A stale re-assign loses.
    expect(assign('b', 1)).toEqual({ ok: true, value: { assigned: 1, stale: 0, tasks: ['orch-1-1'] } });
    expect(assign('c', 1)).toEqual({ ok: true, value: { assigned: 0, stale: 1, tasks: [] } });
    // Records are read as copies (columns hold them): read again after each change.
    expect(b.machine.tasks.tasks.get('orch-1-1')!.epoch).toBe(2);
    expect(complete('a', 1)).toEqual({ ok: true, value: { applied: 0, rejected: 1 } }); // stale epoch
    expect(complete('a', 2)).toEqual({ ok: true, value: { applied: 0, rejected: 1 } }); // wrong agent
    expect(complete('b', 3)).toEqual({ ok: true, value: { applied: 0, rejected: 1 } }); // future epoch
    expect(complete('b', 2)).toEqual({ ok: true, value: { applied: 1, rejected: 0 } }); // the real one
    expect(complete('b', 2)).toEqual({ ok: true, value: { applied: 0, rejected: 1 } }); // repeated
    expect(complete('nobody', 9)).toEqual({ ok: true, value: { applied: 0, rejected: 1 } });
    const o = b.machine.tasks.orchs.get('orch-1')!;
    const t = b.machine.tasks.tasks.get('orch-1-1')!;
    expect(t.status).toBe('completed');
    expect(t.completions_applied).toBe(1);
    expect(t.completed_by).toBe('b');
    expect(t.result).toBe('b');
    expect(t.stale_completions_refused).toBe(5);
    // recovered: the reassignment to b took the task back from a. Every report is one run.
    expect(o.counts).toEqual({ pending: 1, assigned: 0, completed: 1, failed: 0, stale_completions_refused: 5, duplicates: 0, recovered: 1, executions_started: 6 });
    // A completion for a task that does not exist is rejected but belongs to no orchestration.
    b.op({ t: 'task.complete', items: [{ task: 'orch-9-1', agent: 'a', epoch: 1, ok: true, result: null }] });
    expect(o.counts.stale_completions_refused).toBe(5);
  });

  it('a failed attempt returns the task to pending; the third failure fails it for good', () => {
    const b = new LogBuilder();
    b.op(createOp(1));
    for (let attempt = 1; attempt <= 3; attempt++) {
      b.op({ t: 'task.assign', term: 1, lease_ms: 1000, items: [{ task: 'orch-1-1', agent: 'a', from_epoch: attempt - 1 }] });
      const r = b.op({ t: 'task.complete', items: [{ task: 'orch-1-1', agent: 'a', epoch: attempt, ok: false, result: { attempt } }] });
      expect(r).toEqual({ ok: true, value: { applied: 1, rejected: 0 } });
      const t = b.machine.tasks.tasks.get('orch-1-1')!;
      expect(t.status).toBe(attempt < 3 ? 'pending' : 'failed');
      if (attempt < 3) expect(b.machine.tasks.pickPending(10, new Set()).map((x) => x.id)).toEqual(['orch-1-1']);
    }
    const o = b.machine.tasks.orchs.get('orch-1')!;
    expect(o.counts.failed).toBe(1);
    expect(o.finished_at).not.toBeNull();
    expect(b.machine.tasks.pickPending(10, new Set())).toEqual([]);
  });

  it('snapshot()/restore() round-trips: restored machine + same further commands = same state', () => {
    let expiredAfterCut = 0;
    fc.assert(
      fc.property(logArb, fc.nat(), (steps, cutSeed) => {
        const { entries } = buildLog(steps);
        const cut = cutSeed % (entries.length + 1);
        const straight = replay(entries.slice(0, cut));
        const snap = straight.snapshot();
        const restored = new CoordinationMachine();
        restored.restore(snap);
        expect(restored.snapshot()).toBe(snap);
        // Restoring twice (a second snapshot install) is harmless too.
        const twice = new CoordinationMachine();
        twice.restore(restored.snapshot());
        for (const e of entries.slice(cut)) {
          const r1 = straight.apply(e);
          const r2 = restored.apply(e);
          twice.apply(e);
          if (JSON.stringify(r2) !== JSON.stringify(r1)) expect(r2).toEqual(r1);
        }
        expect(restored.snapshot()).toBe(straight.snapshot());
        expect(twice.snapshot()).toBe(straight.snapshot());
        // Session tables included (ids, activity times, timeouts, expiries after the cut).
        expect([...restored.sessions.entries()]).toEqual([...straight.sessions.entries()]);
        expiredAfterCut += straight.expiredCommands - replay(entries.slice(0, cut)).expiredCommands;
        // The scheduler's caches are rebuilt too: the same tasks are pending and assigned.
        expect(restored.tasks.pickPending(1e6, new Set()).map((t) => t.id).sort()).toEqual(
          straight.tasks.pickPending(1e6, new Set()).map((t) => t.id).sort(),
        );
        expect([...restored.tasks.assigned].sort()).toEqual([...straight.tasks.assigned].sort());
        expect(restored.memory.hasTtlKeys()).toBe(straight.memory.hasTtlKeys());
      }),
      { numRuns: 200 },
    );
    // The generated logs do expire sessions after the cut (restored replicas must agree on it).
    expect(expiredAfterCut).toBeGreaterThan(10);
  });

  it('a snapshot taken between an election and its recovered-task count restores to the same state', () => {
    // Election history lives both in `elections` and in a system memory key; a restored replica
    // must not end up with a different copy than one that applied the log straight through.
    const b = new LogBuilder();
    b.op(createOp(1));
    b.op({ t: 'task.assign', term: 1, lease_ms: 1000, items: [{ task: 'orch-1-1', agent: 'a', from_epoch: 0 }] });
    b.op({ t: 'election', record: { term: 2, old_leader: 'n1', new_leader: 'n2', voted_by: ['n2', 'n3'], election_duration_ms: 5, cause: 'leader crash' } });
    const snap = b.machine.snapshot();
    // The new leader (term 2) takes the task back from the earlier term's assignment.
    b.op({ t: 'task.assign', term: 2, lease_ms: 1000, items: [{ task: 'orch-1-1', agent: 'b', from_epoch: 1 }] });
    const restored = new CoordinationMachine();
    restored.restore(snap);
    restored.apply(b.entries[b.entries.length - 1]!);
    expect(b.machine.elections[0]!.tasks_recovered).toBe(1);
    expect(restored.snapshot()).toBe(b.machine.snapshot());
  });

  it('restore announces what the snapshot holds: current assignments and the config', () => {
    // A member restarted from a snapshot (or sent one) replays no entries for it, so without
    // this its worker would not learn of work still assigned to it until the lease ran out.
    const b = new LogBuilder();
    b.op(createOp(3));
    b.op({ t: 'config', patch: { batch_size: 7 } });
    b.op({ t: 'task.assign', term: 1, lease_ms: 1000, items: [{ task: 'orch-1-1', agent: 'a', from_epoch: 0 }, { task: 'orch-1-2', agent: 'b', from_epoch: 0 }, { task: 'orch-1-3', agent: 'a', from_epoch: 0 }] });
    b.op({ t: 'task.assign', term: 1, lease_ms: 1000, items: [{ task: 'orch-1-3', agent: 'b', from_epoch: 1 }] });
    b.op({ t: 'task.complete', items: [{ task: 'orch-1-2', agent: 'b', epoch: 1, ok: true, result: null }] });
    const assigned: Array<{ task: string; agent: string; epoch: number }> = [];
    const configs: number[] = [];
    const m = new CoordinationMachine({ onAssigned: (items) => assigned.push(...items), onConfig: (c) => configs.push(c.batch_size) });
    m.restore(b.machine.snapshot());
    expect(assigned.sort((x, y) => x.task.localeCompare(y.task))).toEqual([
      { task: 'orch-1-1', agent: 'a', epoch: 1 },
      { task: 'orch-1-3', agent: 'b', epoch: 2 },
    ]);
    expect(configs).toEqual([7]);
  });

  it('rejects an unknown snapshot version', () => {
    const m = new CoordinationMachine();
    expect(() => m.restore(JSON.stringify({ v: 4 }))).toThrow(/unsupported snapshot version 4/);
  });
});

// ---- client sessions -----------------------------------------------------------------------

describe('CoordinationMachine: client sessions', () => {
  it('a (client, seq) is applied once however often and in whatever order it is delivered', () => {
    // Model of a real client: it sends seqs 1..n, may resend any of them at any time (a retry
    // or a duplicated network copy carrying the ack it was sent with), and acks a seq only
    // once it got the answer. Each put bumps its key's version, so a second application shows.
    const clientArb = fc.array(
      fc.oneof(
        { weight: 3, arbitrary: fc.record({ k: fc.constant('new' as const), client: fc.nat(2) }) },
        { weight: 4, arbitrary: fc.record({ k: fc.constant('resend' as const), client: fc.nat(2), pick: fc.nat(), oldAck: fc.boolean() }) },
        { weight: 3, arbitrary: fc.record({ k: fc.constant('answer' as const), client: fc.nat(2), pick: fc.nat() }) },
      ),
      { maxLength: 200, size: 'large' },
    );
    let dedupedTotal = 0;
    let staleTotal = 0;
    fc.assert(
      fc.property(clientArb, (events) => {
        const m = new CoordinationMachine();
        let index = 0;
        const ids = [0, 1, 2].map(() => (m.apply(entry(++index, { op: { t: 'session.register' }, now: 1000 })) as { value: { session: string } }).value.session);
        const clients = [0, 1, 2].map(() => ({ next: 1, outstanding: new Set<number>(), sentAck: new Map<number, number>(), firstResult: new Map<number, OpResult>() }));
        const deliveries = [0, 0, 0];
        const deliver = (c: number, seq: number, ack: number): OpResult => {
          const cmd: Command = { op: putOp(`key-c${c}`, seq), now: 1000 + index, client: ids[c], seq, ack };
          deliveries[c]!++;
          return m.apply(entry(++index, cmd)) as OpResult;
        };
        const ackOf = (c: (typeof clients)[number]) => (c.outstanding.size > 0 ? Math.min(...c.outstanding) : c.next);
        for (const ev of events) {
          const c = clients[ev.client]!;
          if (ev.k === 'new') {
            const seq = c.next++;
            c.outstanding.add(seq);
            const ack = ackOf(c);
            c.sentAck.set(seq, ack);
            const r = deliver(ev.client, seq, ack);
            // First delivery of a fresh seq always applies: its version is the count so far.
            expect(r.ok).toBe(true);
            c.firstResult.set(seq, r);
          } else if (ev.k === 'resend') {
            if (c.next === 1) continue;
            const seq = 1 + (ev.pick % (c.next - 1));
            const ack = ev.oldAck ? c.sentAck.get(seq)! : ackOf(c);
            const r = deliver(ev.client, seq, ack);
            if (r.ok) {
              // Answered from the session: the very same outcome as the first time.
              expect(r).toEqual(c.firstResult.get(seq));
              dedupedTotal++;
            } else {
              expect(r.code).toBe('stale_sequence');
              // Only a seq the client already had answered (and acked) can be stale.
              expect(c.outstanding.has(seq)).toBe(false);
              staleTotal++;
            }
          } else if (c.outstanding.size > 0) {
            const list = [...c.outstanding];
            c.outstanding.delete(list[ev.pick % list.length]!);
          }
        }
        for (let ci = 0; ci < 3; ci++) {
          const issued = clients[ci]!.next - 1;
          const rec = m.memory.get('default', `key-c${ci}`, m.clock);
          expect(rec?.version ?? 0).toBe(issued);
        }
        const totalDeliveries = deliveries.reduce((a, b) => a + b, 0);
        const distinct = clients.reduce((a, c) => a + c.next - 1, 0);
        expect(m.duplicateCommands).toBe(totalDeliveries - distinct);
      }),
      { numRuns: 150 },
    );
    expect(dedupedTotal).toBeGreaterThan(50);
    expect(staleTotal).toBeGreaterThan(20);
  });

  it('out of order by hand: seq 3 before seq 2, retries of both, then an ack floor', () => {
    const m = new CoordinationMachine();
    let i = 0;
    const register = () => (m.apply(entry(++i, { op: { t: 'session.register' }, now: 10 })) as { value: { session: string } }).value.session;
    const c = register();
    const d = register();
    const send = (seq: number, ack: number, value: unknown) =>
      m.apply(entry(++i, { op: putOp('k', value), now: 10 + i, client: c, seq, ack })) as OpResult;
    expect(send(1, 1, 'one')).toMatchObject({ ok: true, value: { version: 1 } });
    expect(send(3, 1, 'three')).toMatchObject({ ok: true, value: { version: 2 } });
    expect(send(2, 1, 'two')).toMatchObject({ ok: true, value: { version: 3 } });
    // Retries of 3 and 2 (e.g. after a leader change) are answered from the session.
    expect(send(3, 1, 'three-again')).toMatchObject({ ok: true, value: { version: 2 } });
    expect(send(2, 1, 'two-again')).toMatchObject({ ok: true, value: { version: 3 } });
    expect(m.memory.get('default', 'k', m.clock)?.value).toBe('two');
    // The client acks everything below 4: the session forgets 1..3, and a late copy of 2 is
    // refused rather than applied again.
    expect(send(4, 4, 'four')).toMatchObject({ ok: true, value: { version: 4 } });
    expect(send(2, 1, 'two-late')).toEqual({ ok: false, code: 'stale_sequence', message: 'sequence 2 was already acknowledged by its client' });
    expect(m.memory.get('default', 'k', m.clock)).toMatchObject({ value: 'four', version: 4 });
    expect(m.duplicateCommands).toBe(3);
    // Another client's seq 2 is its own business.
    expect(m.apply(entry(++i, { op: putOp('k', 'other'), now: 100, client: d, seq: 2, ack: 1 }))).toMatchObject({ ok: true, value: { version: 5 } });
    // Sessions survive a snapshot: the same late copy is still refused after restore.
    const r = new CoordinationMachine();
    r.restore(m.snapshot());
    expect(r.apply(entry(++i, { op: putOp('k', 'x'), now: 100, client: c, seq: 3, ack: 1 }))).toMatchObject({ ok: false, code: 'stale_sequence' });
    expect(r.apply(entry(++i, { op: putOp('k', 'x'), now: 100, client: c, seq: 4, ack: 1 }))).toMatchObject({ ok: true, value: { version: 4 } });
    expect(r.memory.get('default', 'k', r.clock)?.version).toBe(5);
  });

  it('a replayed orch.create or task.complete with the same (client, seq) never applies twice', () => {
    const b = new LogBuilder();
    const [u, sch, w] = [0, 1, 2].map(() => (b.op({ t: 'session.register' }) as { value: { session: string } }).value.session);
    const create = b.op(createOp(2), { client: u, seq: 1, ack: 1 });
    expect(create).toEqual({ ok: true, value: { orchestration_id: 'orch-4', deduplicated: false } });
    expect(b.op(createOp(2), { client: u, seq: 1, ack: 1 })).toEqual(create);
    expect(b.machine.tasks.orchs.size).toBe(1);
    b.op({ t: 'task.assign', term: 1, lease_ms: 1000, items: [{ task: 'orch-4-1', agent: 'a', from_epoch: 0 }] }, { client: sch, seq: 1, ack: 1 });
    // The scheduler's retry of the same assignment must not bump the epoch again.
    b.op({ t: 'task.assign', term: 1, lease_ms: 1000, items: [{ task: 'orch-4-1', agent: 'a', from_epoch: 0 }] }, { client: sch, seq: 1, ack: 1 });
    expect(b.machine.tasks.tasks.get('orch-4-1')!.epoch).toBe(1);
    const done = { t: 'task.complete' as const, items: [{ task: 'orch-4-1', agent: 'a', epoch: 1, ok: true, result: 1 }] };
    expect(b.op(done, { client: w, seq: 7, ack: 7 })).toEqual({ ok: true, value: { applied: 1, rejected: 0 } });
    // A retried completion is answered as the original (applied), and is not a new attempt.
    expect(b.op(done, { client: w, seq: 7, ack: 7 })).toEqual({ ok: true, value: { applied: 1, rejected: 0 } });
    const o = b.machine.tasks.orchs.get('orch-4')!;
    expect(o.counts).toMatchObject({ completed: 1, duplicates: 0, stale_completions_refused: 0 });
    // The same completion as a *new* request is a duplicate attempt: fenced and counted.
    expect(b.op(done, { client: w, seq: 8, ack: 8 })).toEqual({ ok: true, value: { applied: 0, rejected: 1 } });
    expect(o.counts).toMatchObject({ completed: 1, duplicates: 0, stale_completions_refused: 1 });
    expect(b.machine.duplicateCommands).toBe(3);
  });
});

// ---- counted duplicates and executions ----------------------------------------------------

/** The orchestration's figures recomputed from its task records. */
function sumsFromTasks(m: CoordinationMachine, orch: string): { duplicates: number; executions_started: number; stale: number } {
  const out = { duplicates: 0, executions_started: 0, stale: 0 };
  for (const t of m.tasks.tasks.values()) {
    if (t.orch !== orch) continue;
    out.duplicates += Math.max(0, t.completions_applied - 1);
    out.executions_started += t.executions_started;
    out.stale += t.stale_completions_refused;
  }
  return out;
}

describe('CoordinationMachine: duplicates are counted, not prevented silently', () => {
  /** Two tasks assigned to a, and one entry (no client session) completing both. */
  function completedTwo(): { b: LogBuilder; done: Entry } {
    const b = new LogBuilder();
    b.op(createOp(2));
    b.op(toGroups({ t: 'task.assign', term: 1, lease_ms: 1000, items: [1, 2].map((i) => ({ task: `orch-1-${i}`, agent: 'a', from_epoch: 0 })) }));
    b.op(toGroups({ t: 'task.complete', items: [1, 2].map((i) => ({ task: `orch-1-${i}`, agent: 'a', epoch: 1, ok: true, result: i })) }));
    return { b, done: b.entries[b.entries.length - 1]! };
  }

  it('a completion entry applied twice (a planted replay bug) shows as duplicates', () => {
    const { b, done } = completedTwo();
    const o = b.machine.tasks.orchs.get('orch-1')!;
    expect(o.counts).toMatchObject({ completed: 2, duplicates: 0, stale_completions_refused: 0, executions_started: 2 });
    // The bug: the host hands the same entry to apply() again.
    expect(b.machine.apply(done)).toEqual({ ok: true, value: { applied: 2, rejected: 0 } });
    expect(b.machine.tasks.tasks.get('orch-1-1')!.completions_applied).toBe(2);
    expect(o.counts.duplicates).toBe(2);
    expect(o.counts.completed).toBe(2);
    expect(o.counts.duplicates).toBe(sumsFromTasks(b.machine, 'orch-1').duplicates);
  });

  it('an entry replayed after a snapshot restore (a planted restore bug) shows as duplicates', () => {
    const { b, done } = completedTwo();
    b.op({ t: 'clock' });
    const restored = new CoordinationMachine();
    restored.restore(b.machine.snapshot());
    // The bug: replaying from an index the snapshot already covers.
    restored.apply(done);
    const o = restored.tasks.orchs.get('orch-1')!;
    expect(o.counts.duplicates).toBe(2);
    expect(sumsFromTasks(restored, 'orch-1').duplicates).toBe(2);
    // And the straight replica, which applied each entry once, reports none.
    expect(b.machine.tasks.orchs.get('orch-1')!.counts.duplicates).toBe(0);
  });

  it('a second report for the same task inside one entry is refused, not a duplicate', () => {
    const b = new LogBuilder();
    b.op(createOp(1));
    b.op({ t: 'task.assign', term: 1, lease_ms: 1000, items: [{ task: 'orch-1-1', agent: 'a', from_epoch: 0 }] });
    const item = { task: 'orch-1-1', agent: 'a', epoch: 1, ok: true, result: null };
    expect(b.op({ t: 'task.complete', items: [item, item] })).toEqual({ ok: true, value: { applied: 1, rejected: 1 } });
    expect(b.machine.tasks.orchs.get('orch-1')!.counts).toMatchObject({ completed: 1, duplicates: 0, stale_completions_refused: 1, executions_started: 2 });
  });

  it('executions_started adds the runs each report covers, applied or refused', () => {
    const b = new LogBuilder();
    b.op(createOp(2));
    b.op({ t: 'task.assign', term: 1, lease_ms: 1000, items: [{ task: 'orch-1-1', agent: 'a', from_epoch: 0 }, { task: 'orch-1-2', agent: 'a', from_epoch: 0 }] });
    // a's run of orch-1-1 was never reported; the task is taken back and run by b (twice: its
    // first report was lost when its member stopped), while a's late report is refused.
    b.op({ t: 'task.assign', term: 1, lease_ms: 1000, items: [{ task: 'orch-1-1', agent: 'b', from_epoch: 1 }] });
    b.op(toGroups({ t: 'task.complete', items: [{ task: 'orch-1-1', agent: 'b', epoch: 2, ok: true, result: null, starts: 2 }] }));
    b.op({ t: 'task.complete', items: [{ task: 'orch-1-1', agent: 'a', epoch: 1, ok: true, result: null }] });
    b.op({ t: 'task.complete', items: [{ task: 'orch-1-2', agent: 'a', epoch: 1, ok: true, result: null, starts: 0 }] });
    const o = b.machine.tasks.orchs.get('orch-1')!;
    expect(b.machine.tasks.tasks.get('orch-1-1')!.executions_started).toBe(3);
    expect(o.counts).toMatchObject({ completed: 2, duplicates: 0, stale_completions_refused: 1, recovered: 1, executions_started: 3 });
    expect(sumsFromTasks(b.machine, 'orch-1')).toEqual({ duplicates: 0, executions_started: 3, stale: 1 });
  });
});

// ---- TTL -----------------------------------------------------------------------------------

describe('CoordinationMachine: TTL by log time', () => {
  it('a key lives exactly while log time < expires_at, whatever the wall clock and proposer skew', () => {
    const stepArbTtl = fc.record({
      kind: fc.constantFrom('put', 'put', 'clock', 'other', 'del'),
      key: fc.nat(2),
      ttl: fc.option(fc.integer({ min: 1, max: 3 })),
      now: fc.integer({ min: 0, max: 12_000 }),
    });
    fc.assert(
      fc.property(fc.array(stepArbTtl, { maxLength: 80, size: 'large' }), (steps) => {
        const m = new CoordinationMachine();
        const model = new Map<string, number | null>(); // key -> expires_at (present keys)
        let logTime = 0;
        let i = 0;
        for (const s of steps) {
          const key = `ttl-${s.key}`;
          let op: Op;
          if (s.kind === 'put') op = putOp(key, i, { ttl_s: s.ttl });
          else if (s.kind === 'del') op = { t: 'mem.del', key, namespace: 'default', if_version: null };
          else if (s.kind === 'clock') op = { t: 'clock' };
          else op = { t: 'config', patch: { batch_size: 1 + (i % 9) } };
          m.apply(entry(++i, { op, now: s.now }));
          logTime = Math.max(logTime, s.now);
          if (m.clock !== logTime) expect(m.clock).toBe(logTime);
          if (s.kind === 'put') model.set(key, s.ttl === null ? null : logTime + s.ttl * 1000);
          if (s.kind === 'del') model.delete(key);
          for (let k = 0; k < 3; k++) {
            const id = `ttl-${k}`;
            const exp = model.get(id);
            const alive = model.has(id) && (exp === null || exp! > logTime);
            if ((m.memory.get('default', id, m.clock) !== undefined) !== alive) expect.fail(`${id} alive=${!alive} at log time ${logTime}, expected ${alive}`);
            // Writes and clock ticks also drop expired keys physically (same on every replica).
            if (s.kind !== 'other' && !alive && m.memory.has('default', id)) expect.fail(`${id} expired but still stored`);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it('by hand: expiry at the first command whose time reaches expires_at; an older clock never revives', () => {
    const m = new CoordinationMachine();
    m.apply(entry(1, { op: putOp('t', 'v', { ttl_s: 2 }), now: 10_000 }));
    expect(m.memory.get('default', 't', m.clock)?.expires_at).toBe(12_000);
    m.apply(entry(2, { op: { t: 'clock' }, now: 11_999 }));
    expect(m.memory.get('default', 't', m.clock)?.value).toBe('v');
    // A proposer whose clock lags cannot move log time back.
    m.apply(entry(3, { op: { t: 'clock' }, now: 5_000 }));
    expect(m.clock).toBe(11_999);
    m.apply(entry(4, { op: { t: 'clock' }, now: 12_000 }));
    expect(m.memory.get('default', 't', m.clock)).toBeUndefined();
    expect(m.memory.size).toBe(0);
    expect(m.memory.hasTtlKeys()).toBe(false);
    m.apply(entry(5, { op: { t: 'clock' }, now: 1_000 }));
    expect(m.memory.get('default', 't', m.clock)).toBeUndefined();
    // Re-putting without a TTL clears it.
    m.apply(entry(6, { op: putOp('t', 'w', { ttl_s: 1 }), now: 13_000 }));
    m.apply(entry(7, { op: putOp('t', 'w2'), now: 13_001 }));
    m.apply(entry(8, { op: { t: 'clock' }, now: 99_000 }));
    expect(m.memory.get('default', 't', m.clock)).toMatchObject({ value: 'w2', version: 2, expires_at: null });
  });

  it('compare-and-set and conditional delete follow the version', () => {
    const m = new CoordinationMachine();
    let i = 0;
    const ap = (op: Op) => m.apply(entry(++i, { op, now: 1 })) as OpResult;
    expect(ap(putOp('c', 1, { if_version: 0 }))).toMatchObject({ ok: true, value: { version: 1 } });
    expect(ap(putOp('c', 2, { if_version: 0 }))).toMatchObject({ ok: false, code: 'version_mismatch' });
    expect(ap(putOp('c', 2, { if_version: 1 }))).toMatchObject({ ok: true, value: { version: 2 } });
    expect(ap({ t: 'mem.del', key: 'c', namespace: 'default', if_version: 1 })).toMatchObject({ ok: false, code: 'version_mismatch' });
    expect(ap({ t: 'mem.del', key: 'c', namespace: 'default', if_version: 2 })).toEqual({ ok: true, value: { deleted: true, version: 2 } });
    expect(ap({ t: 'mem.del', key: 'c', namespace: 'default', if_version: null })).toEqual({ ok: true, value: { deleted: false } });
    expect(ap(putOp('', 1))).toMatchObject({ ok: false, code: 'invalid' });
    expect(ap(putOp('x'.repeat(513), 1))).toMatchObject({ ok: false, code: 'invalid' });
  });
});
