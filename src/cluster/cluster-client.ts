// Client of a running cluster (`concord node` processes): finds the leader, follows
// redirects, and retries a call on leader change or a lost answer under the same client
// session (id, seq), so the replicated session table applies it at most once. The session is
// registered once (a log entry) and reused by every call of this client.

import { randomUUID } from 'node:crypto';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { ConnectionError, RemoteError, TcpClient, type RequestOptions } from '../transport/tcp-client.js';
import type { TlsMaterial } from '../transport/tls.js';
import { FAILOVER_TRACE, traceWrite } from '../util/write-trace.js';
import type { MemberStatus } from './protocol.js';

export interface ClusterClientOptions {
  /** Member addresses, "HOST:PORT,HOST:PORT" or a list. */
  members: string | string[];
  /** The client key (clients' credential, see loadClientKey) ... */
  clientKey?: Buffer;
  /** ... or the cluster secret, from which only the client key is derived and used. */
  secret?: Buffer;
  /** Logged by the members as client:<name>. */
  name?: string;
  /** Mutual TLS with the members (a client certificate, CN=client:<name>). */
  tls?: TlsMaterial;
  /** Default bound for a call, including the search for a leader (ms). */
  timeoutMs?: number;
  /**
   * Idle timeout of this client's session (ms; the cluster clamps it, default 1 hour). One-shot
   * clients (a CLI run, a hook) ask for less, so their sessions do not linger and crowd out
   * long-lived ones. A call retried after its session expired is not re-sent: it is answered
   * session_expired with its outcome unknown.
   */
  sessionTimeoutMs?: number;
}

export interface CallToolOptions {
  timeoutMs?: number;
  /** The tool's progress (progress, total, message), as the member reports it. */
  onProgress?: (p: { progress: number; total?: number; message?: string }) => void;
  /** Aborting cancels the call on the member (a wait stops waiting; what it started keeps running). */
  signal?: AbortSignal;
}

/** No member led within the deadline: a majority is down or cut off. */
export class ClusterUnavailableError extends Error {
  readonly code = 'unavailable';
}

const CONNECT_TIMEOUT_MS = 500;
/** A held request is answered this long before the client would give up on it. */
const HOLD_MARGIN_MS = 20;
/** Members wait at most this for an election anyway; the protocol accepts up to 60 s. */
const MAX_HOLD_MS = 1_000;
/** A member that refused or dropped us is skipped this long (it is likely down or stopped). */
const DOWN_MS = 300;
/** Wait for an answer this long before trying elsewhere (the retry is safe: same session). */
const ANSWER_TIMEOUT_MS = 5_000;
/** Pause after every member was tried once without reaching a leader (e.g. mid-election). */
const RETRY_PAUSE_MS = 5;

export function parseMembers(spec: string | string[]): string[] {
  const list = (Array.isArray(spec) ? spec : spec.split(',')).map((s) => s.trim()).filter((s) => s.length > 0);
  if (list.length === 0) throw new Error('cluster=(empty): give member addresses, e.g. 127.0.0.1:7001,127.0.0.1:7002');
  for (const m of list) {
    if (!/^(\[[0-9a-fA-F:]+\]|[^:\s]+):\d{1,5}$/.test(m)) throw new Error(`cluster=${JSON.stringify(m)} is not HOST:PORT (e.g. 127.0.0.1:7001)`);
  }
  return [...new Set(list)];
}

/** HOST:PORT as a member names another (a redirect's hint). */
function isAddress(a: string): boolean {
  const port = Number(a.slice(a.lastIndexOf(':') + 1));
  return a.lastIndexOf(':') > 0 && Number.isInteger(port) && port >= 1 && port <= 65535;
}

function splitAddress(a: string): { host: string; port: number } {
  const i = a.lastIndexOf(':');
  return { host: a.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(a.slice(i + 1)) };
}

export class ClusterClient {
  readonly members: string[];
  readonly clientId: string;
  private readonly conns = new Map<string, TcpClient>();
  private leader: string | null = null;
  private next = 0;
  private readonly downUntil = new Map<string, number>();
  private seq = 0;
  private readonly outstanding = new Set<number>();
  private readonly timeoutMs: number;
  private closed = false;
  /** The registered session's id (from the cluster), once registered. */
  private sessionId: string | null = null;
  private registering: Promise<string> | null = null;
  /** Sessions this client registered (the first included). */
  sessionsRegistered = 0;

