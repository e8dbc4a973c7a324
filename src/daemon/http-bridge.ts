// `concord serve --http` while a daemon owns the data directory: each HTTP session is a thin
// client of the daemon, as `concord mcp` is. Messages pass through unchanged; only the
// routing Streamable HTTP needs is added (a progress notification goes on the stream of the
// request that asked for it, found by its progress token).

import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { JSONRPCMessage, RequestId } from '@modelcontextprotocol/sdk/types.js';
import { logger } from '../util/logger.js';
import { connectDaemon } from './client.js';
import { STOPPING_METHOD } from './paths.js';
import { SocketTransport } from './socket-transport.js';

interface Loose {
  id?: RequestId;
  method?: string;
  params?: { progressToken?: string | number; _meta?: { progressToken?: string | number } };
}

/** Connect one HTTP session's transport to the data directory's daemon (started if none runs). */
export async function bridgeToDaemon(dataDir: string, http: Transport): Promise<void> {
  const up = new SocketTransport(await connectDaemon(dataDir));
  /** progress token -> the request that gave it; cleared by the request's answer. */
  const tokens = new Map<string | number, RequestId>();
  let closing = false;
  const closeBoth = () => {
    if (closing) return;
    closing = true;
    void up.close().catch(() => undefined);
    void http.close().catch(() => undefined);
  };

  http.onmessage = (m: JSONRPCMessage) => {
    const x = m as Loose;
    const token = x.params?._meta?.progressToken;
    if (x.method !== undefined && x.id !== undefined && token !== undefined) tokens.set(token, x.id);
    up.send(m).catch((e: Error) => logger.debug({ err: e.message }, 'daemon socket closed while forwarding'));
  };
  up.onmessage = (m: JSONRPCMessage) => {
    const x = m as Loose;
    // The daemon stops on purpose: end the session; the client's next initialize starts a new daemon.
    if (x.method === STOPPING_METHOD) return closeBoth();
    let relatedRequestId: RequestId | undefined;
    if (x.method === undefined && x.id !== undefined) {
      relatedRequestId = x.id;
      for (const [t, id] of tokens) if (id === x.id) tokens.delete(t);
    } else if (x.method === 'notifications/progress' && x.params?.progressToken !== undefined) {
      relatedRequestId = tokens.get(x.params.progressToken);
    }
    http.send(m, relatedRequestId !== undefined ? { relatedRequestId } : undefined).catch((e: Error) => logger.debug({ err: e.message }, 'http session gone while forwarding'));
  };
  up.onclose = closeBoth;
  const previous = http.onclose;
  http.onclose = () => {
    previous?.();
    closeBoth();
  };
  await up.start();
  await http.start();
}
