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
 * One per process, for the members of embedded swarms (wall-clock hosts only): two heavy items
 * per loop iteration, the two followers a five-member commit needs. Measured in the swarm (100 x
 * 1 MiB writes, load 17-20 on the shared 2-core machine, alternating runs): loop delay max
 * 135-246 ms and p99 92-149 ms, against 284-432 and 207-246 ms without a budget; 0 elections in
 * 6 bursts each. One item per iteration cut the p99 to 62-102 ms but 8 of 10 bursts had an
 * election: each one traced was the leader stepping down on its quorum check, with the followers
 * that would have answered waiting their turn, then their fsync (230-270 ms), answering no
 * heartbeat meanwhile, and the others' answers still queued for delivery behind the iteration in
 * progress when the leader's late tick judged the quorum. With two per iteration the followers
 * that make the quorum never wait for the budget.
 */
export const PROCESS_TURN_BUDGET = new TurnBudget(undefined, 2);
