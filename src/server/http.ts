import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { ClusterClient } from '../cluster/cluster-client.js';
import { Coordinator } from '../service/coordinator.js';
import { logger } from '../util/logger.js';
import { createClusterProxy } from './cluster-proxy.js';
import { createServer } from './create-server.js';
import { dashboardRoutes } from './dashboard/routes.js';
import { allowedHosts, hostAllowed, isLoopback, originAllowed, tokenMatches } from './http-guards.js';
import { OBSERVABILITY_PATHS, observabilityRoutes } from './observability.js';
import { readJsonBody } from './http-body.js';
import { SessionTable } from './http-sessions.js';
import type { RouteHandler } from './route-handler.js';
import type { ServeOptions } from './stdio.js';

export interface HttpOptions extends ServeOptions {
  host: string;
  port: number;
  /** Required as `Authorization: Bearer <token>` when set (CONCORD_HTTP_TOKEN or --token-file). */
  token?: string;
  /**
   * The dashboard's bearer token when `token` is unset (MCP on loopback stays open, as
   * documented); `concord serve` makes one up so the dashboard is owner-only.
   */
  dashboardToken?: string;
  /** Extra allowed Origin values; loopback origins are always allowed. */
  allowedOrigins?: string[];
  /** Extra allowed Host header values (`name` for any port, or `name:port`). */
  allowedHosts?: string[];
  /** Open MCP sessions at most; when full the least recently used idle one is closed. */
  maxSessions?: number;
  /** A session with nothing in progress for this long is closed. */
  sessionIdleMs?: number;
  /** Headers and body of a request must arrive within this (slow clients are cut off). */
  requestTimeoutMs?: number;
  /** Open TCP connections at most; further ones are closed at once. */
  maxConnections?: number;
  /** More routes, tried after the dashboard's and before /mcp. */
  routes?: RouteHandler[];
  /**
   * Serve no swarms here: each MCP session is connected by this function to the process that
   * owns them (`concord serve` attached to a running daemon).
   */
  attach?: (transport: Transport) => Promise<void>;
}

export const HTTP_DEFAULTS = {
  maxSessions: 256,
  sessionIdleMs: 30 * 60_000,
  requestTimeoutMs: 10_000,
  maxConnections: 1024,
} as const;

const MAX_BODY_BYTES = 4 << 20;

/**
 * MCP over Streamable HTTP so several assistants share one set of swarms. Loopback by
 * default; Host and Origin are checked (DNS-rebinding defence) and an optional bearer token
 * required. Sessions, connections and request times are bounded (see HTTP_DEFAULTS).
 */
