import { UserError } from '../util/errors.js';
import type { Swarm } from '../swarm/swarm.js';

/** Per-link figures measured on the in-process network and from heartbeat round trips. */
export function networkDiagnose(swarm: Swarm): Record<string, unknown> {
  const members = swarm.activeMembers();
  const net = swarm.cluster.network;
  const leader = swarm.cluster.leader();
  const rtts = leader?.roundTrips() ?? new Map();
  const links = [];
  for (const from of members) {
    for (const to of members) {
      if (from === to) continue;
      // Cluster mode: only this process's member's links are observable here (null otherwise).
      const s = net.linkStats(from, to);
      const rtt = from === leader?.id ? rtts.get(to) : undefined;
      links.push({
        from,
        to,
        connected: net.connected(from, to) && swarm.isRunning(from) && swarm.isRunning(to),
        messages_sent: s?.messagesOut ?? null,
        messages_delivered: s?.messagesIn ?? null,
        dropped: s?.dropped ?? null,
        loss_rate: s && s.messagesOut !== null ? lossRate(s.messagesOut, s.dropped, swarm.cluster.mode) : null,
        rtt_ms_last: rtt ? round3(rtt.lastMs) : null,
        // How old rtt_ms_last is: a link that stopped answering keeps its last figure.
        rtt_age_ms: rtt ? Math.round(rtt.ageMs) : null,
        rtt_ms_mean: rtt ? round3(rtt.meanMs) : null,
        rtt_samples: rtt?.samples ?? 0,
      });
    }
  }
  return {
    swarm: swarm.name,
    transport: swarm.cluster.mode === 'tcp' ? 'tcp (one member per process; link counters of the serving member only)' : 'in-process (embedded swarm)',
    rtt_source: leader ? `heartbeat round trips measured by leader ${leader.id} this term` : 'no leader: no heartbeats to time',
    links,
  };
}

export async function networkPartition(swarm: Swarm, o: { groups?: string[][]; isolate?: string }): Promise<Record<string, unknown>> {
  const members = new Set(swarm.activeMembers());
  const named = o.isolate !== undefined ? [o.isolate] : (o.groups ?? []).flat();
  for (const id of named) {
    if (!members.has(id)) {
      const field = o.isolate !== undefined ? 'isolate' : 'groups';
      throw new UserError('invalid_argument', `${field}=${JSON.stringify(o.isolate ?? o.groups)}: ${JSON.stringify(id)} is not an agent of swarm ${swarm.name}; accepted: ${[...members].join(', ')}`, field);
    }
  }
  if (o.isolate !== undefined) {
    await swarm.cluster.network.isolate(o.isolate);
    return { isolated: o.isolate, note: 'messages to and from this agent are dropped until network_heal' };
  }
  if (!o.groups || o.groups.length < 2) throw new UserError('invalid_argument', 'groups must list at least two groups of agent ids, e.g. [["raft-agent-1","raft-agent-2"],["raft-agent-3","raft-agent-4","raft-agent-5"]]', 'groups');
  await swarm.cluster.network.partition(o.groups);
  return { partitioned: o.groups, note: 'agents not listed are isolated; network_heal restores all links' };
}

export async function networkHeal(swarm: Swarm): Promise<Record<string, unknown>> {
  await swarm.cluster.network.heal();
  await swarm.cluster.network.clearFaults();
  return { healed: true };
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/**
 * Share of the messages meant for a link that were dropped, over the process's life. The
 * in-process network counts a message as sent before it drops it; over TCP a blocked or full
 * link drops it before it is sent, so there the drops are added to what was attempted.
 */
function lossRate(out: number, dropped: number, mode: 'embedded' | 'tcp'): number | null {
  const attempted = mode === 'tcp' ? out + dropped : out;
  return attempted > 0 ? Math.round((dropped / attempted) * 10000) / 10000 : null;
}