  constructor(private readonly o: ClusterClientOptions) {
    this.members = parseMembers(o.members);
    this.clientId = `${o.name ?? 'client'}-${randomUUID()}`; // a label in logs
    this.timeoutMs = o.timeoutMs ?? 15_000;
  }

  /** The member believed to lead, as last learned. */
  get leaderAddress(): string | null {
    return this.leader;
  }

  /** The registered session, if any (tests and diagnostics). */
  get session(): string | null {
    return this.sessionId;
  }

  /**
   * Call an MCP tool on the leader, exactly once even across leader changes. If the cluster no
   * longer knows this client's session (idle past its timeout, or evicted), a call that no
   * member may have run is re-sent under a new session; one that may have run is not (that
   * could apply it twice): it is answered `session_expired`, outcome unknown.
   */
  async callTool(name: string, args: Record<string, unknown> = {}, opts: CallToolOptions = {}): Promise<CallToolResult> {
    const rq: RequestOptions = { onProgress: opts.onProgress as ((p: unknown) => void) | undefined, signal: opts.signal };
    const asks = opts.onProgress ? { progress: true } : {};
    // A call that waits for work (wait: true) legitimately answers late.
    const totalMs = opts.timeoutMs ?? (args.wait === true ? 3_600_000 : this.timeoutMs);
    const answerMs = args.wait === true ? (opts.timeoutMs ?? 3_600_000) : ANSWER_TIMEOUT_MS;
    const deadline = performance.now() + totalMs;
    for (;;) {
      const sid = this.sessionId;
      if (sid === null) {
        // No session yet: read-only calls never need one (no log entry for a hook that only
        // reads); a call that writes is refused at its first proposal and sent again below.
        try {
          const body = { kind: 'tool', name, arguments: args, session_on_write: true, ...asks };
          return ((await this.onLeader(body, totalMs, answerMs, { uncertain: false }, deadline, rq)) as { result: CallToolResult }).result;
        } catch (e) {
          if (!(e instanceof RemoteError && (e.code === 'session_required' || e.code === 'session_expired'))) throw e;
          await this.ensureSession(totalMs, deadline);
          continue;
        }
      }
      const seq = ++this.seq;
      this.outstanding.add(seq);
      const attempt = { uncertain: false };
      try {
        // Seqs enter in increasing order and a Set iterates in insertion order: first = smallest.
        const ack = this.outstanding.values().next().value as number;
        const body = { kind: 'tool', name, arguments: args, session: { client: sid, seq, ack }, ...asks };
        return ((await this.onLeader(body, totalMs, answerMs, attempt, deadline, rq)) as { result: CallToolResult }).result;
      } catch (e) {
        if (!(e instanceof RemoteError && e.code === 'session_expired')) throw e;
        if (this.sessionId === sid) this.sessionId = null;
        if (attempt.uncertain) return sessionExpiredResult(sid, name, seq);
        // No member ran it before this refusal: register again and send it as a new call.
        await this.ensureSession(totalMs, deadline);
      } finally {
        this.outstanding.delete(seq);
      }
    }
  }

  /** Register this client's session once; concurrent first calls share the registration. */
  private ensureSession(timeoutMs: number, deadline: number): Promise<string> {
    if (this.sessionId) return Promise.resolve(this.sessionId);
    const body = { kind: 'session', ...(this.o.sessionTimeoutMs !== undefined ? { timeout_ms: this.o.sessionTimeoutMs } : {}) };
    this.registering ??= this.onLeader(body, timeoutMs, ANSWER_TIMEOUT_MS, { uncertain: false }, deadline)
      .then((r) => {
        this.sessionsRegistered++;
        this.sessionId = (r as { result: { session: string } }).result.session;
        return this.sessionId;
      })
      .finally(() => {
        this.registering = null;
      });
    return this.registering;
  }

  async readResource(uri: string): Promise<unknown> {
    return ((await this.onLeader({ kind: 'resources/read', uri }, this.timeoutMs, ANSWER_TIMEOUT_MS, { uncertain: false })) as { result: unknown }).result;
  }

