// Client requests and answers made in one event-loop turn travel together in one frame.

import { afterEach, describe, expect, it } from 'vitest';
import { packJson } from '../../src/transport/codec.js';
import { TcpClient } from '../../src/transport/tcp-client.js';
import { TcpTransport } from '../../src/transport/tcp-transport.js';
import type { SecureConn } from '../../src/transport/conn.js';
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

  it('answers the only request in flight on a connection at once, in the turn it resolves', async () => {
    const t = new TcpTransport({ id: 'm1', secret: SECRET, limits: FAST, log: captureLog() });
    cleanup.push(() => t.close());
    const { port } = await t.listen();
    let framesAtCheck = -1;
    t.onClientRequest(
      () =>
        new Promise((resolve) => {
          // Queued together: the check runs right after the answer resolves, in the same phase.
          setImmediate(() => resolve('done'));
          setImmediate(() => (framesAtCheck = t.stats().clientResponseFrames));
        }),
    );
    const raw = await RawPeer.authenticated(port, 'client:one');
    raw.write(raw.tagged(FrameType.CLIENT_REQ, Buffer.from(JSON.stringify({ id: 1, body: 'x' }))));
    const f = await raw.next(FrameType.CLIENT_RESP);
    expect(JSON.parse(raw.auth.open(f.type, f.body)!.toString())).toEqual({ id: 1, ok: true, body: 'done' });
    expect(framesAtCheck).toBe(1);
  });

  it('answers resolved together for one connection still leave in one frame', async () => {
    const t = new TcpTransport({ id: 'm1', secret: SECRET, limits: FAST, log: captureLog() });
    cleanup.push(() => t.close());
    const { port } = await t.listen();
    const waiting: Array<() => void> = [];
    t.onClientRequest(async (req) => {
      await new Promise<void>((r) => waiting.push(r));
      // Chains of different lengths, as real handlers have.
      for (let k = 0; k < (req as number) % 4; k++) await Promise.resolve();
      return req;
    });
    const raw = await RawPeer.authenticated(port, 'client:many');
    raw.write(raw.tagged(FrameType.CLIENT_REQ, Buffer.from(JSON.stringify(Array.from({ length: 50 }, (_, i) => ({ id: i + 1, body: i }))))));
    await waitFor(() => waiting.length === 50, 'all 50 requests running');
    setImmediate(() => waiting.forEach((r) => r()));
    const f = await raw.next(FrameType.CLIENT_RESP);
    const answers = JSON.parse(raw.auth.open(f.type, f.body)!.toString()) as Array<{ id: number; body: number }>;
    expect(answers.map((a) => a.id).sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    await sleep(50);
    expect(raw.frames.filter((x) => x.type === FrameType.CLIENT_RESP)).toEqual([]);
    expect(t.stats().clientResponseFrames).toBe(1);
  });

  it('a client sends its only outstanding request at once, and batches concurrent ones', async () => {
    const t = new TcpTransport({ id: 'm1', secret: SECRET, limits: FAST, log: captureLog() });
    cleanup.push(() => t.close());
    const { port } = await t.listen();
    t.onClientRequest(async (req) => req);
    const c = new TcpClient({ host: '127.0.0.1', port, secret: SECRET, name: 'lone', limits: FAST, log: captureLog() });
    cleanup.push(() => c.close());
    await c.connect();
    const conn = (c as unknown as { conn: SecureConn }).conn;
    const before = conn.bytesOut;
    const answer = c.request('only');
    // A long chain of promise jobs in the same task: a batched flush would wait for all of it.
    for (let i = 0; i < 200; i++) await Promise.resolve();
    expect(conn.bytesOut).toBeGreaterThan(before);
    expect(await answer).toBe('only');
    // Frames the client writes from here on.
    let frames = 0;
    const send = conn.send.bind(conn);
    conn.send = (type, parts) => {
      if (type === FrameType.CLIENT_REQ) frames++;
      return send(type, parts);
    };
    const many = Array.from({ length: 30 }, (_, i) => c.request(i));
    expect(await Promise.all(many)).toEqual(Array.from({ length: 30 }, (_, i) => i));
    // The first of the 30 was the only one outstanding when it was queued; the other 29 left
    // together once the task's promise jobs were done.
    expect(frames).toBe(2);
  });
});
