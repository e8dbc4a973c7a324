import fs from 'node:fs';
import net from 'node:net';
import { deserializeMessage, serializeMessage } from '@modelcontextprotocol/sdk/shared/stdio.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { createServer } from '../server/create-server.js';
import type { Coordinator } from '../service/coordinator.js';
import { logger } from '../util/logger.js';
import { CONTROL_METHOD, STOPPING_METHOD, socketPath } from './paths.js';
import { SocketTransport } from './socket-transport.js';
import { swarmSummaries } from './status.js';

const MAX_FIRST_LINE_BYTES = 4 << 20;

export interface SocketServerOptions {
  /** 'daemon' or 'serve' (a `concord serve` process shares its swarms over the socket too). */
  role: string;
  /** Extra fields for `daemon status` (e.g. the idle timer). */
  describe?: () => Record<string, unknown>;
  /** Called when `daemon stop` asks this process to exit gracefully. */
  stop: () => void;
  /** The attached-client count changed. */
  onClients?: (n: number) => void;
}

export interface SocketServer {
  readonly path: string;
  clients(): number;
  status(): Record<string, unknown>;
  close(): Promise<void>;
}

/**
 * Serve one MCP session per connection on `<dataDir>/concord.sock`. The caller owns the
 * data-directory lock, so any socket file already there belongs to a dead owner.
 */
export async function serveSocket(coord: Coordinator, opts: SocketServerOptions): Promise<SocketServer> {
  const file = socketPath(coord.dataDir);
  const startedMs = Date.now();
  const sessions = new Set<SocketTransport>();
  removeStaleSocket(file);

  const status = (): Record<string, unknown> => ({
    role: opts.role,
    pid: process.pid,
    data_dir: coord.dataDir,
    socket: file,
    started_at: new Date(startedMs).toISOString(),
    uptime_s: Math.round((Date.now() - startedMs) / 100) / 10,
    attached_clients: sessions.size,
    swarms: swarmSummaries(coord),
    ...opts.describe?.(),
  });

  const attach = async (sock: net.Socket, first: JSONRPCMessage[], rest: Buffer) => {
    const transport = new SocketTransport(sock, first, rest);
    const server = createServer(coord);
    sessions.add(transport);
    opts.onClients?.(sessions.size);
    transport.onclose = () => {
      if (!sessions.delete(transport)) return;
      opts.onClients?.(sessions.size);
      logger.debug({ clients: sessions.size }, 'client detached');
    };
    await server.connect(transport);
    sock.resume();
    logger.debug({ clients: sessions.size }, 'client attached');
  };

  const control = (sock: net.Socket, msg: { id: string | number; params?: { op?: string } }) => {
    const op = msg.params?.op;
    const answer = (body: Record<string, unknown>) => sock.end(serializeMessage({ jsonrpc: '2.0', id: msg.id, ...body } as JSONRPCMessage));
    if (op === 'status') return answer({ result: status() });
    if (op === 'stop') {
      answer({ result: { stopping: true, pid: process.pid } });
      logger.info('stop requested over the socket');
      // After the answer is flushed: the client sees the reply, then the socket file goes.
      sock.once('close', () => opts.stop());
      return;
    }
    answer({ error: { code: -32602, message: `op=${JSON.stringify(op)} is not valid; accepted: "status", "stop"` } });
  };

  const server = net.createServer((sock) => {
    let head = Buffer.alloc(0);
    sock.on('error', (e) => logger.debug({ err: e.message }, 'client socket error'));
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const nl = head.indexOf(0x0a);
      if (nl < 0) {
        if (head.length > MAX_FIRST_LINE_BYTES) sock.destroy();
        return;
      }
      // Paused until the session's transport listens: no byte is lost in between.
      sock.pause();
      sock.off('data', onData);
      let first: JSONRPCMessage | undefined;
      try {
        first = deserializeMessage(head.toString('utf8', 0, nl).replace(/\r$/, ''));
      } catch {
        first = undefined;
      }
      if (first && 'method' in first && first.method === CONTROL_METHOD && 'id' in first) {
        control(sock, first as { id: string | number; params?: { op?: string } });
        return;
      }
      // A bad first line is handed to the session as bytes: the transport reports it.
      const rest = first ? head.subarray(nl + 1) : head;
      void attach(sock, first ? [first] : [], rest).catch((e: Error) => {
        logger.error({ err: e.stack }, 'session setup failed');
        sock.destroy();
      });
    };
    sock.on('data', onData);
  });

  const oldMask = process.umask(0o077);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(file, () => resolve());
    });
  } finally {
    process.umask(oldMask);
  }
  fs.chmodSync(file, 0o600);
  coord.advertise({ socket: file, role: opts.role });
  logger.info({ socket: file }, 'listening for clients');

  return {
    path: file,
    clients: () => sessions.size,
    status,
    close: async () => {
      const closed = new Promise<void>((r) => server.close(() => r()));
      for (const t of [...sessions]) {
        await t.send({ jsonrpc: '2.0', method: STOPPING_METHOD }).catch(() => undefined);
        await t.close().catch(() => undefined);
      }
      await closed;
      // Still holding the data-dir lock here: nobody else can have bound a new socket.
      fs.rmSync(file, { force: true });
    },
  };
}

function removeStaleSocket(file: string): void {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(file);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new Error(`${file} exists and is not a socket; move it away so the daemon can listen there`);
  fs.rmSync(file);
}
