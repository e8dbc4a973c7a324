// Client side of the member port (CLI, tools): one authenticated connection, redialled on
// demand with backoff, request/response matched by id. A request is sent at most once: if
// the connection drops after sending, the caller learns the outcome is unknown and decides
// whether to retry (requests should carry their own idempotency key).

import { connect } from 'node:net';
import { logger } from '../util/logger.js';
import { afterPromiseJobs } from './after-jobs.js';
import { CLIENT_PREFIX, MEMBER_REQUEST_PREFIX } from './auth.js';
import { SecureConn, type TransportLog } from './conn.js';
import { FrameType } from './frame.js';
import { backoffMs, resolveLimits, type TcpLimits } from './limits.js';
import { dialTls, type TlsMaterial } from './tls.js';

export interface TcpClientOptions {
  host: string;
  port: number;
  /** The client key (what clients hold; see loadClientKey). */
  clientKey?: Buffer;
  /**
   * The cluster secret: a client derives the client key from it (and uses only that); with
   * `asMember` a member proves its own member key instead.
   */
  secret?: Buffer;
  /** Identity "client:<name>" as logged by the member. */
  name: string;
  /** A member's request channel: identity "member:<id>", proven with that member's key. */
  asMember?: string;
  /** Refuse to talk to a member with another id. */
  expectServer?: string;
  /** Mutual TLS (tls.ts): this client's certificate, key and the CA that issued the members'. */
  tls?: TlsMaterial;
  /**
   * One dial per request, no retry with backoff: for a caller with other members to try
   * (a refused connection to a dead leader should send it elsewhere at once).
   */
  failFast?: boolean;
  limits?: Partial<Pick<TcpLimits, 'handshakeTimeoutMs' | 'pingIntervalMs' | 'deadAfterMs' | 'backoffMinMs' | 'backoffMaxMs' | 'maxFrameBytes'>>;
  log?: TransportLog;
}

/** The member answered with an error (its handler threw or refused). */
export class RemoteError extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'RemoteError';
  }
}

/** Could not connect or authenticate, or the connection dropped mid-request. */
export class ConnectionError extends Error {
  constructor(
    message: string,
    readonly authFailure = false,
    /** The connection was fine; the answer did not come in time (the member may be busy). */
    readonly timedOut = false,
    /** Closed right after the TLS handshake: the member refused our certificate, or was stopping. */
    readonly closedAfterTls = false,
  ) {
    super(message);
    this.name = 'ConnectionError';
  }
}

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
  onProgress?: (p: unknown) => void;
}

export interface RequestOptions {
  /** Progress the member reports for this request before answering it. */
  onProgress?: (p: unknown) => void;
  /** Aborting asks the member to cancel the request; its answer (if any) still arrives. */
  signal?: AbortSignal;
}

export class TcpClient {
  private conn: SecureConn | null = null;
  private dialing: Promise<SecureConn> | null = null;
  private readonly pending = new Map<number, Pending>();
  private readonly outbox: Array<{ id: number; json: string }> = [];
  private seq = 0;
  private attempts = 0;
  private closed = false;
  private readonly limits: TcpLimits;
  private readonly log: TransportLog;

  constructor(private readonly o: TcpClientOptions) {
    this.limits = resolveLimits(o.limits);
    this.log = o.log ?? logger.child({ component: 'tcp-client', name: o.name });
  }

  /** The member's proven id once connected. */
  get serverId(): string | null {
    return this.conn?.ready ? this.conn.peerId : null;
  }

  /** Connect now (optional: request() connects on demand). */
  async connect(timeoutMs = 5000): Promise<void> {
    await this.connected(Date.now() + timeoutMs);
  }

  /**
   * `connectTimeoutMs` bounds only the wait for a connection: a caller with other members to
   * try can give up on a dead one quickly and still allow a slow answer from a live one.
   */
  async request(body: unknown, timeoutMs = 5000, connectTimeoutMs = timeoutMs, opts: RequestOptions = {}): Promise<unknown> {
    const deadline = Date.now() + timeoutMs;
    const c = await this.connected(Date.now() + Math.min(timeoutMs, connectTimeoutMs));
    const id = ++this.seq;
    const json = JSON.stringify({ id, body });
    // The member would close the connection on an oversized frame; refuse it here instead.
    const bytes = Buffer.byteLength(json);
    if (bytes + 64 > this.limits.maxFrameBytes) throw new Error(`request of ${bytes} bytes exceeds the frame limit`);
    return new Promise((resolve, reject) => {
      // Referenced on purpose: a CLI awaiting only this request must not exit early.
      const timer = setTimeout(() => {
        this.pending.delete(id);
        this.idle();
        reject(new ConnectionError(`request timed out after ${timeoutMs} ms (outcome unknown)`, false, true));
      }, Math.max(1, deadline - Date.now()));
      this.pending.set(id, { resolve, reject, timer, onProgress: opts.onProgress });
      if (opts.signal) {
        const cancel = () => {
          // Sent on the connection that carries the request (a new one would not know its id).
          if (this.pending.has(id) && this.conn === c && c.ready && !c.closed) c.send(FrameType.CLIENT_REQ, [Buffer.from(JSON.stringify({ id, cancel: true }), 'utf8')]);
        };
        // Deferred: a request queued this turn leaves in the outbox's flush, which runs first.
        const later = () => setImmediate(cancel);
        if (opts.signal.aborted) later();
        else opts.signal.addEventListener('abort', later, { once: true });
      }
      c.socket.ref();
      // Requests made in one task (with its promise jobs) leave as one frame, without waiting
      // for the next event-loop turn (see afterPromiseJobs); the only request outstanding
      // has nothing to be batched with and leaves at once.
      this.outbox.push({ id, json });
      if (this.outbox.length > 1) return;
      if (this.pending.size === 1) this.flushOutbox();
      else afterPromiseJobs(() => this.flushOutbox());
    });
  }

