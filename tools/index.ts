import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { Coordinator } from '../src/service/coordinator.js';
import { registerAgentTools } from './agents.js';
import { registerConsensusTools } from './consensus.js';
import { registerMemberTools } from './members.js';
import { registerMemoryTools } from './memory.js';
import { registerNetworkTools } from './network.js';
import { installZodErrorMessages } from './result.js';
import { registerSwarmTools } from './swarm.js';
import { registerTaskTools } from './tasks.js';

export function registerAllTools(server: McpServer, coord: Coordinator): void {
  installZodErrorMessages();
  registerSwarmTools(server, coord);
  registerAgentTools(server, coord);
  registerConsensusTools(server, coord);
  registerNetworkTools(server, coord);
  registerTaskTools(server, coord);
  registerMemoryTools(server, coord);
  // Runtime membership is cluster mode's (embedded mode adds and removes members with agent_spawn/agent_terminate).
  if (coord.clusterMode) registerMemberTools(server, coord);
}
