import { randomUUID, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { ClusterClient } from '../cluster/cluster-client.js';
import { Coordinator } from '../service/coordinator.js';
import { logger } from '../util/logger.js';
import { createClusterProxy } from './cluster-proxy.js';
import { createServer } from './create-server.js';
import type { ServeOptions } from './stdio.js';

export interface HttpOptions extends ServeOptions {
  host: string;
  port: number;
  /** Required as `Authorization: Bearer <token>` when set (CONCORD_HTTP_TOKEN). */
  token?: string;
  /** Extra allowed Origin values; loopback origins are always allowed. */
  allowedOrigins?: string[];
}

const MAX_BODY_BYTES = 4 << 20;

/**
 * MCP over Streamable HTTP so several assistants share one set of swarms. Loopback by
 * default; Origin is checked (DNS-rebinding defence) and an optional bearer token required.
 */
export async function runHttp(opts: HttpOptions): Promise<{ close: () => Promise<void>; port: number; coordinator: Coordinator | null; cluster: ClusterClient | null }> {
  const cluster = opts.cluster ? new ClusterClient(opts.cluster) : null;
  const coord = cluster ? null : new Coordinator(opts);
  const sessions = new Map<string, StreamableHTTPServerTransport>();

  const server = http.createServer((req, res) => {
    void handle(req, res).catch((e: Error) => {
      logger.error({ err: e.stack }, 'http request failed');
      if (!res.headersSent) reply(res, 500, { error: 'internal error' });
    });
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== '/mcp') return reply(res, 404, { error: 'not found: the MCP endpoint is /mcp' });
    const origin = req.headers.origin;
    if (origin && !originAllowed(origin, opts.allowedOrigins ?? [])) return reply(res, 403, { error: `origin ${origin} not allowed` });
    if (opts.token && !tokenMatches(req.headers.authorization, opts.token)) return reply(res, 401, { error: 'missing or wrong bearer token' });
    const sid = req.headers['mcp-session-id'];
    const existing = typeof sid === 'string' ? sessions.get(sid) : undefined;
    if (req.method === 'POST') {
      const body = await readJson(req);
      if (body === undefined) return reply(res, 400, { error: `request body must be JSON of at most ${MAX_BODY_BYTES} bytes` });
      if (existing) return existing.handleRequest(req, res, body);
      if (!isInitializeRequest(body)) return reply(res, 400, { error: 'no valid mcp-session-id; send initialize first' });
      const transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (id) => {
          sessions.set(id, transport);
        },
      });
      transport.onclose = () => {
        if (transport.sessionId) sessions.delete(transport.sessionId);
      };
      await (cluster ? createClusterProxy(cluster) : createServer(coord!)).connect(transport);
      return transport.handleRequest(req, res, body);
    }
    if (!existing) return reply(res, 400, { error: 'unknown or missing mcp-session-id' });
    return existing.handleRequest(req, res);
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;
  coord?.advertise({ http: `http://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${port}/mcp` });
  logger.info({ host: opts.host, port }, 'concord MCP server on Streamable HTTP');
  return {
    port,
    coordinator: coord,
    cluster,
    close: async () => {
      for (const t of sessions.values()) await t.close().catch(() => undefined);
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

function originAllowed(origin: string, extra: string[]): boolean {
  if (extra.includes(origin)) return true;
  try {
    const h = new URL(origin).hostname;
    return h === 'localhost' || h === '127.0.0.1' || h === '[::1]' || h === '::1';
  } catch {
    return false;
  }
}

function tokenMatches(header: string | undefined, token: string): boolean {
  const given = Buffer.from(header?.startsWith('Bearer ') ? header.slice(7) : '');
  const want = Buffer.from(token);
  return given.length === want.length && timingSafeEqual(given, want);
}

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY_BYTES) return undefined;
    chunks.push(c as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    return undefined;
  }
}