  private flushOutbox(): void {
    const items = this.outbox.splice(0);
    const c = this.conn;
    const max = this.limits.maxFrameBytes - 64;
    let group: Array<{ id: number; json: string }> = [];
    let bytes = 2;
    const send = (): void => {
      if (group.length === 0) return;
      const text = group.length === 1 ? group[0]!.json : `[${group.map((g) => g.json).join(',')}]`;
      if (!c?.ready || c.closed || c.send(FrameType.CLIENT_REQ, [Buffer.from(text, 'utf8')]) === 0) {
        // Closed between connecting and sending: nothing went out, so retrying is safe.
        for (const g of group) this.fail(g.id, new ConnectionError('connection closed before the request was sent'));
      }
      group = [];
      bytes = 2;
    };
    for (const it of items) {
      if (!this.pending.has(it.id)) continue; // timed out while queued
      const n = Buffer.byteLength(it.json) + 1;
      if (group.length > 0 && bytes + n > max) send();
      group.push(it);
      bytes += n;
    }
    send();
  }

  private fail(id: number, e: Error): void {
    const p = this.pending.get(id);
    if (!p) return;
    clearTimeout(p.timer);
    this.pending.delete(id);
    p.reject(e);
  }

  close(): void {
    this.closed = true;
    this.conn?.close('client closed');
    this.conn = null;
    this.failPending(new ConnectionError('client closed'));
  }

  private async connected(deadline: number): Promise<SecureConn> {
    let last = 'not connected';
    let afterTls = false;
    while (!this.closed) {
      if (this.conn?.ready && !this.conn.closed) return this.conn;
      const left = deadline - Date.now();
      if (left <= 0) break;
      // Concurrent requests share one dial.
      const d = (this.dialing ??= this.dial(Math.min(left, this.limits.handshakeTimeoutMs)));
      let err: ConnectionError;
      try {
        return await d;
      } catch (e) {
        err = e as ConnectionError;
      } finally {
        if (this.dialing === d) this.dialing = null;
      }
      // A wrong secret or an unknown server won't fix itself: fail at once.
      if (err.authFailure) throw err;
      last = err.message;
      afterTls = err.closedAfterTls;
      if (this.o.failFast) break;
      const wait = Math.min(backoffMs(this.attempts++, this.limits), deadline - Date.now());
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    throw new ConnectionError(this.closed ? 'client closed' : `cannot reach ${this.o.host}:${this.o.port}: ${last}`, false, false, afterTls && !this.closed);
  }

  private dial(handshakeTimeoutMs: number): Promise<SecureConn> {
    return new Promise((resolve, reject) => {
      const l = this.limits;
      const socket = this.o.tls ? dialTls(this.o.tls, this.o.host, this.o.port, this.o.expectServer) : connect({ host: this.o.host, port: this.o.port });
      this.conn = new SecureConn({
        socket,
        role: 'initiator',
        remote: `${this.o.host}:${this.o.port}`,
        selfId: this.o.asMember !== undefined ? MEMBER_REQUEST_PREFIX + this.o.asMember : CLIENT_PREFIX + this.o.name,
        secret: this.o.asMember !== undefined ? this.o.secret : this.o.clientKey ? undefined : this.o.secret,
        clientKey: this.o.asMember !== undefined ? undefined : this.o.clientKey,
        expectPeer: this.o.expectServer,
        handshakeTimeoutMs,
        maxFrameBytes: l.maxFrameBytes,
        pingIntervalMs: l.pingIntervalMs,
        deadAfterMs: l.deadAfterMs,
        log: this.log,
        onReady: (c) => {
          this.attempts = 0;
          this.idle();
          resolve(c);
        },
        onFrame: (_c, type, payload) => this.onFrame(type, payload),
        onClose: (c, reason, kind) => {
          if (this.conn === c) this.conn = null;
          reject(new ConnectionError(reason, kind === 'auth' || kind === 'refused', false, kind === 'closed-after-tls'));
          this.failPending(new ConnectionError(`connection lost (${reason}); request outcome unknown`));
        },
      });
    });
  }

  private onFrame(type: FrameType, payload: Buffer): void {
    if (type !== FrameType.CLIENT_RESP) throw new Error(`server sent unexpected frame type ${type}`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(payload.toString('utf8'));
    } catch {
      throw new Error('CLIENT_RESP is not valid JSON');
    }
    const answers = Array.isArray(parsed) ? parsed : [parsed];
    for (const r of answers as Array<{ id?: unknown; ok?: unknown; body?: unknown; error?: unknown; code?: unknown } | null>) {
      if (typeof r !== 'object' || r === null || typeof r.id !== 'number') throw new Error('CLIENT_RESP without an id');
    }
    for (const r of answers as Array<{ id: number; ok?: unknown; body?: unknown; error?: unknown; code?: unknown; progress?: unknown }>) {
      const p = this.pending.get(r.id);
      if (!p) continue; // timed out already
      if (r.ok === undefined && r.progress !== undefined) {
        // Not the answer: progress of a request still running.
        p.onProgress?.(r.progress);
        continue;
      }
      this.pending.delete(r.id);
      clearTimeout(p.timer);
      if (r.ok === true) p.resolve(r.body);
      else p.reject(new RemoteError(String(r.error ?? 'request failed'), typeof r.code === 'string' ? r.code : undefined));
    }
    this.idle();
  }

  /** An idle client must not keep its process alive. */
  private idle(): void {
    if (this.pending.size === 0) this.conn?.socket.unref();
  }

  private failPending(e: Error): void {
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(e);
    }
    this.pending.clear();
  }
}
