import path from 'node:path';
import { UserError } from '../util/errors.js';

/** JSON-RPC method of a control connection (`concord daemon status|stop`), never MCP. */
export const CONTROL_METHOD = 'concord/daemon';
/** Sent by a daemon stopping on purpose, so a proxy exits instead of restarting it. */
export const STOPPING_METHOD = 'notifications/concord/daemon_stopping';
export const SOCKET_FILE = 'concord.sock';
export const LOG_FILE = 'daemon.log';
/** How long an idle daemon (no client attached, no unfinished task) stays up. */
export const DEFAULT_IDLE_TIMEOUT_S = 300;
/** sun_path is 108 bytes on Linux (104 on macOS), NUL included. */
const MAX_SOCKET_PATH_BYTES = 103;

export function socketPath(dataDir: string): string {
  const p = path.join(dataDir, SOCKET_FILE);
  if (Buffer.byteLength(p) > MAX_SOCKET_PATH_BYTES) {
    throw new UserError(
      'invalid_argument',
      `data_dir=${dataDir}: the daemon socket path ${p} is ${Buffer.byteLength(p)} bytes, the OS allows at most ${MAX_SOCKET_PATH_BYTES}; use a shorter --data-dir or run in-process with --embedded (CONCORD_EMBEDDED=1)`,
      'data_dir',
    );
  }
  return p;
}

/** The 0600 page `concord dashboard` opens the browser with (it holds the daemon's token). */
export function dashboardOpenPath(dataDir: string): string {
  return path.join(dataDir, 'dashboard-open.html');
}

export function logPath(dataDir: string): string {
  return path.join(dataDir, LOG_FILE);
}

/** --idle-timeout-s, else CONCORD_DAEMON_IDLE_S, else the default; 0 means never exit when idle. */
export function idleTimeoutS(flag: string | boolean | undefined): number {
  const raw = typeof flag === 'string' ? flag : process.env.CONCORD_DAEMON_IDLE_S;
  if (raw === undefined || raw === '') return DEFAULT_IDLE_TIMEOUT_S;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0 || n > 86_400 * 7) {
    throw new UserError('invalid_argument', `idle_timeout_s=${raw} must be a number of seconds 0..604800 (0: never exit when idle)`, 'idle_timeout_s');
  }
  return n;
}

export function envEmbedded(): boolean {
  const v = process.env.CONCORD_EMBEDDED;
  return v === '1' || v === 'true';
}
