// Delivery behaviour over real loopback sockets: batching, reconnects, bounded queues and
// chunked snapshots.

import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { Entry, Message } from '../../src/raft/types.js';
import { decodeBatch } from '../../src/transport/codec.js';
import { SecureConn } from '../../src/transport/conn.js';
import { FrameType, MAX_FRAME_BYTES } from '../../src/transport/frame.js';
import { TcpTransport } from '../../src/transport/tcp-transport.js';
import { captureLog, FAST, mesh, msg, SECRET, sleep, waitFor, type Member } from './helpers.js';

const cleanup: Array<() => void> = [];
afterEach(() => {
  for (const f of cleanup.splice(0)) f();
});
async function meshed(ids: string[], limits = FAST): Promise<Map<string, Member>> {
  const m = await mesh(ids, limits);
  cleanup.push(() => m.forEach((x) => x.t.close()));
  return m;
}

const entry = (index: number): Entry => ({ index, term: 1, type: 'normal', data: 'x' });

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** A hand-made acceptor (id `id`) recording each authenticated frame; can stop reading. */
async function recordingPeer(id: string): Promise<{ port: number; frames: Array<{ type: FrameType; payload: Buffer }>; conns: SecureConn[]; server: Server }> {
  const frames: Array<{ type: FrameType; payload: Buffer }> = [];
  const conns: SecureConn[] = [];
  const server = createServer((socket) => {
    conns.push(
      new SecureConn({
        socket, role: 'acceptor', selfId: id, secret: SECRET, handshakeTimeoutMs: 1000, maxFrameBytes: MAX_FRAME_BYTES,
        pingIntervalMs: 100, deadAfterMs: 60_000, log: captureLog(),
        onFrame: (_c, type, payload) => void frames.push({ type, payload }),
      }),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanup.push(() => {
    conns.forEach((c) => c.close());
    server.close();
  });
  return { port: (server.address() as { port: number }).port, frames, conns, server };
}

describe('TcpTransport delivery', () => {
  it('three members exchange Raft messages over a full mesh', async () => {
    const m = await meshed(['n1', 'n2', 'n3']);
    const ids = [...m.keys()];
    for (const from of ids) {
      for (const to of ids) if (from !== to) for (let i = 0; i < 20; i++) m.get(from)!.t.send(msg(from, to, { index: i, type: 'MsgApp' }));
    }
    await waitFor(() => ids.every((id) => m.get(id)!.got.length === 40), 'all deliveries');
    for (const id of ids) {
      const got = m.get(id)!.got;
      for (const from of ids.filter((x) => x !== id)) {
        // One connection per direction: per-sender order is preserved.
        expect(got.filter((x) => x.from === from).map((x) => x.index)).toEqual([...Array(20).keys()]);
      }
    }
    const s = m.get('n1')!.t.stats();
    expect(s.peers.n2).toMatchObject({ messagesOut: 20, messagesIn: 20, dropped: 0, connected: true });
    expect(s.peers.n2!.bytesOut).toBeGreaterThan(0);
  });

  it('writes everything sent in one task as one MSG frame', async () => {
    const peer = await recordingPeer('p');
    const t = new TcpTransport({ id: 'a', secret: SECRET, limits: FAST, log: captureLog(), peers: { p: { host: '127.0.0.1', port: peer.port } } });
    cleanup.push(() => t.close());
    await waitFor(() => t.stats().peers.p!.connected, 'connection');
    for (let i = 0; i < 200; i++) t.send(msg('a', 'p', { index: i }));
    await waitFor(() => peer.frames.length >= 1, 'first batch');
    await sleep(20);
    for (let i = 0; i < 3; i++) t.send(msg('a', 'p', { index: 200 + i }));
    await waitFor(() => peer.frames.length >= 2, 'second batch');
    await sleep(20);
    const batches = peer.frames.filter((f) => f.type === FrameType.MSG).map((f) => decodeBatch(f.payload).map((x) => x.index));
    expect(batches.map((b) => b.length)).toEqual([200, 3]);
  });

  it('writes a message sent from inside an immediate in the same loop turn, not the next', async () => {
    // NodeHost's Ready loop runs in an immediate: a flush left to setImmediate from there
    // waited a whole loop turn (I/O polling included) on every hop of a write.
    const peer = await recordingPeer('p');
    const t = new TcpTransport({ id: 'a', secret: SECRET, limits: FAST, log: captureLog(), peers: { p: { host: '127.0.0.1', port: peer.port } } });
    cleanup.push(() => t.close());
    await waitFor(() => t.stats().peers.p!.connected, 'connection');
    const before = t.stats().peers.p!.bytesOut;
    // Two immediates queued together run in the same check phase, one after the other.
    const written = await new Promise<{ atReturn: number; nextImmediate: number }>((resolve) => {
      let atReturn = -1;
      setImmediate(() => {
        t.send(msg('a', 'p', { type: 'MsgApp', index: 1, entries: [entry(2)] }));
        atReturn = t.stats().peers.p!.bytesOut - before;
      });
      setImmediate(() => resolve({ atReturn, nextImmediate: t.stats().peers.p!.bytesOut - before }));
    });
    expect(written.nextImmediate).toBeGreaterThan(0);
    // An append carrying entries, first of its task, is written before send returns.
    expect(written.atReturn).toBe(written.nextImmediate);
    await waitFor(() => peer.frames.some((f) => f.type === FrameType.MSG), 'delivery');
  });

  it('flush() writes at once what the task queued for its batch (a host about to block on an inline fsync)', async () => {
    const peer = await recordingPeer('p');
    const t = new TcpTransport({ id: 'a', secret: SECRET, limits: FAST, log: captureLog(), peers: { p: { host: '127.0.0.1', port: peer.port } } });
    cleanup.push(() => t.close());
    await waitFor(() => t.stats().peers.p!.connected, 'connection');
    const before = t.stats().peers.p!.bytesOut;
    const out = await new Promise<{ queued: number; flushed: number }>((resolve) => {
      setImmediate(() => {
        // A heartbeat first: the append behind it waits for the task's batch...
        t.send(msg('a', 'p', { type: 'MsgHeartbeat', index: 1 }));
        t.send(msg('a', 'p', { type: 'MsgApp', index: 2, entries: [entry(3)] }));
        const queued = t.stats().peers.p!.bytesOut - before;
        // ...unless the task flushes: both are written before flush() returns.
        t.flush();
        const flushed = t.stats().peers.p!.bytesOut - before;
        resolve({ queued, flushed });
      });
    });
    expect(out.queued).toBe(0);
    expect(out.flushed).toBeGreaterThan(0);
    await waitFor(() => peer.frames.some((f) => f.type === FrameType.MSG), 'delivery');
    await sleep(20);
    // One frame with both; the batch that runs after the task finds nothing left to send.
    const batches = peer.frames.filter((f) => f.type === FrameType.MSG).map((f) => decodeBatch(f.payload).map((x) => x.index));
    expect(batches).toEqual([[1, 2]]);
  });

  it('sends as one MSG frame what a task and the promise jobs it queued send', async () => {
    const peer = await recordingPeer('p');
    const t = new TcpTransport({ id: 'a', secret: SECRET, limits: FAST, log: captureLog(), peers: { p: { host: '127.0.0.1', port: peer.port } } });
    cleanup.push(() => t.close());
    await waitFor(() => t.stats().peers.p!.connected, 'connection');
    const batchesOf = (): number[][] => peer.frames.filter((f) => f.type === FrameType.MSG).map((f) => decodeBatch(f.payload).map((x) => x.index));
    const task = (first: Message): void => {
      setImmediate(() => {
        t.send(first);
        for (let i = 1; i < 50; i++) t.send(msg('a', 'p', { index: i }));
        // Sends at the end of chains of awaits (as answers resolved by a Ready's applies are),
        // appends with entries among them.
        for (let i = 50; i < 100; i++) {
          void (async () => {
            for (let k = 0; k < 1 + (i % 5); k++) await Promise.resolve();
            t.send(i % 2 === 0 ? msg('a', 'p', { type: 'MsgApp', index: i, entries: [entry(i + 1)] }) : msg('a', 'p', { index: i }));
          })();
        }
      });
    };
    task(msg('a', 'p', { index: 0 }));
    await waitFor(() => batchesOf().flat().length === 100, 'first task delivered');
    await sleep(20);
    const one = batchesOf();
    // One frame (the chains of awaits end in mixed order).
    expect(one.map((b) => b.length)).toEqual([100]);
    expect(one.flat().sort((x, y) => x - y)).toEqual([...Array(100).keys()]);
    // A task whose first message is an append with entries: that one alone at once, then the rest.
    peer.frames.length = 0;
    task(msg('a', 'p', { type: 'MsgApp', index: 0, entries: [entry(1)] }));
    await waitFor(() => batchesOf().flat().length === 100, 'second task delivered');
    await sleep(20);
    expect(batchesOf().map((b) => b.length)).toEqual([1, 99]);
  });

  it('reconnects to a restarted peer and delivers what was queued meanwhile', async () => {
    const m = await meshed(['a', 'b', 'c']);
    const a = m.get('a')!;
    const addr = m.get('b')!.t.address!;
    await waitFor(() => a.t.stats().peers.b!.connected, 'first connection');
    m.get('b')!.t.close();
    await waitFor(() => !a.t.stats().peers.b!.connected, 'a notices b is gone');
    for (let i = 0; i < 5; i++) a.t.send(msg('a', 'b', { index: i }));
    await sleep(100); // a few redial attempts fail meanwhile
    expect(a.t.stats().peers.b!.queued).toBe(5);

    const peers = { a: m.get('a')!.t.address!, c: m.get('c')!.t.address! };
    const b2 = new TcpTransport({ id: 'b', secret: SECRET, limits: FAST, log: captureLog(), port: addr.port, peers });
    cleanup.push(() => b2.close());
    const got: Message[] = [];
    b2.onMessage((x) => got.push(x));
    await b2.listen();
    await waitFor(() => got.length === 5, 'queued messages after restart');
    a.t.send(msg('a', 'b', { index: 5 }));
    b2.send(msg('b', 'c', { context: 'back' }));
    await waitFor(() => got.length === 6 && m.get('c')!.got.some((x) => x.context === 'back'), 'delivery resumes both ways');
    expect(got.map((x) => x.index)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(a.t.stats().peers.b!.reconnects).toBeGreaterThanOrEqual(1);
    expect(a.log.find(/connected to peer/, 'info')).toBeDefined();
  });

  it('a peer that connects to us is dialled back at once, not after the backoff its absence grew', async () => {
    // a's redial backoff is a minute: only the returning peer's own connection can wake it.
    const slow = { ...FAST, backoffMinMs: 60_000, backoffMaxMs: 120_000 };
    const port = (await freePort()) as number;
    const aLog = captureLog();
    const a = new TcpTransport({ id: 'a', secret: SECRET, limits: slow, log: aLog, peers: { b: { host: '127.0.0.1', port } } });
    cleanup.push(() => a.close());
    await a.listen();
    // a's first dial to b is refused (nothing listens yet) and a backs off for >= 30 s.
    await waitFor(() => aLog.find(/peer unreachable/) !== undefined, 'a failing to reach b');
    a.send(msg('a', 'b', { index: 7 }));

    const b = new TcpTransport({ id: 'b', secret: SECRET, limits: FAST, log: captureLog(), port, peers: { a: a.address! } });
    cleanup.push(() => b.close());
    const got: Message[] = [];
    b.onMessage((x) => got.push(x));
    await b.listen();
    await waitFor(() => got.length === 1, "a's queued message once b is back", 10_000);
    expect(got[0]!.index).toBe(7);
    expect(a.stats().peers.b!.connected).toBe(true);
  });

  it('bounds the send queue of a peer that is down and counts what it drops', async () => {
    const t = new TcpTransport({
      id: 'a', secret: SECRET, log: captureLog(),
      limits: { ...FAST, maxQueueMessages: 100, maxQueueChars: 50_000 },
      peers: { down: { host: '127.0.0.1', port: 1 } },
    });
    cleanup.push(() => t.close());
    for (let i = 0; i < 1000; i++) t.send(msg('a', 'down', { index: i }));
    expect(t.stats().peers.down).toMatchObject({ queued: 100, dropped: 900, connected: false });
    // The byte bound applies too: 2 KB messages, at most 50 KB queued.
    for (let i = 0; i < 100; i++) t.send(msg('a', 'down', { context: 'x'.repeat(2000) }));
    expect(t.stats().peers.down!.queued).toBeLessThanOrEqual(25);
    expect(t.stats().peers.down!.dropped).toBeGreaterThanOrEqual(1075);
  });

  it('a peer that stops reading cannot make the sender buffer without bound', async () => {
    const peer = await recordingPeer('slow');
    const t = new TcpTransport({
      id: 'a', secret: SECRET, log: captureLog(),
      limits: { ...FAST, maxQueueMessages: 1000, highWaterBytes: 256 << 10 },
      peers: { slow: { host: '127.0.0.1', port: peer.port } },
    });
    cleanup.push(() => t.close());
    await waitFor(() => peer.conns[0]?.ready === true, 'connection');
    peer.conns[0]!.socket.pause();
    const entry = { index: 1, term: 1, type: 'normal' as const, data: 'y'.repeat(10_000) };
    let maxBuffered = 0;
    for (let round = 0; round < 40; round++) {
      for (let i = 0; i < 100; i++) t.send(msg('a', 'slow', { type: 'MsgApp', entries: [entry] }));
      await sleep(2);
      maxBuffered = Math.max(maxBuffered, t.stats().peers.slow!.buffered ?? 0);
    }
    const s = t.stats().peers.slow!;
    expect(s.queued).toBeLessThanOrEqual(1000);
    expect(s.dropped).toBeGreaterThan(0);
    // 40 MB were offered. What this process holds is bounded: the queue by its bound, the
    // bytes Node buffers for the socket by highWaterBytes plus one batch (a batch is at most
    // batchChars). What the kernel took is not ours to bound: loopback buffers autotune up to
    // net.ipv4.tcp_rmem's max (32 MiB on the dev VM), so bytesOut is not asserted.
    expect(maxBuffered).toBeLessThan((256 << 10) + 2 * (1 << 20)); // highWaterBytes + a default batch (1 Mi chars) and its framing
    expect(s.messagesOut + s.queued + s.dropped).toBe(4000);
  });

  it('delivers a 5 MiB snapshot intact in chunks while small messages keep flowing', async () => {
    const m = await meshed(['a', 'b']);
    const a = m.get('a')!;
    const b = m.get('b')!;
    await waitFor(() => a.t.stats().peers.b!.connected, 'connection');
    // Multi-byte characters make chunk boundaries split UTF-8 sequences.
    const unit = 'snapshot-é€𝄞-';
    const data = unit.repeat(Math.ceil((5 << 20) / unit.length)).slice(0, 5 << 20);
    const snap = msg('a', 'b', { type: 'MsgSnap', snapshot: { metadata: { index: 900, term: 3, confState: { voters: ['a', 'b'], learners: [] } }, data } });
    a.t.send(snap);
    for (let i = 0; i < 10; i++) a.t.send(msg('a', 'b', { context: `hb${i}` }));
    const done = () => b.got.some((x) => x.type === 'MsgSnap') && b.got.filter((x) => x.context.startsWith('hb')).length === 10;
    await waitFor(done, 'snapshot and heartbeats', 10_000);
    const got = b.got.find((x) => x.type === 'MsgSnap')!;
    expect(got.snapshot!.data.length).toBe(data.length);
    expect(got.snapshot!.data === data).toBe(true);
    expect(got.snapshot!.metadata).toEqual(snap.snapshot!.metadata);
    // The heartbeats did not wait for the whole snapshot.
    expect(b.got.findIndex((x) => x.context === 'hb0')).toBeLessThan(b.got.findIndex((x) => x.type === 'MsgSnap'));
    expect(a.t.stats().peers.b!.chunkedOut).toBe(1);
    expect(b.t.stats().peers.a!.chunkedIn).toBe(1);
  });

  it('a handler that throws is logged and the link stays up', async () => {
    const m = await meshed(['a', 'b']);
    const b = m.get('b')!;
    let n = 0;
    b.t.onMessage(() => {
      if (++n === 1) throw new Error('boom');
    });
    m.get('a')!.t.send(msg('a', 'b'));
    await waitFor(() => n === 1, 'first');
    m.get('a')!.t.send(msg('a', 'b'));
    await waitFor(() => n === 2, 'second');
    expect(b.log.find(/message handler threw/, 'error')).toBeDefined();
    expect(m.get('a')!.t.stats().peers.b!.reconnects).toBe(0);
  });
});
