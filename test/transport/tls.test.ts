// Mutual TLS on the member port (src/transport/tls.ts): members and clients with certificates
// from the cluster's CA talk; a certificate from another CA, an expired one, a certificate
// naming someone else, a plaintext peer and a stalled handshake are all refused, counted and
// logged (rate-limited), and the frame limits still hold inside TLS.

import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ConnectionError, TcpClient } from '../../src/transport/tcp-client.js';
import { TcpTransport } from '../../src/transport/tcp-transport.js';
import { loadTls, TlsConfigError, type TlsMaterial } from '../../src/transport/tls.js';
import { frameHeader, FrameType } from '../../src/transport/frame.js';
import { clientKey } from '../../src/transport/auth.js';
import { captureLog, FAST, msg, SECRET, sleep, waitFor } from './helpers.js';
import { TestPki } from './tls-certs.js';

let pki: TestPki;
const tls: Record<string, TlsMaterial> = {};
beforeAll(() => {
  pki = new TestPki();
  for (const id of ['n1', 'n2', 'n3', 'client:cli']) tls[id] = pki.material(id);
});
afterAll(() => pki.remove());

const cleanup: Array<() => void> = [];
afterEach(() => {
  for (const f of cleanup.splice(0)) f();
});

interface Node {
  t: TcpTransport;
  got: ReturnType<typeof msg>[];
  log: ReturnType<typeof captureLog>;
  port: number;
}

async function node(id: string, material: TlsMaterial | undefined, limits = FAST): Promise<Node> {
  const log = captureLog();
  const t = new TcpTransport({ id, secret: SECRET, tls: material, limits, log });
  cleanup.push(() => t.close());
  const got: Node['got'] = [];
  t.onMessage((m) => got.push(m));
  t.onClientRequest(async (req, from, credential) => ({ req, from, credential }));
  const { port } = await t.listen();
  return { t, got, log, port };
}

/** Members `ids` meshed, each with the material `pick` gives it. */
async function mesh(ids: string[], pick: (id: string) => TlsMaterial | undefined = (id) => tls[id]): Promise<Map<string, Node>> {
  const out = new Map<string, Node>();
  for (const id of ids) out.set(id, await node(id, pick(id)));
  for (const [a, na] of out) for (const [b, nb] of out) if (a !== b) na.t.setPeer(b, { host: '127.0.0.1', port: nb.port });
  return out;
}

function client(port: number, material: TlsMaterial | undefined, o: { name?: string; timeoutMs?: number } = {}): TcpClient {
  // failFast: one dial per request, so a failure reports that dial's reason.
  const c = new TcpClient({ host: '127.0.0.1', port, clientKey: clientKey(SECRET), name: o.name ?? 'cli', tls: material, failFast: true, limits: FAST, log: captureLog() });
  cleanup.push(() => c.close());
  return c;
}

const failure = (p: Promise<unknown>): Promise<Error> => p.then(() => new Error('expected a failure, got an answer'), (e: Error) => e);

