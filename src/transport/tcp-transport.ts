// TCP transport for one member per process. Each member listens on one port and dials one
// long-lived outbound connection per peer; it sends only on its outbound connections and
// receives on inbound ones, so a pair of members shares two connections and neither side
// has to arbitrate which of two simultaneous dials survives. Clients (CLI, tools) use the
// same port with identities "client:<name>", proven with the client key, and may only send
// CLIENT_REQ frames: a client can never inject Raft messages, so it cannot vote, append or
// read behind the core's back. Members' own request channels ("member:<id>", proven with
// that member's key) may send requests only clients may not (forwarded proposals).

import { createServer, type Server, type Socket } from 'node:net';
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import type { Message, NodeId } from '../raft/types.js';
import type { Transport } from '../host/transport.js';
import { logger } from '../util/logger.js';
import { traceWrite, WRITE_TRACE } from '../util/write-trace.js';
import { afterPromiseJobs } from './after-jobs.js';
import { CLIENT_PREFIX, MEMBER_REQUEST_PREFIX } from './auth.js';
import { decodeBatch, invalidMessage, packJson, Reassembler } from './codec.js';
import { SecureConn, type CloseKind, type TransportLog } from './conn.js';
import { frameHeader, FrameType, frameTypeName, HEADER_BYTES } from './frame.js';
import { resolveLimits, zeroStats, type PeerStats, type TcpLimits } from './limits.js';
import { LogLimiter } from './log-limit.js';
import { PeerLink, type PeerAddress } from './peer-link.js';
import { encodeAck, SnapshotReceive } from './snapshot-stream.js';
import { TLS_HANDSHAKE_RECORD, tlsServer, type TlsMaterial } from './tls.js';

export type { PeerAddress } from './peer-link.js';
export type { PeerStats, TcpLimits } from './limits.js';

/** Which credential a request's connection proved: the client key or a member's key. */
export type RequestCredential = 'client' | 'member';

/**
 * What a request's handler may do besides answering: report progress (sent to the client as
 * `{id, progress}` entries before the answer) and notice that the client cancelled it (a
 * `{id, cancel: true}` entry, or the connection closing).
 */
export interface ClientRequestContext {
  progress(p: unknown): void;
  signal: AbortSignal;
}

export type ClientRequestHandler = (req: unknown, from: string, credential: RequestCredential, ctx: ClientRequestContext) => Promise<unknown>;

export interface TcpTransportOptions {
  id: NodeId;
  secret: Buffer;
  host?: string;
  /** 0 picks a free port (tests); read it back from listen(). */
  port?: number;
  peers?: Record<NodeId, PeerAddress>;
  limits?: Partial<TcpLimits>;
  log?: TransportLog;
  /** Mutual TLS (tls.ts): every connection in and out, plaintext refused. */
  tls?: TlsMaterial;
  /** The swarm these members serve: a peer naming another one in its handshake is refused. */
  swarm?: string;
  /** Each accepted snapshot part: bytes held so far of `total` (progress; tests cut links here). */
  onSnapshotProgress?: (peer: NodeId, received: number, total: number) => void;
}

export interface TcpTransportStats {
  peers: Record<NodeId, PeerStats>;
  /** Handshakes refused or failed for authentication, and frames failing their tag. */
  authFailures: number;
  /** Connections closed for malformed frames or protocol violations. */
  protocolErrors: number;
  /** Connections turned away before the handshake (too many pending). */
  refusedConnections: number;
  /** Messages for a peer this transport does not know. */
  unroutable: number;
  clientRequests: number;
  /** CLIENT_RESP frames sent: clientRequests / clientResponseFrames answers per frame. */
  clientResponseFrames: number;
}

/** Per inbound connection state. */
interface Inbound {
  conn: SecureConn;
  reassembler: Reassembler | null;
  inflight: number;
  /** Client answers waiting for this turn's frame. */
  outbox: string[];
  /** Requests being served, by id: a cancel entry or the connection closing aborts them. */
  running: Map<number, AbortController>;
}

