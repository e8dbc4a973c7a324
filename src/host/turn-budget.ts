// Members of one process share one event loop. A 1 MiB write used to be persisted by the four
// followers of an embedded swarm back to back in one loop iteration (they get the leader's
// append in the same turn): measured 8-11 ms of SQLite work each (on-CPU, 1 MiB row), so one
// iteration held timers (heartbeats, election clocks, lease checks) for 40-70 ms on a lightly
// loaded machine, and for several times that once the process waits for a core.
//
// A TurnBudget is a process-wide FIFO of such heavy items: each runs in a loop iteration of
// its own (an immediate queued from an immediate runs in the next iteration, after that
// iteration's due timers and I/O callbacks), so a due timer waits for about one member's item,
// never for all of them. FIFO means none waits behind items that came later: no starvation,
// hence no deadline to fall back on. (The first version used time slices and a deadline: once
// the deadline passed, every waiting item ran in the same turn, the stall it was meant to
// avoid; the arm/disarm of its slice spanned two iterations, so waiting items could keep losing
// to new ones until that deadline.)

export class TurnBudget {
  private readonly queue: Array<() => void> = [];
  private pumping = false;
  /** Heavy items run through this budget, and the most that waited at once. */
  ran = 0;
  maxWaiting = 0;

  constructor(
    /** Runs fn in a later loop iteration; called from fn's own run, in the one after that. */
    private readonly nextIteration: (fn: () => void) => void = (fn) => setImmediate(fn),
  ) {}

  /** Run `fn` in a loop iteration of its own, after the items queued before it. */
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
    const fn = this.queue.shift();
    try {
      if (fn) {
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
 * One per process, for the members of an embedded swarm (wall-clock hosts only). Not wired into
 * the swarm: measured there (100 x 1 MiB writes, load 12-22 on the shared 2-core machine) it
 * cut the loop's p99 delay from 134-246 ms to 62-102 ms and its max from 188-390 ms to
 * 92-275 ms (one outlier of 875 ms at load 22), but 8 of 10 bursts had an election (0 of 6
 * without). Each one traced was the leader stepping down on its quorum check: followers waiting
 * for their turn and then their fsync (230-270 ms) answered no heartbeat meanwhile, and the
 * others' answers were still queued for delivery behind the iteration in progress when the
 * leader's late tick judged the quorum. Answering heartbeats while a write is in flight (4 of
 * 6 bursts with an election), and also ticking after queued deliveries (4 of 6), did not fix it.
 */
export const PROCESS_TURN_BUDGET = new TurnBudget();
