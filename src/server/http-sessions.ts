import type { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { logger } from '../util/logger.js';

interface Session {
  transport: StreamableHTTPServerTransport;
  last_used_ms: number;
  /** Requests of this session whose response is still open (an SSE GET stream counts). */
  in_flight: number;
}

/**
 * The open MCP sessions of the HTTP server, bounded (each holds an McpServer of ~760 KB).
 * When full, a new session evicts the least recently used session that has no request in
 * progress (its client gets 404 and re-initializes, as the spec says); when every session is
 * busy the caller answers 503. Sessions idle longer than `idle_ms` are closed by an unref'd
 * sweep. A session is busy while any of its responses is open, so a long tool call or an
 * open notification stream is never cut.
 */
export class SessionTable {
  /** Insertion order is recency order: a used session is moved to the end. */
  private readonly sessions = new Map<string, Session>();
  /** Initializations admitted but not yet given an id: they hold a slot too. */
  private pending = 0;
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    readonly max_sessions: number,
    readonly idle_ms: number,
    private readonly now_ms: () => number = () => performance.now(),
  ) {
    this.sweeper = setInterval(() => void this.sweep(), Math.min(60_000, Math.max(100, Math.floor(idle_ms / 4))));
    this.sweeper.unref();
  }

  get size(): number {
    return this.sessions.size;
  }

  has(id: string): boolean {
    return this.sessions.has(id);
  }

  /** Marks a request of session `id` as started; returns its transport and a done callback. */
  begin(id: string): { transport: StreamableHTTPServerTransport; done: () => void } | undefined {
    const s = this.sessions.get(id);
    if (!s) return undefined;
    this.sessions.delete(id);
    this.sessions.set(id, s);
    s.in_flight++;
    s.last_used_ms = this.now_ms();
    let ended = false;
    return {
      transport: s.transport,
      done: () => {
        if (ended) return;
        ended = true;
        s.in_flight--;
        s.last_used_ms = this.now_ms();
      },
    };
  }

  /**
   * Reserves a slot for a new session, evicting the least recently used idle session when
   * full. False when every slot is held by a busy session (the caller answers 503). Call
   * release() once the initialization is over, whatever its outcome.
   */
  async reserve(): Promise<boolean> {
    if (this.sessions.size + this.pending >= this.max_sessions) {
      const victim = [...this.sessions].find(([, s]) => s.in_flight === 0);
      if (!victim) return false;
      this.sessions.delete(victim[0]);
      logger.info({ session: victim[0], max_sessions: this.max_sessions }, 'http session limit reached: closed the least recently used idle session');
      await victim[1].transport.close().catch(() => undefined);
    }
    this.pending++;
    return true;
  }

  release(): void {
    this.pending--;
  }

  add(id: string, transport: StreamableHTTPServerTransport): void {
    this.sessions.set(id, { transport, last_used_ms: this.now_ms(), in_flight: 0 });
  }

  remove(id: string): void {
    this.sessions.delete(id);
  }

  /** Closes sessions with nothing in progress for longer than idle_ms. */
  async sweep(): Promise<void> {
    const cutoff = this.now_ms() - this.idle_ms;
    const idle = [...this.sessions].filter(([, s]) => s.in_flight === 0 && s.last_used_ms < cutoff);
    for (const [id, s] of idle) {
      this.sessions.delete(id);
      logger.info({ session: id, idle_ms: this.idle_ms }, 'http session expired (idle)');
      await s.transport.close().catch(() => undefined);
    }
  }

  async closeAll(): Promise<void> {
    clearInterval(this.sweeper);
    const all = [...this.sessions.values()];
    this.sessions.clear();
    for (const s of all) await s.transport.close().catch(() => undefined);
  }
}
