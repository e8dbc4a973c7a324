import type { RoleChange } from '../host/node-host.js';
import type { QuorumProbeResult } from '../host/quorum-probe.js';
import { DEFAULT_SWARM_CONFIG, type ElectionRecord, type SwarmConfig } from '../machine/types.js';
import { CONFIG_LIMITS, configProblem } from '../machine/config-bounds.js';
import { majority } from '../raft/quorum.js';
import { ProposalError } from '../raft/types.js';
import { UserError, invalid } from '../util/errors.js';
import { pause } from '../swarm/proposer.js';
import { TICK_MS, type Swarm } from '../swarm/swarm.js';

export function swarmStatus(swarm: Swarm, verbose = false): Record<string, unknown> {
  const leader = swarm.cluster.leader();
  const members = swarm.activeMembers();
  const running = members.filter((id) => swarm.isRunning(id));
  // degraded: an agent is down, or the leader has not heard from every voter within an
  // election timeout (a partitioned agent's process still runs).
  const status = members.length === 0 ? 'initializing' : swarm.waitingForBootstrap() ? 'waiting_for_bootstrap' : !leader ? 'electing' : running.length < members.length || heartbeatStatus(swarm) !== 'healthy' ? 'degraded' : 'active';
  const out: Record<string, unknown> = {
    swarm_id: swarm.name,
    topology: swarm.data.topology,
    consensus: swarm.data.consensus,
    status,
    max_agents: swarm.data.max_agents,
    agents: members,
    agents_running: running.length,
    leader_id: leader?.id ?? null,
    term: leader?.status().term ?? null,
    created_at: swarm.data.created_at,
    bootstrap_expect: swarm.cluster.mode === 'tcp' ? null : swarm.bootstrapExpect,
    // Who formed the group (its initial voters), or who waits for it to form.
    bootstrap: swarm.cluster.mode === 'tcp'
      ? { formed: true, detail: 'cluster mode: the group is the members listed in --peers' }
      : swarm.bootstrapped
      ? { formed: true, voters: swarm.data.bootstrap_voters ?? null, formed_at: swarm.data.bootstrapped_at ?? null }
      : { formed: false, waiting: swarm.waitingMembers(), detail: members.length > 0 ? swarm.bootstrapSummary() : `the group forms when ${swarm.bootstrapExpect} agents have been spawned` },
  };
  if (verbose) {
    const st = leader?.status();
    out.commit_index = st?.commit ?? null;
    out.last_index = st?.lastIndex ?? null;
    out.config = swarm.config();
    out.members = members.map((id) => {
      const h = swarm.cluster.hosts.get(id);
      const s = h?.isRunning ? h.status() : null;
      return { agent_id: id, running: !!s, role: s?.role ?? 'down', term: s?.term ?? null, commit: s?.commit ?? null, applied: s?.applied ?? null };
    });
  }
  return out;
}

export function leaderInfo(swarm: Swarm): Record<string, unknown> {
  const leader = swarm.cluster.leader();
  if (!leader) {
    return { leader_id: null, term: null, voted_by: [], election_duration_ms: null, heartbeat_status: 'no leader', detail: swarm.quorumSummary() };
  }
  const st = leader.status();
  const rec = lastElection(swarm, st.term);
  // Measured by the leader on its own clock; null where not observed (see NodeHost.leadership).
  const t = leader.leadership();
  const ms = (x: number | null | undefined): number | null => (x === null || x === undefined ? null : Math.round(x));
  const detection = ms(t?.detectionMs) ?? rec?.detection_ms ?? null;
  const failover = ms(t?.failoverMs) ?? rec?.failover_ms ?? null;
  return {
    leader_id: leader.id,
    term: st.term,
    voted_by: st.votedBy,
    election_duration_ms: rec?.election_duration_ms ?? ms(t?.electionMs),
    detection_ms: detection,
    failover_ms: failover,
    // Why a figure is null: never a made-up number instead.
    ...(failover === null
      ? {
          timing_note:
            detection === null
              ? 'detection_ms and failover_ms: not measurable, this leader had heard no previous leader since it started (first election of the group, or of this process)'
              : 'failover_ms: not measured yet, the first entry of this term is not applied yet',
        }
      : {}),
    heartbeat_status: heartbeatStatus(swarm),
    commit_index: st.commit,
  };
}

