import { Coordinator } from '../service/coordinator.js';
import { UserError } from '../service/errors.js';
import { logger } from '../util/logger.js';
import { hasRunnableWork } from './status.js';
import { serveSocket, type SocketServer } from './socket-server.js';

export interface DaemonOptions {
  dataDir?: string;
  /** Exit after this long with no client attached and no runnable task; 0: never. */
  idleTimeoutS: number;
}

/**
 * `concord daemon`: the one owner of a data directory. Returns false when another process
 * already owns it (a racing start lost: the clients connect to the winner).
 */
export async function runDaemon(opts: DaemonOptions): Promise<boolean> {
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

  const shutdown = (why: string) => {
    if (closing) return;
    closing = true;
    logger.info({ why }, 'daemon shutting down');
    // Unref'd backstop: a stuck session must not keep a stopped daemon alive.
    setTimeout(() => process.exit(0), 3000).unref();
    void (sock?.close() ?? Promise.resolve())
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
    sock = await serveSocket(coord, {
      role: 'daemon',
      stop: () => shutdown('stop requested'),
      onClients: () => {
        idleSinceMs = performance.now();
      },
      describe: () => ({
        idle_timeout_s: opts.idleTimeoutS,
        idle_for_s: sock && sock.clients() === 0 ? Math.round((performance.now() - idleSinceMs) / 100) / 10 : 0,
      }),
    });
  } catch (e) {
    coord.close();
    throw e;
  }
  process.stderr.write(`concord daemon pid ${process.pid} serving ${coord.dataDir} on ${sock.path} (idle timeout ${opts.idleTimeoutS ? `${opts.idleTimeoutS} s` : 'off'})\n`);

  if (idleMs > 0) {
    const every = Math.min(1000, Math.max(50, idleMs / 4));
    // Unref'd: the listening socket is what keeps the daemon alive.
    setInterval(() => {
      if (closing) return;
      const now = performance.now();
      if (sock!.clients() > 0 || hasRunnableWork(coord)) idleSinceMs = now;
      else if (now - idleSinceMs >= idleMs) shutdown(`idle for ${opts.idleTimeoutS} s`);
    }, every).unref();
  }
  return true;
}
