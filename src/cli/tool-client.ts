import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { ClusterClientOptions } from '../cluster/cluster-client.js';
import type { Coordinator } from '../service/coordinator.js';
import { UserError } from '../util/errors.js';
import { resolveDataDir } from '../service/data-dir.js';
import { connectDaemon, lockHolder } from '../daemon/client.js';
import { envEmbedded, socketPath } from '../daemon/paths.js';
import { SocketTransport } from '../daemon/socket-transport.js';

export interface ToolCallResult {
  ok: boolean;
  data: Record<string, unknown>;
  text: string;
}

/** Calls Concord's MCP tools: on a running `concord serve`, or in-process on the data directory. */
export interface ToolClient {
  call(name: string, args: Record<string, unknown>, onProgress?: (p: number, total?: number) => void): Promise<ToolCallResult>;
  close(): Promise<void>;
  readonly where: string;
  readonly coordinator?: Coordinator;
}

/**
 * Idle timeout of a one-shot CLI run's client session (a command, a hook): it ends with the
 * process, so its session need not outlive a call's retries by much. Long-lived clients
 * (`concord mcp`, `concord serve`) keep the cluster's default (1 hour).
 */
export const ONE_SHOT_SESSION_TIMEOUT_MS = 15 * 60_000;

/** Tools of a running cluster, executed on its leader (with retries on leader change). */
// Loaded on use: a CLI call through the daemon then skips the tools, the service and the
// cluster client (about half of its start-up time).
export async function connectCluster(opts: ClusterClientOptions): Promise<ToolClient> {
  const { ClusterClient } = await import('../cluster/cluster-client.js');
  const c = new ClusterClient({ sessionTimeoutMs: ONE_SHOT_SESSION_TIMEOUT_MS, ...opts });
  return {
    where: `cluster ${c.members.join(',')}`,
    async call(name, args) {
      let res;
      try {
        res = await c.callTool(name, args);
      } catch (e) {
        // No quorum, wrong secret: the user can act on these; no stack trace.
        const auth = /refused the connection/.test((e as Error).message);
        throw new UserError(auth ? 'invalid_argument' : 'unavailable', (e as Error).message, auth ? 'secret_file' : 'cluster');
      }
      const text = (res.content as Array<{ type: string; text?: string }>).map((x) => x.text ?? '').join('\n');
      return { ok: !res.isError, data: (res.structuredContent as Record<string, unknown>) ?? {}, text };
    },
    async close() {
      c.close();
    },
  };
}

export interface ConnectOptions {
  /** In-process on the data directory (today's single-shot mode) instead of through the daemon. */
  embedded?: boolean;
}

export async function connectTools(dataDir?: string, server?: string, opts: ConnectOptions = {}): Promise<ToolClient> {
  const dir = resolveDataDir(dataDir);
  const client = new Client({ name: 'concord-cli', version: '0.1.0' });
  const embedded = opts.embedded ?? envEmbedded();
  const holder = server ? null : lockHolder(dir);
  // A `concord serve` that shares no socket (started with --embedded) is reached over HTTP.
  const url = server ?? (embedded || !holder?.socket ? holder?.http : undefined);
  if (!url && !embedded) {
    const sock = await connectDaemon(dir);
    await client.connect(new SocketTransport(sock));
    return wrap(client, `concord daemon on ${socketPath(dir)}`);
  }
  if (url) {
    const { StreamableHTTPClientTransport } = await import('@modelcontextprotocol/sdk/client/streamableHttp.js');
    // CONCORD_HTTP_TOKEN or CONCORD_HTTP_TOKEN_FILE, as the server reads them.
    const token = (await import('./server-flags.js')).httpToken({});
    const transport = new StreamableHTTPClientTransport(new URL(url), token ? { requestInit: { headers: { Authorization: `Bearer ${token}` } } } : undefined);
    await client.connect(transport);
    // End the session on the server (DELETE) rather than leave it to the idle expiry: each CLI
    // call is one session, and hooks make many.
    return wrap(client, `concord serve at ${url}`, undefined, () => transport.terminateSession().catch(() => undefined));
  }
  const [{ Coordinator }, { createServer }, { InMemoryTransport }] = await Promise.all([
    import('../service/coordinator.js'),
    import('../server/create-server.js'),
    import('@modelcontextprotocol/sdk/inMemory.js'),
  ]);
  const coord = new Coordinator({ dataDir: dir, sessionTimeoutMs: ONE_SHOT_SESSION_TIMEOUT_MS });
  const [a, b] = InMemoryTransport.createLinkedPair();
  const srv = createServer(coord);
  await srv.connect(a);
  await client.connect(b);
  await waitForLeaders(coord);
  const tc = wrap(client, `data directory ${coord.dataDir}`, async () => {
    await srv.close();
    coord.close();
  });
  return { ...tc, coordinator: coord };
}

function wrap(client: Client, where: string, onClose?: () => Promise<void>, beforeClose?: () => Promise<void>): ToolClient {
  return {
    where,
    async call(name, args, onProgress) {
      const res = await client.callTool(
        { name, arguments: args },
        undefined,
        onProgress ? { onprogress: (p) => onProgress(p.progress, p.total), timeout: 3_600_000, resetTimeoutOnProgress: true } : { timeout: 600_000 },
      );
      const text = (res.content as Array<{ type: string; text?: string }>).map((c) => c.text ?? '').join('\n');
      return { ok: !res.isError, data: (res.structuredContent as Record<string, unknown>) ?? {}, text };
    },
    async close() {
      await beforeClose?.();
      await client.close();
      await onClose?.();
    },
  };
}

/** A process that just opened the files re-elects leaders; give that a moment. */
async function waitForLeaders(coord: Coordinator): Promise<void> {
  const deadline = performance.now() + 3_000;
  for (const name of coord.names()) {
    const s = coord.swarm(name);
    if (s.activeMembers().filter((id) => s.isRunning(id)).length === 0) continue;
    while (!s.cluster.leader() && performance.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  }
}
