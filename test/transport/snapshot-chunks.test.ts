// InstallSnapshot as a resumable, flow-controlled stream of SNAP_PART frames over real
// loopback sockets: past the message limit, a bounded window, interleaved with heartbeats,
// resumed after a dropped connection, restarted for a newer snapshot, and a receiver that
// refuses inconsistent or oversized parts from a hand-driven peer.

import { createHash } from 'node:crypto';
import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { Message } from '../../src/raft/types.js';
import { SecureConn } from '../../src/transport/conn.js';
import { FrameType, MAX_FRAME_BYTES } from '../../src/transport/frame.js';
import type { TcpLimits } from '../../src/transport/limits.js';
import { decodeAck, encodePart, type PartAck, type PartHeader } from '../../src/transport/snapshot-stream.js';
import { TcpTransport } from '../../src/transport/tcp-transport.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { captureLog, FAST, msg, RawPeer, SECRET, sleep, waitFor } from './helpers.js';

const cleanup: Array<() => void> = [];
afterEach(() => {
  for (const f of cleanup.splice(0)) f();
});

type Progress = (peer: string, received: number, total: number) => void;
interface Node {
  t: TcpTransport;
  got: Message[];
  log: ReturnType<typeof captureLog>;
  /** Set by a test to act on each accepted snapshot part. */
  progress: Progress | null;
}

/** Small limits: the "just past the message limit" snapshot is a few MiB, not 256 MiB. */
const SMALL: Partial<TcpLimits> = { ...FAST, chunkBytes: 64 << 10, maxMessageBytes: 1 << 20, maxSnapshotBytes: 8 << 20, snapshotWindowChunks: 2 };

async function pair(limits: Partial<TcpLimits> = SMALL): Promise<{ a: Node; b: Node }> {
  const nodes: Node[] = [];
  for (const id of ['a', 'b']) {
    const log = captureLog();
    const n: Node = { t: null as unknown as TcpTransport, got: [], log, progress: null };
    n.t = new TcpTransport({ id, secret: SECRET, limits, log, onSnapshotProgress: (p, r, tot) => n.progress?.(p, r, tot) });
    n.t.onMessage((m) => n.got.push(m));
    await n.t.listen();
    nodes.push(n);
  }
  const [a, b] = nodes as [Node, Node];
  a.t.setPeer('b', b.t.address!);
  b.t.setPeer('a', a.t.address!);
  cleanup.push(() => nodes.forEach((n) => n.t.close()));
  await waitFor(() => a.t.stats().peers.b!.connected && b.t.stats().peers.a!.connected, 'connections');
  return { a, b };
}

/** Multi-byte characters so part boundaries split UTF-8 sequences. */
function stateOf(bytes: number, seed = 'x'): string {
  const unit = `${seed}-state-é€𝄞-`;
  return unit.repeat(Math.ceil(bytes / unit.length)).slice(0, bytes);
}

function snapMsg(index: number, data: string, term = 2): Message {
  return msg('a', 'b', { type: 'MsgSnap', term, snapshot: { metadata: { index, term, confState: { voters: ['a', 'b'], learners: [] } }, data } });
}

const snaps = (n: Node): Message[] => n.got.filter((m) => m.type === 'MsgSnap');

