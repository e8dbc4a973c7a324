/**
 * `concord serve` under hostile or careless clients: bounded sessions (LRU eviction of idle
 * ones, 503 when all are busy), idle expiry, request/header timeouts, a connection cap, 404 for
 * an unknown session, case-insensitive Bearer, the Host check (DNS rebinding), and the token
 * rules at start. Small configured limits, not thousands of sessions.
 */
import { execFile, spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { INITIALIZE, MAIN, ROOT, cleanupTempDirs, exited, requireBuild, serverEnv, sleep, tempDataDir, waitFor } from './helpers.js';

interface Served {
  child: ChildProcessWithoutNullStreams;
  url: string;
  port: number;
  stderr(): string;
  stop(): Promise<unknown>;
}

async function serve(args: string[], env: Record<string, string> = {}, bind = '127.0.0.1:0'): Promise<Served> {
  const child = spawn(process.execPath, [MAIN, 'serve', '--http', bind, ...args], { env: serverEnv(tempDataDir('http-limits'), env), cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  let err = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`concord serve did not announce its address within 20 s; stderr: ${err}`)), 20_000);
    child.stderr.on('data', (c: Buffer) => {
      err += c.toString('utf8');
      const m = /concord serving MCP at (http:\/\/\S+\/mcp)/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`concord serve exited (${code}) before listening; stderr: ${err}`));
    });
  });
  return {
    child,
    url,
    port: Number(new URL(url).port),
    stderr: () => err,
    stop: async () => {
      if (child.exitCode !== null) return;
      const done = exited(child);
      child.kill('SIGTERM');
      await done;
    },
  };
}

/** The URL a client on this machine uses (the server may be bound to 0.0.0.0). */
const local = (s: Served) => `http://127.0.0.1:${s.port}/mcp`;

const MCP_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-06-18' };

async function post(s: Served, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; text: string; sid: string | null }> {
  const r = await fetch(local(s), { method: 'POST', headers: { ...MCP_HEADERS, ...headers }, body: JSON.stringify(body) });
  return { status: r.status, text: await r.text(), sid: r.headers.get('mcp-session-id') };
}

async function initialize(s: Served, headers: Record<string, string> = {}): Promise<string> {
  const r = await post(s, INITIALIZE, headers);
  if (r.status !== 200 || !r.sid) throw new Error(`initialize answered ${r.status}: ${r.text}`);
  return r.sid;
}

let pingId = 100;
async function ping(s: Served, sid: string, headers: Record<string, string> = {}): Promise<number> {
  return (await post(s, { jsonrpc: '2.0', id: pingId++, method: 'ping' }, { 'mcp-session-id': sid, ...headers })).status;
}

/** A request with an arbitrary Host header (fetch does not let one set it). */
function withHost(s: Served, host: string, body: unknown = INITIALIZE): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const req = http.request({ host: '127.0.0.1', port: s.port, path: '/mcp', method: 'POST', headers: { ...MCP_HEADERS, host, 'content-length': Buffer.byteLength(data) }, agent: false }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString('utf8')));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(data);
  });
}

/** Resolves with the ms until the server closes `sock` (or -1 when it stays open `within_ms`). */
function closedWithin(sock: net.Socket, within_ms: number): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(-1), within_ms);
    sock.once('close', () => {
      clearTimeout(timer);
      resolve(performance.now() - t0);
    });
  });
}

function connectRaw(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1', () => resolve(sock));
    sock.on('error', () => undefined);
    sock.once('error', reject);
  });
}

const servers: Served[] = [];
async function started(args: string[], env: Record<string, string> = {}, bind?: string): Promise<Served> {
  const s = await serve(args, env, bind);
  servers.push(s);
  return s;
}

beforeAll(() => {
  requireBuild();
});

afterAll(async () => {
  for (const s of servers) await s.stop();
  cleanupTempDirs();
});

