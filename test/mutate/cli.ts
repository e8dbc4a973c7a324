// `npm run mutate [-- --only id[,id]] [--changed] [--jobs N] [--timeout-s S] [--baseline] [--list]`
//
// Applies each named mutation (test/mutate/mutations.ts) to a scratch copy of the repository
// (never the working tree), runs the test files that defend it, and records the outcome:
// killed (a test failed), survived (all passed), timeout (no answer within --timeout-s).
// Progress goes to stderr; stdout gets one JSON line at the end.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT, applyMutation, readRepoFile } from './apply.js';
import { MUTATIONS, type Mutation } from './mutations.js';

type Status = 'killed' | 'survived' | 'timeout' | 'error';

interface Outcome {
  id: string;
  status: Status;
  ms: number;
  cached: boolean;
  /** Why, for an error. */
  detail?: string;
  /** For a kill: the test files that failed. */
  killedBy?: string[];
}

interface Args {
  only: string[] | null;
  changed: boolean;
  jobs: number;
  timeoutS: number;
  /** Whether --timeout-s was given (else a baseline run sets each test set's timeout). */
  timeoutGiven: boolean;
  baseline: boolean;
  list: boolean;
  keep: boolean;
}

// --timeout-s defaults to 600 s; with --baseline and no --timeout-s, 3x the baseline + 30 s.
const USAGE = 'usage: npm run mutate -- [--only id[,id...]] [--changed] [--jobs N] [--timeout-s S] [--baseline] [--keep] [--list]';
const COPIED = ['src', 'tools', 'test', 'package.json', 'tsconfig.json', 'tsconfig.test.json', 'vitest.config.ts', 'esbuild.config.mjs', 'dist'];

/**
 * Tests that run the build (`concord node` processes, or dist/ modules in child processes):
 * the mutant must be built, or they test the unmutated code (before 2026-12-03 the scratch
 * copy had no dist/ at all, and such tests failed on requireBuild: a kill that proved nothing,
 * which hid that lock-dropped-on-gc survives).
 */
function runsBuiltCli(test: string): boolean {
  const text = fs.existsSync(path.join(REPO_ROOT, test)) ? readRepoFile(test) : '';
  return /requireBuild|startCluster|memberProcs|dist\/src\/cli\/main\.js|\bMAIN\b/.test(text);
}

/**
 * Rebuild a scratch copy's dist/ from its src, as `npm run build` does: tsc's modules (some
 * tests import them from dist/ in child processes) and the CLI bundle.
 */
function bundle(dir: string): void {
  for (const args of [[path.join('node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], ['esbuild.config.mjs']]) {
    const r = spawnSync(process.execPath, args, { cwd: dir, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`build step ${args.join(' ')} in ${dir} failed: ${r.stdout}${r.stderr}`);
  }
}
const CACHE_FILE = path.join(os.tmpdir(), 'concord-mutate-cache.json');

function parseArgs(argv: string[]): Args {
  const a: Args = { only: null, changed: false, jobs: 1, timeoutS: 600, timeoutGiven: false, baseline: false, list: false, keep: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) usage(`${arg} needs a value`);
      return v;
    };
    if (arg === '--only') a.only = [...(a.only ?? []), ...value().split(',').filter(Boolean)];
    else if (arg === '--changed') a.changed = true;
    else if (arg === '--jobs') a.jobs = positiveInt(arg, value(), 8);
    else if (arg === '--timeout-s') {
      a.timeoutS = positiveInt(arg, value(), 7200);
      a.timeoutGiven = true;
    }
    else if (arg === '--baseline') a.baseline = true;
    else if (arg === '--list') a.list = true;
    else if (arg === '--keep') a.keep = true;
    else usage(`unknown argument ${arg}`);
  }
  return a;
}

function positiveInt(name: string, v: string, max: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > max) usage(`${name}=${v}: accepted an integer 1..${max}`);
  return n;
}

function usage(why: string): never {
  process.stderr.write(`${why}\n${USAGE}\n`);
  process.exit(2);
}

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

/**
 * What a mutant's result depends on, as far as --changed looks: its definition, its target
 * file and its test files. Helpers the tests import and other src files are not hashed: after
 * changing those, run without --changed.
 */
function contentHash(m: Mutation): string {
  const h = crypto.createHash('sha256');
  h.update(JSON.stringify(m));
  for (const f of [m.file, ...m.tests]) {
    h.update(`\0${f}\0`);
    h.update(fs.existsSync(path.join(REPO_ROOT, f)) ? readRepoFile(f) : '<missing>');
  }
  return h.digest('hex');
}

type Cache = Record<string, { hash: string; status: Status; ms: number; killedBy?: string[] }>;

function loadCache(): Cache {
  try {
    return JSON.parse(fs.readFileSync(CACHE_FILE, 'utf8')) as Cache;
  } catch {
    return {};
  }
}

function saveCache(c: Cache): void {
  const tmp = `${CACHE_FILE}.${process.pid}`;
  fs.writeFileSync(tmp, JSON.stringify(c, null, 1));
  fs.renameSync(tmp, CACHE_FILE);
}

/** A scratch copy of the repository with node_modules linked to the real install. */
function makeScratch(root: string, slot: number): string {
  const dir = path.join(root, `slot-${slot}`);
  fs.mkdirSync(dir, { recursive: true });
  for (const name of COPIED) {
    const from = path.join(REPO_ROOT, name);
    if (fs.existsSync(from)) fs.cpSync(from, path.join(dir, name), { recursive: true });
  }
  fs.symlinkSync(fs.realpathSync(path.join(REPO_ROOT, 'node_modules')), path.join(dir, 'node_modules'), 'dir');
  return dir;
}

const children = new Set<ChildProcess>();

/** Run vitest on `tests` in `dir`; resolves with its exit code, or 'timeout'. */
function runTests(dir: string, tests: string[], timeoutS: number, logFile: string): Promise<number | 'timeout'> {
  const vitest = path.join(dir, 'node_modules', 'vitest', 'vitest.mjs');
  return new Promise((resolve) => {
    const out = fs.openSync(logFile, 'w');
    // Own process group, so a timeout can end vitest and the forks it started.
    const child = spawn(process.execPath, [vitest, 'run', ...tests, '--reporter=dot'], {
      cwd: dir,
      detached: true,
      stdio: ['ignore', out, out],
      env: { ...process.env, CI: '1', FORCE_COLOR: '0', NO_COLOR: '1' },
    });
    children.add(child);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child);
    }, timeoutS * 1000);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      fs.closeSync(out);
      resolve(timedOut ? 'timeout' : (code ?? (signal ? 128 : 1)));
    });
  });
}

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

