import { restartAgent, terminateAgent } from '../../service/agents.js';
import { stepDown } from '../../service/consensus.js';
import type { Coordinator } from '../../service/coordinator.js';
import { invalid } from '../../service/errors.js';
import { networkHeal, networkPartition } from '../../service/network.js';
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

/**
 * The page's fault controls, each the service call its tool makes (agent_terminate with
 * mode crash, agent_restart, network_partition isolate, network_heal, consensus_step_down,
 * task_orchestrate), with the tools' bounds.
 */
export const ACTIONS: Record<string, (coord: Coordinator, b: Body) => Promise<unknown>> = {
  crash: (c, b) => terminateAgent(c.swarm(optStr(b, 'swarm')), str(b, 'agent_id'), 'crash'),
  restart: (c, b) => restartAgent(c.swarm(optStr(b, 'swarm')), str(b, 'agent_id')),
  partition: (c, b) => networkPartition(c.swarm(optStr(b, 'swarm')), { isolate: str(b, 'agent_id') }),
  heal: (c, b) => networkHeal(c.swarm(optStr(b, 'swarm'))),
  'step-down': (c, b) => stepDown(c.swarm(optStr(b, 'swarm'))),
  orchestrate: async (c, b) => {
    const count = b.count ?? 1000;
    if (!(Number.isInteger(count) && (count as number) >= 1 && (count as number) <= 1_000_000)) throw invalid('count', count, 'an integer 1..1000000');
    return orchestrate(c.swarm(optStr(b, 'swarm')), { task: optStr(b, 'task') ?? 'dashboard demo', count: count as number });
  },
};
