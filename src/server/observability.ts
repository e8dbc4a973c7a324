// GET /metrics, /health and /readyz as one route handler, mounted by `concord serve --http`,
// by `concord node --metrics HOST:PORT` (a listener of its own, startMetricsListener) and by
// the daemon's HTTP listener. Read-only: no request here changes anything.

import http from 'node:http';
import type { Coordinator } from '../service/coordinator.js';
import { UserError } from '../util/errors.js';
import { swarmHealth, type SwarmHealth } from '../service/health.js';
import { sampleAll } from '../service/metrics-source.js';
import { logger } from '../util/logger.js';
import { allowedHosts, hostAllowed } from './http-guards.js';
import { ConcordMetrics, METRICS_CONTENT_TYPE } from './metrics.js';
import type { RouteHandler } from './route-handler.js';


export const OBSERVABILITY_PATHS: ReadonlySet<string> = new Set(['/metrics', '/health', '/readyz']);

/**
 * /metrics: Prometheus text. /health: 200 when the swarm (?swarm=NAME, else every swarm) has
 * a leader with a quorum, 503 with the reason otherwise. /readyz: 200 when it can also serve
 * current reads and writes now (its leader committed an entry of its term, no disk fault).
 */
export function observabilityRoutes(coord: Coordinator): RouteHandler {
  const metrics = new ConcordMetrics(() => sampleAll(coord));
  return async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (!OBSERVABILITY_PATHS.has(url.pathname)) return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'application/json' }).end(JSON.stringify({ error: `${req.method} not allowed on ${url.pathname}: GET or HEAD` }));
      return true;
    }
    if (url.pathname === '/metrics') {
      const text = await metrics.render();
      res.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE, 'cache-control': 'no-store' }).end(req.method === 'HEAD' ? undefined : text);
      return true;
    }
    const ready = url.pathname === '/readyz';
    const name = url.searchParams.get('swarm');
    let checked: SwarmHealth[];
    try {
      checked = name !== null ? [swarmHealth(coord.swarm(name))] : coord.names().map((n) => swarmHealth(coord.swarm(n)));
    } catch (e) {
      if (!(e instanceof UserError)) throw e;
      json(res, 404, { status: 'unknown swarm', error: e.message });
      return true;
    }
    const ok = (h: SwarmHealth) => (ready ? h.ready : h.healthy);
    const failing = checked.filter((h) => !ok(h));
    const status = failing.length === 0 ? 200 : 503;
    const body =
      name !== null
        ? { status: status === 200 ? 'ok' : 'unavailable', ...checked[0]! }
        : {
            status: status === 200 ? 'ok' : 'unavailable',
            reason: failing.length === 0 ? null : failing.map((h) => `${h.swarm}: ${h.reason}`).join('; '),
            ...(checked.length === 0 ? { note: 'no swarms yet: nothing to be unhealthy' } : {}),
            swarms: checked,
          };
    json(res, status, body, req.method === 'HEAD');
    return true;
  };
}

function json(res: http.ServerResponse, status: number, body: unknown, headOnly = false): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(headOnly ? undefined : JSON.stringify(body));
}

/**
 * A listener of its own for /metrics, /health and /readyz (etcd's --listen-metrics-urls): no
 * token, so scrapers and load balancers need no MCP credential; bind it where only they can
 * reach it. Host is checked on loopback binds (DNS rebinding), as on the MCP listener.
 */
export async function startMetricsListener(o: { host: string; port: number; coord: Coordinator }): Promise<{ port: number; close: () => Promise<void> }> {
  const routes = observabilityRoutes(o.coord);
  let hosts: Set<string> | null = null;
  const server = http.createServer({ requestTimeout: 10_000, headersTimeout: 10_000 }, (req, res) => {
    void (async () => {
      if (!hostAllowed(req.headers.host, hosts)) return json(res, 403, { error: `Host header ${JSON.stringify(req.headers.host ?? '')} not allowed` });
      if (!(await routes(req, res))) json(res, 404, { error: 'not found: this listener serves /metrics, /health and /readyz' });
    })().catch((e: Error) => {
      logger.error({ err: e.stack }, 'metrics request failed');
      if (!res.headersSent) json(res, 500, { error: 'internal error' });
    });
  });
  server.maxConnections = 64;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : o.port;
  hosts = allowedHosts(o.host, port, []);
  return {
    port,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}
