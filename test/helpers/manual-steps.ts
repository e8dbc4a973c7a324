// A deferral a test runs by hand (storage steps that the host would run on later turns).

/** `defer` queues a step; run() runs the steps queued so far (one turn), runAll() until none is left. */
export function steps(): { defer: (fn: () => void) => void; run: () => number; runAll: () => number } {
  const q: Array<() => void> = [];
  const run = (): number => {
    const n = q.length;
    for (const fn of q.splice(0, n)) fn();
    return n;
  };
  return {
    defer: (fn) => void q.push(fn),
    run,
    runAll: () => {
      let n = 0;
      while (q.length > 0) n += run();
      return n;
    },
  };
}
