// Authentication and hostile input over real loopback sockets: whatever arrives, the member
// closes that one connection with a logged reason and keeps serving its authenticated peers.

import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { clientKey, memberKey } from '../../src/transport/auth.js';
import { encodeBatch } from '../../src/transport/codec.js';
import { TcpClient } from '../../src/transport/tcp-client.js';
import { encodeFrame, FrameType } from '../../src/transport/frame.js';
import { TcpTransport } from '../../src/transport/tcp-transport.js';
import { captureLog, FAST, mesh, msg, RawPeer, SECRET, socketClosed, waitFor, WRONG, type Member } from './helpers.js';

let members: Map<string, Member> = new Map();
const extra: TcpTransport[] = [];
afterEach(() => {
  for (const m of members.values()) m.t.close();
  for (const t of extra.splice(0)) t.close();
  members = new Map();
});

/** a and b meshed; a working link proves b still serves its authenticated peer. */
async function pair(): Promise<{ a: Member; b: Member; port: number; stillServes: () => Promise<void> }> {
  members = await mesh(['a', 'b']);
  const a = members.get('a')!;
  const b = members.get('b')!;
  // A known member that is not running: raw sockets authenticate as it without racing the
  // real a's reconnects (a newer connection from the same peer replaces the older one).
  b.t.setPeer('c', { host: '127.0.0.1', port: 1 });
  let n = 0;
  return {
    a,
    b,
    port: b.t.address!.port,
    stillServes: async () => {
      const ctx = `probe-${++n}`;
      a.t.send(msg('a', 'b', { context: ctx }));
      await waitFor(() => b.got.some((m) => m.context === ctx), 'delivery after the attack');
    },
  };
}

