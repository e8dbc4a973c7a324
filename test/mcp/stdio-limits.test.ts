/**
 * Oversized stdio messages: the built server answers a line over its limit with a JSON-RPC
 * -32600 error, logs it at warn, and keeps serving. Before, a line over 10 MiB made the SDK's
 * transport close itself and the server exit 0 without a word.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { topLevelId } from '../../src/server/line-stdio-transport.js';
import { INITIALIZE, MAIN, ROOT, cleanupTempDirs, requireBuild, serverEnv, startRaw, tempDataDir, type RawServer } from './helpers.js';

beforeAll(() => {
  requireBuild();
});

afterAll(() => {
  cleanupTempDirs();
});

async function started(env: Record<string, string> = {}): Promise<RawServer> {
  const raw = startRaw(tempDataDir('stdio-limits'), { env });
  raw.send(INITIALIZE);
  await raw.response(0);
  raw.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
  return raw;
}

/** Writes `text` plus a newline in pieces, as a slow client would. */
async function writeInPieces(raw: RawServer, text: string, piece: number): Promise<void> {
  for (let i = 0; i < text.length; i += piece) {
    if (!raw.child.stdin.write(text.slice(i, i + piece))) await new Promise((r) => raw.child.stdin.once('drain', r));
  }
  raw.child.stdin.write('\n');
}

describe('stdio message size limit (default 8 MiB)', () => {
  it('a 12 MiB request gets a -32600 error with its id, the next tools/list a normal answer, the process lives', async () => {
    const raw = await started();
    try {
      const big = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'memory_store', arguments: { key: 'k', value: 'x'.repeat(12 << 20) } } });
      raw.child.stdin.write(`${big}\n`);
      raw.send({ jsonrpc: '2.0', id: 2, method: 'tools/list' });
      const err = await raw.response(1, 60_000);
      expect(err).toEqual({ jsonrpc: '2.0', id: 1, error: { code: -32600, message: `message too large: ${Buffer.byteLength(big)} bytes, limit ${8 << 20}` } });
      const list = await raw.response(2, 60_000);
      expect((list.result as { tools: unknown[] }).tools.length).toBeGreaterThan(20);
      expect(raw.child.exitCode).toBeNull();
      expect(raw.stderr()).toMatch(/"level":40.*message too large: \d+ bytes, limit 8388608/);
      // Still serving afterwards, not just the one queued message.
      raw.send({ jsonrpc: '2.0', id: 3, method: 'ping' });
      expect(await raw.response(3)).toMatchObject({ id: 3, result: {} });
    } finally {
      raw.child.kill('SIGKILL');
    }
  });

  it('through the daemon (the default concord mcp): the proxy answers the oversized line, the session goes on', async () => {
    // A pipe to the data directory's daemon; it exits 1 s after this client is gone.
    const raw = await started({ CONCORD_EMBEDDED: '0', CONCORD_DAEMON_IDLE_S: '1' });
    try {
      const big = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'memory_store', arguments: { key: 'k', value: 'x'.repeat(12 << 20) } } });
      raw.child.stdin.write(`${big}\n`);
      raw.send({ jsonrpc: '2.0', id: 2, method: 'tools/list' });
      expect(await raw.response(1, 60_000)).toEqual({ jsonrpc: '2.0', id: 1, error: { code: -32600, message: `message too large: ${Buffer.byteLength(big)} bytes, limit ${8 << 20}` } });
      expect(((await raw.response(2, 60_000)).result as { tools: unknown[] }).tools.length).toBeGreaterThan(20);
      expect(raw.child.exitCode).toBeNull();
    } finally {
      raw.child.kill('SIGKILL');
    }
  });

  it('an oversized line that is not JSON gets the error with id null', async () => {
    const raw = await started();
    try {
      raw.child.stdin.write(`${'garbage '.repeat(1_200_000)}\n`);
      raw.send({ jsonrpc: '2.0', id: 7, method: 'ping' });
      expect(await raw.response(7, 60_000)).toMatchObject({ id: 7, result: {} });
      const errors = raw.lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((m) => 'error' in m);
      expect(errors).toEqual([{ jsonrpc: '2.0', id: null, error: { code: -32600, message: `message too large: 9600000 bytes, limit ${8 << 20}` } }]);
      expect(raw.child.exitCode).toBeNull();
    } finally {
      raw.child.kill('SIGKILL');
    }
  });
});

describe('configured limit (CONCORD_STDIO_MAX_MESSAGE_BYTES)', () => {
  it('answers a message under the limit, refuses one over it arriving in 1 KiB pieces, keeps serving', async () => {
    const raw = await started({ CONCORD_STDIO_MAX_MESSAGE_BYTES: '65536' });
    try {
      const under = JSON.stringify({ jsonrpc: '2.0', id: 'under', method: 'ping', params: { _meta: { pad: 'u'.repeat(60_000) } } });
      raw.send(JSON.parse(under));
      expect(await raw.response('under')).toMatchObject({ id: 'under', result: {} });
      const over = JSON.stringify({ jsonrpc: '2.0', id: 'over', method: 'ping', params: { _meta: { pad: 'o'.repeat(70_000) } } });
      await writeInPieces(raw, over, 1024);
      expect(await raw.response('over')).toEqual({ jsonrpc: '2.0', id: 'over', error: { code: -32600, message: `message too large: ${over.length} bytes, limit 65536` } });
      raw.send({ jsonrpc: '2.0', id: 9, method: 'tools/list' });
      expect(((await raw.response(9)).result as { tools: unknown[] }).tools.length).toBeGreaterThan(20);
    } finally {
      raw.child.kill('SIGKILL');
    }
  });

  it('refuses a limit out of range at start, naming the flag and the range', () => {
    const r = spawnSync(process.execPath, [MAIN, 'mcp', '--max-message-bytes', '10'], { env: serverEnv(tempDataDir('stdio-limit-flag')), cwd: ROOT, input: '', timeout: 30_000 });
    expect(r.status).toBe(2);
    expect(r.stderr.toString()).toMatch(/--max-message-bytes \(or CONCORD_STDIO_MAX_MESSAGE_BYTES\)="10" is not valid; accepted: an integer 1024\.\.1073741824/);
  });
});

describe('topLevelId (finds the id of a cut-off message)', () => {
  it('reads a top-level id before the cut, never a nested one or a cut-off value', () => {
    expect(topLevelId('{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"x":"aaaa')).toBe(42);
    expect(topLevelId('{ "method": "x", "params": {"id": 5, "s": "a\\"}"}, "id" : "req-1", "tail": "')).toBe('req-1');
    expect(topLevelId('{"method":"x","params":{"id":5,"pad":"aaaa')).toBeNull();
    expect(topLevelId('{"jsonrpc":"2.0","id":12')).toBeNull();
    expect(topLevelId('{"id":"unterminated')).toBeNull();
    expect(topLevelId('garbage garbage')).toBeNull();
    expect(topLevelId('[{"id":1}]')).toBeNull();
  });
});