describe('session ids', () => {
  it('an unknown mcp-session-id gets 404 (re-initialize), a missing one on a non-initialize request 400', async () => {
    const s = await started([]);
    const unknown = await post(s, { jsonrpc: '2.0', id: 1, method: 'tools/list' }, { 'mcp-session-id': 'no-such-session' });
    expect(unknown.status).toBe(404);
    expect(JSON.parse(unknown.text).error).toMatch(/unknown mcp-session-id/);
    const get = await fetch(local(s), { headers: { accept: 'text/event-stream', 'mcp-session-id': 'no-such-session' } });
    expect(get.status).toBe(404);
    await get.body?.cancel();
    const del = await fetch(local(s), { method: 'DELETE', headers: { 'mcp-session-id': 'no-such-session' } });
    expect(del.status).toBe(404);
    expect((await post(s, { jsonrpc: '2.0', id: 2, method: 'tools/list' })).status).toBe(400);
    // A session closed with DELETE is unknown afterwards: 404 too.
    const sid = await initialize(s);
    expect(await ping(s, sid)).toBe(200);
    expect((await fetch(local(s), { method: 'DELETE', headers: { ...MCP_HEADERS, 'mcp-session-id': sid } })).status).toBe(200);
    expect(await ping(s, sid)).toBe(404);
  });
});

describe('session cap (--max-sessions 3)', () => {
  let s: Served;
  beforeAll(async () => {
    s = await started(['--max-sessions', '3', '--request-timeout-s', '2']);
  });

  it('a 4th initialize closes the least recently used idle session (which then gets 404)', async () => {
    const [a, b, c] = [await initialize(s), await initialize(s), await initialize(s)];
    expect(await ping(s, a)).toBe(200); // b is now the least recently used
    const d = await initialize(s);
    expect(await ping(s, b)).toBe(404);
    for (const sid of [a, c, d]) expect(await ping(s, sid)).toBe(200);
    expect(s.stderr()).not.toMatch(/"level":50/);
  });

  it('when every session is busy, initialize gets 503; an open GET stream outlives the request timeout and is never evicted', async () => {
    // Whatever sessions the previous test left: make exactly three, each with an open stream.
    const sids = [await initialize(s), await initialize(s), await initialize(s)];
    const streams = await Promise.all(
      sids.map(async (sid) => {
        const ac = new AbortController();
        const r = await fetch(local(s), { headers: { accept: 'text/event-stream', 'mcp-session-id': sid, 'mcp-protocol-version': '2025-06-18' }, signal: ac.signal });
        expect(r.status).toBe(200);
        return { ac, r };
      }),
    );
    const full = await post(s, INITIALIZE);
    expect(full.status).toBe(503);
    expect(JSON.parse(full.text).error).toMatch(/session limit reached: all 3 sessions are busy.*--max-sessions \(CONCORD_HTTP_MAX_SESSIONS\)/);
    // Past the 2 s request timeout (and Node's check interval) the streams are still open.
    await sleep(3_500);
    expect((await post(s, INITIALIZE)).status).toBe(503);
    for (const sid of sids) expect(await ping(s, sid)).toBe(200);
    // One stream ends: its session becomes idle and is the one evicted.
    streams[1]!.ac.abort();
    await waitFor('a slot after the stream closed', async () => (await post(s, INITIALIZE)).status === 200, 10_000, 100);
    expect(await ping(s, sids[1]!)).toBe(404);
    expect(await ping(s, sids[0]!)).toBe(200);
    for (const st of streams) st.ac.abort();
  });
});

describe('the CLI against a running serve', () => {
  it('ends its session (DELETE) when done, so CLI calls never push other sessions out', async () => {
    const s = await started(['--max-sessions', '1'], { CONCORD_LOG_LEVEL: 'info' });
    const dataDir = /\(data: (\S+)\)/.exec(s.stderr())![1]!;
    // Async (not spawnSync): the server's stderr must keep flowing into s.stderr() meanwhile.
    for (let i = 0; i < 2; i++) await promisify(execFile)(process.execPath, [MAIN, 'swarm', 'list'], { env: serverEnv(dataDir), cwd: ROOT, timeout: 30_000 });
    await sleep(500);
    expect(s.stderr()).toMatch(/"msg":"concord MCP server on Streamable HTTP"/);
    expect(s.stderr()).not.toMatch(/closed the least recently used idle session/);
  });
});