  /** Lists are the same on every member: the first that answers. */
  async anyMember(body: { kind: 'tools/list' | 'resources/list' | 'resources/templates/list' }): Promise<unknown> {
    const errors: string[] = [];
    const afterTls = new Set<string>();
    const order = this.leader ? [this.leader, ...this.members.filter((m) => m !== this.leader)] : this.members;
    for (const m of order) {
      try {
        return await this.conn(m).request(body, ANSWER_TIMEOUT_MS, CONNECT_TIMEOUT_MS);
      } catch (e) {
        if (e instanceof ConnectionError && e.authFailure) throw authError(m, e, this.o.tls !== undefined);
        if (this.refusedByAll(afterTls, m, e)) throw authError(m, e as Error, true);
        errors.push(`${m}: ${(e as Error).message}`);
      }
    }
    throw new ClusterUnavailableError(`unavailable: no member answered (${errors.join('; ')})`);
  }

  /** One member's own status. */
  async status(member: string, timeoutMs = 2_000): Promise<MemberStatus> {
    return (await this.conn(member).request({ kind: 'status' }, timeoutMs, Math.min(timeoutMs, CONNECT_TIMEOUT_MS))) as MemberStatus;
  }

  /** Fault injection and inspection on one member (open to client credentials). */
  async admin(member: string, op: { op: 'block'; peers: string[] } | { op: 'unblock' } | { op: 'log'; from?: number; to?: number }, timeoutMs = 5_000): Promise<unknown> {
    return this.conn(member).request({ kind: 'admin', ...op }, timeoutMs, Math.min(timeoutMs, CONNECT_TIMEOUT_MS));
  }

  close(): void {
    this.closed = true;
    for (const c of this.conns.values()) c.close();
    this.conns.clear();
  }

  private conn(member: string): TcpClient {
    let c = this.conns.get(member);
    if (!c) {
      const a = splitAddress(member);
      c = new TcpClient({ host: a.host, port: a.port, secret: this.o.secret, clientKey: this.o.clientKey, tls: this.o.tls, name: this.o.name ?? 'client', failFast: true });
      this.conns.set(member, c);
    }
    return c;
  }

  /**
   * A member refuses a client certificate by closing right after the TLS handshake, which
   * looks like a member stopping at that instant. Once every member did it, it is the
   * certificate: fail now instead of retrying until the deadline.
   */
  private refusedByAll(seen: Set<string>, member: string, e: unknown): boolean {
    if (!(e instanceof ConnectionError && e.closedAfterTls)) return false;
    seen.add(member);
    return this.members.every((m) => seen.has(m));
  }

  /** The believed leader unless it looks down, else the next member that does not. */
  private pick(): string {
    const now = performance.now();
    const up = (m: string) => (this.downUntil.get(m) ?? 0) <= now;
    if (this.leader && up(this.leader)) return this.leader;
    for (let i = 0; i < this.members.length; i++) {
      const m = this.members[this.next++ % this.members.length]!;
      if (up(m)) return m;
    }
    // All look down: the one that went down first is the best bet.
    return [...this.members].sort((a, b) => (this.downUntil.get(a) ?? 0) - (this.downUntil.get(b) ?? 0))[0]!;
  }

  /**
   * Members that refused or dropped us lately (a crashed leader): a member that still follows
   * one of them holds the request for the next leader rather than sending us there again.
   */
  private unreachable(target: string): { unreachable?: string[] } {
    const now = performance.now();
    const down = this.members.filter((m) => m !== target && (this.downUntil.get(m) ?? 0) > now);
    return down.length > 0 ? { unreachable: down } : {};
  }

  private markDown(member: string): void {
    this.downUntil.set(member, performance.now() + DOWN_MS);
    if (this.leader === member) this.leader = null;
  }

