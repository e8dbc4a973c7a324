import http from 'node:http';
import { UserError } from '../util/errors.js';
import { allowedHosts, hostAllowed, isLoopback } from '../server/http-guards.js';
import type { RouteHandler } from '../server/route-handler.js';
import { logger } from '../util/logger.js';

export const DASHBOARD_ADDR_ENV = 'CONCORD_DASHBOARD_ADDR';
const DEFAULT_ADDR = '127.0.0.1:0';
const REQUEST_TIMEOUT_MS = 10_000;
const MAX_CONNECTIONS = 256;

export interface HttpListener {
  /** e.g. http://127.0.0.1:41234 (no trailing slash). */
  readonly base: string;
  close(): Promise<void>;
}

/**
 * The daemon's HTTP address: --dashboard HOST:PORT, else CONCORD_DASHBOARD_ADDR, else
 * 127.0.0.1 on a free port; "off" serves none. Loopback only: the daemon's token is made up
 * per start for its owner's browser, and anything beyond loopback belongs to
 * `concord serve --http` with --token-file.
 */
export function dashboardAddr(flag: string | boolean | undefined, env: Record<string, string | undefined> = process.env): { host: string; port: number } | null {
  const raw = typeof flag === 'string' ? flag : env[DASHBOARD_ADDR_ENV] || DEFAULT_ADDR;
  if (raw === 'off') return null;
  const m = /^(.*):(\d{1,5})$/.exec(raw);
  const host = m?.[1]?.replace(/^\[|\]$/g, '');
  if (!m || !host || Number(m[2]) > 65535 || !isLoopback(host)) {
    throw new UserError(
      'invalid_argument',
      `dashboard address ${JSON.stringify(raw)} (--dashboard or ${DASHBOARD_ADDR_ENV}) is not valid; accepted: a loopback HOST:PORT such as 127.0.0.1:0 (port 0: any free one), or "off". To serve beyond loopback use concord serve --http HOST:PORT --token-file FILE`,
      'dashboard',
    );
  }
  return { host, port: Number(m[2]) };
}

/**
 * A small loopback HTTP server trying `routes` in order (404 when none answers). The Host
 * header is checked as `concord serve` does, so a rebound DNS name cannot reach it.
 */
export async function listenRoutes(routes: RouteHandler[], addr: { host: string; port: number }): Promise<HttpListener> {
  let hosts: Set<string> | null = null;
  const server = http.createServer({ requestTimeout: REQUEST_TIMEOUT_MS, headersTimeout: REQUEST_TIMEOUT_MS, connectionsCheckingInterval: 1_000 }, (req, res) => {
    void (async () => {
      if (!hostAllowed(req.headers.host, hosts)) {
        res.writeHead(403, { 'content-type': 'application/json' }).end(JSON.stringify({ error: `Host header ${JSON.stringify(req.headers.host ?? '')} not allowed` }));
        return;
      }
      for (const r of routes) if (await r(req, res)) return;
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: `not found: ${req.url}` }));
    })().catch((e: Error) => {
      if (req.socket.destroyed) return;
      logger.error({ err: e.stack }, 'daemon http request failed');
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'internal error' }));
    });
  });
  server.maxConnections = MAX_CONNECTIONS;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(addr.port, addr.host, () => resolve());
  });
  const a = server.address();
  const port = typeof a === 'object' && a ? a.port : addr.port;
  hosts = allowedHosts(addr.host, port, []);
  const base = `http://${addr.host.includes(':') ? `[${addr.host}]` : addr.host}:${port}`;
  return {
    base,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}
