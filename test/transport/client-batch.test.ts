// Client requests and answers made in one event-loop turn travel together in one frame.

import { afterEach, describe, expect, it } from 'vitest';
import { packJson } from '../../src/transport/codec.js';
import { TcpClient } from '../../src/transport/tcp-client.js';
import { TcpTransport } from '../../src/transport/tcp-transport.js';
import { FrameType } from '../../src/transport/frame.js';
import { captureLog, FAST, RawPeer, SECRET, sleep, waitFor } from './helpers.js';

const cleanup: Array<() => void> = [];
afterEach(() => {
  for (const f of cleanup.splice(0)) f();
});

describe('packJson', () => {
  it('keeps a lone text as is and joins several into one JSON array', () => {
    expect(packJson(['{"a":1}'], 100).map(String)).toEqual(['{"a":1}']);
    const [one] = packJson(['{"a":1}', '{"b":2}', '3'], 100);
    expect(JSON.parse(String(one))).toEqual([{ a: 1 }, { b: 2 }, 3]);
  });

  it('splits at the byte limit and loses nothing, in order', () => {
    const texts = Array.from({ length: 50 }, (_, i) => JSON.stringify({ i, pad: 'é'.repeat(i) }));
    const frames = packJson(texts, 300);
    expect(frames.length).toBeGreaterThan(1);
    for (const f of frames) expect(f.length).toBeLessThanOrEqual(300);
    const back = frames.flatMap((f) => {
      const v = JSON.parse(String(f)) as unknown;
      return Array.isArray(v) ? v : [v];
    });
    expect(back).toEqual(texts.map((t) => JSON.parse(t)));
  });
});

describe('batched client requests', () => {
  it('answers hundreds of concurrent requests, each to its caller, errors included', async () => {
    const t = new TcpTransport({ id: 'm1', secret: SECRET, limits: FAST, log: captureLog() });
    cleanup.push(() => t.close());
    const { port } = await t.listen();
    t.onClientRequest(async (req) => {
      const n = (req as { n: number }).n;
      await sleep(n % 7); // answers complete out of order, across turns
      if (n % 50 === 13) throw Object.assign(new Error(`refused ${n}`), { code: 'custom' });
      return { n, twice: n * 2 };
    });
    const c = new TcpClient({ host: '127.0.0.1', port, secret: SECRET, name: 'batch', limits: FAST, log: captureLog() });
    cleanup.push(() => c.close());
    await c.connect();
    const results = await Promise.allSettled(Array.from({ length: 600 }, (_, n) => c.request({ n })));
    results.forEach((r, n) => {
      if (n % 50 === 13) {
        expect(r.status).toBe('rejected');
        expect((r as PromiseRejectedResult).reason).toMatchObject({ message: `refused ${n}`, code: 'custom' });
      } else {
        expect(r).toEqual({ status: 'fulfilled', value: { n, twice: n * 2 } });
      }
    });
    expect(t.stats().clientRequests).toBe(600);
  });

  it('a batch with a malformed entry closes that connection and runs none of it; others are served', async () => {
    const log = captureLog();
    const t = new TcpTransport({ id: 'm1', secret: SECRET, limits: FAST, log });
    cleanup.push(() => t.close());
    const { port } = await t.listen();
    const seen: unknown[] = [];
    t.onClientRequest(async (req) => {
      seen.push(req);
      return 'ok';
    });
    const raw = await RawPeer.authenticated(port, 'client:raw');
    raw.write(raw.tagged(FrameType.CLIENT_REQ, Buffer.from(JSON.stringify([{ id: 1, body: 'a' }, { body: 'no id' }]))));
    await raw.closed;
    await waitFor(() => log.find(/CLIENT_REQ without a numeric id/) !== undefined, 'protocol error log');
    expect(seen).toEqual([]);
    expect(t.stats().protocolErrors).toBe(1);
    const good = new TcpClient({ host: '127.0.0.1', port, secret: SECRET, name: 'good', limits: FAST, log: captureLog() });
    cleanup.push(() => good.close());
    expect(await good.request('b')).toBe('ok');
    expect(seen).toEqual(['b']);
  });
});
