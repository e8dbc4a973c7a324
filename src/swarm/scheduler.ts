import type { ClusterBackend } from '../host/cluster-backend.js';
import type { CoordinationMachine, OpResult } from '../machine/coordination-machine.js';
import { parseTaskId } from '../machine/task-table.js';
import type { AssignGroup, Op, Orchestration, TaskRecord } from '../machine/types.js';
import type { ProposeOptions } from './proposer.js';

const SCHEDULER_INTERVAL_MS = 2;
/** Lease on an internal assignment; a dead agent is detected sooner by missed heartbeats. */
const INTERNAL_LEASE_MS = 30_000;
/** Batches of work (batch_size tasks each) an agent may hold at once. */
export const AGENT_QUEUE_BATCHES = 4;
/** Assignment proposals in flight: two let one commit while the next is prepared. */
const MAX_ASSIGN_PROPOSALS = 2;

type AssignItem = { task: string; agent: string; from_epoch: number };

/**
 * What the scheduler needs from the swarm that owns it (Swarm satisfies it). Declared here so
 * the scheduler does not import swarm.ts, which imports the scheduler.
 */
export interface SchedulerSwarm {
  readonly cluster: Pick<ClusterBackend, 'leader'>;
  readonly machines: ReadonlyMap<string, CoordinationMachine>;
  /** Members the leader heard from within an election timeout; `acked`: that also answered this leader. */
  liveAgents(opts?: { acked?: boolean }): Set<string>;
  /** Members not removed: only their tasks are internal, so taken back when they fall silent. */
  activeMembers(): string[];
  propose(op: Op, timeoutMs?: number, opts?: ProposeOptions): Promise<OpResult>;
}

/**
 * Runs next to whichever member leads: hands pending tasks to live agents (each assignment
 * bumps the task's epoch, the fencing token) and takes back tasks whose agent stopped
 * answering heartbeats or whose lease ran out. Everything it decides goes through the log.
 */
export class Scheduler {
  private timer: NodeJS.Timeout | null = null;
  /** Tasks in an assignment proposal not yet applied: never proposed twice at once. */
  private inflight = new Set<string>();
  private proposing = 0;
  private inflightByAgent = new Map<string, number>();
  /** Per tick: agents each orchestration may use. */
  private allowedCache = new Map<string, string[]>();

  /** Between start() and stop(): the timer runs, or sleeps until wake(). */
  private started = false;
  /** Ticks run (each a look at the leader's task table), for tests and figures. */
  ticks = 0;

  constructor(private readonly swarm: SchedulerSwarm) {}

  start(): void {
    this.started = true;
    this.wake();
  }

  stop(): void {
    this.started = false;
    this.sleep();
  }

  get sleeping(): boolean {
    return this.timer === null;
  }

  /**
   * Something was applied that may have made work (a new orchestration, a task back to
   * pending): resume ticking if started and asleep. Cheap, called at every apply.
   */
  wake(): void {
    if (!this.started || this.timer) return;
    this.timer = setInterval(() => this.tick(), SCHEDULER_INTERVAL_MS);
    this.timer.unref();
  }

