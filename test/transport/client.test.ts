// Client connections on the member port: authenticated request/response, reconnects.

import { afterEach, describe, expect, it } from 'vitest';
import { ConnectionError, RemoteError, TcpClient } from '../../src/transport/tcp-client.js';
import { TcpTransport } from '../../src/transport/tcp-transport.js';
import { captureLog, FAST, SECRET, sleep, WRONG } from './helpers.js';

const cleanup: Array<() => void> = [];
afterEach(() => {
  for (const f of cleanup.splice(0)) f();
});

async function member(port = 0): Promise<{ t: TcpTransport; port: number; log: ReturnType<typeof captureLog> }> {
  const log = captureLog();
  const t = new TcpTransport({ id: 'm1', secret: SECRET, limits: FAST, log, port });
  cleanup.push(() => t.close());
  const a = await t.listen();
  return { t, port: a.port, log };
}

function client(port: number, secret = SECRET): TcpClient {
  const c = new TcpClient({ host: '127.0.0.1', port, secret, name: 'cli', limits: FAST, log: captureLog() });
  cleanup.push(() => c.close());
  return c;
}

describe('TcpClient', () => {
  it('round-trips requests, including concurrent ones answered out of order', async () => {
    const { t, port } = await member();
    t.onClientRequest(async (req, from) => {
      const r = req as { n: number };
      await sleep(r.n === 0 ? 30 : 1);
      return { n: r.n, from };
    });
    const c = client(port);
    const rs = await Promise.all([0, 1, 2, 3].map((n) => c.request({ n })));
    expect(rs).toEqual([0, 1, 2, 3].map((n) => ({ n, from: 'client:cli' })));
    expect(c.serverId).toBe('m1');
    expect(t.stats().clientRequests).toBe(4);
  });

  it('reports handler errors, with their code, and a member without a handler', async () => {
    const { t, port } = await member();
    const c = client(port);
    await expect(c.request('x')).rejects.toThrow(/m1 does not serve client requests/);
    t.onClientRequest(async () => {
      throw Object.assign(new Error('not the leader; try m2'), { code: 'not_leader' });
    });
    const e = await c.request('x').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(RemoteError);
    expect(e).toMatchObject({ message: 'not the leader; try m2', code: 'not_leader' });
  });

  it('fails fast with the wrong secret, and the member logs the refusal', async () => {
    const { t, port, log } = await member();
    let called = false;
    t.onClientRequest(async () => (called = true));
    const started = Date.now();
    const e = await client(port, WRONG).request('x', 3000).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ConnectionError);
    expect((e as ConnectionError).authFailure).toBe(true);
    expect((e as Error).message).toMatch(/authentication failed/);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(log.find(/client:cli failed to prove the cluster secret/, 'warn')).toBeDefined();
    expect(called).toBe(false);
  });

  it('reconnects after the member restarts; a request in flight learns its outcome is unknown', async () => {
    const first = await member();
    const port = first.port;
    let release = (): void => {};
    first.t.onClientRequest((req) => (req === 'hang' ? new Promise((r) => (release = () => r('late'))) : Promise.resolve('one')));
    const c = client(port);
    expect(await c.request('hi')).toBe('one');
    const hanging = c.request('hang', 3000).catch((x: unknown) => x);
    await sleep(20);
    first.t.close();
    release();
    const e = await hanging;
    expect(e).toBeInstanceOf(ConnectionError);
    expect((e as Error).message).toMatch(/outcome unknown/);

    // Down: the request retries with backoff until its deadline.
    await expect(c.request('while-down', 150)).rejects.toThrow(/cannot reach 127\.0\.0\.1/);

    // Back on the same port: the next request reconnects transparently.
    const second = await member(port);
    second.t.onClientRequest(async () => 'two');
    expect(await c.request('again')).toBe('two');
  });
});
