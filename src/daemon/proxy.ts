import { DEFAULT_STDIO_MAX_MESSAGE_BYTES, MESSAGE_TOO_LARGE_CODE, topLevelId } from '../server/line-stdio-transport.js';
import type net from 'node:net';
import { resolveDataDir } from '../service/data-dir.js';
import { logger } from '../util/logger.js';
import { connectDaemon } from './client.js';
import { STOPPING_METHOD } from './paths.js';

type Id = string | number;
const MAX_RECONNECTS_PER_MIN = 5;

/**
 * `concord mcp` as a thin client: stdio lines go to the daemon's socket and back unchanged
 * (the same newline-delimited JSON-RPC), so progress notifications, cancellations, resources,
 * errors and structured content pass through as they are. Lines are only looked at to survive
 * a daemon that died (kill -9, crash): the proxy starts a new one, replays the session's
 * initialize handshake and the session's resource subscriptions, and answers the requests
 * the dead one held with an error.
 */
export async function runProxy(dataDir?: string, maxMessageBytes = DEFAULT_STDIO_MAX_MESSAGE_BYTES): Promise<void> {
  const dir = resolveDataDir(dataDir);
  let sock = await connectDaemon(dir);
  logger.info({ dataDir: dir }, 'concord mcp attached to the daemon');
  let initLine: string | null = null;
  let initializedLine: string | null = null;
  /** Resources the client subscribed to: a new daemon knows none of them, so they are re-sent. */
  const subscribed = new Set<string>();
  /** Ids of the proxy's own re-subscriptions: their answers are not the client's. */
  const ownIds = new Set<string>();
  const pending = new Map<string, Id>();
  let queue: string[] | null = null; // set while reconnecting
  let replayId: string | null = null;
  let resubscribes = 0;
  let stdinEnded = false;
  let stopping = false;
  const reconnects: number[] = [];

  const exit = (code: number) => {
    process.stdout.write('', () => process.exit(code));
    setTimeout(() => process.exit(code), 1000).unref();
  };

  /** To the daemon; a request written is in flight until its answer comes back. */
  const send = (line: string) => {
    const m = parse(line);
    if (m?.method !== undefined && m.id !== undefined) pending.set(JSON.stringify(m.id), m.id);
    // A cancelled request gets no answer: stop tracking it.
    if (m?.method === 'notifications/cancelled' && m.params?.requestId !== undefined) pending.delete(JSON.stringify(m.params.requestId));
    sock.write(`${line}\n`);
  };

  const fromClient = (line: string) => {
    const m = parse(line);
    if (m?.method === 'initialize' && m.id !== undefined) initLine = line;
    if (m?.method === 'notifications/initialized') initializedLine = line;
    const uri = m?.params?.uri;
    if (m?.method === 'resources/subscribe' && typeof uri === 'string') subscribed.add(uri);
    if (m?.method === 'resources/unsubscribe' && typeof uri === 'string') subscribed.delete(uri);
    if (queue) queue.push(line);
    else send(line);
  };

  const fromDaemon = (line: string) => {
    const m = parse(line);
    if (m?.method === STOPPING_METHOD) {
      stopping = true;
      return;
    }
    const isResponse = m !== null && m.id !== undefined && m.method === undefined;
    if (isResponse && replayId !== null && JSON.stringify(m.id) === replayId) {
      // The answer to the replayed initialize: the client already has one.
      replayId = null;
      if (initializedLine) sock.write(`${initializedLine}\n`);
      for (const uri of subscribed) {
        const id = `concord-proxy-resubscribe-${++resubscribes}`;
        ownIds.add(JSON.stringify(id));
        sock.write(`${JSON.stringify({ jsonrpc: '2.0', id, method: 'resources/subscribe', params: { uri } })}\n`);
      }
      for (const l of queue ?? []) send(l);
      queue = null;
      return;
    }
    if (isResponse && ownIds.delete(JSON.stringify(m.id))) {
      // A re-subscription refused (e.g. the swarm is gone): the client learns of it no other way.
      if ((m as { error?: unknown }).error) logger.warn({ error: (m as { error?: unknown }).error }, 'resubscribing after a daemon restart failed');
      return;
    }
    if (isResponse) pending.delete(JSON.stringify(m.id));
    process.stdout.write(`${line}\n`);
  };

  const attach = (s: net.Socket) => {
    // The daemon's answers are not limited here (it bounds what it sends).
    boundedLines(s, Number.MAX_SAFE_INTEGER, fromDaemon, () => undefined);
    s.on('error', (e) => logger.warn({ err: e.message }, 'daemon connection error'));
    s.on('close', () => void lost());
  };

  const lost = async () => {
    if (stdinEnded || stopping) return exit(0);
    const now = Date.now();
    reconnects.push(now);
    while (reconnects[0]! < now - 60_000) reconnects.shift();
    // Lines not yet sent stay queued (also when a daemon dies during the replay).
    queue ??= [];
    // Their outcome is unknown: the daemon died while running them.
    for (const id of pending.values()) {
      process.stdout.write(`${JSON.stringify({ jsonrpc: '2.0', id, error: { code: -32000, message: 'the concord daemon stopped while running this request (its outcome is unknown); a new daemon serves the next requests' } })}\n`);
    }
    pending.clear();
    if (reconnects.length > MAX_RECONNECTS_PER_MIN) {
      logger.error('the daemon died too often; giving up');
      return exit(1);
    }
    logger.warn('daemon connection lost; starting a new daemon');
    try {
      sock = await connectDaemon(dir);
    } catch (e) {
      process.stderr.write(`concord mcp: ${(e as Error).message}\n`);
      return exit(1);
    }
    attach(sock);
    const init = initLine ? parse(initLine) : null;
    if (init) {
      replayId = JSON.stringify(init.id);
      sock.write(`${initLine}\n`);
    } else {
      const q = queue;
      queue = null;
      for (const l of q) send(l);
    }
  };

  attach(sock);
  boundedLines(process.stdin, maxMessageBytes, fromClient, (bytes, head) => {
    // Answered here, as the stdio server does: the line never reaches the daemon.
    const id = topLevelId(head);
    const message = `message too large: ${bytes} bytes, limit ${maxMessageBytes}`;
    logger.warn({ bytes, limit_bytes: maxMessageBytes, id }, `stdio ${message}; discarded, still serving (limit: --max-message-bytes or CONCORD_STDIO_MAX_MESSAGE_BYTES)`);
    process.stdout.write(`${JSON.stringify({ jsonrpc: '2.0', id, error: { code: MESSAGE_TOO_LARGE_CODE, message } })}\n`);
  });
  process.stdin.on('end', () => {
    stdinEnded = true;
    sock.end();
  });
  process.on('SIGTERM', () => exit(0));
  process.on('SIGINT', () => exit(0));
}

