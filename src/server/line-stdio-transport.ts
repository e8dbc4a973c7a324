import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { JSONRPCMessageSchema, type JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { logger } from '../util/logger.js';

/** Default longest stdio line (one JSON-RPC message) the server reads: 8 MiB. */
export const DEFAULT_STDIO_MAX_MESSAGE_BYTES = 8 << 20;

/** JSON-RPC "Invalid Request": the code the oversized-message error carries. */
export const MESSAGE_TOO_LARGE_CODE = -32600;

/** How much of an oversized line is kept to find its request id. */
const HEAD_BYTES = 64 << 10;

/**
 * Newline-delimited JSON-RPC over stdin/stdout (the SDK's Transport interface) with a bounded
 * line length. The SDK's StdioServerTransport re-concatenates and re-scans its whole buffer on
 * every chunk (quadratic: a 10 MiB line took seconds to tens of seconds) and, past 10 MiB, closes
 * itself: the server then exited 0 without a word. Here chunks are kept as a list and only the
 * new chunk is scanned; a line longer than the limit is dropped as it streams in (only its
 * first 64 KiB are kept, to find its id) and answered with a -32600 error once its newline
 * arrives. The server keeps serving.
 */
export class LineStdioTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;

  private chunks: Buffer[] = [];
  private buffered_bytes = 0;
  /** Set while the current line is over the limit: its bytes are counted, not kept. */
  private oversized: { bytes: number; head: Buffer } | null = null;
  private started = false;

  constructor(
    readonly max_message_bytes = DEFAULT_STDIO_MAX_MESSAGE_BYTES,
    private readonly stdin: NodeJS.ReadableStream = process.stdin,
    private readonly stdout: NodeJS.WritableStream = process.stdout,
  ) {}

  async start(): Promise<void> {
    if (this.started) throw new Error('LineStdioTransport already started');
    this.started = true;
    this.stdin.on('data', this.ondata);
    this.stdin.on('error', this.onstreamerror);
  }

  async close(): Promise<void> {
    this.stdin.off('data', this.ondata);
    this.stdin.off('error', this.onstreamerror);
    if (this.stdin.listenerCount('data') === 0) this.stdin.pause();
    this.chunks = [];
    this.buffered_bytes = 0;
    this.oversized = null;
    this.onclose?.();
  }

  send(message: JSONRPCMessage): Promise<void> {
    return this.write(`${JSON.stringify(message)}\n`);
  }

  private write(line: string): Promise<void> {
    return new Promise((resolve) => {
      if (this.stdout.write(line)) resolve();
      else this.stdout.once('drain', resolve);
    });
  }

  private readonly onstreamerror = (e: Error) => this.onerror?.(e);

  private readonly ondata = (chunk: Buffer | string) => {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    let start = 0;
    for (;;) {
      const nl = buf.indexOf(0x0a, start);
      this.take(buf.subarray(start, nl === -1 ? buf.length : nl));
      if (nl === -1) return;
      this.endLine();
      start = nl + 1;
    }
  };

  private take(piece: Buffer): void {
    if (piece.length === 0) return;
    if (this.oversized) {
      this.oversized.bytes += piece.length;
      return;
    }
    if (this.buffered_bytes + piece.length <= this.max_message_bytes) {
      this.chunks.push(piece);
      this.buffered_bytes += piece.length;
      return;
    }
    // Over the limit: keep a copy of the head (not views that pin whole chunks), drop the rest.
    const head = Buffer.concat([...this.chunks, piece]).subarray(0, HEAD_BYTES);
    this.oversized = { bytes: this.buffered_bytes + piece.length, head: Buffer.from(head) };
    this.chunks = [];
    this.buffered_bytes = 0;
  }

  private endLine(): void {
    const over = this.oversized;
    if (over) {
      this.oversized = null;
      this.refuse(over.bytes, over.head);
      return;
    }
    const raw = Buffer.concat(this.chunks, this.buffered_bytes);
    this.chunks = [];
    this.buffered_bytes = 0;
    const line = raw.toString('utf8').replace(/\r$/, '');
    if (line.trim() === '') return;
    let message: JSONRPCMessage;
    try {
      message = JSONRPCMessageSchema.parse(JSON.parse(line));
    } catch (e) {
      // As the SDK's transport: a bad line is reported to onerror and skipped.
      this.onerror?.(e as Error);
      return;
    }
    this.onmessage?.(message);
  }

  private refuse(bytes: number, head: Buffer): void {
    const id = topLevelId(head.toString('utf8'));
    const message = `message too large: ${bytes} bytes, limit ${this.max_message_bytes}`;
    logger.warn({ bytes, limit_bytes: this.max_message_bytes, id }, `stdio ${message}; discarded, still serving (limit: --max-message-bytes or CONCORD_STDIO_MAX_MESSAGE_BYTES)`);
    void this.write(`${JSON.stringify({ jsonrpc: '2.0', id, error: { code: MESSAGE_TOO_LARGE_CODE, message } })}\n`);
  }
}

/**
 * The top-level "id" of a JSON object from its first bytes, or null when the prefix does not
 * show it (not an object, id after the cut, malformed). Lets the client match the error to its
 * request instead of waiting for its own timeout.
 */
export function topLevelId(text: string): string | number | null {
  let i = 0;
  const ws = () => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === '\r' || text[i] === '\n')) i++;
  };
  const str = (): string | undefined => {
    const s = i++;
    while (i < text.length) {
      const c = text[i];
      if (c === '\\') i += 2;
      else if (c === '"') {
        i++;
        try {
          return JSON.parse(text.slice(s, i)) as string;
        } catch {
          return undefined;
        }
      } else i++;
    }
    return undefined;
  };
  const skipValue = (): boolean => {
    let depth = 0;
    while (i < text.length) {
      const c = text[i];
      if (c === '"') {
        if (str() === undefined) return false;
        continue;
      }
      if (c === '{' || c === '[') depth++;
      else if (c === '}' || c === ']') {
        if (depth === 0) return true;
        depth--;
      } else if (c === ',' && depth === 0) return true;
      i++;
    }
    return false;
  };
  ws();
  if (text[i] !== '{') return null;
  i++;
  for (;;) {
    ws();
    if (text[i] !== '"') return null;
    const key = str();
    if (key === undefined) return null;
    ws();
    if (text[i] !== ':') return null;
    i++;
    ws();
    if (key === 'id') {
      if (text[i] === '"') return str() ?? null;
      const m = /^-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/.exec(text.slice(i, i + 40));
      // The number must be complete (followed by a delimiter), not cut by the prefix.
      return m && /^[\s,}]/.test(text.slice(i + m[0].length, i + m[0].length + 1)) ? Number(m[0]) : null;
    }
    if (!skipValue()) return null;
    ws();
    if (text[i] !== ',') return null;
    i++;
  }
}