describe('snapshot streaming over TCP', () => {
  it('delivers a snapshot larger than maxMessageBytes, intact, within a bounded window of parts', async () => {
    const { a, b } = await pair();
    const data = stateOf(3 << 20); // ~5 MiB of UTF-8, five times maxMessageBytes
    const total = Buffer.byteLength(data);
    let worstAhead = 0;
    b.progress = (_p, received) => {
      // Bytes the sender put on the wire that the receiver does not hold yet.
      worstAhead = Math.max(worstAhead, a.t.stats().peers.b!.snapshotBytesOut - received);
    };
    a.t.send(snapMsg(500, data));
    await waitFor(() => snaps(b).length === 1, 'snapshot', 20_000);
    const got = snaps(b)[0]!;
    expect(got.snapshot!.data === data).toBe(true);
    expect(got.snapshot!.metadata).toEqual({ index: 500, term: 2, confState: { voters: ['a', 'b'], learners: [] } });
    expect(got.term).toBe(2);
    expect(b.t.stats().peers.a!.snapshotBytesIn).toBe(total);
    // Flow control: never more than snapshotWindowChunks (2) parts unacknowledged, each at
    // most chunkBytes characters (3 bytes each at most): well below the 5 MiB sent.
    expect(worstAhead).toBeGreaterThan(0);
    expect(worstAhead).toBeLessThanOrEqual(2 * 3 * (64 << 10));
    expect(a.t.stats().peers.b!.dropped).toBe(0);
    await waitFor(() => a.t.stats().peers.b!.chunkedOut === 1, 'final acknowledgement');
  });

  it('a heartbeat sent after a large snapshot starts arrives before the snapshot finishes', async () => {
    const { a, b } = await pair();
    const data = stateOf(3 << 20);
    let sentHb = false;
    b.progress = () => {
      if (sentHb) return;
      sentHb = true;
      a.t.send(msg('a', 'b', { context: 'hb-after-start' }));
    };
    a.t.send(snapMsg(600, data));
    await waitFor(() => snaps(b).length === 1, 'snapshot', 20_000);
    const hb = b.got.findIndex((m) => m.context === 'hb-after-start');
    expect(sentHb).toBe(true);
    expect(hb).toBeGreaterThanOrEqual(0);
    expect(hb).toBeLessThan(b.got.findIndex((m) => m.type === 'MsgSnap'));
  });

  it('resumes from the last acknowledged part after the connection drops mid-transfer', async () => {
    const { a, b } = await pair();
    const data = stateOf(3 << 20);
    const total = Buffer.byteLength(data);
    let cutAt = -1;
    b.progress = (_p, received) => {
      if (cutAt < 0 && received >= total / 2) {
        cutAt = received;
        b.t.disconnect('a', 'test cuts the link mid-snapshot');
      }
    };
    a.t.send(snapMsg(700, data));
    await waitFor(() => snaps(b).length === 1, 'snapshot after reconnect', 20_000);
    expect(cutAt).toBeGreaterThan(0);
    expect(snaps(b)[0]!.snapshot!.data === data).toBe(true);
    // Every byte was accepted once: nothing before the cut was sent again and accepted.
    expect(b.t.stats().peers.a!.snapshotBytesIn).toBe(total);
    expect(a.t.stats().peers.b!.snapshotResumes).toBeGreaterThanOrEqual(1);
    expect(a.t.stats().peers.b!.reconnects).toBeGreaterThanOrEqual(1);
    // At most the window in flight at the cut (and a part per rewind) went out twice.
    expect(a.t.stats().peers.b!.snapshotBytesOut).toBeLessThanOrEqual(total + 4 * 3 * (64 << 10));
  });

  it('resumes after the link drops in the middle of a frame (a network cut, not a protocol error)', async () => {
    const { a, b } = await pair();
    // a reaches b through a relay that forwards exactly up to a byte inside a SNAP_PART frame
    // and then drops both connections, as a network failure does mid-transfer.
    const relay = new TcpProxy({ host: '127.0.0.1', port: b.t.address!.port });
    await relay.listen();
    cleanup.push(() => void relay.close());
    a.t.setPeer('b', { host: '127.0.0.1', port: relay.port });
    a.t.disconnect('b', 'test moves the link onto the relay');
    await waitFor(() => a.t.stats().peers.b!.connected && relay.bytesIn > 0, 'the link through the relay', 10_000);
    const data = stateOf(3 << 20);
    const total = Buffer.byteLength(data);
    // 1 MiB past the relay's count now: inside the ~16th of 64 KiB parts, 777 bytes past a
    // multiple of 1 MiB, never a frame boundary (each frame is a part plus a header).
    relay.cutAfterBytes = relay.bytesIn + (1 << 20) + 777;
    a.t.send(snapMsg(750, data));
    await waitFor(() => snaps(b).length === 1, 'snapshot after reconnect', 20_000);
    expect(relay.cuts).toBe(1);
    expect(b.log.find(/truncated frame/)).toBeDefined();
    expect(snaps(b)[0]!.snapshot!.data === data).toBe(true);
    // The receiver kept what it had: every byte accepted once, the sender resumed.
    expect(b.t.stats().peers.a!.snapshotBytesIn).toBe(total);
    expect(a.t.stats().peers.b!.snapshotResumes).toBeGreaterThanOrEqual(1);
    expect(b.t.stats().protocolErrors).toBe(0);
  });

  it('state data in parts arrives as the same parts, resuming after the connection drops mid-transfer', async () => {
    const { a, b } = await pair();
    // Parts of uneven sizes (one smaller than a frame, one empty), multi-byte characters.
    const parts = [stateOf(40 << 10, 'm'), stateOf(700 << 10, 'p'), '', stateOf(10, 'q'), stateOf(1 << 20, 'r')];
    const total = parts.reduce((n, x) => n + Buffer.byteLength(x), 0);
    let cutAt = -1;
    b.progress = (_p, received) => {
      if (cutAt < 0 && received >= total / 2) {
        cutAt = received;
        b.t.disconnect('a', 'test cuts the link mid-snapshot');
      }
    };
    a.t.send(msg('a', 'b', { type: 'MsgSnap', term: 2, snapshot: { metadata: { index: 800, term: 2, confState: { voters: ['a', 'b'], learners: [] } }, data: parts } }));
    await waitFor(() => snaps(b).length === 1, 'snapshot after reconnect', 20_000);
    expect(cutAt).toBeGreaterThan(0);
    expect(snaps(b)[0]!.snapshot!.data).toEqual(parts);
    expect(b.t.stats().peers.a!.snapshotBytesIn).toBe(total);
    expect(a.t.stats().peers.b!.snapshotResumes).toBeGreaterThanOrEqual(1);
  });

  it('hands each data part over as it completes, before the whole arrived, in the array later delivered', async () => {
    const { a, b } = await pair();
    // Sizes that end on whole characters (a lone surrogate would not survive UTF-8).
    const parts = [stateOf(40 << 10, 'm'), stateOf(700 << 10, 'p'), '', stateOf(1 << 20, 'r')];
    const total = parts.reduce((n, x) => n + Buffer.byteLength(x), 0);
    const events: string[] = [];
    let arrays: Array<readonly string[]> = [];
    b.progress = (_p, received) => void (received === total && events.push('last byte'));
    b.t.onSnapshotParts(
      (peer, arr, i) => {
        expect(peer).toBe('a');
        events.push(`part ${i}: ${arr[i] === parts[i]}`);
        arrays.push(arr);
      },
      (_peer, arr) => events.push(`drop ${arr === arrays[0]}`),
    );
    a.t.send(msg('a', 'b', { type: 'MsgSnap', term: 2, snapshot: { metadata: { index: 820, term: 2, confState: { voters: ['a', 'b'], learners: [] } }, data: parts } }));
    await waitFor(() => snaps(b).length === 1, 'snapshot', 20_000);
    // Parts 0-2 before the last frame; the last part, then (after delivery) the drop.
    expect(events).toEqual(['part 0: true', 'part 1: true', 'part 2: true', 'part 3: true', 'drop true', 'last byte']);
    expect(new Set(arrays).size).toBe(1);
    expect(snaps(b)[0]!.snapshot!.data).toBe(arrays[0]);
    arrays = [];
  });

  it('the core resending the same snapshot mid-transfer continues it; a newer one restarts cleanly', async () => {
    const { a, b } = await pair();
    const s1 = stateOf(2 << 20, 'one');
    const s2 = stateOf(2 << 20, 'two');
    const m1 = snapMsg(800, s1);
    let step = 0;
    b.progress = (_p, received, total) => {
      if (step === 0 && received >= total / 4) {
        step = 1;
        a.t.send(m1); // the leader's retry after an election timeout
      } else if (step === 1 && received >= total / 2) {
        step = 2;
        b.t.disconnect('a', 'cut');
        a.t.send(snapMsg(900, s2)); // compacted meanwhile: a newer snapshot
      }
    };
    a.t.send(m1);
    await waitFor(() => snaps(b).length === 1, 'newer snapshot', 20_000);
    await sleep(100);
    expect(step).toBe(2);
    expect(snaps(b)).toHaveLength(1);
    const got = snaps(b)[0]!;
    expect(got.snapshot!.metadata.index).toBe(900);
    expect(got.snapshot!.data === s2).toBe(true);
    const t1 = Buffer.byteLength(s1);
    const t2 = Buffer.byteLength(s2);
    const inBytes = b.t.stats().peers.a!.snapshotBytesIn;
    // Half of the first (not restarted by the resend), then all of the second from byte 0.
    expect(inBytes).toBeGreaterThanOrEqual(t2 + t1 / 2);
    expect(inBytes).toBeLessThan(t2 + t1);
  });

  it('a resend of a snapshot the receiver acknowledged in full is not sent again on the same connection', async () => {
    // The core resends until the follower answers, which a large install delays by minutes:
    // each resend used to start the whole transfer over (and deliver the state again).
    const { a, b } = await pair();
    const data = stateOf(1 << 20);
    const total = Buffer.byteLength(data);
    a.t.send(snapMsg(900, data));
    await waitFor(() => snaps(b).length === 1 && a.t.stats().peers.b!.chunkedOut === 1, 'snapshot and its final acknowledgement', 20_000);
    for (let i = 0; i < 3; i++) a.t.send(snapMsg(900, data));
    a.t.send(msg('a', 'b', { context: 'after-resends' }));
    await waitFor(() => b.got.some((m) => m.context === 'after-resends'), 'a message sent after the resends');
    await sleep(100);
    expect(snaps(b).length).toBe(1);
    expect(a.t.stats().peers.b!.snapshotBytesOut).toBe(total);
    // A new connection (the follower may have restarted) sends it again.
    b.t.disconnect('a', 'test replaces the connection');
    await waitFor(() => a.t.stats().peers.b!.reconnects >= 1 && a.t.stats().peers.b!.connected, 'reconnect', 10_000);
    a.t.send(snapMsg(900, data));
    await waitFor(() => snaps(b).length === 2, 'the snapshot again on the new connection', 20_000);
    expect(snaps(b)[1]!.snapshot!.data === data).toBe(true);
  });

  it('a resend after snapshotResumeMs goes again on the same connection', async () => {
    const { a, b } = await pair({ ...SMALL, snapshotResumeMs: 200 });
    const data = stateOf(256 << 10);
    a.t.send(snapMsg(901, data));
    await waitFor(() => snaps(b).length === 1 && a.t.stats().peers.b!.chunkedOut === 1, 'snapshot and its final acknowledgement', 20_000);
    await sleep(300);
    a.t.send(snapMsg(901, data));
    await waitFor(() => snaps(b).length === 2, 'the snapshot again', 20_000);
    expect(a.t.stats().peers.b!.reconnects).toBe(0);
  });

  it('abandonSnapshots (the sender stopped leading) stops a transfer under way', async () => {
    const { a, b } = await pair();
    const data = stateOf(3 << 20);
    let outAtStop = -1;
    b.progress = () => {
      if (outAtStop >= 0) return;
      a.t.abandonSnapshots();
      outAtStop = a.t.stats().peers.b!.snapshotBytesOut;
    };
    a.t.send(snapMsg(950, data));
    await waitFor(() => outAtStop >= 0, 'the first part');
    a.t.send(msg('a', 'b', { context: 'after-abandon' }));
    await waitFor(() => b.got.some((m) => m.context === 'after-abandon'), 'a message sent after abandoning');
    await sleep(200);
    expect(snaps(b)).toHaveLength(0);
    expect(a.t.stats().peers.b!.snapshotBytesOut).toBe(outAtStop);
    expect(outAtStop).toBeLessThan(Buffer.byteLength(data) / 4);
  });

  it("a whole snapshot delivered from one peer drops another peer's partial one", async () => {
    const { a, b } = await pair();
    const log = captureLog();
    const c = new TcpTransport({ id: 'c', secret: SECRET, limits: SMALL, log });
    await c.listen();
    cleanup.push(() => c.close());
    c.setPeer('b', b.t.address!);
    b.t.setPeer('c', c.address!);
    await waitFor(() => c.stats().peers.b!.connected, 'c to b');
    const byPeer = new Map<string, readonly string[]>();
    const dropped: Array<readonly string[]> = [];
    b.t.onSnapshotParts((peer, arr) => void byPeer.set(peer, arr), (_peer, arr) => void dropped.push(arr));
    // a (deposed) got part of its state across, then stopped.
    const big = [stateOf(100 << 10, 'a'), stateOf(1 << 20, 'b'), stateOf(1 << 20, 'c')];
    b.progress = (peer) => {
      if (peer === 'a' && byPeer.has('a')) a.t.abandonSnapshots();
    };
    a.t.send(msg('a', 'b', { type: 'MsgSnap', term: 2, snapshot: { metadata: { index: 960, term: 2, confState: { voters: ['a', 'b', 'c'], learners: [] } }, data: big } }));
    await waitFor(() => byPeer.has('a'), "a's first part");
    await sleep(100);
    // c (the new leader) sends its whole state.
    const small = [stateOf(40 << 10, 'x'), stateOf(10, 'y')];
    c.send(msg('c', 'b', { type: 'MsgSnap', term: 3, snapshot: { metadata: { index: 970, term: 3, confState: { voters: ['a', 'b', 'c'], learners: [] } }, data: small } }));
    await waitFor(() => snaps(b).length === 1, "c's snapshot");
    expect(snaps(b)[0]!.from).toBe('c');
    expect(dropped).toContain(byPeer.get('a'));
  });

  it('refuses a snapshot over maxSnapshotBytes at the sender', async () => {
    const { a, b } = await pair({ ...SMALL, maxSnapshotBytes: 1 << 20 });
    a.t.send(snapMsg(1000, stateOf(2 << 20)));
    a.t.send(msg('a', 'b', { context: 'after' }));
    await waitFor(() => b.got.some((m) => m.context === 'after'), 'heartbeat');
    expect(snaps(b)).toHaveLength(0);
    expect(a.log.find(/exceeds maxSnapshotBytes/, 'error')).toBeDefined();
  });
});

