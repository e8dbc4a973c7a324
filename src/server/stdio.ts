import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { Coordinator, type CoordinatorOptions } from '../service/coordinator.js';
import { logger } from '../util/logger.js';
import { createServer } from './create-server.js';

/** MCP over stdio. Exits when stdin closes or on SIGTERM/SIGINT, closing SQLite cleanly. */
export async function runStdio(opts: CoordinatorOptions = {}): Promise<void> {
  const coord = new Coordinator(opts);
  const server = createServer(coord);
  const transport = new StdioServerTransport();
  let closing = false;
  const shutdown = (why: string) => {
    if (closing) return;
    closing = true;
    logger.info({ why }, 'shutting down');
    coord.close();
    void server.close().finally(() => process.exit(0));
    // Unref'd backstop: never hang past the 2 s budget.
    setTimeout(() => process.exit(0), 1500).unref();
  };
  process.stdin.on('end', () => shutdown('stdin closed'));
  process.stdin.on('close', () => shutdown('stdin closed'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  await server.connect(transport);
  logger.info({ dataDir: coord.dataDir }, 'concord MCP server on stdio');
}
