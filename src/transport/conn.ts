// One authenticated connection (either end): framing, the handshake state machine, frame
// tags and liveness. Owners (PeerLink, TcpTransport, TcpClient) see only authenticated
// payloads; everything malformed or unauthenticated ends here with a logged reason.

import type { Socket } from 'node:net';
import {
  acceptorProof,
  CLIENT_PREFIX,
  connectionKey,
  Direction,
  equalMac,
  FrameAuth,
  initiatorProof,
  MEMBER_REQUEST_PREFIX,
  newNonce,
  NONCE_BYTES,
  PROTOCOL_VERSION,
  sessionKey,
  TAG_BYTES,
  type HandshakeParams,
} from './auth.js';
import { FrameDecoder, frameHeader, frameTypeName, FrameType, HEADER_BYTES, PRE_AUTH_MAX_FRAME_BYTES, type Frame } from './frame.js';
import { certMismatch, isTlsRefusal, peerCertName, TLS_HANDSHAKE_RECORD } from './tls.js';

/** Structural subset of pino's Logger, so tests can capture what is logged. */
export interface TransportLog {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/**
 * Why a connection ended: `auth` and `refused` count as authentication failures.
 * `closed-after-tls`: a TLS initiator's connection closed between the TLS handshake and the
 * acceptor's CHALLENGE, which is how a member refuses its certificate (TLS 1.3 checks the
 * client's certificate last) but also what a member stopping at that instant looks like.
 */
export type CloseKind = 'local' | 'io' | 'timeout' | 'auth' | 'refused' | 'protocol' | 'closed-after-tls';

export interface SecureConnOptions {
  socket: Socket;
  role: 'initiator' | 'acceptor';
  selfId: string;
  /** The cluster secret (members): each connection's key is derived from it per identity. */
  secret?: Buffer;
  /** Initiator holding only the client key (CLI, MCP proxy); its selfId must be client:<name>. */
  clientKey?: Buffer;
  /** host:port for logs (an initiator's socket has no remote address before it connects). */
  remote?: string;
  /** Initiator: the identity the acceptor must prove (undefined: any member or server). */
  expectPeer?: string;
  /** Acceptor: a reason to refuse the claimed identity, or null to continue. */
  admit?: (claimedId: string) => string | null;
  /**
   * The swarm this member serves (members only; clients send none). Sent in HELLO and
   * CHALLENGE; a peer naming another swarm is refused, so two swarms sharing a secret and
   * member ids never exchange messages when an address is mixed up (etcd's cluster token).
   */
  swarm?: string;
  handshakeTimeoutMs: number;
  maxFrameBytes: number;
  /** Initiator sends PING this often; both ends check liveness at this period. */
  pingIntervalMs: number;
  /** Close when nothing at all was received for this long (half-open connections). */
  deadAfterMs: number;
  log: TransportLog;
  onReady?(c: SecureConn): void;
  /** Authenticated payload. Throwing closes the connection as a protocol error. */
  onFrame?(c: SecureConn, type: FrameType, payload: Buffer): void;
  onClose?(c: SecureConn, reason: string, kind: CloseKind): void;
  onDrain?(c: SecureConn): void;
}

const HANDSHAKE = new Set<number>([FrameType.HELLO, FrameType.CHALLENGE, FrameType.PROOF, FrameType.ACCEPT, FrameType.REFUSE]);
const HEX_NONCE = new RegExp(`^[0-9a-f]{${NONCE_BYTES * 2}}$`);
const HEX_MAC = new RegExp(`^[0-9a-f]{${TAG_BYTES * 2}}$`);
const MAX_ID_CHARS = 256;
const REFUSED_AFTER_TLS = 'connection closed right after the TLS handshake (the member refused this certificate: wrong --cert or --ca? or it is stopping)';

class HandshakeError extends Error {
  constructor(
    message: string,
    readonly kind: CloseKind,
    /** Sent to the other end in a REFUSE frame before closing. */
    readonly tell?: string,
  ) {
    super(message);
  }
}

function handshakeBody(f: Frame): Record<string, unknown> {
  let x: unknown;
  try {
    x = JSON.parse(f.body.toString('utf8'));
  } catch {
    throw new HandshakeError(`${frameTypeName(f.type)} body is not JSON`, 'protocol');
  }
  if (typeof x !== 'object' || x === null || Array.isArray(x)) throw new HandshakeError(`${frameTypeName(f.type)} body is not an object`, 'protocol');
  return x as Record<string, unknown>;
}

export class SecureConn {
  /** Claimed identity during the handshake; proven once `ready`. */
  peerId: string | null = null;
  ready = false;
  closed = false;
  bytesIn = 0;
  bytesOut = 0;
  readonly remote: string;
  private readonly decoder = new FrameDecoder(PRE_AUTH_MAX_FRAME_BYTES);
  private readonly nonce = newNonce();
  private peerNonce: Buffer | null = null;
  private auth: FrameAuth | null = null;
  private lastRecv = Date.now();
  private handshakeTimer: NodeJS.Timeout | null;
  private liveness: NodeJS.Timeout | null = null;
  private refused = false;
  /** This connection's credential key (see connectionKey); the acceptor learns it from HELLO. */
  private key: Buffer | null = null;
  /** Over TLS (see tls.ts): the peer's certificate must name the identity it proves. */
  private readonly tls: boolean;
  /** TLS initiator: the TLS handshake finished (errors after it are the peer's refusal or a drop). */
  private tlsUp = false;