describe('idle expiry (--session-idle-timeout-s 1)', () => {
  it('closes a session idle past the timeout; a session in use stays', async () => {
    const s = await started(['--session-idle-timeout-s', '1']);
    const idle = await initialize(s);
    const busy = await initialize(s);
    const t0 = performance.now();
    while (performance.now() - t0 < 2_500) {
      expect(await ping(s, busy)).toBe(200);
      await sleep(250);
    }
    await waitFor('the idle session to expire', async () => (await ping(s, idle)) === 404, 10_000, 200);
    expect(await ping(s, busy)).toBe(200);
  });
});

describe('request and header timeouts (--request-timeout-s 2)', () => {
  let s: Served;
  beforeAll(async () => {
    s = await started(['--request-timeout-s', '2']);
  });

  it('cuts off a client that sends its body one byte at a time', async () => {
    const sock = await connectRaw(s.port);
    sock.write(`POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${s.port}\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\ncontent-length: 1000\r\n\r\n{`);
    const drip = setInterval(() => sock.writable && sock.write(' '), 200);
    const ms = await closedWithin(sock, 10_000);
    clearInterval(drip);
    sock.destroy();
    // 2 s timeout + 1 s check interval; 10 s only to absorb load. Before: Node's defaults
    // (300 s request timeout, checked every 30 s) kept it open.
    expect(ms).toBeGreaterThan(0);
    expect(s.stderr()).not.toMatch(/http request failed/);
  });

  it('cuts off a client that sends its headers one line at a time', async () => {
    const sock = await connectRaw(s.port);
    sock.write(`POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${s.port}\r\n`);
    let n = 0;
    const drip = setInterval(() => sock.writable && sock.write(`x-slow-${n++}: 1\r\n`), 200);
    const ms = await closedWithin(sock, 10_000);
    clearInterval(drip);
    sock.destroy();
    expect(ms).toBeGreaterThan(0);
  });

  it('a normal request still works', async () => {
    const sid = await initialize(s);
    expect(await ping(s, sid)).toBe(200);
  });
});

describe('connection cap (--max-connections 4)', () => {
  it('closes connections beyond the cap at once and serves again when they are gone', async () => {
    const s = await started(['--max-connections', '4', '--request-timeout-s', '30']);
    const held = [await connectRaw(s.port), await connectRaw(s.port), await connectRaw(s.port), await connectRaw(s.port)];
    await sleep(300);
    const extra = await connectRaw(s.port);
    const ms = await closedWithin(extra, 3_000);
    expect(ms).toBeGreaterThan(0);
    expect(held.every((h) => !h.destroyed)).toBe(true);
    for (const h of held) h.destroy();
    await waitFor('a free connection slot', async () => {
      try {
        return (await withHost(s, `127.0.0.1:${s.port}`)).status === 200;
      } catch {
        return false;
      }
    }, 10_000, 100);
  });
});

