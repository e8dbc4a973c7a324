import { ClusterClient, type ClusterClientOptions } from '../cluster/cluster-client.js';
import { Coordinator, type CoordinatorOptions } from '../service/coordinator.js';
import { logger } from '../util/logger.js';
import { createClusterProxy } from './cluster-proxy.js';
import { createServer } from './create-server.js';
import { LineStdioTransport } from './line-stdio-transport.js';

export interface ServeOptions extends CoordinatorOptions {
  /** Serve a running cluster of `concord node` processes instead of embedded swarms. */
  cluster?: ClusterClientOptions;
  /** Longest stdio line (one JSON-RPC message) accepted; longer ones get a -32600 error. */
  maxMessageBytes?: number;
}

/** MCP over stdio. Exits when stdin closes or on SIGTERM/SIGINT, closing SQLite cleanly. */
export async function runStdio(opts: ServeOptions = {}): Promise<void> {
  const cluster = opts.cluster ? new ClusterClient(opts.cluster) : null;
  const coord = cluster ? null : new Coordinator(opts);
  const server = cluster ? createClusterProxy(cluster) : createServer(coord!);
  const transport = new LineStdioTransport(opts.maxMessageBytes);
  let closing = false;
  const shutdown = (why: string) => {
    if (closing) return;
    closing = true;
    logger.info({ why }, 'shutting down');
    coord?.close();
    cluster?.close();
    void server.close().finally(() => process.exit(0));
    // Unref'd backstop: never hang past the 2 s budget.
    setTimeout(() => process.exit(0), 1500).unref();
  };
  process.stdin.on('end', () => shutdown('stdin closed'));
  process.stdin.on('close', () => shutdown('stdin closed'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  // Set before connect: the SDK chains its own handlers after these. A bad line is logged (it
  // used to vanish); a transport that closes for any reason shuts down cleanly, never silently.
  transport.onerror = (e) => logger.warn({ err: e.message }, 'stdio: unreadable message skipped');
  transport.onclose = () => shutdown('stdio transport closed');
  await server.connect(transport);
  if (cluster) logger.info({ cluster: cluster.members }, 'concord MCP server on stdio (cluster mode)');
  else logger.info({ dataDir: coord!.dataDir }, 'concord MCP server on stdio');
}