  constructor(private readonly o: SecureConnOptions) {
    if (o.role === 'initiator') {
      if (o.clientKey && !o.selfId.startsWith(CLIENT_PREFIX)) throw new Error(`a client key proves only ${CLIENT_PREFIX}<name> identities, not ${o.selfId}`);
      if (!o.clientKey && !o.secret) throw new Error('SecureConn: a secret or a client key is required');
      this.key = o.clientKey ?? connectionKey(o.secret!, o.selfId);
    } else if (!o.secret) throw new Error('SecureConn: an acceptor needs the cluster secret');
    const s = o.socket;
    this.tls = (s as { encrypted?: boolean }).encrypted === true;
    this.remote = o.remote ?? `${s.remoteAddress ?? '?'}:${s.remotePort ?? '?'}`;
    s.setNoDelay(true);
    s.on('data', (d: Buffer) => this.onData(d));
    s.on('error', (e) => {
      // A certificate or TLS protocol failure is an authentication failure (the caller does
      // not retry it); a connection reset or refused is not.
      if (this.tls && !this.ready && isTlsRefusal(e)) this.fail(`TLS handshake failed: ${e.message.split('\n')[0]}`, 'auth');
      else if (this.closedAfterTls()) this.fail(`${REFUSED_AFTER_TLS} (${e.message})`, 'closed-after-tls');
      else this.fail(`socket error: ${e.message}`, 'io');
    });
    s.on('close', () => {
      // After authentication a link that drops inside a frame is a network failure (a large
      // frame is being written most of the time during a snapshot transfer): like any drop, it
      // keeps a partial snapshot for the sender to resume. Before it, it counts as a protocol error.
      if (this.decoder.buffered > 0) this.fail(`connection closed mid-frame (${this.decoder.buffered} bytes of a truncated frame)`, this.ready ? 'io' : 'protocol');
      else if (this.ready) this.fail('connection closed by peer', 'io');
      else if (this.closedAfterTls()) this.fail(REFUSED_AFTER_TLS, 'closed-after-tls');
      else this.fail('connection closed during handshake', 'io');
    });
    s.on('drain', () => this.o.onDrain?.(this));
    this.handshakeTimer = setTimeout(() => this.fail(`handshake not completed within ${o.handshakeTimeoutMs} ms`, 'timeout'), o.handshakeTimeoutMs);
    this.handshakeTimer.unref();
    if (o.role === 'initiator') {
      if (this.tls) {
        s.once('secureConnect', () => {
          this.tlsUp = true;
          this.sendHello();
        });
      } else if (s.connecting) s.once('connect', () => this.sendHello());
      else this.sendHello();
    }
  }

