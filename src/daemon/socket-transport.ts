import type net from 'node:net';
import { ReadBuffer, serializeMessage } from '@modelcontextprotocol/sdk/shared/stdio.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';

/**
 * MCP over a Unix socket with the stdio framing (one JSON-RPC message per line), so a
 * `concord mcp` proxy can pass its stdin/stdout bytes through unchanged. Used on both ends.
 */
export class SocketTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;
  private readonly buf = new ReadBuffer();
  private closed = false;

  constructor(
    private readonly socket: net.Socket,
    /** Messages already read from the socket (the daemon peeks at the first one). */
    private readonly replay: JSONRPCMessage[] = [],
    pending?: Buffer,
  ) {
    if (pending && pending.length > 0) this.buf.append(pending);
  }

  async start(): Promise<void> {
    this.socket.on('data', (chunk: Buffer) => {
      try {
        this.buf.append(chunk);
      } catch (e) {
        // A line beyond the buffer limit: the stream cannot be resynchronised; drop the session.
        this.onerror?.(e as Error);
        this.socket.destroy();
        return;
      }
      this.drain();
    });
    this.socket.on('error', (e) => this.onerror?.(e));
    this.socket.on('close', () => this.finish());
    for (const m of this.replay.splice(0)) this.onmessage?.(m);
    this.drain();
  }

  private drain(): void {
    for (;;) {
      let m: JSONRPCMessage | null;
      try {
        m = this.buf.readMessage();
      } catch (e) {
        // One bad line is reported, the rest of the stream still parses (as over stdio).
        this.onerror?.(e as Error);
        continue;
      }
      if (m === null) return;
      this.onmessage?.(m);
    }
  }

  async send(message: JSONRPCMessage): Promise<void> {
    if (this.closed || this.socket.destroyed) throw new Error('socket closed');
    const line = serializeMessage(message);
    await new Promise<void>((resolve, reject) => {
      this.socket.write(line, (e) => (e ? reject(e) : resolve()));
    });
  }

  async close(): Promise<void> {
    this.socket.end();
    this.socket.destroySoon();
    this.finish();
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.buf.clear();
    this.onclose?.();
  }
}
