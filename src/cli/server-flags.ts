import fs from 'node:fs';
import { UserError, invalid } from '../util/errors.js';
import { MIN_TOKEN_CHARS, isLoopback } from '../server/http-guards.js';
import { DEFAULT_STDIO_MAX_MESSAGE_BYTES } from '../server/line-stdio-transport.js';

type Flags = Record<string, string | boolean>;
type Env = Record<string, string | undefined>;

/** `--name` flag, else the environment variable, as an integer in [min, max]. */
function intSetting(flags: Flags, env: Env, flag: string, envVar: string, min: number, max: number): number | undefined {
  const raw = flags[flag] ?? env[envVar];
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (typeof raw === 'boolean' || !Number.isInteger(n) || n < min || n > max) {
    throw invalid(`--${flag.replace(/_/g, '-')} (or ${envVar})`, raw, `an integer ${min}..${max}`);
  }
  return n;
}

function listSetting(flags: Flags, env: Env, flag: string, envVar: string): string[] {
  const raw = flags[flag] ?? env[envVar];
  if (raw === undefined || raw === true || raw === false) return [];
  return raw.split(',').map((s) => s.trim()).filter(Boolean);
}

export interface StdioSettings {
  maxMessageBytes: number;
}

/** `concord mcp` settings: the longest stdio message (--max-message-bytes, CONCORD_STDIO_MAX_MESSAGE_BYTES). */
export function stdioSettings(flags: Flags, env: Env = process.env): StdioSettings {
  return { maxMessageBytes: intSetting(flags, env, 'max_message_bytes', 'CONCORD_STDIO_MAX_MESSAGE_BYTES', 1024, 1 << 30) ?? DEFAULT_STDIO_MAX_MESSAGE_BYTES };
}

export interface HttpSettings {
  host: string;
  port: number;
  token?: string;
  allowedHosts: string[];
  allowedOrigins: string[];
  maxSessions?: number;
  sessionIdleMs?: number;
  requestTimeoutMs?: number;
  maxConnections?: number;
}

/**
 * The bearer token: --token-file FILE (or CONCORD_HTTP_TOKEN_FILE), else CONCORD_HTTP_TOKEN.
 * Never from the command line, where every local user sees it (ps, /proc/PID/cmdline).
 */
export function httpToken(flags: Flags, env: Env = process.env): string | undefined {
  if (flags.token !== undefined) {
    throw new UserError(
      'invalid_argument',
      '--token is refused: a token on the command line is visible to every local user (ps, /proc/PID/cmdline). Put it in a file readable only by you (chmod 600) and pass --token-file FILE, or set CONCORD_HTTP_TOKEN',
      'token',
    );
  }
  const file = typeof flags.token_file === 'string' ? flags.token_file : env.CONCORD_HTTP_TOKEN_FILE;
  if (flags.token_file === true) throw new UserError('invalid_argument', '--token-file needs a path', 'token_file');
  if (file) return readTokenFile(file);
  return env.CONCORD_HTTP_TOKEN || undefined;
}

function readTokenFile(file: string): string {
  let st: fs.Stats;
  let text: string;
  try {
    st = fs.statSync(file);
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new UserError('invalid_argument', `--token-file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 'token_file');
  }
  // As ssh does for keys: a secret others can read is no secret.
  if (process.platform !== 'win32' && (st.mode & 0o077) !== 0) {
    throw new UserError('invalid_argument', `--token-file ${file} is readable or writable by group/others (mode ${(st.mode & 0o777).toString(8)}); run chmod 600 ${file}`, 'token_file');
  }
  const token = text.trim();
  if (!token) throw new UserError('invalid_argument', `--token-file ${file} is empty`, 'token_file');
  if (/\s/.test(token)) throw new UserError('invalid_argument', `--token-file ${file} must hold one token on one line (no spaces)`, 'token_file');
  return token;
}

/** `concord serve` settings from flags and CONCORD_HTTP_* variables, validated. */
export function httpSettings(flags: Flags, env: Env = process.env): HttpSettings {
  const spec = typeof flags.http === 'string' ? flags.http : '127.0.0.1:7700';
  const m = /^(.*):(\d+)$/.exec(spec);
  if (!m || Number(m[2]) > 65535) throw new UserError('invalid_argument', `--http=${spec} must be HOST:PORT, e.g. 127.0.0.1:7700`, 'http');
  const host = m[1]!.replace(/^\[|\]$/g, '');
  const token = httpToken(flags, env);
  if (!isLoopback(host)) {
    if (!token) {
      throw new UserError('invalid_argument', `--http=${spec} listens beyond loopback; set --token-file FILE (or CONCORD_HTTP_TOKEN) so only holders of the token can call tools`, 'token');
    }
    if (token.length < MIN_TOKEN_CHARS) {
      throw new UserError(
        'invalid_argument',
        `the bearer token (--token-file or CONCORD_HTTP_TOKEN) has ${token.length} characters; at least ${MIN_TOKEN_CHARS} are required when listening beyond loopback (e.g. openssl rand -hex 32)`,
        'token',
      );
    }
  }
  const idleS = intSetting(flags, env, 'session_idle_timeout_s', 'CONCORD_HTTP_SESSION_IDLE_TIMEOUT_S', 1, 7 * 86_400);
  const requestS = intSetting(flags, env, 'request_timeout_s', 'CONCORD_HTTP_REQUEST_TIMEOUT_S', 1, 3_600);
  return {
    host,
    port: Number(m[2]),
    token,
    allowedHosts: listSetting(flags, env, 'allowed_hosts', 'CONCORD_HTTP_ALLOWED_HOSTS'),
    allowedOrigins: listSetting(flags, env, 'allowed_origins', 'CONCORD_HTTP_ALLOWED_ORIGINS'),
    maxSessions: intSetting(flags, env, 'max_sessions', 'CONCORD_HTTP_MAX_SESSIONS', 1, 100_000),
    sessionIdleMs: idleS === undefined ? undefined : idleS * 1000,
    requestTimeoutMs: requestS === undefined ? undefined : requestS * 1000,
    maxConnections: intSetting(flags, env, 'max_connections', 'CONCORD_HTTP_MAX_CONNECTIONS', 1, 100_000),
  };
}