  /**
   * TLS 1.3: the server verifies the client's certificate after the client's side of the
   * handshake is done, and node:tls then just closes (or resets) a connection it refuses.
   */
  private closedAfterTls(): boolean {
    return this.tlsUp && this.peerNonce === null;
  }

  /** Authenticated with the client key: may send requests, never Raft messages. */
  get isClient(): boolean {
    return this.peerId?.startsWith(CLIENT_PREFIX) ?? false;
  }

  /** A member's request channel ("member:<id>", proven with that member's key). */
  get isMemberRequest(): boolean {
    return this.peerId?.startsWith(MEMBER_REQUEST_PREFIX) ?? false;
  }

  /** Bytes accepted by the socket but not yet handed to the kernel: backpressure signal. */
  get writableLength(): number {
    return this.o.socket.writableLength;
  }

  get socket(): Socket {
    return this.o.socket;
  }

  /** Send an authenticated frame; returns bytes put on the wire (0 if not ready). */
  send(type: FrameType, parts: readonly Buffer[] = []): number {
    if (!this.ready || this.closed) return 0;
    let len = TAG_BYTES;
    for (const p of parts) len += p.length;
    const tag = this.auth!.sign(type, parts);
    const s = this.o.socket;
    s.cork();
    s.write(frameHeader(type, len));
    for (const p of parts) if (p.length > 0) s.write(p);
    s.write(tag);
    s.uncork();
    this.bytesOut += HEADER_BYTES + len;
    return HEADER_BYTES + len;
  }

  cork(): void {
    this.o.socket.cork();
  }
  uncork(): void {
    this.o.socket.uncork();
  }

  close(reason = 'closed locally'): void {
    this.fail(reason, 'local');
  }

  private sendPlain(type: FrameType, body: object): void {
    const b = Buffer.from(JSON.stringify(body), 'utf8');
    this.o.socket.write(Buffer.concat([frameHeader(type, b.length), b]));
  }

  private sendHello(): void {
    if (this.closed) return;
    this.sendPlain(FrameType.HELLO, { v: PROTOCOL_VERSION, id: this.o.selfId, nonce: this.nonce.toString('hex'), ...this.swarmField() });
  }