describe('authentication', () => {
  it('peers with the right secret exchange messages in both directions', async () => {
    const { a, b } = await pair();
    a.t.send(msg('a', 'b', { term: 5 }));
    b.t.send(msg('b', 'a', { term: 6 }));
    await waitFor(() => a.got.length === 1 && b.got.length === 1, 'both deliveries');
    expect(b.got[0]).toEqual(msg('a', 'b', { term: 5 }));
    expect(a.got[0]).toEqual(msg('b', 'a', { term: 6 }));
    expect(a.t.stats().peers.b).toMatchObject({ connected: true, messagesOut: 1, messagesIn: 1, authFailures: 0 });
  });

  it('a member with the wrong secret is refused and logged on both sides, and delivers nothing', async () => {
    const { a, b, port, stillServes } = await pair();
    const log = captureLog();
    const evil = new TcpTransport({ id: 'a', secret: WRONG, limits: FAST, log, peers: { b: { host: '127.0.0.1', port } } });
    extra.push(evil);
    const before = b.got.length;
    evil.send(msg('a', 'b', { type: 'MsgVote', term: 99 }));
    await waitFor(() => evil.stats().peers.b!.authFailures >= 1, 'dialer-side auth failure');
    await waitFor(() => b.log.find(/failed to prove the cluster secret/, 'warn') !== undefined, 'acceptor-side log');
    expect(log.find(/refused by .*authentication failed/, 'warn')).toBeDefined();
    expect(b.t.stats().authFailures).toBeGreaterThanOrEqual(1);
    expect(b.t.stats().peers.a!.authFailures).toBeGreaterThanOrEqual(1);
    expect(evil.stats().peers.b!.connected).toBe(false);
    await stillServes();
    expect(b.got.slice(before).some((m) => m.type === 'MsgVote')).toBe(false);
    void a;
  });

  it('a member does not accept an impostor acceptor: the dialer checks the proof too', async () => {
    const { b } = await pair();
    const log = captureLog();
    // The impostor knows b's id and address but not the secret.
    const impostor = new TcpTransport({ id: 'b', secret: WRONG, limits: FAST, log: captureLog() });
    extra.push(impostor);
    const addr = await impostor.listen();
    const victim = new TcpTransport({ id: 'a', secret: SECRET, limits: FAST, log, peers: { b: addr } });
    extra.push(victim);
    victim.send(msg('a', 'b'));
    // The impostor refuses a's proof; a never gets as far as trusting it.
    await waitFor(() => victim.stats().peers.b!.authFailures >= 1, 'victim-side failure');
    expect(victim.stats().peers.b!.messagesOut).toBe(0);
    void b;
  });

  it('a member of another swarm (same secret, same ids) is refused on both sides and delivers nothing', async () => {
    // Two swarms share a secret and member ids; a's --peers names green's b by mistake.
    const bLog = captureLog();
    const green = new TcpTransport({ id: 'b', swarm: 'green', secret: SECRET, limits: FAST, log: bLog });
    extra.push(green);
    const got: string[] = [];
    green.onMessage((m) => got.push(m.type));
    const addr = await green.listen();
    green.setPeer('a', { host: '127.0.0.1', port: 1 });
    const aLog = captureLog();
    const blue = new TcpTransport({ id: 'a', swarm: 'blue', secret: SECRET, limits: FAST, log: aLog, peers: { b: addr } });
    extra.push(blue);
    blue.send(msg('a', 'b', { type: 'MsgVote', term: 9 }));
    await waitFor(() => blue.stats().peers.b!.authFailures >= 1, 'the dialer told it was refused');
    await waitFor(() => bLog.find(/refused a: a serves swarm "blue", this member "green"/) !== undefined, 'acceptor-side log');
    expect(aLog.find(/swarm "blue", this member "green"/)).toBeDefined();
    // green's b dialling blue's a (the other way round) is refused by the dialer itself.
    const blueA = await blue.listen();
    green.setPeer('a', blueA);
    green.send(msg('b', 'a', { type: 'MsgVote', term: 9 }));
    await waitFor(() => green.stats().peers.a!.authFailures >= 1, 'the reverse dial refused');
    expect(got).toEqual([]);
    expect(blue.stats().peers.b!.messagesOut).toBe(0);
    // The same swarm name on both sides: connected (a member that names none is not checked).
    const same = new TcpTransport({ id: 'a', swarm: 'green', secret: SECRET, limits: FAST, log: captureLog(), peers: { b: addr } });
    extra.push(same);
    same.send(msg('a', 'b', { term: 3 }));
    await waitFor(() => got.length === 1, 'delivery within one swarm');
  });

  it('refuses unknown member ids and clients that claim to be this member', async () => {
    const { b, port, stillServes } = await pair();
    const p = await RawPeer.authenticated(port, 'zz').catch((e: Error) => e);
    expect(p).toBeInstanceOf(Error);
    await waitFor(() => b.log.find(/refused zz: zz is not a known member/) !== undefined, 'refusal log');
    expect(await RawPeer.authenticated(port, 'b').catch((e: Error) => e.message)).toMatch(/closed before frame/);
    await stillServes();
  });

  it('closes a raw socket sending garbage and keeps running', async () => {
    const { b, port, stillServes } = await pair();
    const s = connect({ host: '127.0.0.1', port });
    s.on('error', () => {});
    s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await socketClosed(s);
    await waitFor(() => b.log.find(/malformed frame/, 'warn') !== undefined, 'garbage log');
    expect(b.t.stats().protocolErrors).toBeGreaterThanOrEqual(1);
    await stillServes();
  });

  it('closes an unauthenticated MSG frame without delivering it', async () => {
    const { b, port, stillServes } = await pair();
    const before = b.got.length;
    const p = await RawPeer.open(port);
    p.write(encodeFrame(FrameType.MSG, encodeBatch([JSON.stringify(msg('a', 'b', { type: 'MsgApp', term: 50 }))])));
    await p.closed;
    await waitFor(() => b.log.find(/unauthenticated MSG frame before HELLO/, 'warn') !== undefined, 'log');
    expect(b.t.stats().authFailures).toBeGreaterThanOrEqual(1);
    expect(b.got.length).toBe(before);
    await stillServes();
  });

  it('closes oversized, truncated and silent pre-auth connections', async () => {
    const { b, port, stillServes } = await pair();
    // Oversized: 1 GiB length header before authentication.
    const big = await RawPeer.open(port);
    big.write(Buffer.from([0x40, 0, 0, 0, FrameType.HELLO]));
    await big.closed;
    await waitFor(() => b.log.find(/oversized frame/) !== undefined, 'oversize log');
    // Truncated: half a frame, then the client hangs up.
    const half = await RawPeer.open(port);
    half.write(encodeFrame(FrameType.HELLO, Buffer.from('{"v":1,"id":"a"}')).subarray(0, 9));
    await new Promise((r) => setTimeout(r, 20));
    half.socket.end();
    await waitFor(() => b.log.find(/truncated frame/) !== undefined, 'truncation log');
    // Silent: never says HELLO.
    const silent = await RawPeer.open(port);
    await silent.closed;
    expect(b.log.find(/handshake not completed within/)).toBeDefined();
    await stillServes();
  });

  it('after the handshake, a tampered, replayed or spoofed frame closes the connection undelivered', async () => {
    const { b, port, stillServes } = await pair();
    const good = (ctx: string) => encodeBatch([JSON.stringify(msg('c', 'b', { context: ctx }))]);

    // A valid frame is delivered; a bit flipped in the next one closes the connection.
    const p1 = await RawPeer.authenticated(port, 'c');
    p1.write(p1.tagged(FrameType.MSG, good('ok-1')));
    await waitFor(() => b.got.some((m) => m.context === 'ok-1'), 'valid frame');
    const bad = p1.tagged(FrameType.MSG, good('tampered'));
    bad[bad.length - 40]! ^= 0x01;
    p1.write(bad);
    await p1.closed;
    expect(b.log.find(/failed authentication \(tampered/, 'warn')).toBeDefined();

    // Replay: the same bytes twice.
    const p2 = await RawPeer.authenticated(port, 'c');
    const frame = p2.tagged(FrameType.MSG, good('once'));
    p2.write(frame);
    p2.write(frame);
    await p2.closed;
    expect(b.got.filter((m) => m.context === 'once')).toHaveLength(1);

    // Spoofing: authenticated as c, claiming to speak for someone else.
    const p3 = await RawPeer.authenticated(port, 'c');
    p3.write(p3.tagged(FrameType.MSG, encodeBatch([JSON.stringify(msg('a', 'b', { context: 'spoof' }))])));
    await p3.closed;
    expect(b.log.find(/message from=a on c's connection/)).toBeDefined();

    // Authenticated but malformed JSON / wrong frame type.
    const p4 = await RawPeer.authenticated(port, 'c');
    p4.write(p4.tagged(FrameType.MSG, Buffer.from('[{"type":"MsgVote"}]')));
    await p4.closed;
    const p5 = await RawPeer.authenticated(port, 'c');
    p5.write(p5.tagged(FrameType.CLIENT_RESP, Buffer.from('{}')));
    await p5.closed;
    expect(b.log.find(/member connection sent CLIENT_RESP/)).toBeDefined();

    expect(b.got.some((m) => ['tampered', 'spoof'].includes(m.context))).toBe(false);
    await stillServes();
  });

  it('an authenticated client cannot inject Raft messages', async () => {
    const { b, port, stillServes } = await pair();
    const c = await RawPeer.authenticated(port, 'client:mallory');
    c.write(c.tagged(FrameType.MSG, encodeBatch([JSON.stringify(msg('a', 'b', { type: 'MsgVote', term: 77 }))])));
    await c.closed;
    expect(b.log.find(/refused MSG frame from client:mallory: a client credential may only send requests/, 'warn')).toBeDefined();
    expect(b.got.some((m) => m.term === 77)).toBe(false);
    await stillServes();
  });

  it('the client key cannot prove a member id, nor a member request channel', async () => {
    const { b, port, stillServes } = await pair();
    const key = clientKey(SECRET);
    // Holding only the client key, claim member c (a known peer) and then c's request channel.
    for (const id of ['c', 'member:c']) {
      const err = await RawPeer.authenticated(port, id, SECRET, key).catch((e: Error) => e);
      expect(err).toBeInstanceOf(Error);
      expect(b.log.find(new RegExp(`${id} failed to prove`), 'warn')).toBeDefined();
    }
    // The same key proves a client identity: the key is right, only the claimed role is refused.
    const ok = await RawPeer.authenticated(port, 'client:x', SECRET, key);
    ok.socket.destroy();
    expect(b.got).toHaveLength(0);
    await stillServes();
  });

  it('a TcpClient holding only the client key is served; the key file never yields a member key', async () => {
    const { b } = await pair();
    b.t.onClientRequest(async (req, from, credential) => ({ req, from, credential }));
    const c = new TcpClient({ host: '127.0.0.1', port: b.t.address!.port, clientKey: clientKey(SECRET), name: 'k', limits: FAST, log: captureLog() });
    try {
      expect(await c.request({ hi: 1 })).toEqual({ req: { hi: 1 }, from: 'client:k', credential: 'client' });
    } finally {
      c.close();
    }
    const m = new TcpClient({ host: '127.0.0.1', port: b.t.address!.port, secret: SECRET, name: 'c', asMember: 'c', limits: FAST, log: captureLog() });
    try {
      expect(await m.request({ hi: 2 })).toEqual({ req: { hi: 2 }, from: 'member:c', credential: 'member' });
    } finally {
      m.close();
    }
    expect(clientKey(SECRET).equals(memberKey(SECRET, 'c'))).toBe(false);
  });
});