function lastElection(swarm: Swarm, term: number): ElectionRecord | undefined {
  const m = swarm.localMachine()?.machine;
  return m?.elections.find((e) => e.term === term);
}

/** healthy when a majority of voters (leader included) answered within the last election timeout. */
export function heartbeatStatus(swarm: Swarm): 'healthy' | 'degraded' | 'lost quorum' | 'no leader' {
  const leader = swarm.cluster.leader();
  if (!leader) return 'no leader';
  const st = leader.status();
  const windowTicks = Math.ceil(swarm.config().election_timeout_min / TICK_MS);
  const voters = st.conf.voters;
  const heard = voters.filter((id) => {
    if (id === leader.id) return true;
    const p = st.peers.find((x) => x.id === id);
    return p !== undefined && p.ticksSinceResponse <= windowTicks;
  }).length;
  const all = heard === voters.length;
  // A leader that a majority has not answered lately is still the leader (it steps down at
  // the next check-quorum): say what is measured, not "no leader".
  return heard >= majority(voters.length) ? (all ? 'healthy' : 'degraded') : 'lost quorum';
}

export function logStatus(swarm: Swarm): Record<string, unknown> {
  const leader = swarm.cluster.leader();
  if (!leader) return { leader: null, followers: [], committed_entries: null, uncommitted_entries: null, detail: swarm.quorumSummary() };
  const st = leader.status();
  const followers = st.peers
    .filter((p) => p.id !== leader.id)
    .sort((a, b) => a.id.localeCompare(b.id))
    .map((p) => ({
      agent_id: p.id,
      match_index: p.match,
      next_index: p.next,
      replication_lag_ms: Math.round(leader.replicationLagMs(p.match)),
      state: p.state,
      learner: p.isLearner,
      last_heard_ms: p.ticksSinceResponse * TICK_MS,
    }));
  return {
    leader: leader.id,
    term: st.term,
    followers,
    committed_entries: st.commit,
    uncommitted_entries: st.lastIndex - st.commit,
    uncommitted_bytes: st.uncommittedBytes,
    last_index: st.lastIndex,
    snapshot_index: st.snapshotIndex,
  };
}

export function electionHistory(swarm: Swarm, limit = 10): Record<string, unknown> {
  const m = swarm.localMachine()?.machine;
  const all = m?.elections ?? [];
  const elections = all.slice(-limit).reverse();
  return {
    swarm: swarm.name,
    // Counted as records applied: exact beyond the retained history (the last 1000).
    total_elections: m?.electionTotals.elections ?? 0,
    leader_failures: m?.electionTotals.leader_failures ?? 0,
    elections,
  };
}

export async function stepDown(swarm: Swarm, agent?: string, successor?: string): Promise<Record<string, unknown>> {
  const leader = swarm.cluster.leader();
  if (!leader) throw new UserError('unavailable', `no leader to step down: ${swarm.quorumSummary()}`);
  if (agent !== undefined && agent !== leader.id) {
    throw new UserError('conflict', `agent=${JSON.stringify(agent)} is not the leader (the leader is ${leader.id}); only a leader can step down`, 'agent');
  }
  const st = leader.status();
  const candidates = st.peers.filter((p) => p.id !== leader.id && !p.isLearner && swarm.isRunning(p.id));
  if (successor !== undefined && !candidates.some((p) => p.id === successor)) {
    throw invalid('successor', successor, `a running voter other than the leader: ${candidates.map((p) => p.id).join(', ') || '(none)'}`);
  }
  const target = successor ?? candidates.sort((a, b) => b.match - a.match || a.id.localeCompare(b.id))[0]?.id;
  if (!target) throw new UserError('unavailable', 'no running voter can take over');
  const change = await waitForNewLeader(swarm, leader.id, 3_000, () => {
    swarm.expectElection('step-down', 3_000);
    leader.transferLeadership(target);
  });
  return { old_leader: leader.id, ...change };
}