export class TcpTransport implements Transport {
  readonly id: NodeId;
  private readonly limits: TcpLimits;
  private readonly log: TransportLog;
  private readonly server: Server;
  private readonly links = new Map<NodeId, PeerLink>();
  private readonly peerStats = new Map<NodeId, PeerStats>();
  private readonly inbound = new Set<Inbound>();
  private readonly inboundByPeer = new Map<NodeId, Inbound>();
  /** Partial snapshots by sending peer: they outlive a connection so a transfer can resume. */
  private readonly snapIn = new Map<NodeId, { rx: SnapshotReceive; expiry: NodeJS.Timeout | null }>();
  private handler: ((m: Message) => void) | null = null;
  private partHandler: ((peer: NodeId, parts: readonly string[], i: number) => void) | null = null;
  private partDropHandler: ((peer: NodeId, parts: readonly string[]) => void) | null = null;
  private clientHandler: ClientRequestHandler | null = null;
  private refusedHandler: ((id: NodeId) => void) | null = null;
  private pendingHandshakes = 0;
  private readonly pendingBySource = new Map<string, number>();
  /** Limits what unauthenticated sources can make us log (one line per kind per window, with a count). */
  private readonly preAuthLog: LogLimiter;
  private readonly connLog: TransportLog;
  /** With TLS: verifies peers; fed the sockets `server` accepts. */
  private readonly tlsServer: TlsServer | null = null;
  /** Sockets in their TLS handshake, by remote address:port, waiting for the TLS socket. */
  private readonly tlsPending = new Map<string, (tls: TLSSocket) => void>();
  /** Accepted sockets still in their TLS handshake (closed with the transport). */
  private readonly tlsHandshaking = new Set<Socket>();
  private closed = false;
  private counters = { authFailures: 0, protocolErrors: 0, refusedConnections: 0, unroutable: 0, clientRequests: 0, clientResponseFrames: 0 };

  constructor(private readonly o: TcpTransportOptions) {
    if (o.id.startsWith(CLIENT_PREFIX) || o.id.startsWith(MEMBER_REQUEST_PREFIX)) throw new Error(`member id must not start with "${CLIENT_PREFIX}" or "${MEMBER_REQUEST_PREFIX}"`);
    this.id = o.id;
    this.limits = resolveLimits(o.limits);
    this.log = o.log ?? logger.child({ component: 'tcp-transport', id: o.id });
    this.preAuthLog = new LogLimiter(this.log, this.limits.logWindowMs);
    // Closes of connections that never authenticated are summarized per kind of failure (the
    // claimed id and numbers masked, so varying them does not defeat it); an authenticated
    // peer's are all logged.
    this.connLog = this.preAuthLog.wrap((obj) => {
      const c = obj as { authenticated?: unknown; kind?: unknown; peer?: unknown; reason?: unknown };
      if (c.authenticated === true) return null;
      let reason = String(c.reason ?? '');
      if (typeof c.peer === 'string' && c.peer.length > 0) reason = reason.split(c.peer).join('<id>');
      return `conn:${String(c.kind)}:${reason.replace(/\d+/g, '#').slice(0, 200)}`;
    });
    this.server = createServer((s) => this.accept(s));
    if (o.tls) {
      this.tlsServer = tlsServer(o.tls, this.limits.handshakeTimeoutMs);
      this.tlsServer.on('secureConnection', (s: TLSSocket) => this.onTlsSecure(s));
      this.tlsServer.on('tlsClientError', (e: Error, s: TLSSocket) => this.onTlsError(e, s));
    }
    for (const [id, a] of Object.entries(o.peers ?? {})) this.setPeer(id, a);
  }

