// `concord mcp`, `concord serve` and `concord daemon`: the long-running processes.

import { randomBytes } from 'node:crypto';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { SocketServer } from '../daemon/socket-server.js';
import type { Coordinator } from '../service/coordinator.js';
import { logger } from '../util/logger.js';
import type { CommandContext } from './context.js';
import { clusterFrom } from './node-command.js';
import { stdioSettings } from './server-flags.js';

/** stdio MCP: a cluster proxy, in-process swarms (--embedded), or a pipe to the daemon. -1: keeps running. */
export async function runMcp(ctx: CommandContext): Promise<number> {
  const cluster = clusterFrom(ctx.flags);
  const settings = stdioSettings(ctx.flags);
  if (cluster || ctx.embedded) await (await import('../server/stdio.js')).runStdio({ dataDir: ctx.dataDir, cluster, ...settings });
  else await (await import('../daemon/proxy.js')).runProxy(ctx.dataDir, settings.maxMessageBytes);
  return -1;
}

/**
 * `concord serve --http HOST:PORT`: MCP over Streamable HTTP until SIGTERM / SIGINT. When a
 * daemon (or another serve) already owns the data directory, every HTTP session is a client
 * of it. When none does, serve owns the directory itself and shares it on the socket as a
 * daemon would: it is already the long-lived process, and a separate daemon would only add a
 * hop to every call.
 */
export async function runServe(ctx: CommandContext): Promise<number> {
  const { httpSettings } = await import('./server-flags.js');
  const http = httpSettings(ctx.flags);
  const { host } = http;
  const cluster = clusterFrom(ctx.flags);
  const owner = cluster || ctx.embedded ? null : await runningOwner(ctx.dataDir);
  const attach = owner ? (t: Transport) => import('../daemon/http-bridge.js').then((m) => m.bridgeToDaemon(owner.dir, t)) : undefined;
  // Loopback MCP may run without a token (documented), but the dashboard shows every memory
  // value and can crash agents: without a configured token it gets one of its own.
  const dashboardToken = http.token ? undefined : randomBytes(32).toString('base64url');
  const srv = await (await import('../server/http.js')).runHttp({ ...http, dashboardToken, dataDir: ctx.dataDir, cluster, attach });
  // The bound port, not the requested one: --http 127.0.0.1:0 picks a free port.
  const shown = host.includes(':') ? `[${host}]` : host;
  const serving = srv.cluster
    ? `cluster ${srv.cluster.members.join(',')}`
    : owner
      ? `attached to the daemon of ${owner.dir}${owner.pid ? ` (pid ${owner.pid})` : ''}`
      : `data: ${srv.coordinator!.dataDir}`;
  // The swarms are shared with stdio and CLI clients too, as a daemon shares them.
  const dashboard = srv.coordinator ? `http://${shown}:${srv.port}/` : null;
  const sock = srv.coordinator && !ctx.embedded ? await shareOverSocket(srv.coordinator, dashboard, dashboardToken) : null;
  process.stderr.write(`concord serving MCP at http://${shown}:${srv.port}/mcp (${serving})${sock ? `, clients also on ${sock.path}` : ''}\n`);
  if (dashboard && dashboardToken) {
    // Over the 0600 socket when there is one (concord dashboard); otherwise only here.
    process.stderr.write(sock ? `dashboard at ${dashboard} (concord dashboard --no-open prints the URL with its token)\n` : `dashboard at ${dashboard}#token=${dashboardToken}\n`);
  }
  const stop = () => void (sock?.close() ?? Promise.resolve()).finally(() => void srv.close().finally(() => process.exit(0)));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  return -1;
}

/** `concord daemon [run|start|status|stop|logs|help]`. */
export async function runDaemon(ctx: CommandContext): Promise<number> {
  return (await import('./daemon-command.js')).runDaemonCommand(ctx.positionals[0], ctx.flags);
}

/** The data directory's running daemon (or serve), when one answers on its socket. */
async function runningOwner(dataDir: string | undefined): Promise<{ dir: string; pid: number | null } | null> {
  const { resolveDataDir } = await import('../service/data-dir.js');
  const { control } = await import('../daemon/client.js');
  const dir = resolveDataDir(dataDir);
  const st = await control(dir, 'status').catch(() => null);
  return st ? { dir, pid: typeof st.pid === 'number' ? st.pid : null } : null;
}

/** `concord serve` shares its swarms on the daemon socket; a failure there only costs that. */
async function shareOverSocket(coord: Coordinator, dashboard: string | null, dashboardToken: string | undefined): Promise<SocketServer | null> {
  const { serveSocket } = await import('../daemon/socket-server.js');
  // The socket is owner-only: `concord dashboard` reads the dashboard's own token here.
  const describe = dashboardToken ? () => ({ dashboard, dashboard_token: dashboardToken }) : undefined;
  try {
    return await serveSocket(coord, { role: 'serve', stop: () => process.kill(process.pid, 'SIGTERM'), describe });
  } catch (e) {
    logger.warn({ err: (e as Error).message }, 'not sharing the swarms over the daemon socket');
    return null;
  }
}
