// MCP resource subscriptions (resources/subscribe): a client subscribed to a swarm's status or
// election history gets notifications/resources/updated when it changes: an election or
// leader change, an election record applied, a membership change (spawn, crash, restart,
// remove). Event-driven (Swarm.onChange), no polling; bursts (every member changes role in
// one election) are coalesced into one notification per resource per window. Listeners and
// the timer go away on unsubscribe and when the session closes; the timer is unref'd.

import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { ErrorCode, McpError, SubscribeRequestSchema, UnsubscribeRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import type { Coordinator } from '../service/coordinator.js';
import { UserError } from '../util/errors.js';
import type { SwarmChange } from '../swarm/swarm.js';
import { logger } from '../util/logger.js';

/** One notification per resource per window: an election's role changes arrive within it. */
export const RESOURCE_UPDATE_COALESCE_MS = 100;

/** The views a client can subscribe to, and the changes that alter each. */
const VIEWS: Record<string, ReadonlySet<SwarmChange>> = {
  status: new Set<SwarmChange>(['role', 'membership']),
  'election-history': new Set<SwarmChange>(['role', 'election']),
};

const URI_RE = /^concord:\/\/swarms\/([^/]+)\/([a-z-]+)$/;

export function enableResourceSubscriptions(server: McpServer, coord: Coordinator, coalesceMs = RESOURCE_UPDATE_COALESCE_MS): void {
  /** swarm -> subscribed views, and the listener that watches it. */
  const watched = new Map<string, { views: Set<string>; off: () => void }>();
  const dirty = new Set<string>();
  let timer: NodeJS.Timeout | null = null;
  let closed = false;

  const flush = (): void => {
    timer = null;
    for (const uri of [...dirty]) {
      dirty.delete(uri);
      server.server.sendResourceUpdated({ uri }).catch((e: Error) => logger.debug({ uri, err: e.message }, 'resource update not sent'));
    }
  };

  const parse = (uri: string): { swarm: string; view: string } => {
    const m = URI_RE.exec(uri);
    if (!m || !VIEWS[m[2]!]) {
      throw new McpError(ErrorCode.InvalidParams, `uri=${JSON.stringify(uri)}: subscribable resources are concord://swarms/{name}/status and concord://swarms/{name}/election-history`);
    }
    const swarm = decodeURIComponent(m[1]!);
    try {
      coord.swarm(swarm);
    } catch (e) {
      if (e instanceof UserError) throw new McpError(ErrorCode.InvalidParams, e.message);
      throw e;
    }
    return { swarm, view: m[2]! };
  };

  server.server.registerCapabilities({ resources: { subscribe: true } });
  server.server.setRequestHandler(SubscribeRequestSchema, async (req) => {
    if (closed) return {};
    const { swarm, view } = parse(req.params.uri);
    let w = watched.get(swarm);
    if (!w) {
      const views = new Set<string>();
      const off = coord.swarm(swarm).onChange((change) => {
        for (const v of views) if (VIEWS[v]!.has(change)) dirty.add(`concord://swarms/${swarm}/${v}`);
        if (dirty.size > 0 && timer === null) {
          timer = setTimeout(flush, coalesceMs);
          timer.unref();
        }
      });
      watched.set(swarm, (w = { views, off }));
    }
    w.views.add(view);
    return {};
  });
  server.server.setRequestHandler(UnsubscribeRequestSchema, async (req) => {
    const { swarm, view } = parse(req.params.uri);
    const w = watched.get(swarm);
    if (w) {
      w.views.delete(view);
      dirty.delete(req.params.uri);
      if (w.views.size === 0) {
        w.off();
        watched.delete(swarm);
      }
    }
    if (watched.size === 0 && timer !== null) {
      clearTimeout(timer);
      timer = null;
    }
    return {};
  });

  const previous = server.server.onclose;
  server.server.onclose = () => {
    closed = true;
    for (const w of watched.values()) w.off();
    watched.clear();
    dirty.clear();
    if (timer !== null) clearTimeout(timer);
    timer = null;
    previous?.();
  };
}
