// The coordination workload: in some simulator runs the proposals are the product's own
// commands (memory writes with TTLs, orchestrations, assignments, completions, retention
// settings), so every fault the simulator injects also hits the coordination machine and its
// retention: replicas must agree on its state at every index (InvariantChecker.onStateHash).
//
// Commands are generated from the proposing node's view of the state (its pending and assigned
// tasks), which may be stale or from a deposed leader: the machine must refuse those
// deterministically (stale epochs), never diverge.

import type { CoordinationMachine } from '../../src/machine/coordination-machine.js';
import type { Command, Op, Priority, SwarmConfig } from '../../src/machine/types.js';
import { Prng } from '../../src/util/prng.js';

const AGENTS = ['a1', 'a2', 'a3'];
const PRIORITIES: Priority[] = ['low', 'medium', 'high', 'critical'];

/**
 * Whether a seed runs the coordination workload, from a PRNG of its own: runs without it draw
 * exactly what they drew before it existed, so their schedules (and regression seeds) are kept.
 */
export function coordWorkloadFor(seed: number, force?: boolean): Prng | null {
  const p = new Prng((seed ^ 0x5bd1e995) >>> 0);
  for (let i = 0; i < 4; i++) p.next();
  const on = p.chance(0.5);
  return (force ?? on) ? p : null;
}

export class CoordWorkload {
  private seq = 0;

  constructor(private readonly prng: Prng) {}

  /** One command's entry data, unique per call (the checker tracks writes by their data). */
  next(view: CoordinationMachine | null, now: number, term: number): string {
    const op = this.op(view, term);
    const cmd: Command & { sim: number } = { op, now, sim: ++this.seq };
    return JSON.stringify(cmd);
  }

  private op(view: CoordinationMachine | null, term: number): Op {
    const p = this.prng;
    const r = p.next();
    const tasks = view?.tasks;
    if (r < 0.08) {
      return {
        t: 'orch.create',
        task: `t${this.seq}`,
        count: p.int(1, 7),
        priority: p.pick(PRIORITIES),
        strategy: 'parallel',
        max_agents: 3,
        executor: { kind: 'noop' },
        payload: null,
        idempotency_key: p.chance(0.2) ? `k${p.int(0, 4)}` : null,
      } as Op;
    }
    if (r < 0.25 && tasks) {
      const pending = [...tasks.tasks.values()].filter((t) => t.status === 'pending' || (t.status === 'assigned' && p.chance(0.1)));
      const items = pending.slice(0, p.int(1, 4)).map((t) => ({ task: t.id, agent: p.pick(AGENTS), from_epoch: t.epoch }));
      return { t: 'task.assign', term, lease_ms: p.pick([50, 500, 5_000]), items };
    }
    if (r < 0.42 && tasks) {
      const assigned = [...tasks.assigned].map((id) => tasks.tasks.get(id)).filter((t) => t !== undefined);
      const items = assigned.slice(0, p.int(1, 4)).map((t) => ({
        task: t.id,
        agent: p.chance(0.9) ? (t.assignee ?? 'a1') : p.pick(AGENTS),
        epoch: p.chance(0.9) ? t.epoch : t.epoch - 1,
        ok: p.chance(0.85),
        result: p.chance(0.5) ? null : { n: this.seq },
      }));
      return { t: 'task.complete', items };
    }
    if (r < 0.46) {
      const patch: Partial<SwarmConfig> = { task_retention_orchestrations: p.int(0, 4), task_retention_ms: p.pick([100, 1_000, 60_000]) };
      return { t: 'config', patch };
    }
    if (r < 0.52) return { t: 'mem.del', key: `k${p.int(0, 40)}`, namespace: 'default', if_version: null };
    if (r < 0.55) return { t: 'clock' };
    return {
      t: 'mem.put',
      key: `k${p.int(0, 40)}`,
      namespace: p.chance(0.9) ? 'default' : 'other',
      value: { v: this.seq },
      ttl_s: p.chance(0.2) ? p.pick([1, 5, 30]) : null,
      if_version: null,
    };
  }
}