  private onData(d: Buffer): void {
    if (this.closed) return;
    if (this.bytesIn === 0 && !this.tls && this.o.role === 'acceptor' && d[0] === TLS_HANDSHAKE_RECORD) {
      // A TLS client dialled a member without TLS: answer with a TLS alert (protocol_version)
      // so it fails at once with a TLS error rather than a reset it would retry.
      this.o.socket.write(Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46]));
      this.refused = true;
      this.fail('a TLS connection to a member without TLS (give the members --cert, --key and --ca, or the client none)', 'refused');
      return;
    }
    this.bytesIn += d.length;
    this.lastRecv = Date.now();
    let frames: Frame[];
    try {
      frames = this.decoder.push(d);
    } catch (e) {
      this.fail(`malformed frame: ${(e as Error).message}`, 'protocol');
      return;
    }
    for (const f of frames) {
      if (this.closed) return;
      try {
        if (this.ready) this.onAuthenticated(f);
        else this.onHandshake(f);
      } catch (e) {
        const he = e instanceof HandshakeError ? e : null;
        if (he?.tell) this.refuse(he.tell);
        this.fail((e as Error).message, he?.kind ?? 'protocol');
      }
    }
  }

  private onAuthenticated(f: Frame): void {
    if (HANDSHAKE.has(f.type)) throw new Error(`${frameTypeName(f.type)} frame after authentication`);
    const payload = this.auth!.open(f.type, f.body);
    if (!payload) throw new HandshakeError(`${frameTypeName(f.type)} frame failed authentication (tampered, replayed, reordered or forged)`, 'auth');
    if (f.type === FrameType.PING) {
      if (this.o.role === 'acceptor') this.send(FrameType.PONG);
      return;
    }
    if (f.type === FrameType.PONG) return;
    if (!this.o.onFrame) throw new Error(`unexpected ${frameTypeName(f.type)} frame`);
    this.o.onFrame(this, f.type, payload);
  }

  private swarmField(): { swarm?: string } {
    return this.o.swarm === undefined ? {} : { swarm: this.o.swarm };
  }

  /** Why a peer naming `swarm` in its handshake is not one of ours (null: it is, or named none). */
  private otherSwarm(id: string, swarm: unknown): string | null {
    if (this.o.swarm === undefined || swarm === undefined) return null;
    if (swarm === this.o.swarm) return null;
    return `${id} serves swarm ${JSON.stringify(String(swarm).slice(0, 100))}, this member ${JSON.stringify(this.o.swarm)} (an address of another swarm in --peers? swarms sharing a secret must not share addresses)`;
  }

  private params(initiatorId: string, acceptorId: string, initiatorNonce: Buffer, acceptorNonce: Buffer): HandshakeParams {
    return { initiatorId, acceptorId, initiatorNonce, acceptorNonce };
  }

  private onHandshake(f: Frame): void {
    const name = frameTypeName(f.type);
    if (f.type === FrameType.REFUSE && this.o.role === 'initiator') {
      throw new HandshakeError(`refused by ${this.remote}: ${f.body.toString('utf8').slice(0, 200)}`, 'refused');
    }
    if (this.o.role === 'acceptor') {
      if (this.peerNonce === null) {
        if (f.type !== FrameType.HELLO) throw new HandshakeError(`unauthenticated ${name} frame before HELLO`, 'auth', 'not authenticated');
        const b = handshakeBody(f);
        if (b.v !== PROTOCOL_VERSION) {
          throw new HandshakeError(`unsupported protocol version ${JSON.stringify(b.v)}`, 'refused', `protocol version ${PROTOCOL_VERSION} required`);
        }
        if (typeof b.id !== 'string' || b.id.length === 0 || b.id.length > MAX_ID_CHARS) throw new HandshakeError('HELLO without a valid id', 'protocol');
        if (typeof b.nonce !== 'string' || !HEX_NONCE.test(b.nonce)) throw new HandshakeError('HELLO without a valid nonce', 'protocol');
        this.peerId = b.id;
        const why = this.otherSwarm(b.id, b.swarm) ?? this.o.admit?.(b.id) ?? (this.tls ? certMismatch(b.id, peerCertName(this.o.socket) ?? null) : null);
        if (why) throw new HandshakeError(`refused ${b.id}: ${why}`, 'refused', why);
        // The claimed identity picks the key it must prove: a client key never proves a member id.
        this.key = connectionKey(this.o.secret!, b.id);
        this.peerNonce = Buffer.from(b.nonce, 'hex');
        this.sendPlain(FrameType.CHALLENGE, { v: PROTOCOL_VERSION, id: this.o.selfId, nonce: this.nonce.toString('hex'), ...this.swarmField() });
        return;
      }
      if (f.type !== FrameType.PROOF) throw new HandshakeError(`unauthenticated ${name} frame before PROOF`, 'auth', 'not authenticated');
      const b = handshakeBody(f);
      const p = this.params(this.peerId!, this.o.selfId, this.peerNonce, this.nonce);
      const ok = typeof b.proof === 'string' && HEX_MAC.test(b.proof) && equalMac(Buffer.from(b.proof, 'hex'), initiatorProof(this.key!, p));
      if (!ok) throw new HandshakeError(`${this.peerId} failed to prove the cluster secret (wrong secret, or a client key claiming a member id?)`, 'auth', 'authentication failed');
      this.sendPlain(FrameType.ACCEPT, { proof: acceptorProof(this.key!, p).toString('hex') });
      this.becomeReady(new FrameAuth(sessionKey(this.key!, p), Direction.AcceptorToInitiator));
      return;
    }
    // Initiator: CHALLENGE, then ACCEPT.
    if (this.peerNonce === null) {
      if (f.type !== FrameType.CHALLENGE) throw new HandshakeError(`unexpected ${name} frame before CHALLENGE`, 'auth');
      const b = handshakeBody(f);
      if (b.v !== PROTOCOL_VERSION) throw new HandshakeError(`peer speaks protocol version ${JSON.stringify(b.v)}`, 'refused');
      if (typeof b.id !== 'string' || b.id.length === 0 || b.id.length > MAX_ID_CHARS) throw new HandshakeError('CHALLENGE without a valid id', 'protocol');
      if (typeof b.nonce !== 'string' || !HEX_NONCE.test(b.nonce)) throw new HandshakeError('CHALLENGE without a valid nonce', 'protocol');
      if (this.o.expectPeer !== undefined && b.id !== this.o.expectPeer) {
        throw new HandshakeError(`dialed ${this.o.expectPeer} at ${this.remote} but ${b.id} answered (address misconfigured?)`, 'auth');
      }
      const other = this.otherSwarm(b.id, b.swarm);
      if (other) throw new HandshakeError(`dialed ${b.id} at ${this.remote}: ${other}`, 'refused');
      if (this.tls) {
        const cn = peerCertName(this.o.socket) ?? null;
        if (cn !== b.id) throw new HandshakeError(`${b.id} at ${this.remote} presented a certificate naming ${cn ?? '(none)'}`, 'auth');
      }
      this.peerId = b.id;
      this.peerNonce = Buffer.from(b.nonce, 'hex');
      const p = this.params(this.o.selfId, b.id, this.nonce, this.peerNonce);
      this.sendPlain(FrameType.PROOF, { proof: initiatorProof(this.key!, p).toString('hex') });
      return;
    }
    if (f.type !== FrameType.ACCEPT) throw new HandshakeError(`unexpected ${name} frame before ACCEPT`, 'auth');
    const b = handshakeBody(f);
    const p = this.params(this.o.selfId, this.peerId!, this.nonce, this.peerNonce);
    const ok = typeof b.proof === 'string' && HEX_MAC.test(b.proof) && equalMac(Buffer.from(b.proof, 'hex'), acceptorProof(this.key!, p));
    if (!ok) throw new HandshakeError(`${this.peerId} at ${this.remote} failed to prove the cluster secret (wrong secret?)`, 'auth');
    this.becomeReady(new FrameAuth(sessionKey(this.key!, p), Direction.InitiatorToAcceptor));
  }

  private becomeReady(auth: FrameAuth): void {
    this.auth = auth;
    this.ready = true;
    this.decoder.maxFrameBytes = this.o.maxFrameBytes;
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
    this.lastRecv = Date.now();
    this.liveness = setInterval(() => {
      const silent = Date.now() - this.lastRecv;
      if (silent > this.o.deadAfterMs) this.fail(`nothing received for ${silent} ms`, 'timeout');
      else if (this.o.role === 'initiator') this.send(FrameType.PING);
    }, this.o.pingIntervalMs);
    this.liveness.unref();
    this.o.onReady?.(this);
  }

  private refuse(reason: string): void {
    this.refused = true;
    const b = Buffer.from(reason.slice(0, 200), 'utf8');
    this.o.socket.write(Buffer.concat([frameHeader(FrameType.REFUSE, b.length), b]));
  }

  private fail(reason: string, kind: CloseKind): void {
    if (this.closed) return;
    this.closed = true;
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    if (this.liveness) clearInterval(this.liveness);
    const s = this.o.socket;
    if (this.refused) {
      // end() lets the queued REFUSE reach the peer; destroy soon after regardless.
      s.end();
      setTimeout(() => s.destroy(), 200).unref();
    } else {
      s.destroy();
    }
    const ctx = { remote: this.remote, peer: this.peerId, role: this.o.role, kind, reason, authenticated: this.ready };
    if (kind === 'auth' || kind === 'refused' || kind === 'protocol') this.o.log.warn(ctx, `connection closed: ${reason}`);
    else if (kind === 'timeout') this.o.log.info(ctx, `connection closed: ${reason}`);
    else this.o.log.debug(ctx, `connection closed: ${reason}`);
    this.o.onClose?.(this, reason, kind);
  }
}