export async function triggerElection(swarm: Swarm, agent?: string): Promise<Record<string, unknown>> {
  const leader = swarm.cluster.leader();
  const voters = leader?.status().conf.voters ?? swarm.activeMembers();
  const candidate = agent ?? voters.find((id) => id !== leader?.id && swarm.isRunning(id));
  if (!candidate || !swarm.isRunning(candidate)) throw invalid('agent', agent ?? null, `a running voter: ${voters.filter((v) => swarm.isRunning(v)).join(', ')}`);
  // Every voter answered the leader within an election timeout: pre-vote would refuse the
  // campaign (each voter still hears the leader), so waiting for an election only costs the
  // caller (a failure hook) seconds. Answer at once.
  if (leader && heartbeatStatus(swarm) === 'healthy') {
    return {
      old_leader: leader.id,
      candidate,
      event: 'no_change',
      new_leader: leader.id,
      term: leader.status().term,
      detail: `the leader ${leader.id} is healthy (every voter answered within an election timeout): pre-vote keeps it in place, so no campaign was started`,
    };
  }
  const change = await waitForNewLeader(swarm, leader?.id ?? null, 3_000, () => {
    swarm.expectElection('trigger-election', 3_000);
    swarm.cluster.host(candidate).campaign();
  });
  // Nothing changed: a later election (a crash, say) must not be put down to this call.
  if (change.event === 'no_change') swarm.clearExpectedElection();
  return { old_leader: leader?.id ?? null, candidate, ...change };
}

/** Run `act`, then wait for a leader other than `old` (or a new term) and report it. */
async function waitForNewLeader(swarm: Swarm, old: string | null, timeoutMs: number, act: () => void): Promise<Record<string, unknown>> {
  let elected: RoleChange | null = null;
  const off = swarm.onRoleChangeEvent((c) => {
    if (c.election && !elected) elected = c;
  });
  try {
    act();
    const deadline = performance.now() + timeoutMs;
    while (!elected && performance.now() < deadline) await pause(5);
  } finally {
    off();
  }
  const e = elected as RoleChange | null;
  if (!e || !e.election) {
    const now = swarm.cluster.leader();
    return { event: 'no_change', new_leader: now?.id ?? null, term: now?.status().term ?? null, detail: `no new leader within ${timeoutMs} ms (pre-vote and leader lease keep a healthy leader in place)` };
  }
  return { event: 'leader_election', new_leader: e.id, term: e.term, election_duration_ms: Math.round(e.election.durationMs), voted_by: e.election.votedBy, changed: e.id !== old };
}

/** Default bound on a quorum round: a voter silent this long is reported as not answering. */
export const VERIFY_QUORUM_TIMEOUT_MS = 1_000;

/**
 * Run a real ReadIndex round from the leader (a heartbeat with a fresh read context through
 * the Raft core) and report who answered it, with each voter's measured round trip. Nothing
 * here comes from the fault-injection table or process state: a voter whose messages are
 * lost, whose process is paused or whose link is cut simply does not answer.
 */