interface Msg {
  id?: Id;
  method?: string;
  params?: { requestId?: Id; uri?: unknown };
}

function parse(line: string): Msg | null {
  try {
    const m = JSON.parse(line) as unknown;
    return m !== null && typeof m === 'object' ? (m as Msg) : null;
  } catch {
    // Passed through as is: the daemon answers a bad line as the stdio server does.
    return null;
  }
}

/**
 * Split a byte stream on "\n" (each line without it), scanning only new bytes. A line longer
 * than `max` bytes is not kept: its bytes are counted, its first 64 KiB kept to find its id,
 * and `onOversized` runs when its newline arrives.
 */
function boundedLines(stream: NodeJS.ReadableStream, max: number, onLine: (line: string) => void, onOversized: (bytes: number, head: string) => void): void {
  let parts: Buffer[] = [];
  let size = 0;
  let over: { bytes: number; head: Buffer } | null = null;
  const take = (piece: Buffer): void => {
    if (piece.length === 0) return;
    if (over) {
      over.bytes += piece.length;
    } else if (size + piece.length <= max) {
      parts.push(piece);
      size += piece.length;
    } else {
      over = { bytes: size + piece.length, head: Buffer.from(Buffer.concat([...parts, piece]).subarray(0, 64 << 10)) };
      parts = [];
      size = 0;
    }
  };
  stream.on('data', (chunk: Buffer | string) => {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    let start = 0;
    for (;;) {
      const nl = buf.indexOf(0x0a, start);
      take(buf.subarray(start, nl === -1 ? buf.length : nl));
      if (nl === -1) return;
      start = nl + 1;
      if (over) {
        const o: { bytes: number; head: Buffer } = over;
        over = null;
        onOversized(o.bytes, o.head.toString('utf8'));
      } else {
        const line = Buffer.concat(parts, size).toString('utf8');
        parts = [];
        size = 0;
        onLine(line);
      }
    }
  });
}
