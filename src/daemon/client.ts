import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../util/errors.js';
import { CONTROL_METHOD, logPath, socketPath } from './paths.js';

export const CONNECT_TIMEOUT_MS = 10_000;

interface Holder {
  pid: number;
  command?: string;
  socket?: string;
  http?: string;
  /** The dashboard's URL, when the holder serves one. */
  dashboard?: string;
}

/** The process described in `concord.lock`, when it is still alive. */
export function lockHolder(dir: string): Holder | null {
  try {
    const h = JSON.parse(fs.readFileSync(path.join(dir, 'concord.lock'), 'utf8')) as Holder;
    return processAlive(h.pid) ? h : null;
  } catch {
    return null;
  }
}

/** Whether `pid` runs. A process that exited but was not reaped yet (a zombie) does not. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // An exited daemon reparented to init stays a zombie until init reaps it: that is not alive.
  try {
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

/** One attempt: a connected socket, or null when nobody listens (no file, or a dead owner's). */
export function tryConnect(file: string): Promise<net.Socket | null> {
  return new Promise((resolve, reject) => {
    const s = net.connect(file);
    s.once('connect', () => {
      s.removeAllListeners('error');
      resolve(s);
    });
    s.once('error', (e: NodeJS.ErrnoException) => {
      s.destroy();
      if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') resolve(null);
      else reject(new UserError('unavailable', `cannot connect to the daemon socket ${file}: ${e.message}`, 'data_dir'));
    });
  });
}

/** Start `concord daemon` for `dir`, detached, logging to `<dir>/daemon.log`. */
export function startDaemon(dir: string): { pid: number | undefined; exited: () => number | null } {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const main = fileURLToPath(new URL('../cli/main.js', import.meta.url));
  rotateLog(logPath(dir));
  const fd = fs.openSync(logPath(dir), 'a', 0o600);
  let code: number | null = null;
  try {
    const env: NodeJS.ProcessEnv = { ...process.env, CONCORD_LOG_LEVEL: process.env.CONCORD_LOG_LEVEL ?? 'info' };
    delete env.CONCORD_EMBEDDED;
    // cwd "/": the daemon outlives the client and must not pin (or resolve paths against) its directory.
    const child = spawn(process.execPath, [main, 'daemon', '--data-dir', dir], { detached: true, stdio: ['ignore', fd, fd], cwd: '/', env });
    child.once('exit', (c, sig) => {
      code = c ?? (sig ? 128 : 1);
    });
    child.once('error', () => {
      code = 127;
    });
    child.unref();
    return { pid: child.pid, exited: () => code };
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * A socket to the data directory's daemon, starting one when none answers. Racing clients
 * may each start one: the data-dir lock lets exactly one serve, the others exit at once.
 */
export async function connectDaemon(dir: string, timeoutMs = CONNECT_TIMEOUT_MS): Promise<net.Socket> {
  const file = socketPath(dir);
  const first = await tryConnect(file);
  if (first) return first;
  refuseForeignOwner(dir);
  let started = startDaemon(dir);
  let respawns = 0;
  const deadline = performance.now() + timeoutMs;
  let delay = 20;
  for (;;) {
    const s = await tryConnect(file);
    if (s) return s;
    const code = started.exited();
    // Exit 0 is a lost race (the winner is about to listen); anything else is a failure.
    if (code !== null && code !== 0) throw new UserError('unavailable', `the concord daemon for ${dir} exited with code ${code} at start; see ${logPath(dir)}:\n${tail(logPath(dir), 10)}`, 'data_dir');
    if (code === 0) {
      refuseForeignOwner(dir);
      // Lost to a daemon that was itself exiting (idle): nobody holds the directory now.
      if (!lockHolder(dir) && respawns++ < 5) started = startDaemon(dir);
    }
    if (performance.now() > deadline) {
      throw new UserError('unavailable', `no concord daemon answered on ${file} within ${timeoutMs} ms; see ${logPath(dir)}:\n${tail(logPath(dir), 10)}`, 'data_dir');
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(200, delay * 2);
  }
}

const MAX_LOG_BYTES = 5 << 20;

/** Keep one previous log (daemon.log.1) once the log passes 5 MiB, so it never grows unbounded. */
function rotateLog(file: string): void {
  try {
    if (fs.statSync(file).size > MAX_LOG_BYTES) fs.renameSync(file, `${file}.1`);
  } catch {
    // No log yet.
  }
}

/** An in-process owner (`--embedded`, `concord node`) serves no socket: say so at once. */
function refuseForeignOwner(dir: string): void {
  const h = lockHolder(dir);
  if (!h || h.socket || /^concord (daemon|serve)\b/.test(h.command ?? '')) return;
  throw new UserError(
    'locked',
    `data directory ${dir} is in use by pid ${h.pid} (${h.command ?? 'unknown'}), which runs in-process and accepts no clients; stop it, or give this command another --data-dir`,
    'data_dir',
  );
}

/** One control request (`status`, `stop`) to a running daemon; null when none runs. */
export async function control(dir: string, op: 'status' | 'stop'): Promise<Record<string, unknown> | null> {
  const s = await tryConnect(socketPath(dir));
  if (!s) return null;
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new UserError('unavailable', `the daemon on ${socketPath(dir)} did not answer "${op}" within 5 s`));
    }, 5000);
    s.on('data', (c: Buffer) => {
      buf += c.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      s.end();
      const msg = JSON.parse(buf.slice(0, nl)) as { result?: Record<string, unknown>; error?: { message: string } };
      if (msg.error) reject(new UserError('invalid_argument', msg.error.message));
      else resolve(msg.result ?? {});
    });
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.write(`${JSON.stringify({ jsonrpc: '2.0', id: 1, method: CONTROL_METHOD, params: { op } })}\n`);
  });
}

export function tail(file: string, lines: number): string {
  try {
    const text = fs.readFileSync(file, 'utf8');
    return text.split('\n').filter((l, i, a) => l !== '' || i < a.length - 1).slice(-lines).join('\n');
  } catch {
    return '(no log yet)';
  }
}
