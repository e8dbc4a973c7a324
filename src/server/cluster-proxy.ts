import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import {
  CallToolRequestSchema,
  ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema,
  ListToolsRequestSchema,
  McpError,
  ReadResourceRequestSchema,
  type CallToolResult,
  type ListResourcesResult,
  type ListResourceTemplatesResult,
  type ListToolsResult,
  type ReadResourceResult,
} from '@modelcontextprotocol/sdk/types.js';
import type { ClusterClient } from '../cluster/cluster-client.js';
import { RemoteError } from '../transport/tcp-client.js';
import { RESOURCE_NOT_FOUND, SERVER_NAME, SERVER_VERSION } from './create-server.js';

/**
 * MCP server for a running cluster: the same tools and resources, executed on the leader's
 * process. Each tool call carries this proxy's client session, so a call retried after a
 * leader change is applied at most once.
 */
export function createClusterProxy(client: ClusterClient): Server {
  const server = new Server(
    { name: SERVER_NAME, version: SERVER_VERSION },
    {
      capabilities: { tools: {}, resources: {} },
      instructions: `Concord cluster mode: tools run on the Raft leader among ${client.members.join(', ')} (one member per process). agent_spawn/terminate/restart are process operations here; use network_partition to cut links.`,
    },
  );
  server.setRequestHandler(ListToolsRequestSchema, async () => (await client.anyMember({ kind: 'tools/list' })) as ListToolsResult);
  server.setRequestHandler(ListResourcesRequestSchema, async () => (await client.anyMember({ kind: 'resources/list' })) as ListResourcesResult);
  server.setRequestHandler(ListResourceTemplatesRequestSchema, async () => (await client.anyMember({ kind: 'resources/templates/list' })) as ListResourceTemplatesResult);
  server.setRequestHandler(ReadResourceRequestSchema, async (req) => {
    try {
      return (await client.readResource(req.params.uri)) as ReadResourceResult;
    } catch (e) {
      if (e instanceof RemoteError && e.code === 'resource_not_found') throw new McpError(RESOURCE_NOT_FOUND, e.message.replace(/^MCP error -?\d+: /, ''), { uri: req.params.uri });
      throw e;
    }
  });
  server.setRequestHandler(CallToolRequestSchema, async (req, extra): Promise<CallToolResult> => {
    const token = req.params._meta?.progressToken;
    // The member reports progress without the client's token; it is put back here.
    const onProgress =
      token === undefined
        ? undefined
        : (p: { progress: number; total?: number; message?: string }) =>
            void extra.sendNotification({ method: 'notifications/progress', params: { ...p, progressToken: token } }).catch(() => undefined);
    try {
      return await client.callTool(req.params.name, req.params.arguments ?? {}, { onProgress, signal: extra.signal });
    } catch (e) {
      // No quorum, wrong secret, ...: an error result the assistant can read, not a crash.
      return { content: [{ type: 'text', text: (e as Error).message }], isError: true };
    }
  });
  return server;
}