  /**
   * Send to the leader, following redirects and retrying elsewhere until the deadline.
   * `attempt.uncertain` becomes true once a member may have run the request without our
   * learning the outcome (a lost answer, a leader that lost its leadership mid-call).
   */
  private async onLeader(body: object, timeoutMs: number, answerMs: number, attempt: { uncertain: boolean }, deadline = performance.now() + timeoutMs, rq: RequestOptions = {}): Promise<unknown> {
    let last = 'no member tried yet';
    let tried = 0;
    /** Members that closed right after the TLS handshake (see refusedByAll). */
    const afterTls = new Set<string>();
    while (!this.closed) {
      const left = deadline - performance.now();
      if (left <= 0) break;
      const target = this.pick();
      tried++;
      try {
        const answerWithin = Math.min(left, answerMs);
        // A member holds a request while an election runs; it must answer before we give up.
        const held = { ...body, hold_ms: Math.min(MAX_HOLD_MS, Math.max(0, Math.floor(answerWithin - HOLD_MARGIN_MS))), ...this.unreachable(target) };
        if (FAILOVER_TRACE) traceWrite('client_try', undefined, target);
        const r = (await this.conn(target).request(held, answerWithin, Math.min(left, CONNECT_TIMEOUT_MS), rq)) as { result?: unknown };
        if (FAILOVER_TRACE) traceWrite('client_answer', undefined, target);
        const res = r.result as CallToolResult | undefined;
        // A leader that lost its leadership mid-call says so in the tool's own error.
        const text = res?.isError ? String((res.content?.[0] as { text?: unknown } | undefined)?.text ?? '') : '';
        if (!text.startsWith('not_leader:')) {
          this.leader = target;
          return r;
        }
        last = `${target}: ${text}`;
        this.leader = null;
        attempt.uncertain = true;
      } catch (e) {
        if (FAILOVER_TRACE) traceWrite('client_error', undefined, target, { err: (e as Error).message.slice(0, 120) });
        if (e instanceof ConnectionError && e.authFailure) throw authError(target, e, this.o.tls !== undefined);
        if (e instanceof RemoteError && e.code === 'not_leader') {
          const hint = /at (\S+:\d+)$/.exec(e.message)?.[1] ?? null;
          // A leader not among the addresses given (CONCORD_CLUSTER may list only some
          // members): learn it from the member that named it.
          if (hint !== null && !this.members.includes(hint) && isAddress(hint)) this.members.push(hint);
          const hintUp = hint !== null && this.members.includes(hint) && (this.downUntil.get(hint) ?? 0) <= performance.now();
          this.leader = hintUp ? hint : null;
          last = `${target}: ${e.message}`;
          if (this.leader && this.leader !== target) continue;
        } else if (e instanceof RemoteError) {
          if (e.code !== 'busy') throw e;
          last = `${target}: ${e.message}`;
        } else {
          // Refused, dropped, or no answer in time: outcome unknown; retry elsewhere (same session).
          // Only a refused or lost connection marks the member down: a slow answer may be a
          // member holding the request for an election in progress.
          last = `${target}: ${(e as Error).message}`;
          if (this.refusedByAll(afterTls, target, e)) throw authError(target, e as Error, true);
          attempt.uncertain = true;
          if (e instanceof ConnectionError && e.timedOut) this.leader = this.leader === target ? null : this.leader;
          else this.markDown(target);
        }
      }
      // Mid-election nobody leads yet: once every member was asked, wait a little.
      if (tried >= this.members.length) {
        tried = 0;
        await new Promise((r) => setTimeout(r, Math.min(RETRY_PAUSE_MS, Math.max(0, deadline - performance.now()))));
      }
    }
    throw new ClusterUnavailableError(
      `unavailable: no leader answered within ${timeoutMs} ms from ${this.members.join(',')} (a majority of members must be up and connected); last: ${last}`,
    );
  }
}

/** The answer to a call whose session expired after an attempt with an unknown outcome. */
function sessionExpiredResult(session: string, tool: string, seq: number): CallToolResult {
  const text =
    `session_expired: session=${session} expired (idle past its timeout, or evicted) while call ${seq} (${tool}) was unanswered: ` +
    'it may or may not have been applied, so it was not sent again (that could apply it twice). ' +
    'Check its effect (memory_retrieve the key, task_status; orchestrate with an idempotency_key is safe to repeat) and retry if it is missing; the next call registers a new session';
  return { content: [{ type: 'text', text }], isError: true };
}

function authError(member: string, e: Error, tls: boolean): Error {
  const check = tls ? "are --cert/--key a client certificate from the members' CA, --ca that CA, and --secret-file the cluster's client key?" : "is --secret-file the cluster's client key or secret?";
  return new Error(`${member} refused the connection: ${e.message} (${check})`);
}
