// Shared helpers for the pure state-machine tests: build log entries from commands and
// drive a CoordinationMachine without any Raft underneath.

import { CoordinationMachine, type OpResult } from '../../src/machine/coordination-machine.js';
import { parseTaskId } from '../../src/machine/task-table.js';
import type { AssignGroup, Command, CompleteGroup, Op } from '../../src/machine/types.js';
import type { Entry } from '../../src/raft/types.js';

export function entry(index: number, cmd: Command, term = 1): Entry {
  return { index, term, type: 'normal', data: JSON.stringify(cmd) };
}

/** Apply `entries` to a fresh machine (or the given one) and return it. */
export function replay(entries: readonly Entry[], m = new CoordinationMachine()): CoordinationMachine {
  for (const e of entries) m.apply(e);
  return m;
}

/** A tiny log writer: numbers entries and applies them to its own machine as it goes. */
export class LogBuilder {
  readonly entries: Entry[] = [];
  readonly results: OpResult[] = [];
  readonly machine = new CoordinationMachine();
  now = 1_000;
  term = 1;

  get nextIndex(): number {
    return this.entries.length + 1;
  }

  push(cmd: Omit<Command, 'now'> & { now?: number }): OpResult {
    const full: Command = { ...cmd, now: cmd.now ?? this.now };
    const e = entry(this.nextIndex, full, this.term);
    this.entries.push(e);
    const r = this.machine.apply(e) as OpResult;
    this.results.push(r);
    return r;
  }

  op(op: Op, extra: Partial<Command> = {}): OpResult {
    return this.push({ op, ...extra });
  }
}

export function createOp(count: number, over: Partial<Extract<Op, { t: 'orch.create' }>> = {}): Extract<Op, { t: 'orch.create' }> {
  return {
    t: 'orch.create',
    task: 'work',
    count,
    priority: 'medium',
    strategy: 'parallel',
    max_agents: 5,
    executor: { kind: 'noop' },
    payload: null,
    idempotency_key: null,
    ...over,
  };
}

export function putOp(key: string, value: unknown, over: Partial<Extract<Op, { t: 'mem.put' }>> = {}): Extract<Op, { t: 'mem.put' }> {
  return { t: 'mem.put', key, namespace: 'default', value, ttl_s: null, if_version: null, ...over };
}

export type AssignOp = Extract<Op, { t: 'task.assign' }>;
export type CompleteOp = Extract<Op, { t: 'task.complete' }>;

/**
 * The compact encoding the service writes: consecutive items of one orchestration and agent
 * (and outcome) become one group. Runs only, so the order of application is unchanged.
 */
export function toGroups<T extends AssignOp | CompleteOp>(op: T): T {
  if (!op.items) return op;
  if (op.t === 'task.assign') {
    const groups: AssignGroup[] = [];
    for (const it of op.items) {
      const id = parseTaskId(it.task)!;
      const last = groups[groups.length - 1];
      if (last && last.orch === id.orch && last.agent === it.agent) {
        last.seqs.push(id.seq);
        last.from.push(it.from_epoch);
      } else groups.push({ orch: id.orch, agent: it.agent, seqs: [id.seq], from: [it.from_epoch] });
    }
    return { t: 'task.assign', term: op.term, lease_ms: op.lease_ms, groups } as T;
  }
  const groups: CompleteGroup[] = [];
  for (const it of (op as CompleteOp).items!) {
    const id = parseTaskId(it.task)!;
    const last = groups[groups.length - 1];
    if (last && last.orch === id.orch && last.agent === it.agent && last.ok === it.ok) {
      last.seqs.push(id.seq);
      last.epochs.push(it.epoch);
      last.results!.push(it.result);
      last.starts!.push(it.starts ?? 1);
    } else groups.push({ orch: id.orch, agent: it.agent, seqs: [id.seq], epochs: [it.epoch], ok: it.ok, results: [it.result], starts: [it.starts ?? 1] });
  }
  // As the service does: all-null results and all-one starts are left out.
  for (const g of groups) {
    if (g.results!.every((r) => r === null)) delete g.results;
    if (g.starts!.every((n) => n === 1)) delete g.starts;
  }
  return { t: 'task.complete', groups } as T;
}

/** The inverse: groups back to one item per task, in the same order. */
export function toItems<T extends AssignOp | CompleteOp>(op: T): T {
  if (!op.groups) return op;
  if (op.t === 'task.assign') {
    const items = op.groups.flatMap((g) => g.seqs.map((seq, i) => ({ task: `${g.orch}-${seq}`, agent: g.agent, from_epoch: g.from[i]! })));
    return { t: 'task.assign', term: op.term, lease_ms: op.lease_ms, items: [...(op.items ?? []), ...items] } as T;
  }
  const items = (op as CompleteOp).groups!.flatMap((g) =>
    g.seqs.map((seq, i) => ({ task: `${g.orch}-${seq}`, agent: g.agent, epoch: g.epochs[i]!, ok: g.ok, result: g.results?.[i] ?? null, ...(g.starts ? { starts: g.starts[i]! } : {}) })),
  );
  return { t: 'task.complete', items: [...((op as CompleteOp).items ?? []), ...items] } as T;
}
