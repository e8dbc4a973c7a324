import fs from 'node:fs';
import type http from 'node:http';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { DEFAULT_SWARM, type Coordinator } from '../../service/coordinator.js';
import { UserError } from '../../util/errors.js';
import { memoryList, memoryRetrieve } from '../../service/memory.js';
import { logger } from '../../util/logger.js';
import { isLoopback, originAllowed, tokenMatches } from '../http-guards.js';
import { readJsonBody } from '../http-body.js';
import type { RouteHandler } from '../route-handler.js';
import { ACTIONS } from './actions.js';
import { DashboardHub } from './hub.js';

export interface DashboardOptions {
  /** The address the listener is bound to: beyond loopback, data and actions need the token. */
  bindHost: string;
  /** The server's bearer token; when set, every /dashboard/ API call must carry it. */
  token?: string;
  /** Extra allowed Origin values for actions (loopback and same-origin are always allowed). */
  allowedOrigins?: string[];
}

export interface Dashboard {
  routes: RouteHandler;
  hub: DashboardHub;
}

const MEMORY_PAGE = 50;
const MAX_BODY_BYTES = 64 << 10;
/** Open event streams at most (pages; one each). */
export const MAX_STREAMS = 32;

/**
 * The page files live beside this module, in src/server/dashboard/web (shipped: package.json
 * "files"); this module runs from src/server/dashboard (tsx, vitest), dist/src/server/dashboard
 * (tsc's output) or dist/src/chunks (the CLI bundle).
 */
function webDir(): string {
  for (const up of ['./web/', '../../../../src/server/dashboard/web/', '../../../src/server/dashboard/web/']) {
    const dir = fileURLToPath(new URL(up, import.meta.url));
    if (fs.existsSync(`${dir}index.html`)) return dir;
  }
  throw new Error(`dashboard files not found next to ${fileURLToPath(import.meta.url)} (expected src/server/dashboard/web/index.html in the package)`);
}

/** uPlot is a runtime dependency: served from wherever node resolves it, never a CDN. */
function uplotFile(name: string): string {
  return createRequire(import.meta.url).resolve(`uplot/dist/${name}`);
}

const STATIC: Record<string, { file: () => string; type: string }> = {
  '/': { file: () => `${webDir()}index.html`, type: 'text/html; charset=utf-8' },
  '/dashboard/': { file: () => `${webDir()}index.html`, type: 'text/html; charset=utf-8' },
  '/dashboard/app.js': { file: () => `${webDir()}app.js`, type: 'text/javascript; charset=utf-8' },
  '/dashboard/app.css': { file: () => `${webDir()}app.css`, type: 'text/css; charset=utf-8' },
  '/dashboard/vendor/uPlot.iife.min.js': { file: () => uplotFile('uPlot.iife.min.js'), type: 'text/javascript; charset=utf-8' },
  '/dashboard/vendor/uPlot.min.css': { file: () => uplotFile('uPlot.min.css'), type: 'text/css; charset=utf-8' },
};

/**
 * The live dashboard: the page and its files, one server-sent-event stream of swarm
 * snapshots, the memory browser's reads and the fault controls. Reads and actions need the
 * server's bearer token when it has one, and are refused beyond loopback without one;
 * actions are POST only, JSON only, and refused from foreign origins.
 */