describe('snapshot receiver refuses inconsistent parts (hand-driven sender)', () => {
  const data = Buffer.from(stateOf(300 << 10), 'utf8');
  const sha256 = createHash('sha256').update(data).digest('hex');
  const env = JSON.stringify(snapMsg(1200, ''));
  const head = (o: Partial<PartHeader> = {}): PartHeader => ({ index: 1200, term: 2, total: data.length, sha256, offset: 0, env, ...o });
  const part = (p: RawPeer, h: PartHeader, bytes: Buffer): Buffer => p.tagged(FrameType.SNAP_PART, Buffer.concat(encodePart(h, bytes)));

  async function rawToB(): Promise<{ b: Node; p: RawPeer; acks: () => Promise<PartAck> }> {
    const { a, b } = await pair();
    a.t.close(); // else the real `a` redials and replaces the hand-driven connection
    const p = await RawPeer.authenticated(b.t.address!.port, 'a');
    cleanup.push(() => p.socket.destroy());
    const acks = async (): Promise<PartAck> => {
      const f = await p.next(FrameType.SNAP_ACK);
      const payload = p.auth.open(FrameType.SNAP_ACK, f.body);
      if (!payload) throw new Error('SNAP_ACK failed authentication');
      return decodeAck(payload);
    };
    return { b, p, acks };
  }

  it('a part at the wrong offset or of another snapshot gets a rewind, not delivery', async () => {
    const { b, p, acks } = await rawToB();
    const k = 64 << 10;
    p.write(part(p, head(), data.subarray(0, k)));
    expect(await acks()).toMatchObject({ index: 1200, received: k });
    // Skips a part: refused, told to resume at k.
    p.write(part(p, head({ offset: 2 * k }), data.subarray(2 * k, 3 * k)));
    expect(await acks()).toMatchObject({ received: k, rewind: true });
    // The parts in flight behind it get no answer each...
    p.write(part(p, head({ offset: 3 * k }), data.subarray(3 * k, 4 * k)));
    // ...but the sender going back (its retry, as if our answer was lost) is answered again.
    p.write(part(p, head({ offset: 2 * k }), data.subarray(2 * k, 3 * k)));
    expect(await acks()).toMatchObject({ received: k, rewind: true });
    await sleep(50);
    expect(p.frames.filter((f) => f.type === FrameType.SNAP_ACK)).toHaveLength(0);
    // Another snapshot's middle: refused, resume it from 0.
    p.write(part(p, head({ index: 1300, offset: k }), data.subarray(k, 2 * k)));
    expect(await acks()).toMatchObject({ index: 1300, received: 0, rewind: true });
    expect(snaps(b)).toHaveLength(0);
    // Restarting 1200 from 0 and sending it whole works.
    for (let off = 0; off < data.length; off += k) p.write(part(p, head({ offset: off }), data.subarray(off, off + k)));
    await waitFor(() => snaps(b).length === 1, 'snapshot');
    expect(Buffer.from(snaps(b)[0]!.snapshot!.data as string, 'utf8').equals(data)).toBe(true);
  });

  it('a hash mismatch delivers nothing and tells the sender', async () => {
    const { b, p, acks } = await rawToB();
    const bad = Buffer.from(data);
    bad[100] = bad[100]! ^ 1;
    p.write(part(p, head(), bad));
    const a = await acks();
    expect(a.error).toMatch(/SHA-256/);
    await sleep(50);
    expect(snaps(b)).toHaveLength(0);
  });

  it('a multi-part snapshot with a corrupted byte delivers nothing; sent again intact, it arrives as its parts', async () => {
    const { b, p, acks } = await rawToB();
    const k = 64 << 10;
    // Three data parts (ending between characters); frames cut at part ends, as the sender does.
    const text = stateOf(300 << 10);
    const ends = [Buffer.byteLength(text.slice(0, 40_000)), Buffer.byteLength(text.slice(0, 90_000)), data.length];
    const h = (o: Partial<PartHeader>): PartHeader => head({ ends, ...o });
    const frames = (buf: Buffer): Array<[number, Buffer]> => {
      const out: Array<[number, Buffer]> = [];
      let off = 0;
      for (const end of ends) for (; off < end; off = Math.min(end, off + k)) out.push([off, buf.subarray(off, Math.min(end, off + k))]);
      return out;
    };
    const bad = Buffer.from(data);
    bad[150 << 10] = bad[150 << 10]! ^ 1;
    let last: PartAck | null = null;
    for (const [off, bytes] of frames(bad)) {
      p.write(part(p, h({ offset: off }), bytes));
      last = await acks();
    }
    expect(last!.error).toMatch(/SHA-256/);
    await sleep(50);
    expect(snaps(b)).toHaveLength(0);
    for (const [off, bytes] of frames(data)) {
      p.write(part(p, h({ offset: off }), bytes));
      await acks();
    }
    await waitFor(() => snaps(b).length === 1, 'snapshot');
    const got = snaps(b)[0]!.snapshot!.data as string[];
    expect(got).toEqual([text.slice(0, 40_000), text.slice(40_000, 90_000), text.slice(90_000)]);
  });

  it('a frame spanning two data parts closes the connection', async () => {
    const { b, p } = await rawToB();
    p.write(part(p, head({ ends: [1000, data.length] }), data.subarray(0, 2000)));
    await p.closed;
    expect(b.log.find(/span the data part ending at 1000/, 'warn')).toBeDefined();
    expect(snaps(b)).toHaveLength(0);
  });

  it('an announced total over maxSnapshotBytes closes the connection before buffering', async () => {
    const { b, p } = await rawToB();
    p.write(part(p, head({ total: 9 << 20 }), data.subarray(0, 1000)));
    await p.closed;
    expect(b.log.find(/exceeds the 8388608-byte limit/, 'warn')).toBeDefined();
    expect(snaps(b)).toHaveLength(0);
  });

  it('bytes past the announced total close the connection', async () => {
    const { b, p } = await rawToB();
    p.write(part(p, head({ total: 1000 }), data.subarray(0, 2000)));
    await p.closed;
    expect(b.log.find(/past the announced total/, 'warn')).toBeDefined();
    expect(snaps(b)).toHaveLength(0);
  });
});

