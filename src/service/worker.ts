import type { CoordinationMachine } from '../machine/coordination-machine.js';
import type { Op } from '../machine/types.js';
import { execute } from './executors.js';

type Completion = NonNullable<Extract<Op, { t: 'task.complete' }>['items']>[number];

export interface WorkerHost {
  /** The agent's own replica, or undefined while its member is down. */
  machineOf(agent: string): CoordinationMachine | undefined;
  isRunning(agent: string): boolean;
  batchSize(): number;
  submitCompletions(items: Completion[]): Promise<void>;
}

/**
 * The work loop of one agent (a Raft member). It learns of its assignments by applying the
 * log on its own replica, runs each with the task's executor, and proposes completions that
 * carry the assignment's epoch. When the member crashes, the loop stops with it.
 */
export class AgentWorker {
  private queue: Array<{ task: string; epoch: number }> = [];
  /** `task@epoch` queued or executing: the same assignment announced twice (log replay, then
   * a snapshot install) runs once, not twice with the second completion fenced off. */
  private known = new Set<string>();
  private active = 0;
  private pumping = false;
  private buffer: Completion[] = [];
  private flushing = false;
  executed = 0;

  constructor(
    readonly agent: string,
    private readonly host: WorkerHost,
  ) {}

  enqueue(items: Array<{ task: string; agent: string; epoch: number }>): void {
    for (const it of items) {
      const key = `${it.task}@${it.epoch}`;
      if (it.agent !== this.agent || this.known.has(key)) continue;
      this.known.add(key);
      this.queue.push({ task: it.task, epoch: it.epoch });
    }
    if (this.queue.length > 0) this.schedulePump();
  }

  /** Forget queued work (the member crashed): its leases will expire and be reassigned. */
  reset(): void {
    this.queue = [];
    this.buffer = [];
    this.known.clear();
  }

  private schedulePump(): void {
    if (this.pumping) return;
    this.pumping = true;
    // After the current turn: a replica replaying its log on restart finishes first, so work
    // already completed later in the log is recognised and skipped.
    setImmediate(() => {
      this.pumping = false;
      this.pump();
    });
  }

  private pump(): void {
    if (!this.host.isRunning(this.agent)) {
      this.reset();
      return;
    }
    const m = this.host.machineOf(this.agent);
    if (!m) return;
    const limit = Math.max(1, this.host.batchSize());
    while (this.queue.length > 0 && this.active < limit) {
      const item = this.queue.shift()!;
      const key = `${item.task}@${item.epoch}`;
      const t = m.tasks.tasks.get(item.task);
      const orch = t ? m.tasks.orchs.get(t.orch) : undefined;
      if (!t || !orch || t.status !== 'assigned' || t.epoch !== item.epoch || t.assignee !== this.agent) {
        this.known.delete(key);
        continue;
      }
      if (orch.executor.kind === 'noop') {
        this.known.delete(key);
        // No I/O: complete inline so large batches cost no promise per task.
        this.executed++;
        this.buffer.push({ task: t.id, agent: this.agent, epoch: item.epoch, ok: true, result: null });
        continue;
      }
      this.active++;
      void execute(orch.executor, t.id, item.epoch, orch.payload).then((out) => {
        this.active--;
        this.known.delete(key);
        this.executed++;
        this.buffer.push({ task: item.task, agent: this.agent, epoch: item.epoch, ok: out.ok, result: out.result });
        this.flush();
        if (this.queue.length > 0) this.schedulePump();
      });
    }
    this.flush();
    if (this.queue.length > 0 && this.active < limit) this.schedulePump();
  }

  private flush(): void {
    if (this.flushing || this.buffer.length === 0) return;
    if (!this.host.isRunning(this.agent)) {
      this.reset();
      return;
    }
    this.flushing = true;
    const items = this.buffer;
    this.buffer = [];
    void this.host
      .submitCompletions(items)
      .catch(() => {
        // Not committed in time: the lease expires and the task is reassigned with a new epoch.
      })
      .finally(() => {
        this.flushing = false;
        if (this.buffer.length > 0) this.flush();
      });
  }
}
