import { resolveDataDir } from '../service/data-dir.js';
import { logger } from '../util/logger.js';
import { connectDaemon } from './client.js';

/**
 * `concord mcp` as a thin client: a byte pipe between stdio and the daemon's socket, which
 * speaks the same newline-delimited JSON-RPC. Nothing is parsed, so progress notifications,
 * cancellations, resources, errors and structured content pass through unchanged.
 */
export async function runProxy(dataDir?: string): Promise<void> {
  const dir = resolveDataDir(dataDir);
  const sock = await connectDaemon(dir);
  logger.info({ dataDir: dir }, 'concord mcp attached to the daemon');
  const exit = (code: number) => {
    // Flush what the daemon already sent before leaving.
    process.stdout.write('', () => process.exit(code));
    setTimeout(() => process.exit(code), 1000).unref();
  };
  process.stdin.pipe(sock);
  sock.pipe(process.stdout, { end: false });
  sock.on('close', () => exit(0));
  sock.on('error', (e) => {
    logger.warn({ err: e.message }, 'daemon connection lost');
    exit(1);
  });
  process.on('SIGTERM', () => exit(0));
  process.on('SIGINT', () => exit(0));
}