describe('snapshot sender flow control against a receiver that never acknowledges', () => {
  it('stops at the window, and a resend by the core after no progress goes again from the last acknowledged byte', async () => {
    const frames: FrameType[] = [];
    const conns: SecureConn[] = [];
    const server = createServer((socket) => {
      conns.push(new SecureConn({
        socket, role: 'acceptor', selfId: 'b', secret: SECRET, handshakeTimeoutMs: 1000, maxFrameBytes: MAX_FRAME_BYTES,
        pingIntervalMs: 100, deadAfterMs: 60_000, log: captureLog(),
        onFrame: (_c, type) => void frames.push(type),
      }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const a = new TcpTransport({ id: 'a', secret: SECRET, limits: SMALL, log: captureLog() });
    cleanup.push(() => {
      a.close();
      conns.forEach((c) => c.close());
      server.close();
    });
    a.setPeer('b', { host: '127.0.0.1', port: (server.address() as { port: number }).port });
    await waitFor(() => a.stats().peers.b!.connected, 'connection');
    const m = snapMsg(1500, stateOf(2 << 20));
    a.send(m);
    const parts = (): number => frames.filter((t) => t === FrameType.SNAP_PART).length;
    await waitFor(() => parts() === 2, 'the first window');
    a.send(msg('a', 'b', { context: 'hb' }));
    await waitFor(() => frames.includes(FrameType.MSG), 'a heartbeat past the stalled snapshot');
    await sleep(100);
    expect(parts()).toBe(2); // snapshotWindowChunks: nothing more without an acknowledgement
    a.send(m); // the core's retry: progress was seen at the previous check (first resend arms it)
    await sleep(50);
    expect(parts()).toBe(2);
    a.send(m); // no acknowledgement since: resend the window from byte 0
    await waitFor(() => parts() === 4, 'the window again');
    await sleep(100);
    expect(parts()).toBe(4);
  });
});
