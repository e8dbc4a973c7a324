import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { Coordinator } from '../service/coordinator.js';
import { UserError } from '../util/errors.js';
import { dashboardRoutes, type Dashboard } from '../server/dashboard/routes.js';
import { tokenMatches } from '../server/http-guards.js';
import { observabilityRoutes } from '../server/observability.js';
import type { RouteHandler } from '../server/route-handler.js';
import { logger } from '../util/logger.js';
import { dashboardAddr, listenRoutes, type HttpListener } from './http-listener.js';
import { dashboardOpenPath } from './paths.js';
import { hasRunnableWork } from './status.js';
import { serveSocket, type SocketServer } from './socket-server.js';

export interface DaemonOptions {
  dataDir?: string;
  /** Exit after this long with no client attached and no runnable task; 0: never. */
  idleTimeoutS: number;
  /** Loopback address of the HTTP listener (dashboard); null: none; unset: CONCORD_DASHBOARD_ADDR or 127.0.0.1:0 (see dashboardAddr). */
  http?: { host: string; port: number } | null;
  /** More routes for the HTTP listener, after the dashboard's (e.g. metrics). */
  routes?: (coord: Coordinator) => RouteHandler[];
}

/**
 * `concord daemon`: the one owner of a data directory. Returns false when another process
 * already owns it (a racing start lost: the clients connect to the winner).
 */
export async function runDaemon(opts: DaemonOptions): Promise<boolean> {
  // Checked before taking the directory: a bad address fails the start, with the reason in the log.
  const httpAt = opts.http !== undefined ? opts.http : dashboardAddr(undefined);
  let coord: Coordinator;
  try {
    coord = new Coordinator({ dataDir: opts.dataDir });
  } catch (e) {
    if (e instanceof UserError && e.code === 'locked') {
      logger.warn({ reason: e.message }, 'not starting: the data directory already has an owner');
      process.stderr.write(`concord daemon not started: ${e.message}\n`);
      return false;
    }
    throw e;
  }
  const idleMs = opts.idleTimeoutS * 1000;
  let idleSinceMs = performance.now();
  let closing = false;
  let sock: SocketServer | undefined;
  let web: HttpListener | undefined;
  let dashboard: Dashboard | undefined;
  // The listener is on loopback, where every local user can connect: the token makes it
  // owner-only like the 0600 socket. Kept in memory and handed out only over that socket.
  const token = randomBytes(32).toString('base64url');
  // The page `concord dashboard` opened a browser with holds a token of this daemon's life only:
  // a previous life's is dead, and this one's goes when the daemon does.
  const dropOpenPage = () => fs.rmSync(dashboardOpenPath(coord.dataDir), { force: true });
  dropOpenPage();

  // An open dashboard page watches the swarms as an attached client does: it keeps the daemon up.
  const attached = () => (sock?.clients() ?? 0) + (dashboard?.hub.count() ?? 0);

  const shutdown = (why: string) => {
    if (closing) return;
    closing = true;
    logger.info({ why }, 'daemon shutting down');
    // Unref'd backstop: a stuck session must not keep a stopped daemon alive.
    setTimeout(() => process.exit(0), 3000).unref();
    dashboard?.hub.close();
    dropOpenPage();
    void Promise.all([sock?.close(), web?.close()])
      .catch((e: Error) => logger.error({ err: e.message }, 'closing the socket failed'))
      .finally(() => {
        coord.close();
        logger.info('daemon stopped');
        process.exit(0);
      });
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGHUP', () => undefined);

  try {
    if (httpAt) {
      dashboard = dashboardRoutes(coord, { bindHost: httpAt.host, token });
      web = await listenRoutes([dashboard.routes, tokenOnly(token, [observabilityRoutes(coord), ...(opts.routes?.(coord) ?? [])])], httpAt);
      coord.advertise({ dashboard: `${web.base}/` });
    }
    sock = await serveSocket(coord, {
      role: 'daemon',
      stop: () => shutdown('stop requested'),
      onClients: () => {
        idleSinceMs = performance.now();
      },
      describe: () => ({
        dashboard: web ? `${web.base}/` : null,
        // Owner-only: the socket is 0600 in a 0700 directory. `concord dashboard` builds the URL.
        dashboard_token: web ? token : null,
        dashboard_pages: dashboard?.hub.count() ?? 0,
        idle_timeout_s: opts.idleTimeoutS,
        idle_for_s: sock && attached() === 0 ? Math.round((performance.now() - idleSinceMs) / 100) / 10 : 0,
      }),
    });
  } catch (e) {
    await web?.close();
    coord.close();
    throw e;
  }
  process.stderr.write(`concord daemon pid ${process.pid} serving ${coord.dataDir} on ${sock.path}${web ? `, dashboard at ${web.base}/` : ''} (idle timeout ${opts.idleTimeoutS ? `${opts.idleTimeoutS} s` : 'off'})\n`);

  if (idleMs > 0) {
    const every = Math.min(1000, Math.max(50, idleMs / 4));
    // Unref'd: the listening socket is what keeps the daemon alive.
    setInterval(() => {
      if (closing) return;
      const now = performance.now();
      if (attached() > 0 || hasRunnableWork(coord)) idleSinceMs = now;
      else if (now - idleSinceMs >= idleMs) shutdown(`idle for ${opts.idleTimeoutS} s`);
    }, every).unref();
  }
  return true;
}

/**
 * Everything but the dashboard's page files needs the token on the daemon's listener:
 * /metrics and /health name the swarms and count their keys, and only the owner may see them.
 */
function tokenOnly(token: string, routes: RouteHandler[]): RouteHandler {
  return async (req, res) => {
    if (!tokenMatches(req.headers.authorization, token)) {
      res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'missing or wrong bearer token (concord dashboard --no-open prints the URL with it)' }));
      return true;
    }
    for (const r of routes) if (await r(req, res)) return true;
    return false;
  };
}