export async function verifyQuorum(swarm: Swarm, timeoutMs = VERIFY_QUORUM_TIMEOUT_MS): Promise<Record<string, unknown>> {
  const leader = swarm.cluster.leader();
  const cfg = swarm.config();
  if (!leader) {
    const voters = swarm.activeMembers();
    return {
      voters,
      quorum_size: majority(voters.length),
      configured_quorum_size: cfg.quorum_size,
      leader_id: null,
      probe: 'none: no leader in this process to run a round from',
      responses: [],
      reachable: [],
      unreachable: [],
      has_quorum: false,
      heartbeat_status: heartbeatStatus(swarm),
      tolerates_failures: 0,
      detail: swarm.quorumSummary(),
    };
  }
  let r: QuorumProbeResult;
  try {
    r = await leader.probeQuorum(timeoutMs);
  } catch (e) {
    if (e instanceof ProposalError) throw new UserError('unavailable', `quorum round from ${leader.id} did not complete: ${e.message}`);
    throw e;
  }
  const need = majority(r.voters.length);
  const responses = r.voters.map((id) => {
    const rtt = r.answered.get(id);
    return { agent_id: id, answered: rtt !== undefined, rtt_ms: rtt === undefined ? null : round2(rtt), ...(id === r.leader ? { leader: true } : {}) };
  });
  const reachable = responses.filter((x) => x.answered).map((x) => x.agent_id);
  const unreachable = responses.filter((x) => !x.answered).map((x) => x.agent_id);
  return {
    voters: r.voters,
    quorum_size: need,
    configured_quorum_size: cfg.quorum_size,
    leader_id: r.leader,
    term: r.term,
    probe: 'ReadIndex round: heartbeat with a read context from the leader; rtt_ms is the round trip of the heartbeat each voter answered, on the leader clock',
    round_timeout_ms: r.timeoutMs,
    round_ms: round2(r.elapsedMs),
    responses,
    reachable,
    unreachable,
    // The core released the round's read: a majority acknowledged this leader in its term.
    has_quorum: r.quorumConfirmed && reachable.length >= need,
    quorum_confirmed_ms: r.confirmMs === null ? null : round2(r.confirmMs),
    heartbeat_status: heartbeatStatus(swarm),
    tolerates_failures: Math.max(0, reachable.length - need),
  };
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

/**
 * Raising only election_timeout_min to or past the current max (the spec's troubleshooting
 * advice, `--election-timeout-min 300` with max 300) moves max to 2 x min, as etcd's timeout is
 * drawn from [ET, 2 x ET]. The returned note says so; null when nothing moved.
 */
export function widenElectionRange(current: SwarmConfig, patch: Partial<SwarmConfig>): { patch: Partial<SwarmConfig>; note: Record<string, unknown> | null } {
  const min = patch.election_timeout_min;
  if (min === undefined || min === null || patch.election_timeout_max !== undefined || !Number.isInteger(min) || min < current.election_timeout_max) return { patch, note: null };
  const max = Math.min(2 * min, CONFIG_LIMITS.election_timeout_max[1]);
  return {
    patch: { ...patch, election_timeout_max: max },
    note: {
      field: 'election_timeout_max',
      from: current.election_timeout_max,
      to: max,
      reason: `election_timeout_min=${min} is not below the current election_timeout_max (${current.election_timeout_max}); max moved to 2 x min, the [ET, 2 x ET] range etcd uses. Pass --election-timeout-max to choose it.`,
    },
  };
}

export async function configure(swarm: Swarm, requested: Partial<SwarmConfig>): Promise<Record<string, unknown>> {
  const current = swarm.config();
  const { patch, note } = widenElectionRange({ ...DEFAULT_SWARM_CONFIG, ...current }, requested);
  const adjusted = note ? { adjusted: [note] } : {};
  const next: SwarmConfig = { ...DEFAULT_SWARM_CONFIG, ...current, ...patch };
  // The same bounds the state machine enforces when it applies the entry.
  const bad = configProblem({ ...DEFAULT_SWARM_CONFIG, ...current }, patch);
  if (bad) throw invalid(bad.field, bad.value, bad.accepted);
  if (patch.quorum_size !== undefined && patch.quorum_size !== null) {
    // Checked against the swarm's full size (max_agents): the quorum it will run with.
    const size = swarm.data.max_agents;
    const need = majority(size);
    if (patch.quorum_size !== need) {
      throw invalid(
        'quorum_size',
        patch.quorum_size,
        `${need} for max_agents=${size}: Raft commits with a strict majority; a smaller quorum lets two partitions both commit (split brain) and a larger one is not supported`,
      );
    }
  }
  if (!swarm.bootstrapped) {
    swarm.data.pending_config = { ...swarm.data.pending_config, ...patch };
    swarm.registry.save();
    return { swarm: swarm.name, config: next, applied: `stored; committed through the log as soon as the group forms (bootstrap_expect=${swarm.bootstrapExpect} agents spawned)`, ...adjusted };
  }
  const value = await swarm.proposeOk({ t: 'config', patch });
  return { swarm: swarm.name, config: value, applied: 'through the log; timing takes effect on every member as it applies the entry', ...adjusted };
}