describe('bearer token and Host header', () => {
  const TOKEN = 'a'.repeat(20) + 'B-0123456789-token-from-file';
  let s: Served;
  beforeAll(async () => {
    const file = path.join(tempDataDir('http-token-file'), 'token');
    fs.writeFileSync(file, `${TOKEN}\n`, { mode: 0o600 });
    s = await started(['--token-file', file, '--allowed-hosts', 'proxy.test,other.test:8443']);
  });

  it('matches the Bearer scheme case-insensitively, nothing else', async () => {
    expect((await post(s, INITIALIZE, { authorization: `bearer ${TOKEN}` })).status).toBe(200);
    expect((await post(s, INITIALIZE, { authorization: `BEARER ${TOKEN}` })).status).toBe(200);
    expect((await post(s, INITIALIZE, { authorization: `Bearer ${TOKEN}` })).status).toBe(200);
    expect((await post(s, INITIALIZE, { authorization: `Bearer ${TOKEN}x` })).status).toBe(401);
    expect((await post(s, INITIALIZE, { authorization: `Basic ${TOKEN}` })).status).toBe(401);
    expect((await post(s, INITIALIZE, { authorization: TOKEN })).status).toBe(401);
    expect((await post(s, INITIALIZE)).status).toBe(401);
  });

  it('answers only loopback Host values with its own port, and the allowed hosts; 403 naming the header otherwise', async () => {
    const auth = { authorization: `Bearer ${TOKEN}` };
    const hostReq = (host: string) => withHostAuth(s, host, auth);
    const evil = await hostReq(`evil.example:${s.port}`);
    expect(evil.status).toBe(403);
    expect(JSON.parse(evil.text).error).toMatch(new RegExp(`^Host header "evil.example:${s.port}" not allowed.*--allowed-hosts \\(CONCORD_HTTP_ALLOWED_HOSTS\\)`));
    expect((await hostReq(`127.0.0.1:${s.port + 1}`)).status).toBe(403);
    expect((await hostReq('localhost')).status).toBe(403);
    expect((await hostReq('other.test')).status).toBe(403);
    for (const ok of [`localhost:${s.port}`, `127.0.0.1:${s.port}`, `[::1]:${s.port}`, `LocalHost:${s.port}`, 'proxy.test', 'proxy.test:8080', 'other.test:8443']) {
      expect([ok, (await hostReq(ok)).status]).toEqual([ok, 200]);
    }
  });
});

function withHostAuth(s: Served, host: string, headers: Record<string, string>): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(INITIALIZE);
    const req = http.request({ host: '127.0.0.1', port: s.port, path: '/mcp', method: 'POST', headers: { ...MCP_HEADERS, ...headers, host, 'content-length': Buffer.byteLength(data) }, agent: false }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString('utf8')));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(data);
  });
}

describe('token rules at start', () => {
  const run = (args: string[], env: Record<string, string> = {}) => {
    const r = spawnSync(process.execPath, [MAIN, 'serve', ...args], { env: serverEnv(tempDataDir('http-start'), env), cwd: ROOT, input: '', timeout: 20_000 });
    return { status: r.status, stderr: r.stderr.toString() };
  };

  it('refuses a token shorter than 32 characters when listening beyond loopback, naming where it came from', () => {
    const r = run(['--http', '0.0.0.0:0'], { CONCORD_HTTP_TOKEN: 'x'.repeat(31) });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--token-file or CONCORD_HTTP_TOKEN\) has 31 characters; at least 32 are required when listening beyond loopback/);
  });

  it('refuses --token on the command line (visible in ps), pointing to --token-file and CONCORD_HTTP_TOKEN', () => {
    const r = run(['--http', '127.0.0.1:0', '--token', 'x'.repeat(40)]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--token is refused: .*visible to every local user.*--token-file FILE.*CONCORD_HTTP_TOKEN/);
  });

  it('refuses a token file others can read', () => {
    const file = path.join(tempDataDir('http-token-mode'), 'token');
    fs.writeFileSync(file, 'y'.repeat(40));
    fs.chmodSync(file, 0o644);
    const r = run(['--http', '127.0.0.1:0', '--token-file', file]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/is readable or writable by group\/others \(mode 644\); run chmod 600/);
  });

  it('starts beyond loopback with a 32-character token from the environment and requires it', async () => {
    const token = 'z'.repeat(32);
    const s = await started([], { CONCORD_HTTP_TOKEN: token }, '0.0.0.0:0');
    expect((await post(s, INITIALIZE)).status).toBe(401);
    expect((await post(s, INITIALIZE, { authorization: `Bearer ${token}` })).status).toBe(200);
  });
});
