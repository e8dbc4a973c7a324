import { restartAgent, terminateAgent } from '../../service/agents.js';
import { stepDown } from '../../service/consensus.js';
import { DEFAULT_SWARM, type Coordinator } from '../../service/coordinator.js';
import { invalid } from '../../util/errors.js';
import { networkHeal, networkPartition } from '../../service/network.js';
import type { Swarm } from '../../swarm/swarm.js';
import { orchestrate } from '../../service/tasks.js';

type Body = Record<string, unknown>;

function str(b: Body, field: string): string {
  const v = b[field];
  if (typeof v !== 'string' || v === '') throw invalid(field, v ?? null, 'a non-empty string');
  return v;
}

function optStr(b: Body, field: string): string | undefined {
  return b[field] === undefined ? undefined : str(b, field);
}

/** The named swarm, `default` when none is named; never created here (as coord.swarm() would). */
function swarmOf(c: Coordinator, b: Body): Swarm {
  return c.swarm(optStr(b, 'swarm') ?? DEFAULT_SWARM);
}

/**
 * The page's fault controls, each the service call its tool makes (agent_terminate with
 * mode crash, agent_restart, network_partition isolate, network_heal, consensus_step_down,
 * task_orchestrate), with the tools' bounds.
 */
export const ACTIONS: Record<string, (coord: Coordinator, b: Body) => Promise<unknown>> = {
  crash: (c, b) => terminateAgent(swarmOf(c, b), str(b, 'agent_id'), 'crash'),
  restart: (c, b) => restartAgent(swarmOf(c, b), str(b, 'agent_id')),
  partition: (c, b) => networkPartition(swarmOf(c, b), { isolate: str(b, 'agent_id') }),
  heal: (c, b) => networkHeal(swarmOf(c, b)),
  'step-down': (c, b) => stepDown(swarmOf(c, b)),
  orchestrate: async (c, b) => {
    const count = b.count ?? 1000;
    if (!(Number.isInteger(count) && (count as number) >= 1 && (count as number) <= 1_000_000)) throw invalid('count', count, 'an integer 1..1000000');
    return orchestrate(swarmOf(c, b), { task: optStr(b, 'task') ?? 'dashboard demo', count: count as number });
  },
};
