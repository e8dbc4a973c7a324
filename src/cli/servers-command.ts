// `concord mcp`, `concord serve` and `concord daemon`: the long-running processes.

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

/** `concord serve --http HOST:PORT`: MCP over Streamable HTTP until SIGTERM / SIGINT. */
export async function runServe(ctx: CommandContext): Promise<number> {
  const { httpSettings } = await import('./server-flags.js');
  const http = httpSettings(ctx.flags);
  const { host } = http;
  const srv = await (await import('../server/http.js')).runHttp({ ...http, dataDir: ctx.dataDir, cluster: clusterFrom(ctx.flags) });
  // The bound port, not the requested one: --http 127.0.0.1:0 picks a free port.
  const shown = host.includes(':') ? `[${host}]` : host;
  const serving = srv.cluster ? `cluster ${srv.cluster.members.join(',')}` : `data: ${srv.coordinator!.dataDir}`;
  // The swarms are shared with stdio and CLI clients too, as a daemon shares them.
  const sock = srv.coordinator && !ctx.embedded ? await shareOverSocket(srv.coordinator) : null;
  process.stderr.write(`concord serving MCP at http://${shown}:${srv.port}/mcp (${serving})${sock ? `, clients also on ${sock.path}` : ''}\n`);
  const stop = () => void (sock?.close() ?? Promise.resolve()).finally(() => void srv.close().finally(() => process.exit(0)));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  return -1;
}

/** `concord daemon [run|start|status|stop|logs|help]`. */
export async function runDaemon(ctx: CommandContext): Promise<number> {
  return (await import('./daemon-command.js')).runDaemonCommand(ctx.positionals[0], ctx.flags);
}

/** `concord serve` shares its swarms on the daemon socket; a failure there only costs that. */
async function shareOverSocket(coord: Coordinator): Promise<SocketServer | null> {
  const { serveSocket } = await import('../daemon/socket-server.js');
  try {
    return await serveSocket(coord, { role: 'serve', stop: () => process.kill(process.pid, 'SIGTERM') });
  } catch (e) {
    logger.warn({ err: (e as Error).message }, 'not sharing the swarms over the daemon socket');
    return null;
  }
}
