// `concord node` member processes for cluster tests: spawn with the built CLI, kill -9,
// SIGSTOP/SIGCONT, restart with the same data dir. stdout and stderr of every run are
// appended to one log file per member. Every child is tracked so a test can always clean up
// (and a last-resort exit hook kills any that are left).

import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { loadSecret } from '../../src/transport/auth.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const MAIN = path.join(ROOT, 'dist', 'src', 'cli', 'main.js');

const live = new Set<ChildProcess>();
let hooked = false;

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.once('exit', () => {
    for (const c of live) {
      try {
        c.kill('SIGCONT');
        c.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  });
}

/**
 * Poll fn until it returns something truthy (returned), every `everyMs`; after `ms` fail with
 * what was awaited and the last error fn threw.
 */
export async function waitFor<T>(what: string, ms: number, fn: () => Promise<T | null | undefined | false> | T | null | undefined | false, everyMs = 50): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown = null;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Throws with instructions when the CLI has not been built. */
export function requireBuild(): void {
  if (!fs.existsSync(MAIN)) {
    throw new Error(`${MAIN} not found: cluster tests run the built CLI (\`npm run build\` first)`);
  }
}

/** `n` distinct ports free on 127.0.0.1 right now. */
export async function freePorts(n: number): Promise<number[]> {
  const servers: net.Server[] = [];
  const ports: number[] = [];
  try {
    while (ports.length < n) {
      const s = net.createServer();
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(0, '127.0.0.1', () => resolve());
      });
      servers.push(s);
      const port = (s.address() as net.AddressInfo).port;
      if (!ports.includes(port)) ports.push(port);
    }
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
  return ports;
}

export type MemberState = 'down' | 'running' | 'stopped';

export interface ExitRecord {
  run: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** True when this harness caused it (kill -9 or the final cleanup). */
  expected: boolean;
  at: number;
}

export class MemberProc {
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  private killing = false;
  state: MemberState = 'down';
  starts = 0;
  readonly exits: ExitRecord[] = [];

  constructor(
    readonly id: string,
    readonly addr: string,
    private readonly args: readonly string[],
    readonly logPath: string,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** `env` adds to (or overrides) the environment the member was made with, for this start. */
  start(env: NodeJS.ProcessEnv = {}): void {
    if (this.child) throw new Error(`${this.id} is already running`);
    hookExit();
    const run = ++this.starts;
    const fd = fs.openSync(this.logPath, 'a');
    fs.writeSync(fd, `\n===== start #${run} at ${new Date().toISOString()}\n`);
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, [MAIN, ...this.args], { stdio: ['ignore', fd, fd], env: { ...this.env, ...env }, cwd: ROOT });
    } finally {
      fs.closeSync(fd);
    }
    this.child = child;
    this.killing = false;
    this.state = 'running';
    live.add(child);
    this.exited = new Promise<void>((resolve) => {
      let done = false;
      const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
        if (done) return;
        done = true;
        live.delete(child);
        if (this.child === child) {
          this.exits.push({ run, code, signal, expected: this.killing, at: Date.now() });
          this.child = null;
          this.state = 'down';
        }
        fs.appendFileSync(this.logPath, `===== run #${run} exited: code ${code} signal ${signal}${this.killing ? ' (killed by the test)' : ''}\n`);
        resolve();
      };
      child.once('exit', finish);
      child.once('error', (e) => {
        fs.appendFileSync(this.logPath, `spawn error: ${e.message}\n`);
        finish(null, null);
      });
    });
  }

  /** Resolves once this run printed "concord node ID listening on". */
  async waitListening(timeoutMs: number): Promise<void> {
    const needle = `concord node ${this.id} listening on`;
    const marker = `===== start #${this.starts} at`;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.state === 'down') throw new Error(`${this.id} exited while starting; log tail:\n${this.logTail()}`);
      const log = fs.readFileSync(this.logPath, 'utf8');
      const from = log.lastIndexOf(marker);
      if (from >= 0 && log.indexOf(needle, from) >= 0) return;
      if (Date.now() > deadline) throw new Error(`${this.id} did not print "${needle}" within ${timeoutMs} ms; log tail:\n${this.logTail()}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** kill -9 (after SIGCONT if stopped) and wait until the process is gone. */
  async kill9(): Promise<void> {
    const c = this.child;
    if (!c) return;
    this.killing = true;
    try {
      if (this.state === 'stopped') c.kill('SIGCONT');
      c.kill('SIGKILL');
    } catch {
      // gone already
    }
    await this.exited;
  }

  pause(): void {
    if (!this.child || this.state !== 'running') return;
    this.child.kill('SIGSTOP');
    this.state = 'stopped';
  }

  resume(): void {
    if (!this.child || this.state !== 'stopped') return;
    this.child.kill('SIGCONT');
    this.state = 'running';
  }

  logTail(lines = 30): string {
    try {
      return fs.readFileSync(this.logPath, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  /** Exits this harness did not cause. */
  unexpectedExits(): ExitRecord[] {
    return this.exits.filter((e) => !e.expected);
  }

  /**
   * Every exit this harness did not cause fails the run, a clean exit 0 included: a member
   * has no reason to stop on its own. (A SIGTERM from another process, e.g. a stray pkill,
   * is described as such in the message, but still fails: the run did not test what it says.)
   */
  crashes(): ExitRecord[] {
    return this.unexpectedExits();
  }
}

function isOutsideStop(e: ExitRecord): boolean {
  return !e.expected && ((e.code === 0 && e.signal === null) || e.signal === 'SIGTERM' || e.signal === 'SIGINT');
}

export function describeExit(e: ExitRecord): string {
  return `run #${e.run} exited with code ${e.code} signal ${e.signal}${e.expected ? ' (killed by the test)' : isOutsideStop(e) ? ' (a SIGTERM/SIGINT from another process, e.g. a pkill -f?)' : ' (CRASH)'}`;
}

