// Shared fixtures for the TCP transport tests: log capture, polling, raw authenticated
// sockets (to send frames a well-behaved TcpTransport never would) and small clusters.

import { connect, type Socket } from 'node:net';
import { newMessage, type Message, type MessageType } from '../../src/raft/types.js';
import {
  acceptorProof,
  connectionKey,
  Direction,
  FrameAuth,
  initiatorProof,
  newNonce,
  PROTOCOL_VERSION,
  sessionKey,
  type HandshakeParams,
} from '../../src/transport/auth.js';
import type { TransportLog } from '../../src/transport/conn.js';
import { encodeFrame, FrameDecoder, frameHeader, FrameType, type Frame } from '../../src/transport/frame.js';
import type { TcpLimits } from '../../src/transport/limits.js';
import { TcpTransport } from '../../src/transport/tcp-transport.js';

export const SECRET = Buffer.from('concord-test-secret-0123456789');
export const WRONG = Buffer.from('not-the-cluster-secret-9876543');

/** Short timers so reconnects and failures happen in milliseconds. */
export const FAST: Partial<TcpLimits> = { pingIntervalMs: 100, deadAfterMs: 3000, backoffMinMs: 20, backoffMaxMs: 200, handshakeTimeoutMs: 1000 };

export interface LogLine {
  level: string;
  obj: object;
  msg: string;
}

export function captureLog(): TransportLog & { lines: LogLine[]; find(re: RegExp, level?: string): LogLine | undefined } {
  const lines: LogLine[] = [];
  const at = (level: string) => (obj: object, msg: string) => void lines.push({ level, obj, msg });
  return {
    lines,
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    find: (re, level) => lines.find((l) => re.test(l.msg) && (level === undefined || l.level === level)),
  };
}

export async function waitFor(pred: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function msg(from: string, to: string, o: Partial<Message> = {}): Message {
  return newMessage({ type: 'MsgHeartbeat' as MessageType, from, to, term: 1, ...o });
}

export interface Member {
  t: TcpTransport;
  got: Message[];
  log: ReturnType<typeof captureLog>;
}

/** n members on loopback, fully meshed, each recording what it receives. */
export async function mesh(ids: string[], limits: Partial<TcpLimits> = FAST, secret = SECRET): Promise<Map<string, Member>> {
  const out = new Map<string, Member>();
  for (const id of ids) {
    const log = captureLog();
    const t = new TcpTransport({ id, secret, limits, log });
    const got: Message[] = [];
    t.onMessage((m) => got.push(m));
    await t.listen();
    out.set(id, { t, got, log });
  }
  for (const a of out.values()) for (const [id, b] of out) if (b !== a) a.t.setPeer(id, b.t.address!);
  return out;
}

export function socketClosed(s: Socket): Promise<void> {
  return new Promise((r) => (s.destroyed ? r() : s.once('close', () => r())));
}

/** A hand-driven initiator: performs the real handshake, then lets a test write any bytes. */
export class RawPeer {
  readonly frames: Frame[] = [];
  auth!: FrameAuth;
  private decoder = new FrameDecoder();
  private constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      try {
        this.frames.push(...this.decoder.push(d));
      } catch {
        socket.destroy();
      }
    });
    socket.on('error', () => {});
  }

  static async open(port: number): Promise<RawPeer> {
    const s = connect({ host: '127.0.0.1', port });
    await new Promise<void>((r, j) => s.once('connect', r).once('error', j));
    return new RawPeer(s);
  }

  /** Full handshake as `id` proving `key` (by default the key the secret gives `id`); resolves once ACCEPT verified. */
  static async authenticated(port: number, id: string, secret: Buffer = SECRET, key: Buffer = connectionKey(secret, id)): Promise<RawPeer> {
    const p = await RawPeer.open(port);
    const nonce = newNonce();
    p.write(encodeFrame(FrameType.HELLO, Buffer.from(JSON.stringify({ v: PROTOCOL_VERSION, id, nonce: nonce.toString('hex') }))));
    const ch = await p.next(FrameType.CHALLENGE);
    const b = JSON.parse(ch.body.toString());
    const params: HandshakeParams = { initiatorId: id, acceptorId: b.id, initiatorNonce: nonce, acceptorNonce: Buffer.from(b.nonce, 'hex') };
    p.write(encodeFrame(FrameType.PROOF, Buffer.from(JSON.stringify({ proof: initiatorProof(key, params).toString('hex') }))));
    const acc = await p.next(FrameType.ACCEPT);
    if (JSON.parse(acc.body.toString()).proof !== acceptorProof(key, params).toString('hex')) throw new Error('bad acceptor proof');
    p.auth = new FrameAuth(sessionKey(key, params), Direction.InitiatorToAcceptor);
    return p;
  }

  write(b: Buffer): void {
    this.socket.write(b);
  }

  /** A correctly tagged frame's bytes (not written). */
  tagged(type: FrameType, payload: Buffer): Buffer {
    const tag = this.auth.sign(type, [payload]);
    return Buffer.concat([frameHeader(type, payload.length + tag.length), payload, tag]);
  }

  async next(type: FrameType, timeoutMs = 2000): Promise<Frame> {
    await waitFor(() => this.frames.some((f) => f.type === type) || this.socket.destroyed, `frame ${type}`, timeoutMs);
    const i = this.frames.findIndex((f) => f.type === type);
    if (i < 0) throw new Error(`connection closed before frame ${type}`);
    return this.frames.splice(i, 1)[0]!;
  }

  get closed(): Promise<void> {
    return socketClosed(this.socket);
  }
}