  private sleep(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private tick(): void {
    this.ticks++;
    // One assignment proposal at a time keeps batches large and the log short.
    if (this.proposing >= MAX_ASSIGN_PROPOSALS) return;
    const leader = this.swarm.cluster.leader();
    if (!leader) return;
    const machine = this.swarm.machines.get(leader.id);
    if (!machine) return;
    // Nothing assigned and nothing pending: only an applied entry can change that, and every
    // apply wakes us. Idle, the 2 ms timer cost one wakeup per swarm per 2 ms.
    if (machine.tasks.assigned.size === 0 && !machine.tasks.mayHavePending()) return this.sleep();
    // Work is taken back only from agents silent for a whole window, and handed only to agents
    // that answered this leader: right after an election the dead old leader is in the first
    // set (its silence is not yet a window long) but never in the second.
    const live = this.swarm.liveAgents();
    const ready = this.swarm.liveAgents({ acked: true });
    if (ready.size === 0) return;
    const members = new Set(this.swarm.activeMembers());
    this.allowedCache.clear();
    // An agent holds up to AGENT_QUEUE_BATCHES batches: one executing while the next ones are
    // already assigned, so no agent idles for a commit round trip between batches.
    const batch = Math.max(1, machine.config.batch_size) * AGENT_QUEUE_BATCHES;
    const now = Date.now();

    // Count work in proposals not yet applied too, so two proposals never overfill an agent.
    const load = new Map<string, number>();
    for (const id of ready) load.set(id, this.inflightByAgent.get(id) ?? 0);
    const takeBack: string[] = [];
    // Read in place (no record built): this runs over every assigned task every tick.
    machine.tasks.forEachAssigned((tid, assignee, leaseUntil) => {
      if (assignee === null || this.inflight.has(tid)) return;
      const internal = members.has(assignee);
      if (internal && live.has(assignee) && leaseUntil > now) {
        load.set(assignee, (load.get(assignee) ?? 0) + 1);
      } else if (internal) {
        takeBack.push(tid);
      }
      // External claims are only taken back by lease expiry, at the next claim.
    });

    const items: AssignItem[] = [];
    const pick = (t: TaskRecord): void => {
      const orch = machine.tasks.orchs.get(t.orch);
      if (!orch || orch.executor.kind === 'external') return;
      const agent = this.chooseAgent(orch, ready, load, batch);
      if (!agent) return;
      load.set(agent, (load.get(agent) ?? 0) + 1);
      items.push({ task: t.id, agent, from_epoch: t.epoch });
    };
    for (const tid of takeBack) {
      const t = machine.tasks.tasks.get(tid);
      if (t) pick(t);
    }
    let capacity = 0;
    for (const id of ready) capacity += Math.max(0, batch - (load.get(id) ?? 0));
    if (capacity > 0) {
      const excluded = new Set([...this.inflight, ...items.map((i) => i.task)]);
      const external = (orchId: string) => machine.tasks.orchs.get(orchId)?.executor.kind !== 'external';
      for (const t of machine.tasks.pickPending(capacity, excluded, external)) pick(t);
    }
    if (items.length === 0) return;
    this.propose(items, leader.status().term);
  }

  /** Least-loaded live agent among those the orchestration may use. */
  private chooseAgent(orch: Orchestration, live: Set<string>, load: Map<string, number>, batch: number): string | null {
    // The allowed list depends only on the orchestration and this tick's live set: compute once.
    let allowed = this.allowedCache.get(orch.id);
    if (!allowed) {
      allowed = [...live].sort().slice(0, orch.strategy === 'sequential' ? 1 : Math.max(1, orch.max_agents));
      this.allowedCache.set(orch.id, allowed);
    }
    let best: string | null = null;
    for (const id of allowed) {
      const l = load.get(id) ?? 0;
      if (l >= batch) continue;
      if (best === null || l < (load.get(best) ?? 0)) best = id;
    }
    return best;
  }

  private propose(items: AssignItem[], term: number): void {
    for (const it of items) {
      this.inflight.add(it.task);
      this.inflightByAgent.set(it.agent, (this.inflightByAgent.get(it.agent) ?? 0) + 1);
    }
    this.proposing++;
    void this.swarm
      .propose({ t: 'task.assign', term, lease_ms: INTERNAL_LEASE_MS, groups: groupAssignments(items) }, 5_000, { background: true })
      .catch(() => undefined)
      .finally(() => {
        this.proposing--;
        for (const it of items) {
          this.inflight.delete(it.task);
          this.inflightByAgent.set(it.agent, (this.inflightByAgent.get(it.agent) ?? 1) - 1);
        }
      });
  }
}

/** Assignments in the compact log form: one group per (orchestration, agent). */
function groupAssignments(items: AssignItem[]): AssignGroup[] {
  const groups = new Map<string, AssignGroup>();
  for (const it of items) {
    const id = parseTaskId(it.task);
    if (!id) continue;
    const key = `${id.orch}|${it.agent}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { orch: id.orch, agent: it.agent, seqs: [], from: [] }));
    g.seqs.push(id.seq);
    g.from.push(it.from_epoch);
  }
  return [...groups.values()];
}
