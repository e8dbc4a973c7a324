import { agentMetrics, listAgents } from '../../service/agents.js';
import { electionHistory, leaderInfo, logStatus, swarmStatus } from '../../service/consensus.js';
import type { Coordinator } from '../../service/coordinator.js';
import { networkDiagnose } from '../../service/network.js';
import type { Swarm } from '../../swarm/swarm.js';
import { orchestrationOverview, type OrchestrationOverview } from '../../service/task-overview.js';

/** What the page shows of one member; null where nothing was measured. */
export interface MemberView {
  id: string;
  /** active, crashed, partitioned (running, but a link to a running peer is cut), or waiting (for bootstrap_expect: never started). */
  status: 'active' | 'crashed' | 'partitioned' | 'unreachable' | 'waiting';
  role: string;
  term: number | null;
  commit: number | null;
  applied: number | null;
  /** Leader's view of this follower. */
  match_index: number | null;
  replication_lag_ms: number | null;
  fsync_count: number | null;
  fsync_ms_mean: number | null;
}

export interface SwarmView {
  name: string;
  status: unknown;
  leader: Record<string, unknown>;
  commit_index: unknown;
  members: MemberView[];
  elections: { total: number; leader_failures: number; recent: Array<Record<string, unknown>> };
  orchestrations: OrchestrationOverview;
  links: Array<{ from: string; to: string; connected: boolean; loss_rate: number | null; dropped: number | null; rtt_ms_last: number | null; rtt_ms_mean: number | null }>;
}

const RECENT_ELECTIONS = 20;
const RECENT_ORCHESTRATIONS = 8;

/**
 * One swarm as the tools report it, through the same service calls (swarm_status,
 * consensus_leader, consensus_log_status, agent_list, agent_metrics, network_diagnose,
 * consensus_election_history) plus the orchestration overview. Sizes are bounded by the
 * member count and the orchestration count, never by the task count.
 */
export function swarmView(swarm: Swarm): SwarmView {
  const st = swarmStatus(swarm, true) as { status: unknown; commit_index: unknown; members?: Array<{ agent_id: string; role: string; term: number | null; commit: number | null; applied: number | null }> };
  const log = logStatus(swarm) as { leader: string | null; followers: Array<{ agent_id: string; match_index: number; replication_lag_ms: number }> };
  const net = networkDiagnose(swarm) as { links: SwarmView['links'] };
  const agents = new Map(listAgents(swarm).map((a) => [a.agent_id, a]));
  const metrics = agentMetrics(swarm) as { agents: Array<{ agent_id: string; 'disk-io'?: { fsync_count: number; fsync_ms_mean: number | null } }> };
  const disk = new Map(metrics.agents.map((m) => [m.agent_id, m['disk-io']]));
  const follower = new Map(log.followers.map((f) => [f.agent_id, f]));
  const cut = new Set<string>();
  for (const l of net.links) {
    if (!l.connected && swarm.isRunning(l.from) && swarm.isRunning(l.to)) cut.add(l.from).add(l.to);
  }
  const members: MemberView[] = (st.members ?? []).map((m) => {
    const a = agents.get(m.agent_id);
    const running = swarm.isRunning(m.agent_id);
    const f = follower.get(m.agent_id);
    const isLeader = log.leader === m.agent_id;
    const d = disk.get(m.agent_id);
    return {
      id: m.agent_id,
      status: a?.status === 'waiting_for_bootstrap' ? 'waiting' : !running ? 'crashed' : cut.has(m.agent_id) ? 'partitioned' : a?.status === 'unreachable' ? 'unreachable' : 'active',
      role: a?.role ?? m.role,
      term: m.term,
      commit: m.commit,
      applied: m.applied,
      match_index: isLeader ? null : (f?.match_index ?? null),
      replication_lag_ms: isLeader ? null : (f?.replication_lag_ms ?? null),
      fsync_count: d?.fsync_count ?? null,
      fsync_ms_mean: d?.fsync_ms_mean ?? null,
    };
  });
  const hist = electionHistory(swarm, RECENT_ELECTIONS) as { total_elections: number; leader_failures: number; elections: Array<Record<string, unknown>> };
  return {
    name: swarm.name,
    status: st.status,
    leader: leaderInfo(swarm),
    commit_index: st.commit_index,
    members,
    elections: { total: hist.total_elections, leader_failures: hist.leader_failures, recent: hist.elections },
    orchestrations: orchestrationOverview(swarm, RECENT_ORCHESTRATIONS),
    links: net.links.map((l) => ({ from: l.from, to: l.to, connected: l.connected, loss_rate: l.loss_rate, dropped: l.dropped, rtt_ms_last: l.rtt_ms_last, rtt_ms_mean: l.rtt_ms_mean })),
  };
}

/** Every swarm of the coordinator; a swarm that cannot be read is reported with its error. */
export function allSwarmViews(coord: Coordinator): Array<SwarmView | { name: string; error: string }> {
  return coord.names().map((n) => {
    try {
      return swarmView(coord.swarm(n));
    } catch (e) {
      return { name: n, error: (e as Error).message };
    }
  });
}