describe('mutual TLS between members and clients', () => {
  it('members with certificates from the CA exchange Raft messages, and a client certificate calls the member port', async () => {
    const m = await mesh(['n1', 'n2', 'n3']);
    for (const [a, na] of m) for (const b of m.keys()) if (a !== b) na.t.send(msg(a, b));
    await waitFor(() => [...m.values()].every((n) => n.got.length === 2), 'every member hearing from both others');
    const c = client(m.get('n1')!.port, tls['client:cli']);
    expect(await c.request({ hi: 1 }, 3000)).toEqual({ req: { hi: 1 }, from: 'client:cli', credential: 'client' });
    for (const n of m.values()) expect(n.t.stats().authFailures).toBe(0);
    // A member's request channel (forwarded proposals, fault injection) presents its own certificate.
    const asMember = (material: TlsMaterial) => {
      const r = new TcpClient({ host: '127.0.0.1', port: m.get('n1')!.port, secret: SECRET, name: 'n2', asMember: 'n2', expectServer: 'n1', tls: material, failFast: true, limits: FAST, log: captureLog() });
      cleanup.push(() => r.close());
      return r;
    };
    expect(await asMember(tls.n2!).request({ fwd: 1 }, 3000)).toEqual({ req: { fwd: 1 }, from: 'member:n2', credential: 'member' });
    const e = await failure(asMember(tls.n3!).request({ fwd: 2 }, 1500));
    expect(e.message).toMatch(/member n2 must present a certificate with CN=n2, not CN=n3/);
  });

  it('a member whose certificate comes from another CA is refused by the members, in both directions', async () => {
    const rogue = pki.raw(pki.leaf('n2', { issuer: 'wrong-ca' }), 'n2');
    const m = await mesh(['n1', 'n2', 'n3'], (id) => (id === 'n2' ? rogue : tls[id]));
    const n1 = m.get('n1')!;
    const n2 = m.get('n2')!;
    const n3 = m.get('n3')!;
    // n2 holds the cluster secret: only its certificate is wrong.
    const until = Date.now() + 1500;
    while (Date.now() < until) {
      n2.t.send(msg('n2', 'n1'));
      n2.t.send(msg('n2', 'n3'));
      n1.t.send(msg('n1', 'n2'));
      n1.t.send(msg('n1', 'n3'));
      await sleep(50);
    }
    expect(n1.got.filter((x) => x.from === 'n2')).toHaveLength(0);
    expect(n3.got.filter((x) => x.from === 'n2')).toHaveLength(0);
    expect(n2.got).toHaveLength(0);
    expect(n3.got.filter((x) => x.from === 'n1').length).toBeGreaterThan(0);
    // Refused as an acceptor (n2's client certificate) and as an initiator (n2's server certificate).
    expect(n1.t.stats().authFailures).toBeGreaterThan(0);
    expect(n1.log.find(/TLS handshake failed: peer certificate refused/, 'warn')).toBeDefined();
    expect(n1.t.stats().peers.n2!.authFailures).toBeGreaterThan(0);
    expect(n1.t.stats().peers.n2!.connected).toBe(false);
    // Rate-limited: many refused handshakes, a few lines.
    expect(n1.log.lines.filter((l) => /TLS handshake failed/.test(l.msg)).length).toBeLessThanOrEqual(4);
  });

  it('a client certificate from another CA, or an expired one, is refused; so is a member that presents either', async () => {
    const n1 = await node('n1', tls.n1);
    const wrongCa = pki.raw(pki.leaf('client:cli', { issuer: 'wrong-ca' }), 'client:cli');
    const e1 = await failure(client(n1.port, wrongCa).request({ hi: 1 }, 1500));
    expect(e1).toBeInstanceOf(ConnectionError);
    expect(e1.message).toMatch(/refused this certificate/);
    await waitFor(() => n1.t.stats().authFailures >= 1, 'the refusal counted');
    expect(n1.t.stats().clientRequests).toBe(0);
    const expired = pki.raw(pki.leaf('client:cli', { days: -1 }), 'client:cli');
    const e2 = await failure(client(n1.port, expired).request({ hi: 1 }, 1500));
    expect(e2.message).toMatch(/refused this certificate/);
    await waitFor(() => n1.log.lines.some((l) => /peer certificate refused \(CERT_HAS_EXPIRED\)/.test(l.msg)), 'the expired certificate logged');
    expect(n1.t.stats().clientRequests).toBe(0);
    // The client side checks the member's certificate the same way.
    const bad = await node('n1', pki.raw(pki.leaf('n1', { issuer: 'wrong-ca' }), 'n1'));
    const e3 = await failure(client(bad.port, tls['client:cli']).request({ hi: 1 }, 1500));
    expect(e3).toBeInstanceOf(ConnectionError);
    expect((e3 as ConnectionError).authFailure).toBe(true);
    expect(e3.message).toMatch(/TLS handshake failed: .*(unable to verify|self.signed|certificate)/i);
    const old = await node('n1', pki.raw(pki.leaf('n1', { days: -1 }), 'n1'));
    const e4 = await failure(client(old.port, tls['client:cli']).request({ hi: 1 }, 1500));
    expect(e4.message).toMatch(/TLS handshake failed: certificate has expired/);
    expect(bad.t.stats().clientRequests + old.t.stats().clientRequests).toBe(0);
  });

  it('a certificate not valid yet is refused, on either end', async () => {
    const n1 = await node('n1', tls.n1);
    const early = pki.raw(pki.leaf('client:cli', { notYetValid: true }), 'client:cli');
    const e1 = await failure(client(n1.port, early).request({ hi: 1 }, 1500));
    expect(e1.message).toMatch(/refused this certificate/);
    await waitFor(() => n1.log.lines.some((l) => /peer certificate refused \(CERT_NOT_YET_VALID\)/.test(l.msg)), 'the refusal logged');
    expect(n1.t.stats().clientRequests).toBe(0);
    const future = await node('n1', pki.raw(pki.leaf('n1', { notYetValid: true }), 'n1'));
    const e2 = await failure(client(future.port, tls['client:cli']).request({ hi: 1 }, 1500));
    expect((e2 as ConnectionError).authFailure).toBe(true);
    expect(e2.message).toMatch(/TLS handshake failed: certificate is not yet valid/);
    expect(future.t.stats().clientRequests).toBe(0);
  });

  it('a certificate must name the identity proven: a client certificate cannot speak Raft, a member cannot pose as another', async () => {
    // "n2" holds the cluster secret but a client's certificate (from the right CA).
    const m = await mesh(['n1', 'n2'], (id) => (id === 'n2' ? tls['client:cli'] : tls[id]));
    const n1 = m.get('n1')!;
    const n2 = m.get('n2')!;
    const until = Date.now() + 1000;
    while (Date.now() < until) {
      n2.t.send(msg('n2', 'n1'));
      await sleep(50);
    }
    expect(n1.got).toHaveLength(0);
    expect(n1.log.find(/member n2 must present a certificate with CN=n2, not CN=client:cli/)).toBeDefined();
    // n3's genuine certificate does not make it n2.
    const m2 = await mesh(['n1', 'n2'], (id) => (id === 'n2' ? tls.n3 : tls[id]));
    const a = m2.get('n1')!;
    const until2 = Date.now() + 1000;
    while (Date.now() < until2) {
      m2.get('n2')!.t.send(msg('n2', 'n1'));
      await sleep(50);
    }
    expect(a.got).toHaveLength(0);
    expect(a.log.find(/member n2 must present a certificate with CN=n2, not CN=n3/)).toBeDefined();
    // A client presenting a member's certificate is refused as well (so clients can tell members from clients).
    const e = await failure(client(n1.port, tls.n3).request({ hi: 1 }, 1500));
    expect((e as ConnectionError).authFailure).toBe(true);
    expect(e.message).toMatch(/a client must present a client certificate/);
  });

  it('a client refuses a "member" whose certificate is a client certificate (no impersonating members to clients)', async () => {
    const evil = await node('n1', tls['client:cli']);
    const e = await failure(client(evil.port, tls['client:cli']).request({ hi: 1 }, 1500));
    expect((e as ConnectionError).authFailure).toBe(true);
    expect(e.message).toMatch(/presented CN=client:cli, not a member's certificate/);
    expect(evil.t.stats().clientRequests).toBe(0);
  });

  it('a plaintext client is refused by a TLS member with one log line, and says why', async () => {
    const n1 = await node('n1', tls.n1, { ...FAST, logWindowMs: 60_000 });
    for (let i = 0; i < 5; i++) {
      const e = await failure(client(n1.port, undefined).request({ hi: 1 }, 1500));
      expect(e).toBeInstanceOf(ConnectionError);
      expect((e as ConnectionError).authFailure).toBe(true);
      expect(e.message).toMatch(/this member requires TLS/);
    }
    expect(n1.t.stats().authFailures).toBe(5);
    expect(n1.t.stats().clientRequests).toBe(0);
    expect(n1.log.lines.filter((l) => /plaintext connection/.test(l.msg))).toHaveLength(1);
    // A plaintext member refuses a TLS client the same way, and the client stops at once.
    const plain = await node('n2', undefined);
    const e = await failure(client(plain.port, tls['client:cli']).request({ hi: 1 }, 1500));
    expect((e as ConnectionError).authFailure).toBe(true);
    expect(plain.log.find(/a TLS connection to a member without TLS/)).toBeDefined();
  });

  it('a stalled TLS handshake is cut off at the handshake timeout and frees its slot', async () => {
    const limits = { ...FAST, handshakeTimeoutMs: 300, maxPendingHandshakesPerSource: 2, logWindowMs: 60_000 };
    const n1 = await node('n1', tls.n1, limits);
    const open: Socket[] = [];
    cleanup.push(() => open.forEach((s) => s.destroy()));
    const closed = (s: Socket) => new Promise<void>((r) => s.once('close', () => r()));
    // One says nothing; one starts a TLS record and stops.
    const silent = netConnect({ host: '127.0.0.1', port: n1.port });
    const partial = netConnect({ host: '127.0.0.1', port: n1.port }, () => partial.write(Buffer.from([0x16, 0x03, 0x01, 0x02])));
    for (const s of [silent, partial]) {
      s.on('error', () => undefined);
      open.push(s);
    }
    const t0 = Date.now();
    await Promise.race([Promise.all([closed(silent), closed(partial)]), sleep(5000)]);
    expect(silent.destroyed && partial.destroyed).toBe(true);
    expect(Date.now() - t0).toBeLessThan(5000);
    // Both slots of this source are free again.
    expect(await client(n1.port, tls['client:cli']).request({ hi: 2 }, 3000)).toMatchObject({ from: 'client:cli' });
  });

  it('a TLS client offering no certificate is refused and counted', async () => {
    const n1 = await node('n1', tls.n1);
    const s: TLSSocket = tlsConnect({ host: '127.0.0.1', port: n1.port, ca: tls.n1!.ca, checkServerIdentity: () => undefined });
    cleanup.push(() => s.destroy());
    const err = await new Promise<Error | null>((r) => {
      s.once('error', (e) => r(e));
      s.once('close', () => r(null));
    });
    expect(String((err as { code?: string } | null)?.code)).toMatch(/CERTIFICATE_REQUIRED/);
    await waitFor(() => n1.t.stats().authFailures === 1, 'the refusal counted');
    expect(n1.log.find(/TLS handshake failed: .*peer did not return a certificate/)).toBeDefined();
  });

  it('the pre-authentication frame limit holds inside TLS', async () => {
    const n1 = await node('n1', tls.n1);
    const s: TLSSocket = tlsConnect({ host: '127.0.0.1', port: n1.port, cert: tls['client:cli']!.cert, key: tls['client:cli']!.key, ca: tls['client:cli']!.ca, checkServerIdentity: () => undefined });
    cleanup.push(() => s.destroy());
    s.on('error', () => undefined);
    await new Promise<void>((r) => s.once('secureConnect', () => r()));
    // A 1 MiB HELLO: refused from its header, before it is buffered.
    s.write(frameHeader(FrameType.HELLO, 1 << 20));
    await waitFor(() => n1.t.stats().protocolErrors === 1, 'the oversized frame closing the connection');
    await waitFor(() => s.destroyed || s.readableEnded, 'the connection closed');
  });
});

describe('loadTls', () => {
  it('takes all three files or none, and refuses a key readable by others, a foreign or expired certificate', async () => {
    expect(loadTls({})).toBeUndefined();
    const f = pki.leaf('n1');
    expect(() => loadTls({ cert: f.cert, ca: f.ca })).toThrow(/--key is missing/);
    expect(loadTls(f)!.name).toBe('n1');
    const fs = await import('node:fs');
    fs.chmodSync(f.key, 0o644);
    expect(() => loadTls(f)).toThrow(/group and others must have no access/);
    fs.chmodSync(f.key, 0o600);
    const foreign = pki.leaf('n1', { issuer: 'wrong-ca' });
    const e = (() => {
      try {
        loadTls(foreign);
      } catch (x) {
        return x as TlsConfigError;
      }
      return null;
    })();
    expect(e?.field).toBe('cert');
    expect(e?.message).toMatch(/was not issued by --ca/);
    expect(() => loadTls(pki.leaf('n1', { days: -1 }))).toThrow(/not now: peers would refuse it/);
    const other = pki.leaf('n2');
    expect(() => loadTls({ ...f, key: other.key })).toThrow(/does not go with --cert/);
  });
});
