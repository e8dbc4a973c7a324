import type { CoordinationMachine } from '../machine/coordination-machine.js';
import type { CompleteItem } from '../machine/types.js';
import { execute } from './executors.js';

type Completion = CompleteItem;

/** Start counts kept for reports never sent; beyond this the oldest are forgotten. */
const MAX_UNREPORTED_STARTS = 65_536;

export interface WorkerHost {
  /** The agent's own replica; may be undefined while its member is down (the worker checks isRunning itself). */
  machineOf(agent: string): CoordinationMachine | undefined;
  isRunning(agent: string): boolean;
  batchSize(): number;
  submitCompletions(items: Completion[]): Promise<void>;
  /**
   * True while the agent's replica applies entries the cluster committed long ago (replay after
   * a restart, a follower catching up): an assignment applied then may be completed or
   * reassigned by an entry it has not applied yet, so running it now is likely wasted work.
   */
  catchingUp?(agent: string): boolean;
}

/** Fallback re-check while waiting for the replica to catch up (applied() normally wakes it). */
const CATCH_UP_RECHECK_MS = 50;

/**
 * The work loop of one agent (a Raft member). It learns of its assignments by applying the
 * log on its own replica, runs each with the task's executor, and proposes completions that
 * carry the assignment's epoch. When the member crashes, the loop stops with it.
 */
export class AgentWorker {
  private queue: Array<{ task: string; epoch: number }> = [];
  /**
   * Index of the queue's next item (taken items are dropped in bulk, see take()). Array.shift()
   * moves every item left once the array is large: a restarted member replaying its log queued
   * ~100,000 assignments and draining them held the event loop 5-16 s (200,000: ~60 s).
   */
  private head = 0;
  /** `task@epoch` queued or executing: the same assignment announced twice (log replay, then
   * a snapshot install) runs once, not twice with the second completion fenced off. */
  private known = new Set<string>();
  private active = 0;
  private pumping = false;
  private buffer: Completion[] = [];
  private flushing = false;
  /**
   * `task@epoch` -> runs started and not yet covered by a report handed to the log. Survives
   * reset(): when the member stops mid-run its report is dropped, and if the same assignment
   * runs again after a restart, that report covers both runs (executions_started).
   */
  private starts = new Map<string, number>();
  executed = 0;
  /** Queued work held back until the replica has caught up (see WorkerHost.catchingUp). */
  private waiting = false;
  private recheck: NodeJS.Timeout | null = null;

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
    if (this.queued > 0) this.schedulePump();
  }

  /** Items queued and not taken yet. */
  get queued(): number {
    return this.queue.length - this.head;
  }

  /** The next queued item; the taken prefix is cut off once it is at least half the array. */
  private take(): { task: string; epoch: number } {
    const item = this.queue[this.head++]!;
    if (this.head >= 1024 && this.head * 2 >= this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  /** The replica applied an entry: work held back while it caught up may run now. */
  applied(): void {
    if (this.waiting) this.schedulePump();
  }

  /** Forget queued work (the member crashed): its leases will expire and be reassigned. */
  reset(): void {
    this.queue = [];
    this.head = 0;
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
    // Behind the cluster: wait, then check each assignment against the caught-up replica
    // (heldBy below), rather than run work the entries ahead already completed or took back.
    this.waiting = this.queued > 0 && this.host.catchingUp?.(this.agent) === true;
    if (this.waiting) {
      this.recheck ??= setTimeout(() => {
        this.recheck = null;
        if (this.waiting) this.schedulePump();
      }, CATCH_UP_RECHECK_MS);
      // Never what keeps a process alive (a closed swarm's worker may still be waiting).
      this.recheck.unref?.();
      return;
    }
    const limit = Math.max(1, this.host.batchSize());
    while (this.queued > 0 && this.active < limit) {
      const item = this.take();
      const key = `${item.task}@${item.epoch}`;
      // Still ours at this epoch (read in place: no record built per task).
      const orch = m.tasks.heldBy(item.task, item.epoch, this.agent);
      if (!orch) {
        this.known.delete(key);
        this.starts.delete(key);
        continue;
      }
      const runs = this.countStart(key);
      if (orch.executor.kind === 'noop') {
        this.known.delete(key);
        // No I/O: complete inline so large batches cost no promise per task.
        this.executed++;
        this.buffer.push(report(item.task, this.agent, item.epoch, true, null, runs));
        continue;
      }
      this.active++;
      void execute(orch.executor, item.task, item.epoch, orch.payload).then((out) => {
        this.active--;
        this.known.delete(key);
        this.executed++;
        this.buffer.push(report(item.task, this.agent, item.epoch, out.ok, out.result, this.starts.get(key) ?? 0));
        this.flush();
        if (this.queued > 0) this.schedulePump();
      });
    }
    this.flush();
    if (this.queued > 0 && this.active < limit) this.schedulePump();
  }

  private countStart(key: string): number {
    const n = (this.starts.get(key) ?? 0) + 1;
    this.starts.delete(key);
    this.starts.set(key, n);
    while (this.starts.size > MAX_UNREPORTED_STARTS) this.starts.delete(this.starts.keys().next().value as string);
    return n;
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
    // Handed to the log: these runs are covered whether or not the proposal commits in time
    // (counting them again in a later report could count a run twice).
    for (const it of items) this.starts.delete(`${it.task}@${it.epoch}`);
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

function report(task: string, agent: string, epoch: number, ok: boolean, result: unknown, runs: number): Completion {
  const c: Completion = { task, agent, epoch, ok, result };
  // 0: another report already covered this run (it restarted while this one was running).
  if (runs !== 1) c.starts = runs;
  return c;
}