  /** Start accepting connections; resolves with the bound address. */
  listen(): Promise<PeerAddress> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.o.port ?? 0, this.o.host ?? '127.0.0.1', () => {
        this.server.off('error', reject);
        this.server.on('error', (e) => this.log.error({ err: e.message }, 'listener error'));
        resolve(this.address!);
      });
    });
  }

  get address(): PeerAddress | null {
    const a = this.server.address();
    return a && typeof a === 'object' ? { host: a.address, port: a.port } : null;
  }

  /** Add a peer or change its address. */
  setPeer(id: NodeId, address: PeerAddress): void {
    if (this.closed || id === this.id) return;
    const link = this.links.get(id);
    if (link) link.setAddress(address);
    else {
      const o = { selfId: this.id, peerId: id, address, secret: this.o.secret, tls: this.o.tls, swarm: this.o.swarm, limits: this.limits, stats: this.stats_(id), log: this.log, connLog: this.connLog, onRefused: () => this.refusedHandler?.(id), inboundUp: () => this.inboundByPeer.has(id) };
      this.links.set(id, new PeerLink(o));
    }
  }

  /**
   * `fn(peer)` runs each time a dial to that peer is refused (ECONNREFUSED: nothing listens at
   * its address, so its process is gone). When both of a peer's connections end from its side
   * the link dials again at once, so a peer that crashed is known within a round trip.
   */
  onPeerRefused(fn: (id: NodeId) => void): void {
    this.refusedHandler = fn;
  }

  /** Forget a peer: its links close and it can no longer connect to us. */
  removePeer(id: NodeId): void {
    this.links.get(id)?.close();
    this.links.delete(id);
    this.inboundByPeer.get(id)?.conn.close('peer removed');
    this.dropSnapshotIn(id);
  }

  send(msg: Message): void {
    if (this.closed) return;
    if (msg.from !== this.id) throw new Error(`TcpTransport ${this.id}: send with from=${msg.from}`);
    const link = this.links.get(msg.to);
    if (!link) {
      this.counters.unroutable++;
      return;
    }
    if (msg.type === 'MsgSnap' && msg.snapshot) link.sendSnapshot(msg);
    else link.enqueue(JSON.stringify(msg), isUrgent(msg));
  }

  /** See Transport.flush: every link writes what it holds now (the batch still runs later). */
  flush(): void {
    if (this.closed) return;
    for (const link of this.links.values()) link.flushPending();
  }

  /** Close the connections to and from a peer; they are redialled (tests, operators). */
  disconnect(id: NodeId, reason = 'disconnected locally'): void {
    this.links.get(id)?.dropConnection(reason);
    this.inboundByPeer.get(id)?.conn.close(reason);
  }

  onMessage(handler: (msg: Message) => void): void {
    this.handler = handler;
  }

  /** Stop every outgoing snapshot transfer (see Transport.abandonSnapshots). */
  abandonSnapshots(): void {
    for (const l of this.links.values()) l.abandonSnapshot();
  }

  /**
   * Each part of a multi-part snapshot from `peer` as it completes, before the whole arrived
   * and its hash was checked (see SnapshotReceive), and each such transfer given up (`drop`).
   */
  onSnapshotParts(part: (peer: NodeId, parts: readonly string[], i: number) => void, drop: (peer: NodeId, parts: readonly string[]) => void): void {
    this.partHandler = part;
    this.partDropHandler = drop;
  }

  /** Serve authenticated client requests on the member port. */
  onClientRequest(handler: ClientRequestHandler): void {
    this.clientHandler = handler;
  }

  stats(): TcpTransportStats {
    const peers: Record<NodeId, PeerStats> = {};
    for (const [id, s] of this.peerStats) peers[id] = { ...s, buffered: this.links.get(id)?.buffered ?? 0 };
    return { peers, ...this.counters };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.handler = null;
    this.clientHandler = null;
    this.server.close();
    for (const l of this.links.values()) l.close();
    this.links.clear();
    for (const i of [...this.inbound]) i.conn.close('transport closed');
    for (const raw of [...this.tlsHandshaking]) raw.destroy();
    for (const id of [...this.snapIn.keys()]) this.dropSnapshotIn(id);
  }

  private dropSnapshotIn(id: NodeId): void {
    const e = this.snapIn.get(id);
    if (e?.expiry) clearTimeout(e.expiry);
    e?.rx.reset();
    this.snapIn.delete(id);
  }

  private stats_(id: NodeId): PeerStats {
    let s = this.peerStats.get(id);
    if (!s) this.peerStats.set(id, (s = zeroStats()));
    return s;
  }

  private admit(claimed: string): string | null {
    if (claimed.startsWith(CLIENT_PREFIX)) return null;
    const id = claimed.startsWith(MEMBER_REQUEST_PREFIX) ? claimed.slice(MEMBER_REQUEST_PREFIX.length) : claimed;
    if (id === this.id) return `${id} is this member's own id`;
    if (!this.links.has(id)) return `${id} is not a known member`;
    return null;
  }

  private accept(socket: Socket): void {
    if (this.closed) return void socket.destroy();
    const source = socket.remoteAddress ?? '?';
    const fromSource = this.pendingBySource.get(source) ?? 0;
    if (this.pendingHandshakes >= this.limits.maxPendingHandshakes || fromSource >= this.limits.maxPendingHandshakesPerSource) {
      this.counters.refusedConnections++;
      const perSource = fromSource >= this.limits.maxPendingHandshakesPerSource;
      this.preAuthLog.write(
        'warn',
        perSource ? 'refused-source' : 'refused-all',
        { remote: `${source}:${socket.remotePort}`, pending: this.pendingHandshakes, pending_from_source: fromSource, refused_total: this.counters.refusedConnections },
        perSource ? `too many connections in handshake from ${source} (limit ${this.limits.maxPendingHandshakesPerSource}); refused` : `too many connections in handshake (limit ${this.limits.maxPendingHandshakes}); refused`,
      );
      return void socket.destroy();
    }
    this.pendingHandshakes++;
    this.pendingBySource.set(source, fromSource + 1);
    let pending = true;
    const doneHandshaking = (): void => {
      if (!pending) return;
      pending = false;
      this.pendingHandshakes--;
      const n = (this.pendingBySource.get(source) ?? 1) - 1;
      if (n <= 0) this.pendingBySource.delete(source);
      else this.pendingBySource.set(source, n);
    };
    const remote = `${source}:${socket.remotePort}`;
    if (this.tlsServer) return this.acceptTls(socket, remote, doneHandshaking);
    this.startConn(socket, remote, this.limits.handshakeTimeoutMs, doneHandshaking);
  }

  /**
   * TLS first, inside the same admission slot and time budget as the HMAC handshake that
   * follows. A plaintext client gets a plaintext REFUSE saying TLS is required (it would
   * otherwise see a bare reset and retry); node:tls closes a peer whose certificate the CA
   * did not issue.
   */
  private acceptTls(raw: Socket, remote: string, doneHandshaking: () => void): void {
    const l = this.limits;
    const deadline = Date.now() + l.handshakeTimeoutMs;
    let handed = false;
    const timer = setTimeout(() => {
      this.preAuthLog.write('info', 'tls-timeout', { remote, limit_ms: l.handshakeTimeoutMs }, `connection closed: TLS handshake not completed within ${l.handshakeTimeoutMs} ms`);
      raw.destroy();
    }, l.handshakeTimeoutMs);
    timer.unref();
    raw.on('error', () => undefined); // reported through the TLS socket or the close below
    this.tlsHandshaking.add(raw);
    raw.once('close', () => {
      this.tlsHandshaking.delete(raw);
      clearTimeout(timer);
      this.tlsPending.delete(remote);
      if (!handed) doneHandshaking();
    });
    raw.setNoDelay(true);
    raw.once('data', (first: Buffer) => {
      raw.pause();
      if (first[0] !== TLS_HANDSHAKE_RECORD) {
        this.counters.authFailures++;
        this.preAuthLog.write('warn', 'tls-plaintext', { remote, refused_total: this.counters.authFailures }, `refused a plaintext connection from ${remote}: this member requires TLS`);
        const why = Buffer.from('this member requires TLS: give the client --cert, --key and --ca');
        raw.end(Buffer.concat([frameHeader(FrameType.REFUSE, why.length), why]));
        setTimeout(() => raw.destroy(), 200).unref();
        return;
      }
      // node:tls replays what the socket already buffered; it reads the rest itself.
      raw.unshift(first);
      this.tlsPending.set(remote, (tls) => {
        handed = true;
        this.tlsHandshaking.delete(raw);
        clearTimeout(timer);
        this.tlsPending.delete(remote);
        this.startConn(tls, remote, Math.max(1, deadline - Date.now()), doneHandshaking);
      });
      this.tlsServer!.emit('connection', raw);
    });
  }

  private onTlsSecure(tls: TLSSocket): void {
    const handoff = this.tlsPending.get(`${tls.remoteAddress}:${tls.remotePort}`);
    if (!handoff || this.closed) return void tls.destroy();
    handoff(tls);
  }

  /** A TLS handshake failed: counted with the authentication failures, logged rate-limited. */
  private onTlsError(e: Error & { code?: string }, tls: TLSSocket): void {
    const refusedCert = tls.authorizationError;
    tls.destroy();
    if (e.code === 'ERR_TLS_HANDSHAKE_TIMEOUT') return; // logged by acceptTls's own timer
    if (!refusedCert && e.code === 'ECONNRESET') return; // the peer went away mid-handshake
    this.counters.authFailures++;
    const reason = refusedCert ? `peer certificate refused (${String(refusedCert)})` : e.message.split('\n')[0]!.replace(/^[0-9A-F]+:error:[0-9A-F]+:/, '');
    const remote = tls.remoteAddress ? `${tls.remoteAddress}:${tls.remotePort}` : undefined;
    this.preAuthLog.write('warn', `tls:${refusedCert ?? e.code ?? 'error'}`, { remote, code: refusedCert ?? e.code, auth_failures: this.counters.authFailures }, `TLS handshake failed: ${reason}`);
  }

  private startConn(socket: Socket, remote: string, handshakeTimeoutMs: number, doneHandshaking: () => void): void {
    const l = this.limits;
    const state: Inbound = {
      reassembler: null,
      inflight: 0,
      outbox: [],
      running: new Map(),
      conn: new SecureConn({
        socket,
        role: 'acceptor',
        remote,
        selfId: this.id,
        secret: this.o.secret,
        swarm: this.o.swarm,
        admit: (id) => this.admit(id),
        handshakeTimeoutMs,
        maxFrameBytes: l.maxFrameBytes,
        pingIntervalMs: l.pingIntervalMs,
        deadAfterMs: l.deadAfterMs,
        log: this.connLog,
        onReady: (c) => {
          doneHandshaking();
          if (c.isClient || c.isMemberRequest) return;
          // A restarted peer's new connection supersedes its old, possibly half-open one.
          this.inboundByPeer.get(c.peerId!)?.conn.close('replaced by a newer connection from the same peer');
          this.inboundByPeer.set(c.peerId!, state);
          state.reassembler = new Reassembler(l.maxMessageBytes);
          this.links.get(c.peerId!)?.peerIsUp();
        },
        onFrame: (_c, type, payload) => this.onFrame(state, type, payload),
        onClose: (c, _reason, kind) => {
          doneHandshaking();
          // Nobody is left to answer: a waiting call stops waiting.
          for (const a of state.running.values()) a.abort();
          state.running.clear();
          this.inbound.delete(state);
          if (c.peerId !== null && this.inboundByPeer.get(c.peerId) === state) {
            this.inboundByPeer.delete(c.peerId);
            this.expireSnapshotIn(c.peerId, kind);
            if (kind === 'io') this.links.get(c.peerId)?.redialIfPeerGone();
          }
          this.countClose(c, kind);
        },
      }),
    };
    this.inbound.add(state);
  }

  private countClose(c: SecureConn, kind: CloseKind): void {
    if (kind === 'auth' || kind === 'refused') {
      this.counters.authFailures++;
      if (c.peerId !== null && this.peerStats.has(c.peerId)) this.stats_(c.peerId).authFailures++;
    } else if (kind === 'protocol') this.counters.protocolErrors++;
  }

  private onFrame(st: Inbound, type: FrameType, payload: Buffer): void {
    const c = st.conn;
    if (c.isClient || c.isMemberRequest) {
      // Thrown: the connection closes and SecureConn logs the reason at warn.
      if (type !== FrameType.CLIENT_REQ) throw new Error(`refused ${frameTypeName(type)} frame from ${c.peerId}: ${c.isClient ? 'a client credential' : 'a request channel'} may only send requests, never Raft messages`);
      this.onClientFrame(st, payload);
      return;
    }
    const peer = c.peerId!;
    const ps = this.stats_(peer);
    ps.bytesIn += HEADER_BYTES + payload.length;
    if (type === FrameType.MSG) {
      const msgs = decodeBatch(payload);
      for (const m of msgs) this.checkRoute(m, peer);
      for (const m of msgs) this.deliver(m, ps);
      return;
    }
    if (type === FrameType.SNAP_CHUNK) {
      const whole = st.reassembler!.push(payload);
      if (!whole) return;
      let m: unknown;
      try {
        m = JSON.parse(whole.toString('utf8'));
      } catch {
        throw new Error('chunked message is not valid JSON');
      }
      const why = invalidMessage(m);
      if (why) throw new Error(`malformed chunked message: ${why}`);
      this.checkRoute(m as Message, peer);
      ps.chunkedIn++;
      this.deliver(m as Message, ps);
      return;
    }
    if (type === FrameType.SNAP_PART) return this.onSnapshotPart(st, peer, ps, payload);
    throw new Error(`member connection sent ${frameTypeName(type)}`);
  }

  private onSnapshotPart(st: Inbound, peer: NodeId, ps: PeerStats, payload: Buffer): void {
    let e = this.snapIn.get(peer);
    if (!e) {
      const parts = { part: (p: readonly string[], i: number) => this.partHandler?.(peer, p, i), drop: (p: readonly string[]) => this.partDropHandler?.(peer, p) };
      this.snapIn.set(peer, (e = { rx: new SnapshotReceive(this.limits.maxSnapshotBytes, parts), expiry: null }));
    }
    if (e.expiry) clearTimeout(e.expiry);
    e.expiry = null;
    const r = e.rx.push(payload); // throws on a violation: the connection closes, see onClose
    if (r.ack) st.conn.send(FrameType.SNAP_ACK, [encodeAck(r.ack)]);
    const accepted = r.ack !== null && !r.ack.rewind && !r.ack.error;

    ps.snapshotBytesIn += r.accepted ?? 0;
    if (r.ack?.error) this.log.warn({ peer, err: r.ack.error }, 'snapshot refused');
    if (r.message) {
      this.checkRoute(r.message, peer);
      ps.chunkedIn++;
      this.deliver(r.message, ps);
      // Delivered (the receiver checked it then, or skipped it): nothing parsed is kept for it.
      const d = r.message.snapshot?.data;
      if (Array.isArray(d)) this.partDropHandler?.(peer, d);
      // A whole state arrived: what other peers (a deposed leader) sent of theirs, which may be
      // as large, is not kept (a current leader still sending resumes from byte 0).
      for (const other of [...this.snapIn.keys()]) if (other !== peer && this.snapIn.get(other)!.rx.inProgressBytes > 0) this.dropSnapshotIn(other);
    }
    if (accepted) this.o.onSnapshotProgress?.(peer, r.ack!.received, r.total);
  }

  /**
   * The connection from `peer` closed. After a protocol violation its partial snapshot goes
   * at once; otherwise it is kept snapshotResumeMs for the sender to resume on a new one.
   */
  private expireSnapshotIn(peer: NodeId, kind: CloseKind): void {
    const e = this.snapIn.get(peer);
    if (!e) return;
    if (kind === 'protocol' || kind === 'auth' || e.rx.inProgressBytes === 0) return this.dropSnapshotIn(peer);
    e.expiry = setTimeout(() => this.dropSnapshotIn(peer), this.limits.snapshotResumeMs);
    e.expiry.unref();
  }

  /** The sender proved it is `peer`; it may not speak for anyone else. */
  private checkRoute(m: Message, peer: NodeId): void {
    if (m.from !== peer) throw new Error(`message from=${m.from} on ${peer}'s connection`);
    if (m.to !== this.id) throw new Error(`message to=${m.to} delivered to ${this.id}`);
  }

  private deliver(m: Message, ps: PeerStats): void {
    ps.messagesIn++;
    const h = this.handler;
    if (!h) return;
    try {
      h(m);
    } catch (e) {
      // A throwing member is a bug there, not a reason to drop the link.
      this.log.error({ err: (e as Error).message, type: m.type, from: m.from }, 'message handler threw');
    }
  }

  /**
   * A CLIENT_REQ frame holds one request or an array of them (a client batches what it sends
   * in one event-loop turn); answers are batched the same way. At thousands of requests per
   * second, one frame, one tag and one write per request was most of a member's CPU.
   */
  private onClientFrame(st: Inbound, payload: Buffer): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(payload.toString('utf8'));
    } catch {
      throw new Error('CLIENT_REQ is not valid JSON');
    }
    const reqs = Array.isArray(parsed) ? parsed : [parsed];
    if (reqs.length === 0) throw new Error('CLIENT_REQ with an empty batch');
    for (const req of reqs) {
      const id = (req as { id?: unknown } | null)?.id;
      if (typeof req !== 'object' || req === null || typeof id !== 'number' || !Number.isSafeInteger(id)) {
        throw new Error('CLIENT_REQ without a numeric id');
      }
    }
    for (const req of reqs as Array<{ id: number; body?: unknown; cancel?: unknown }>) {
      // A cancel entry names a request in flight on this connection; it gets no answer.
      if (req.cancel === true) st.running.get(req.id)?.abort();
      else this.serveClientRequest(st, req.id, req.body);
    }
  }

  private serveClientRequest(st: Inbound, id: number, reqBody: unknown): void {
    this.counters.clientRequests++;
    const c = st.conn;
    const respond = (r: object): void => {
      if (c.closed) return;
      let body: string;
      try {
        body = JSON.stringify(r);
      } catch (e) {
        body = JSON.stringify({ id, ok: false, error: `response not serializable: ${(e as Error).message}` });
      }
      if (Buffer.byteLength(body) + 64 > this.limits.maxFrameBytes) body = JSON.stringify({ id, ok: false, error: 'response too large' });
      this.queueResponse(st, body, true);
    };
    const h = this.clientHandler;
    if (!h) return respond({ id, ok: false, error: `${this.id} does not serve client requests` });
    if (st.inflight >= this.limits.maxClientInflight) return respond({ id, ok: false, code: 'busy', error: `too many requests in flight on this connection (limit ${this.limits.maxClientInflight})` });
    st.inflight++;
    const abort = new AbortController();
    st.running.set(id, abort);
    const ctx: ClientRequestContext = {
      signal: abort.signal,
      progress: (p) => {
        if (!c.closed && st.running.get(id) === abort) this.queueResponse(st, JSON.stringify({ id, progress: p }));
      },
    };
    Promise.resolve()
      .then(() => h(reqBody, c.peerId!, c.isClient ? 'client' : 'member', ctx))
      .then(
        (body) => respond({ id, ok: true, body }),
        (e: unknown) => {
          const code = (e as { code?: unknown } | null)?.code;
          respond({ id, ok: false, error: e instanceof Error ? e.message : String(e), ...(typeof code === 'string' ? { code } : {}) });
        },
      )
      .finally(() => {
        st.inflight--;
        if (st.running.get(id) === abort) st.running.delete(id);
      });
  }

  /**
   * The answer to the only request in flight on its connection leaves at once: there is
   * nothing to batch it with. Otherwise answers (and progress) go out once the task that
   * produced them and its promise jobs are done (afterPromiseJobs), as few frames as the frame
   * limit allows: the answers one Ready applies leave together. In order either way: an answer
   * goes at once only when nothing is waiting in the outbox.
   */
  private queueResponse(st: Inbound, json: string, final = false): void {
    st.outbox.push(json);
    if (st.outbox.length > 1) return;
    if (final && st.inflight <= 1) return this.flushResponses(st);
    afterPromiseJobs(() => this.flushResponses(st));
  }

  private flushResponses(st: Inbound): void {
    const c = st.conn;
    const out = st.outbox.splice(0);
    if (c.closed) return;
    // A client that stops reading must not make us buffer responses without bound.
    if (c.writableLength > this.limits.highWaterBytes * 4) return void c.close('client is not reading its responses');
    for (const frame of packJson(out, this.limits.maxFrameBytes - 64)) {
      c.send(FrameType.CLIENT_RESP, [frame]);
      this.counters.clientResponseFrames++;
    }
    if (WRITE_TRACE) traceWrite('resp_sent');
  }
}

/**
 * Messages a write or an election waits for: written at once when they are the first their
 * task sends (PeerLink.scheduleFlush). Not heartbeats, nor appends that carry only a commit
 * index: a leader sends those before applying, and its client's answer should not wait for
 * them (measured: writing them first added 0.2 ms before the apply at 1 write in flight).
 */
function isUrgent(m: Message): boolean {
  switch (m.type) {
    case 'MsgApp':
      return m.entries.length > 0;
    case 'MsgAppResp':
    case 'MsgVote':
    case 'MsgVoteResp':
    case 'MsgPreVote':
    case 'MsgPreVoteResp':
      return true;
    default:
      return false;
  }
}
