// npm run sim -- --seeds N [--nodes 5] [--steps S] [--from K] [--jobs J]
//   Runs seeds K..K+N-1 (K defaults to 1) and ends with one JSON line:
//   {"seeds":N,"steps":S_total,"violations":V,"elapsed_s":T,"faults":{crash,...}}; exit status
//   1 when V > 0. `faults` counts each kind of fault injected over all seeds (a kind that is
//   silently off shows as 0).
//   --snapshot-parts: with the coordination workload, followers are sent multi-part snapshots
//   (SimOptions.snapshotPartsOnWire; changes those seeds' trajectories).
//   --resend-after MS: a snapshot delivered whole is not streamed again on its link for MS
//   (virtual) ms when its leader resends it (SimOptions.snapshotResendAfterMs; changes
//   trajectories where that happens).
//   --embedded-timing: the embedded swarm's timing (a 1 s tick timer on a stall-measuring
//   wheel per member, wakes on the heartbeat grid, followers asleep until their deadline,
//   heartbeats that ask no answer held for the receiver's next read; SimOptions.embeddedTiming).
// npm run sim -- --seed K [--nodes 5] [--steps S] --trace
//   Replays one seed and prints its event trace.
//
// With --jobs > 1 the seeds are split over child processes (each seed is independent and
// deterministic, so the result does not depend on the split).

import { fork } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { DEFAULT_STEPS, runSeed, zeroFaults, type FaultCounts, type SimResult } from './simulator.js';

interface Args {
  seeds: number;
  from: number;
  seed: number | undefined;
  nodes: number | undefined;
  steps: number;
  trace: boolean;
  jobs: number;
  worker: boolean;
  quiet: boolean;
  messages: boolean;
  snapshotParts: boolean;
  resendAfterMs: number;
  embeddedTiming: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    seeds: 1,
    from: 1,
    seed: undefined,
    nodes: undefined,
    steps: DEFAULT_STEPS,
    trace: false,
    jobs: Math.max(1, Math.min(os.availableParallelism?.() ?? os.cpus().length, 8)),
    worker: false,
    quiet: false,
    messages: false,
    snapshotParts: false,
    resendAfterMs: 0,
    embeddedTiming: false,
  };
  const num = (i: number, flag: string): number => {
    const v = Number(argv[i]);
    if (!Number.isInteger(v) || v < 0) usage(`${flag} needs a non-negative integer, got ${String(argv[i])}`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const f = argv[i];
    switch (f) {
      case '--seeds':
        a.seeds = num(++i, f);
        break;
      case '--from':
        a.from = num(++i, f);
        break;
      case '--seed':
        a.seed = num(++i, f);
        break;
      case '--nodes':
        a.nodes = num(++i, f);
        if (a.nodes < 1) usage('--nodes must be >= 1');
        break;
      case '--steps':
        a.steps = num(++i, f);
        break;
      case '--jobs':
        a.jobs = Math.max(1, num(++i, f));
        break;
      case '--trace':
        a.trace = true;
        break;
      case '--messages':
        a.messages = true;
        a.trace = true;
        break;
      case '--quiet':
        a.quiet = true;
        break;
      case '--snapshot-parts':
        a.snapshotParts = true;
        break;
      case '--resend-after':
        a.resendAfterMs = num(++i, f);
        break;
      case '--embedded-timing':
        a.embeddedTiming = true;
        break;
      case '--worker':
        a.worker = true;
        break;
      case '--help':
      case '-h':
        usage();
        break;
      default:
        usage(`unknown argument ${String(f)}`);
    }
  }
  return a;
}

function usage(err?: string): never {
  if (err) process.stderr.write(`sim: ${err}\n`);
  process.stderr.write(
    'usage: npm run sim -- --seeds N [--from K] [--nodes 3|5|7] [--steps S] [--jobs J]\n' +
      '       npm run sim -- --seed K [--nodes 3|5|7] [--steps S] [--trace] [--messages]\n',
  );
  process.exit(err ? 2 : 0);
}

