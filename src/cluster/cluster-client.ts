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
/** The cluster's Raft timing, as learned, is asked for again after this long (consensus_config may change it). */
const TIMING_REFRESH_MS = 60_000;

/** A hedge ended at a member that still follows the suspected leader: it is alive to its followers. */
class StillLeadsError extends Error {}

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
  /**
   * The cluster's minimum election timeout (ms), from a member's status: a leader that has
   * answered nothing for this long is suspect to this client, as it would be to its followers.
   * Null until learned (no hedging before).
   */
  private suspectMs: number | null = null;
  /** The cluster's maximum election timeout (ms): a follower that follows a leader for longer after its last sign of life is hearing from it. */
  private electionMaxMs: number | null = null;
  private timingAt = -Infinity;
  private timingFetch: Promise<void> | null = null;
  /** When each member last answered this client (anything: a result, an error, a status). */
  private readonly lastHeard = new Map<string, number>();
  /** Calls waiting on a suspect leader, told when another member answers as leader. */
  private readonly leaderWatchers = new Set<(leader: string) => void>();
  /** Calls sent again to another member because the leader they were sent to was silent (tests, diagnostics). */
  hedges = 0;

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

  /** The minimum election timeout learned from the cluster (ms), if any (tests and diagnostics). */
  get electionTimeoutMinMs(): number | null {
    return this.suspectMs;
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
    // A call that waits for work is silent on a live leader too: silence says nothing there.
    const hedge = args.wait !== true;
    const deadline = performance.now() + totalMs;
    for (;;) {
      const sid = this.sessionId;
      if (sid === null) {
        // No session yet: read-only calls never need one (no log entry for a hook that only
        // reads); a call that writes is refused at its first proposal and sent again below.
        try {
          const body = { kind: 'tool', name, arguments: args, session_on_write: true, ...asks };
          return ((await this.onLeader(body, totalMs, answerMs, { uncertain: false }, deadline, rq, hedge)) as { result: CallToolResult }).result;
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
        return ((await this.onLeader(body, totalMs, answerMs, attempt, deadline, rq, hedge)) as { result: CallToolResult }).result;
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
    this.registering ??= this.onLeader(body, timeoutMs, ANSWER_TIMEOUT_MS, { uncertain: false }, deadline, {}, true)
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
    return ((await this.onLeader({ kind: 'resources/read', uri }, this.timeoutMs, ANSWER_TIMEOUT_MS, { uncertain: false }, undefined, {}, true)) as { result: unknown }).result;
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
    const st = (await this.send(member, { kind: 'status' }, timeoutMs, Math.min(timeoutMs, CONNECT_TIMEOUT_MS))) as MemberStatus;
    this.learnTiming(st);
    return st;
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

  /** A request to one member; any answer (an error included) proves the member alive. */
  private send(member: string, body: object, timeoutMs: number, connectTimeoutMs: number, rq: RequestOptions = {}): Promise<unknown> {
    return this.conn(member)
      .request(body, timeoutMs, connectTimeoutMs, rq)
      .then(
        (r) => {
          this.lastHeard.set(member, performance.now());
          return r;
        },
        (e: unknown) => {
          if (e instanceof RemoteError) this.lastHeard.set(member, performance.now());
          throw e;
        },
      );
  }

  private learnTiming(st: MemberStatus): void {
    const t = st.raft_timing;
    if (!t || !(t.election_timeout_min_ms > 0)) return;
    this.suspectMs = t.election_timeout_min_ms;
    this.electionMaxMs = t.election_timeout_max_ms;
    this.timingAt = performance.now();
  }

  /** Ask `member` (which just answered as leader) for the cluster's timing, in the background, when not known or old. */
  private refreshTiming(member: string): void {
    if (this.timingFetch || this.closed || performance.now() - this.timingAt < TIMING_REFRESH_MS) return;
    this.timingFetch = this.status(member)
      .then(
        () => undefined,
        () => undefined, // asked again after the next answer
      )
      .finally(() => {
        this.timingFetch = null;
      });
  }

  /** `member` answered as leader: remember it, and tell calls waiting on another that there is a new one. */
  private setLeader(member: string): void {
    const changed = this.leader !== member;
    this.leader = member;
    this.refreshTiming(member);
    if (changed) for (const w of [...this.leaderWatchers]) w(member);
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

  /** The believed leader unless it looks down, else the next member that does not; never `avoid` (a suspect leader) while there are others. */
  private pick(avoid: string | null = null): string {
    const now = performance.now();
    const up = (m: string) => m !== avoid && (this.downUntil.get(m) ?? 0) <= now;
    if (this.leader && up(this.leader)) return this.leader;
    for (let i = 0; i < this.members.length; i++) {
      const m = this.members[this.next++ % this.members.length]!;
      if (up(m)) return m;
    }
    // All look down: the one that went down first is the best bet.
    const others = this.members.filter((m) => m !== avoid);
    return [...(others.length > 0 ? others : this.members)].sort((a, b) => (this.downUntil.get(a) ?? 0) - (this.downUntil.get(b) ?? 0))[0]!;
  }

  /**
   * Members that refused or dropped us lately (a crashed leader): a member that still follows
   * one of them holds the request for the next leader rather than sending us there again.
   */
  private unreachable(target: string, suspect: string | null = null): { unreachable?: string[] } {
    const now = performance.now();
    const down = this.members.filter((m) => m !== target && (m === suspect || (this.downUntil.get(m) ?? 0) > now));
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
   *
   * With `hedge`, a request to the believed leader that hears nothing from it (no answer to
   * any request) for the cluster's minimum election timeout, the time its followers wait
   * before they suspect it, is also sent elsewhere naming that leader unreachable (a frozen
   * process keeps its connections open: nothing fails, nothing answers). A member that still
   * follows it holds the copy until a new leader is elected, then redirects it there. Both
   * copies carry the same session (client, seq): a copy the old leader runs after it resumes
   * is proposed in its stale term, which cannot commit, and a copy that reached the log is
   * answered from the session table, never applied twice. `hedgeOf`: this is such a copy; it
   * never goes to the suspect and ends (StillLeadsError) at a member that still follows it.
   */
  private async onLeader(
    body: object,
    timeoutMs: number,
    answerMs: number,
    attempt: { uncertain: boolean },
    deadline = performance.now() + timeoutMs,
    rq: RequestOptions = {},
    hedge = false,
    hedgeOf: { suspect: string; stop: { done: boolean } } | null = null,
  ): Promise<unknown> {
    let last = 'no member tried yet';
    let tried = 0;
    /** Members that closed right after the TLS handshake (see refusedByAll). */
    const afterTls = new Set<string>();
    const suspect = hedgeOf?.suspect ?? null;
    while (!this.closed && !hedgeOf?.stop.done) {
      const left = deadline - performance.now();
      if (left <= 0) break;
      const target = this.pick(suspect);
      tried++;
      const answerWithin = Math.min(left, answerMs);
      // A member holds a request while an election runs; it must answer before we give up.
      const holdMs = Math.min(MAX_HOLD_MS, Math.max(0, Math.floor(answerWithin - HOLD_MARGIN_MS)));
      try {
        const held = { ...body, hold_ms: holdMs, ...this.unreachable(target, suspect) };
        if (FAILOVER_TRACE) traceWrite(suspect === null ? 'client_try' : 'client_hedge_try', undefined, target);
        const sent = this.send(target, held, answerWithin, Math.min(left, CONNECT_TIMEOUT_MS), rq);
        const quietMs = this.suspectMs;
        let r: { result?: unknown };
        if (hedge && suspect === null && quietMs !== null && target === this.leader && this.members.length > 1) {
          const stop = { done: false };
          const h = await this.hedged(sent, target, quietMs, attempt, stop, () => this.onLeader(body, timeoutMs, answerMs, attempt, deadline, rq, false, { suspect: target, stop }));
          // The copy's own loop checked its answer and learned the leader that gave it.
          if (h.hedged) return h.r;
          r = h.r as { result?: unknown };
        } else {
          r = (await sent) as { result?: unknown };
        }
        if (FAILOVER_TRACE) traceWrite('client_answer', undefined, target);
        const res = r.result as CallToolResult | undefined;
        // A leader that lost its leadership mid-call says so in the tool's own error.
        const text = res?.isError ? String((res.content?.[0] as { text?: unknown } | undefined)?.text ?? '') : '';
        if (!text.startsWith('not_leader:')) {
          this.setLeader(target);
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
          if (suspect !== null && hint === suspect) {
            // A copy sent because `suspect` was silent: this member held it longer than any
            // election timeout and still follows `suspect`, so it hears from it: alive, only
            // slow to answer us. The original request waits for its answer. (After a shorter
            // hold the election may just not have started: the copy tries on.)
            if (this.electionMaxMs !== null && holdMs > this.electionMaxMs) throw new StillLeadsError(`${target} still follows ${suspect} after holding the request ${holdMs} ms: ${e.message}`);
            last = `${target}: ${e.message}`;
          } else {
            // A leader not among the addresses given (CONCORD_CLUSTER may list only some
            // members): learn it from the member that named it.
            if (hint !== null && !this.members.includes(hint) && isAddress(hint)) this.members.push(hint);
            const hintUp = hint !== null && hint !== suspect && this.members.includes(hint) && (this.downUntil.get(hint) ?? 0) <= performance.now();
            this.leader = hintUp ? hint : null;
            last = `${target}: ${e.message}`;
            if (this.leader && this.leader !== target) continue;
          }
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

  /**
   * Wait for `sent` (to `target`, the believed leader). If `target` answers nothing for
   * `quietMs` (answers to this client's other requests count), or another member answers as
   * leader meanwhile, also run `copy` (see onLeader) and take whichever answers first. An
   * error a leader gave the copy (session_required, invalid arguments, ...) is the answer too;
   * a copy that found no other leader leaves the call to the original (the caller then handles
   * its answer, a timeout or a lost connection as before).
   */
  private hedged(sent: Promise<unknown>, target: string, quietMs: number, attempt: { uncertain: boolean }, stop: { done: boolean }, copy: () => Promise<unknown>): Promise<{ r: unknown; hedged: boolean }> {
    return new Promise((resolve, reject) => {
      const sentAt = performance.now();
      let settled = false;
      let copying = false;
      let copyOver = false;
      let firstOver = false;
      let firstErr: unknown = null;
      let timer: NodeJS.Timeout | undefined;
      const unwatch = (): void => {
        clearTimeout(timer);
        this.leaderWatchers.delete(onNewLeader);
      };
      const settle = (f: () => void): void => {
        if (settled) return;
        settled = true;
        stop.done = true; // a copy still looking for a leader stops
        unwatch();
        f();
      };
      const startCopy = (): void => {
        if (settled || copying) return;
        copying = true;
        unwatch();
        this.hedges++;
        attempt.uncertain = true;
        if (FAILOVER_TRACE) traceWrite('client_hedge', undefined, target);
        copy().then(
          (r) => settle(() => resolve({ r, hedged: true })),
          (e: unknown) => {
            copyOver = true;
            if (e instanceof RemoteError) settle(() => reject(e));
            else if (firstOver) settle(() => reject(firstErr));
          },
        );
      };
      const check = (): void => {
        const quiet = performance.now() - Math.max(sentAt, this.lastHeard.get(target) ?? -Infinity);
        if (quiet >= quietMs) startCopy();
        else timer = setTimeout(check, Math.max(1, quietMs - quiet));
      };
      const onNewLeader = (leader: string): void => {
        if (leader !== target) startCopy();
      };
      timer = setTimeout(check, quietMs);
      this.leaderWatchers.add(onNewLeader);
      sent.then(
        (r) => settle(() => resolve({ r, hedged: false })),
        (e: unknown) => {
          firstOver = true;
          firstErr = e;
          if (!copying || copyOver) settle(() => reject(e));
          else unwatch();
        },
      );
    });
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