export interface MemberSpec {
  swarm: string;
  ids: string[];
  ports: number[];
  dir: string;
  secretFile: string;
  env?: NodeJS.ProcessEnv;
}

/** One MemberProc per id, a data dir each under `dir`, logs at dir/ID.log (not yet started). */
export function memberProcs(o: MemberSpec): MemberProc[] {
  const addr = (i: number): string => `127.0.0.1:${o.ports[i]}`;
  const peers = o.ids.map((id, i) => `${id}=${addr(i)}`).join(',');
  const env = { ...process.env, CONCORD_LOG_LEVEL: process.env.CONCORD_LOG_LEVEL ?? 'warn', ...o.env };
  return o.ids.map((id, i) => {
    const dataDir = path.join(o.dir, id);
    fs.mkdirSync(dataDir, { recursive: true });
    const args = ['node', '--swarm', o.swarm, '--id', id, '--listen', addr(i), '--peers', peers, '--data-dir', dataDir, '--secret-file', o.secretFile];
    return new MemberProc(id, addr(i), args, path.join(o.dir, `${id}.log`), env);
  });
}

/** SIGCONT then SIGKILL every process still alive; waits for them to exit. */
export async function killAll(procs: readonly MemberProc[]): Promise<void> {
  await Promise.all(procs.map((p) => p.kill9()));
}

/** A fresh cluster secret in `dir`/secret (owner-only, as members require), and its key. */
export function writeSecretFile(dir: string): { secretFile: string; secret: Buffer } {
  const secretFile = path.join(dir, 'secret');
  fs.writeFileSync(secretFile, `${crypto.randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
  return { secretFile, secret: loadSecret(secretFile) };
}

/** A tool result's first text (its JSON when it has none), for assertions and messages. */
export function resultText(r: CallToolResult): string {
  const c = r.content?.[0] as { text?: unknown } | undefined;
  return typeof c?.text === 'string' ? c.text : JSON.stringify(r.content ?? r);
}

/**
 * A fresh temp dir, secret and `concord node` per id (swarm `swarm`), all started and
 * listening. The caller removes `dir` and kills `procs` when done.
 */
export async function startCluster(swarm: string, ids: string[]): Promise<{ dir: string; secretFile: string; secret: Buffer; procs: MemberProc[] }> {
  requireBuild();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `concord-${swarm}-`));
  const { secretFile, secret } = writeSecretFile(dir);
  const procs = memberProcs({ swarm, ids, ports: await freePorts(ids.length), dir, secretFile });
  for (const p of procs) p.start();
  await Promise.all(procs.map((p) => p.waitListening(30_000)));
  return { dir, secretFile, secret, procs };
}
