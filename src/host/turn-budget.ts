// Members of one process share one event loop. A 1 MiB write used to be persisted by the four
// followers of an embedded swarm back to back in one loop iteration (they get the leader's
// append in the same turn): measured 8-11 ms of SQLite work each (on-CPU, 1 MiB row), so one
// iteration held timers (heartbeats, election clocks, lease checks) for 60-75 ms at load 7 on
// the shared 2-core machine, and for several times that once the process waits for a core.
//
// A TurnBudget is a process-wide FIFO of such heavy items, a few per loop iteration (an
// immediate queued from an immediate runs in the next iteration, after that iteration's due
// timers and I/O callbacks), so a due timer waits for a few members' items, never for all.
// FIFO means none waits behind items that came later: no starvation, hence no deadline to
// fall back on. (The first version used time slices and a deadline: once the deadline passed,
// every waiting item ran in the same turn, the stall it was meant to avoid; and the slice was
// armed and disarmed in different iterations, so waiting items could keep losing to new ones
// until that deadline.)

export class TurnBudget {
  private readonly queue: Array<() => void> = [];
  private pumping = false;
  /** Heavy items run through this budget, and the most that waited at once. */
  ran = 0;
  maxWaiting = 0;

  constructor(
    /** Runs fn in a later loop iteration; called from fn's own run, in the one after that. */
    private readonly nextIteration: (fn: () => void) => void = (fn) => setImmediate(fn),
    /** Items run per loop iteration. */
    private readonly perIteration = 1,
  ) {}

  /** Run `fn` in a later loop iteration, after the items queued before it. */
  defer(fn: () => void): void {
    this.queue.push(fn);
    if (this.queue.length > this.maxWaiting) this.maxWaiting = this.queue.length;
    if (this.pumping) return;
    this.pumping = true;
    this.nextIteration(this.pump);
  }

  /** Items waiting for their iteration. */
  get waiting(): number {
    return this.queue.length;
  }

  private readonly pump = (): void => {
    try {
      for (let i = 0; i < this.perIteration; i++) {
        const fn = this.queue.shift();
        if (!fn) break;
        this.ran++;
        fn();
      }
    } finally {
      // Even when fn threw: the others still run, each in an iteration of its own.
      if (this.queue.length > 0) this.nextIteration(this.pump);
      else this.pumping = false;
    }
  };
}

/**
 * One per process, for the members of embedded swarms (wall-clock hosts only): one heavy item
 * per loop iteration, leader included. Two per iteration was the choice while a follower's
 * heartbeat answers waited for its heavy Ready (one per iteration then caused elections: the
 * followers that would have answered waited their turn); since they answer at once and a
 * leader's heartbeats leave while it writes (NodeHost.sendHeartbeatsNow), one per iteration
 * holds: 100 x 1 MiB writes, loop delay max 36-44 ms and p99 22-23 ms against 150-204 and
 * 127-132 (two per iteration, leader and checkpoints not deferred; 2026-12-02, load 1-2).
 */
export const PROCESS_TURN_BUDGET = new TurnBudget();