interface Summary {
  seeds: number;
  steps: number;
  violations: number;
  failing: Array<{ seed: number; nodes: number; first: string; count: number }>;
  faults: FaultCounts;
  /** Runs with the coordination workload, replica state hashes compared, orchestrations compacted by retention, restarts from checkpoint rows in those runs, snapshots restored from multi-part form (v5), checkpoints whose rows were taken over several turns. */
  coordination: { runs: number; state_checks: number; orchestrations_compacted: number; restarts_from_checkpoint: number; part_restores: number; stepped_checkpoint_takes: number };
  /** Restarts (all runs) that rebuilt the machine from checkpoint rows. */
  restarts_from_checkpoint: number;
  snapshot_resends_skipped: number;
  heartbeats_held: number;
}

function addCoordination(s: Summary, st: SimResult['stats']): void {
  s.coordination.runs += st.coordRuns;
  s.coordination.state_checks += st.coordStateChecks;
  s.coordination.orchestrations_compacted += st.coordOrchsCompacted;
  s.coordination.part_restores += st.coordPartRestores ?? 0;
  s.coordination.stepped_checkpoint_takes += st.coordSteppedTakes ?? 0;
  s.snapshot_resends_skipped += st.snapshotResendsSkipped ?? 0;
  s.heartbeats_held += st.heartbeatsHeld ?? 0;
  if (st.coordRuns > 0) s.coordination.restarts_from_checkpoint += st.restartsFromCheckpoint;
  s.restarts_from_checkpoint += st.restartsFromCheckpoint;
}

function addFaults(into: FaultCounts, f: FaultCounts): void {
  for (const k of Object.keys(into) as Array<keyof FaultCounts>) into[k] += f[k] ?? 0;
}


function add(s: Summary, r: SimResult): void {
  s.seeds++;
  s.steps += r.steps;
  s.violations += r.violations.length;
  addFaults(s.faults, r.stats.faults);
  addCoordination(s, r.stats);
  if (r.violations.length > 0) s.failing.push({ seed: r.seed, nodes: r.nodes, first: r.violations[0] as string, count: r.violations.length });
}

/** Run a contiguous range of seeds in this process. */
async function runRange(from: number, count: number, a: Args, onResult: (r: SimResult) => void): Promise<void> {
  for (let seed = from; seed < from + count; seed++) {
    const opts: { steps: number; nodes?: number; snapshotPartsOnWire: boolean; snapshotResendAfterMs: number; embeddedTiming: boolean } = { steps: a.steps, snapshotPartsOnWire: a.snapshotParts, snapshotResendAfterMs: a.resendAfterMs, embeddedTiming: a.embeddedTiming };
    if (a.nodes !== undefined) opts.nodes = a.nodes;
    onResult(await runSeed(seed, opts));
  }
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const started = performance.now();

  if (a.seed !== undefined) {
    const opts: { steps: number; nodes?: number; trace: boolean; messages: boolean; snapshotPartsOnWire: boolean; snapshotResendAfterMs: number; embeddedTiming: boolean } = { steps: a.steps, trace: a.trace, messages: a.messages, snapshotPartsOnWire: a.snapshotParts, snapshotResendAfterMs: a.resendAfterMs, embeddedTiming: a.embeddedTiming };
    if (a.nodes !== undefined) opts.nodes = a.nodes;
    const r = await runSeed(a.seed, opts);
    if (a.trace) for (const line of r.trace) process.stdout.write(`${line}\n`);
    for (const v of r.violations) process.stderr.write(`seed ${r.seed}: ${v}\n`);
    process.stderr.write(`seed ${r.seed}: ${r.nodes} nodes, stats ${JSON.stringify(r.stats)}\n`);
    const one: Summary = { seeds: 1, steps: r.steps, violations: r.violations.length, failing: [], faults: r.stats.faults, coordination: { runs: 0, state_checks: 0, orchestrations_compacted: 0, restarts_from_checkpoint: 0, part_restores: 0, stepped_checkpoint_takes: 0 }, restarts_from_checkpoint: 0, snapshot_resends_skipped: 0, heartbeats_held: 0 };
    addCoordination(one, r.stats);
    finish(one, started);
    return;
  }

  if (a.worker) {
    // Child: run the range and report each result as one JSON line on stdout.
    await runRange(a.from, a.seeds, a, (r) => {
      process.stdout.write(`${JSON.stringify({ seed: r.seed, nodes: r.nodes, steps: r.steps, violations: r.violations.slice(0, 3), count: r.violations.length, stats: r.stats })}\n`);
    });
    return;
  }

  const summary: Summary = { seeds: 0, steps: 0, violations: 0, failing: [], faults: zeroFaults(), coordination: { runs: 0, state_checks: 0, orchestrations_compacted: 0, restarts_from_checkpoint: 0, part_restores: 0, stepped_checkpoint_takes: 0 }, restarts_from_checkpoint: 0, snapshot_resends_skipped: 0, heartbeats_held: 0 };
  const totals: Record<string, number> = {};
  const progress = (r: { seed: number; stats: SimResult['stats'] }): void => {
    for (const [k, v] of Object.entries(r.stats)) if (typeof v === 'number') totals[k] = (totals[k] ?? 0) + v;
    const failed = summary.failing.find((f) => f.seed === r.seed);
    if (failed) process.stderr.write(`sim: seed ${r.seed} (${failed.nodes} nodes) FAILED: ${failed.first}\n`);
    if (!a.quiet && summary.seeds % 500 === 0) {
      const t = ((performance.now() - started) / 1000).toFixed(1);
      process.stderr.write(`sim: ${summary.seeds}/${a.seeds} seeds, ${summary.violations} violations, ${t} s\n`);
    }
  };
  const jobs = Math.min(a.jobs, a.seeds);
  if (jobs <= 1) {
    await runRange(a.from, a.seeds, a, (r) => {
      add(summary, r);
      progress(r);
    });
  } else {
    const per = Math.ceil(a.seeds / jobs);
    const runs: Array<Promise<void>> = [];
    for (let j = 0; j < jobs; j++) {
      const from = a.from + j * per;
      const count = Math.min(per, a.from + a.seeds - from);
      if (count <= 0) continue;
      runs.push(runChild(from, count, a, (r) => {
        summary.seeds++;
        summary.steps += r.steps;
        summary.violations += r.count;
        addFaults(summary.faults, r.stats.faults);
        addCoordination(summary, r.stats);
        if (r.count > 0) summary.failing.push({ seed: r.seed, nodes: r.nodes, first: r.violations[0] ?? '', count: r.count });
        progress(r);
      }));
    }
    await Promise.all(runs);
  }
  if (!a.quiet) process.stderr.write(`sim: totals ${JSON.stringify(totals)}\n`);
  finish(summary, started);
}

