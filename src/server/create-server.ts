import { McpServer, ResourceTemplate } from '@modelcontextprotocol/sdk/server/mcp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { registerAllTools } from '../../tools/index.js';
import { electionHistory, logStatus, swarmStatus } from '../service/consensus.js';
import type { Coordinator } from '../service/coordinator.js';
import { enableResourceSubscriptions } from './resource-subscriptions.js';
import { UserError } from '../util/errors.js';

export const SERVER_NAME = 'concord';
export const SERVER_VERSION = '0.1.0';

/** MCP's "resource not found" (the spec's -32002; the SDK has no constant for it). */
export { RESOURCE_NOT_FOUND } from './mcp-codes.js';
import { RESOURCE_NOT_FOUND } from './mcp-codes.js';

/** One MCP server over a shared coordinator (one per client session over HTTP). */
export function createServer(coord: Coordinator): McpServer {
  const server = new McpServer(
    { name: SERVER_NAME, version: SERVER_VERSION },
    {
      instructions:
        'Concord runs real Raft clusters ("swarms") inside this server. Typical flow: swarm_init, agent_spawn x5, consensus_leader, task_orchestrate, task_status, consensus_log_status, agent_terminate (crash the leader to see failover), task_results (duplicates: 0), memory_store/memory_retrieve. Every number is measured.',
    },
  );
  registerAllTools(server, coord);
  // One list per template: the SDK concatenates every template's list, so a shared list
  // naming all three views would return each resource three times.
  const listOf = (view: string) => async () => ({
    resources: coord.names().map((n) => ({ uri: `concord://swarms/${n}/${view}`, name: `${n} ${view.replace('-', ' ')}`, mimeType: 'application/json' })),
  });
  const views: Record<string, (name: string) => unknown> = {
    status: (n) => swarmStatus(coord.swarm(n), true),
    'log-status': (n) => logStatus(coord.swarm(n)),
    'election-history': (n) => electionHistory(coord.swarm(n), 100),
  };
  for (const [view, fn] of Object.entries(views)) {
    server.registerResource(
      `swarm-${view}`,
      new ResourceTemplate(`concord://swarms/{name}/${view}`, { list: listOf(view) }),
      { title: `Swarm ${view}`, description: `Measured ${view} of a swarm`, mimeType: 'application/json' },
      async (uri, vars) => {
        let view: unknown;
        try {
          view = fn(String(vars.name));
        } catch (e) {
          // An unknown swarm is the client's to fix, not an internal error.
          if (e instanceof UserError && e.code === 'not_found') throw new McpError(RESOURCE_NOT_FOUND, `Resource ${uri.href} not found: ${e.message}`, { uri: uri.href });
          throw e;
        }
        return { contents: [{ uri: uri.href, mimeType: 'application/json', text: JSON.stringify(view, null, 2) }] };
      },
    );
  }
  enableResourceSubscriptions(server, coord);
  return server;
}