function tail(file: string, lines: number): string {
  try {
    return fs.readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** Test files vitest reported as failed (its "FAIL  <file> > ..." lines). */
function failedFiles(logFile: string): string[] {
  let text = '';
  try {
    text = fs.readFileSync(logFile, 'utf8');
  } catch {
    return [];
  }
  const files = new Set<string>();
  for (const m of text.matchAll(/FAIL\s+(\S+\.test\.ts)/g)) files.add(m[1]!);
  return [...files].sort();
}

function folderOf(file: string): string {
  return path.posix.dirname(file);
}

function score(killed: number, survived: number, timeout: number): number | null {
  const n = killed + survived + timeout;
  // A timeout counts as detected: the mutant made the tests hang rather than pass.
  return n === 0 ? null : Math.round(((killed + timeout) / n) * 1000) / 1000;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.list) {
    for (const m of MUTATIONS) process.stdout.write(`${m.id}\t${m.file}\t${m.tests.join(' ')}\n`);
    return;
  }
  let selected = MUTATIONS;
  if (args.only) {
    const known = new Set(MUTATIONS.map((m) => m.id));
    const unknown = args.only.filter((id) => !known.has(id));
    if (unknown.length > 0) usage(`--only: unknown mutation ${unknown.join(', ')}; see npm run mutate -- --list`);
    selected = MUTATIONS.filter((m) => args.only!.includes(m.id));
  }

  const cache = loadCache();
  const outcomes = new Map<string, Outcome>();
  const todo: Array<{ m: Mutation; hash: string; mutated: string }> = [];
  for (const m of selected) {
    const hash = contentHash(m);
    const missing = m.tests.filter((t) => !fs.existsSync(path.join(REPO_ROOT, t)));
    if (missing.length > 0) {
      outcomes.set(m.id, { id: m.id, status: 'error', ms: 0, cached: false, detail: `test file(s) missing: ${missing.join(', ')}` });
      continue;
    }
    const applied = applyMutation(m, readRepoFile(m.file));
    if ('error' in applied) {
      outcomes.set(m.id, { id: m.id, status: 'error', ms: 0, cached: false, detail: applied.error });
      continue;
    }
    const hit = cache[m.id];
    if (args.changed && hit && hit.hash === hash && hit.status !== 'error') {
      outcomes.set(m.id, { id: m.id, status: hit.status, ms: hit.ms, cached: true, ...(hit.killedBy ? { killedBy: hit.killedBy } : {}) });
      continue;
    }
    todo.push({ m, hash, mutated: applied.text });
  }
  for (const o of outcomes.values()) if (o.status === 'error') log(`${o.id}: error: ${o.detail}`);
  const cachedCount = [...outcomes.values()].filter((o) => o.cached).length;
  log(`mutate: ${todo.length} to run, ${cachedCount} unchanged since the last run (cached), jobs=${args.jobs}, timeout ${args.timeoutS} s`);

  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-mutate-'));
  const cleanup = (): void => {
    for (const c of children) killGroup(c);
    if (!args.keep) fs.rmSync(root, { recursive: true, force: true });
  };
  process.on('SIGINT', () => {
    cleanup();
    process.exit(130);
  });
  process.on('SIGTERM', () => {
    cleanup();
    process.exit(143);
  });

  try {
    const slots = Math.max(1, Math.min(args.jobs, todo.length));
    const dirs = Array.from({ length: slots }, (_, i) => makeScratch(root, i));

    // Baseline: each distinct set of test files must pass unmutated, or its kills mean nothing.
    const baselineFailed = new Set<string>();
    // A mutant may slow its tests down, but a set that passes in B seconds unmutated and
    // has not answered after 3B + 30 s hangs (unless --timeout-s says otherwise).
    const timeoutFor = new Map<string, number>();
    if (args.baseline) {
      const sets = [...new Set(todo.map(({ m }) => JSON.stringify(m.tests)))];
      for (const s of sets) {
        const tests = JSON.parse(s) as string[];
        const t0 = performance.now();
        const code = await runTests(dirs[0]!, tests, args.timeoutS, path.join(root, 'baseline.log'));
        const ok = code === 0;
        if (ok && !args.timeoutGiven) timeoutFor.set(s, Math.ceil((3 * (performance.now() - t0)) / 1000) + 30);
        log(`baseline ${tests.join(' ')}: ${ok ? 'pass' : `FAIL (${code})`} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
        if (!ok) {
          baselineFailed.add(s);
          log(tail(path.join(root, 'baseline.log'), 15));
        }
      }
    }

    let next = 0;
    let done = 0;
    const worker = async (dir: string, slot: number): Promise<void> => {
      for (;;) {
        const job = todo[next++];
        if (!job) return;
        const { m, hash, mutated } = job;
        if (baselineFailed.has(JSON.stringify(m.tests))) {
          outcomes.set(m.id, { id: m.id, status: 'error', ms: 0, cached: false, detail: 'its tests fail without the mutation (baseline)' });
          continue;
        }
        const target = path.join(dir, m.file);
        const original = fs.readFileSync(target, 'utf8');
        fs.writeFileSync(target, mutated);
        const logFile = path.join(root, `${m.id}.log`);
        const t0 = performance.now();
        const built = m.tests.some(runsBuiltCli);
        let code: number | 'timeout';
        try {
          if (built) bundle(dir);
          code = await runTests(dir, m.tests, timeoutFor.get(JSON.stringify(m.tests)) ?? args.timeoutS, logFile);
        } finally {
          fs.writeFileSync(target, original);
          if (built) bundle(dir);
        }
        const ms = Math.round(performance.now() - t0);
        const status: Status = code === 'timeout' ? 'timeout' : code === 0 ? 'survived' : 'killed';
        const o: Outcome = { id: m.id, status, ms, cached: false };
        if (status === 'killed') o.killedBy = failedFiles(logFile);
        outcomes.set(m.id, o);
        cache[m.id] = { hash, status, ms, ...(o.killedBy ? { killedBy: o.killedBy } : {}) };
        saveCache(cache);
        done++;
        const by = o.killedBy?.length ? ` by ${o.killedBy.join(' ')}` : '';
        log(`[${done}/${todo.length}] slot ${slot} ${m.id}: ${status.toUpperCase()}${by} (${(ms / 1000).toFixed(1)} s; ran ${m.tests.join(' ')})`);
      }
    };
    await Promise.all(dirs.map((d, i) => worker(d, i)));
  } finally {
    cleanup();
  }

  const count = (s: Status, of: Outcome[]): number => of.filter((o) => o.status === s).length;
  const all = selected.map((m) => outcomes.get(m.id)!).filter(Boolean);
  const perFolder: Record<string, { killed: number; survived: number; timeout: number; score: number | null }> = {};
  for (const folder of [...new Set(selected.map((m) => folderOf(m.file)))].sort()) {
    const of = selected.filter((m) => folderOf(m.file) === folder).map((m) => outcomes.get(m.id)!);
    const k = count('killed', of);
    const s = count('survived', of);
    const t = count('timeout', of);
    perFolder[folder] = { killed: k, survived: s, timeout: t, score: score(k, s, t) };
  }
  const killed = count('killed', all);
  const survived = count('survived', all);
  const timeout = count('timeout', all);
  const summary = {
    killed,
    survived,
    timeout,
    errors: count('error', all),
    score: score(killed, survived, timeout),
    per_folder: perFolder,
    survivors: all.filter((o) => o.status === 'survived').map((o) => o.id),
    error_ids: all.filter((o) => o.status === 'error').map((o) => o.id),
    ran: all.filter((o) => !o.cached && o.status !== 'error').length,
    cached: all.filter((o) => o.cached).length,
    results: Object.fromEntries(all.map((o) => [o.id, o.status])),
    killed_by: Object.fromEntries(all.filter((o) => o.killedBy).map((o) => [o.id, o.killedBy])),
  };
  process.stdout.write(`${JSON.stringify(summary)}\n`);
  if (summary.errors > 0) process.exitCode = 1;
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