interface ChildResult {
  seed: number;
  nodes: number;
  steps: number;
  violations: string[];
  count: number;
  stats: SimResult['stats'];
}

function runChild(from: number, count: number, a: Args, onResult: (r: ChildResult) => void): Promise<void> {
  const args = ['--worker', '--from', String(from), '--seeds', String(count), '--steps', String(a.steps)];
  if (a.nodes !== undefined) args.push('--nodes', String(a.nodes));
  if (a.snapshotParts) args.push('--snapshot-parts');
  if (a.resendAfterMs > 0) args.push('--resend-after', String(a.resendAfterMs));
  if (a.embeddedTiming) args.push('--embedded-timing');
  const child = fork(fileURLToPath(import.meta.url), args, { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    let buf = '';
    let got = 0;
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.trim() === '') continue;
        got++;
        onResult(JSON.parse(line) as ChildResult);
      }
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0 || got !== count) reject(new Error(`sim worker for seeds ${from}..${from + count - 1} exited with ${code} after ${got} seeds`));
      else resolve();
    });
  });
}

function finish(s: Summary, started: number): void {
  if (s.failing.length > 0) {
    s.failing.sort((x, y) => x.seed - y.seed);
    process.stderr.write(`sim: ${s.failing.length} failing seed(s): ${s.failing.map((f) => f.seed).join(' ')}\n`);
    const f = s.failing[0]!;
    process.stderr.write(`sim: first violation (seed ${f.seed}, ${f.nodes} nodes): ${f.first}\n`);
    process.stderr.write(`sim: replay with: npm run sim -- --seed ${f.seed} --trace\n`);
  }
  const elapsed = Math.round((performance.now() - started) / 10) / 100;
  process.stdout.write(`${JSON.stringify({ seeds: s.seeds, steps: s.steps, violations: s.violations, elapsed_s: elapsed, faults: s.faults, coordination: s.coordination, restarts_from_checkpoint: s.restarts_from_checkpoint, snapshot_resends_skipped: s.snapshot_resends_skipped, heartbeats_held: s.heartbeats_held })}\n`);
  process.exitCode = s.violations > 0 ? 1 : 0;
}

main().catch((e: unknown) => {
  process.stderr.write(`sim: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(2);
});