export async function runHttp(opts: HttpOptions): Promise<{ close: () => Promise<void>; port: number; coordinator: Coordinator | null; cluster: ClusterClient | null }> {
  const requestTimeoutMs = opts.requestTimeoutMs ?? HTTP_DEFAULTS.requestTimeoutMs;
  const sessions = new SessionTable(opts.maxSessions ?? HTTP_DEFAULTS.maxSessions, opts.sessionIdleMs ?? HTTP_DEFAULTS.sessionIdleMs);
  const cluster = opts.cluster ? new ClusterClient(opts.cluster) : null;
  const coord = cluster || opts.attach ? null : new Coordinator(opts);
  let hosts: Set<string> | null = null;
  const observability = coord ? observabilityRoutes(coord) : null;
  // The live dashboard needs the swarms in this process (not a cluster proxy's).
  const dashboard = coord ? dashboardRoutes(coord, { bindHost: opts.host, token: opts.token ?? opts.dashboardToken, allowedOrigins: opts.allowedOrigins }) : null;
  const routes: RouteHandler[] = [...(dashboard ? [dashboard.routes] : []), ...(opts.routes ?? [])];

  const server = http.createServer(
    {
      requestTimeout: requestTimeoutMs,
      headersTimeout: requestTimeoutMs,
      // Node checks the two timeouts above only this often (default 30 s).
      connectionsCheckingInterval: Math.min(1_000, requestTimeoutMs),
    },
    (req, res) => {
      void handle(req, res).catch((e: Error) => {
        // A client cut off mid-body (request timeout, disconnect) is not a server error.
        if (req.socket.destroyed) return logger.debug({ err: e.message }, 'http request aborted');
        logger.error({ err: e.stack }, 'http request failed');
        if (!res.headersSent) reply(res, 500, { error: 'internal error' });
      });
    },
  );
  server.maxConnections = opts.maxConnections ?? HTTP_DEFAULTS.maxConnections;
  let dropped = 0;
  let dropLogged_ms = -Infinity;
  server.on('drop', () => {
    // One line with a count, not one per refused socket.
    dropped++;
    const now = performance.now();
    if (now - dropLogged_ms < 10_000) return;
    logger.warn({ dropped, max_connections: server.maxConnections }, 'http connection limit reached: connections refused (--max-connections, CONCORD_HTTP_MAX_CONNECTIONS)');
    dropLogged_ms = now;
    dropped = 0;
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    // Every route, not only /mcp: a rebound name must not reach the dashboard either.
    if (!hostAllowed(req.headers.host, hosts)) {
      return reply(res, 403, { error: `Host header ${JSON.stringify(req.headers.host ?? '')} not allowed: this server answers ${[...(hosts ?? [])].join(', ')}; add names with --allowed-hosts (CONCORD_HTTP_ALLOWED_HOSTS)` });
    }
    if (OBSERVABILITY_PATHS.has(url.pathname)) {
      // Read-only, like etcd's /metrics: no token on loopback (only this machine reaches it);
      // beyond loopback the MCP token applies, since swarm names and figures are visible.
      if (opts.token && !isLoopback(opts.host) && !tokenMatches(req.headers.authorization, opts.token)) return reply(res, 401, { error: 'missing or wrong bearer token' });
      if (observability && (await observability(req, res))) return;
      if (opts.attach) return reply(res, 404, { error: `${url.pathname} is served by the daemon that owns the swarms: concord daemon status shows its address` });
      return reply(res, 404, { error: `${url.pathname} is served by each member in cluster mode: concord node --metrics HOST:PORT` });
    }
    for (const r of routes) if (await r(req, res)) return;
    if (url.pathname !== '/mcp') return reply(res, 404, { error: 'not found: the MCP endpoint is /mcp' });
    const origin = req.headers.origin;
    if (origin && !originAllowed(origin, opts.allowedOrigins ?? [])) return reply(res, 403, { error: `origin ${origin} not allowed` });
    if (opts.token && !tokenMatches(req.headers.authorization, opts.token)) return reply(res, 401, { error: 'missing or wrong bearer token' });
    const sid = req.headers['mcp-session-id'];
    if (sid !== undefined) {
      // An unknown id (expired, evicted, closed, or from before a restart): 404 is the spec's
      // signal to the client to start a new session.
      const use = typeof sid === 'string' ? sessions.begin(sid) : undefined;
      if (!use) return reply(res, 404, { error: 'unknown mcp-session-id (expired, evicted or closed): send initialize without it for a new session' });
      res.once('close', use.done);
      if (req.method !== 'POST') return use.transport.handleRequest(req, res);
      const body = await readJsonBody(req, MAX_BODY_BYTES);
      if (body === undefined) return reply(res, 400, { error: `request body must be JSON of at most ${MAX_BODY_BYTES} bytes` });
      return use.transport.handleRequest(req, res, body);
    }
    if (req.method !== 'POST') return reply(res, 400, { error: 'missing mcp-session-id; send initialize first' });
    const body = await readJsonBody(req, MAX_BODY_BYTES);
    if (body === undefined) return reply(res, 400, { error: `request body must be JSON of at most ${MAX_BODY_BYTES} bytes` });
    if (!isInitializeRequest(body)) return reply(res, 400, { error: 'missing mcp-session-id; send initialize first' });
    if (!(await sessions.reserve())) {
      res.setHeader('retry-after', '5');
      return reply(res, 503, { error: `session limit reached: all ${sessions.max_sessions} sessions are busy; retry later, or raise --max-sessions (CONCORD_HTTP_MAX_SESSIONS)` });
    }
    try {
      const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (id): void => sessions.add(id, transport),
      });
      transport.onclose = () => {
        if (transport.sessionId) sessions.remove(transport.sessionId);
      };
      if (opts.attach) await opts.attach(transport);
      else await (cluster ? createClusterProxy(cluster) : createServer(coord!)).connect(transport);
      await transport.handleRequest(req, res, body);
      if (!transport.sessionId) await transport.close();
    } finally {
      sessions.release();
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;
  hosts = allowedHosts(opts.host, port, opts.allowedHosts ?? []);
  const base = `http://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${port}`;
  coord?.advertise({ http: `${base}/mcp`, ...(dashboard ? { dashboard: `${base}/` } : {}) });
  logger.info({ host: opts.host, port, max_sessions: sessions.max_sessions, session_idle_ms: sessions.idle_ms, request_timeout_ms: requestTimeoutMs, max_connections: server.maxConnections }, 'concord MCP server on Streamable HTTP');
  return {
    port,
    coordinator: coord,
    cluster,
    close: async () => {
      dashboard?.hub.close();
      await sessions.closeAll();
      // Sessions are closed: drop the remaining keep-alive sockets too, or close() waits for
      // the clients' idle timeout (SIGTERM took ~4 s after any tool call).
      await new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      });
      coord?.close();
      cluster?.close();
    },
  };
}

function reply(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