export function dashboardRoutes(coord: Coordinator, opts: DashboardOptions): Dashboard {
  const hub = new DashboardHub(coord);
  const cache = new Map<string, Buffer>();

  const routes: RouteHandler = async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    const file = STATIC[path];
    if (file) {
      if (req.method !== 'GET' && req.method !== 'HEAD') return refuse(res, 405, `${req.method} ${path}: only GET`, { allow: 'GET, HEAD' });
      let body = cache.get(path);
      if (!body) cache.set(path, (body = fs.readFileSync(file.file())));
      res.writeHead(200, { 'content-type': file.type, 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' });
      res.end(req.method === 'HEAD' ? undefined : body);
      return true;
    }
    if (!path.startsWith('/dashboard/api/')) return false;
    // Browsers label every request with where it comes from. Another site (or another port:
    // "same-site") may not make the page's API calls, reads included: a GET needs no
    // preflight, and an <img> pointed at the event stream would hold it open (and the daemon
    // up) for as long as that page stays open. Clients that are not browsers send no label.
    const site = req.headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin' && site !== 'none') return refuse(res, 403, `dashboard API calls come from the dashboard page itself (Sec-Fetch-Site: ${site})`);
    if (!opts.token && !isLoopback(opts.bindHost)) return refuse(res, 403, `the dashboard API is refused: this server listens on ${opts.bindHost} (beyond loopback) without a bearer token`);
    if (opts.token && !tokenMatches(req.headers.authorization, opts.token)) return refuse(res, 401, 'missing or wrong bearer token (open the page as /#token=<token>)');
    const action = /^\/dashboard\/api\/actions\/([a-z-]+)$/.exec(path)?.[1];
    if (action !== undefined) {
      // No side effect on GET: a link, an <img> or a prefetch must never crash an agent.
      if (req.method !== 'POST') return refuse(res, 405, `${req.method} ${path}: actions are POST only`, { allow: 'POST' });
      const origin = req.headers.origin;
      if (origin && !originAllowed(origin, opts.allowedOrigins ?? []) && origin !== `http://${req.headers.host ?? ''}`) return refuse(res, 403, `origin ${origin} not allowed`);
      // A cross-site form can post text/plain without a preflight, never application/json.
      if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) return refuse(res, 415, 'actions take a JSON body (content-type: application/json)');
      const fn = ACTIONS[action];
      if (!fn) return refuse(res, 404, `no action ${action}; accepted: ${Object.keys(ACTIONS).join(', ')}`);
      const body = await readBody(req);
      if (body === undefined) return refuse(res, 400, `the body must be a JSON object of at most ${MAX_BODY_BYTES} bytes`);
      logger.info({ action, body }, 'dashboard action');
      return answer(res, async () => {
        try {
          return await fn(coord, body);
        } finally {
          hub.poke();
        }
      });
    }
    if (req.method !== 'GET') return refuse(res, 405, `${req.method} ${path}: only GET`, { allow: 'GET' });
    const q = url.searchParams;
    // Named, so a read never creates the default swarm (coord.swarm() without a name would):
    // any page can make a browser send this GET.
    const swarm = () => coord.swarm(q.get('swarm') ?? DEFAULT_SWARM);
    switch (path) {
      case '/dashboard/api/events':
        // Each stream holds a connection for as long as it is open: capped well below the
        // listener's connection limit, so open streams can never lock out /metrics, /health
        // and the actions.
        if (hub.count() >= MAX_STREAMS) {
          return refuse(res, 503, `${hub.count()} dashboard streams are open (at most ${MAX_STREAMS}); close a page and retry`, { 'retry-after': '5' });
        }
        hub.attach(req, res);
        return true;
      case '/dashboard/api/memory': {
        const page = Number(q.get('page') ?? '1');
        if (!Number.isInteger(page) || page < 1 || page > 200) return refuse(res, 400, `page=${q.get('page')} is not valid; accepted: an integer 1..200`);
        // memory_list has no cursor: take the pages up to this one and return the last.
        return answer(res, async () => {
          const r = await memoryList(swarm(), { prefix: q.get('prefix') ?? '', namespace: q.get('namespace') ?? undefined, limit: page * MEMORY_PAGE, consistency: 'local' });
          const keys = (r.keys as unknown[]).slice((page - 1) * MEMORY_PAGE);
          return { ...r, page, page_size: MEMORY_PAGE, keys };
        });
      }
      case '/dashboard/api/memory/key':
        return answer(res, () => memoryRetrieve(swarm(), { key: q.get('key') ?? '', namespace: q.get('namespace') ?? undefined }));
      default:
        return refuse(res, 404, `not found: ${path}`);
    }
  };
  return { routes, hub };
}

function refuse(res: http.ServerResponse, status: number, error: string, headers: Record<string, string> = {}): true {
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify({ error }));
  return true;
}

async function answer(res: http.ServerResponse, fn: () => Promise<unknown>): Promise<true> {
  try {
    const v = await fn();
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(v));
  } catch (e) {
    if (!(e instanceof UserError)) throw e;
    const status = e.code === 'not_found' ? 404 : e.code === 'invalid_argument' ? 400 : e.code === 'conflict' ? 409 : 503;
    refuse(res, status, e.message);
  }
  return true;
}

async function readBody(req: http.IncomingMessage): Promise<Record<string, unknown> | undefined> {
  const v = await readJsonBody(req, MAX_BODY_BYTES, {});
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}
