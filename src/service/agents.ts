import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { majority } from '../raft/quorum.js';
import { UserError, invalid } from '../util/errors.js';
import { pause } from '../swarm/proposer.js';
import type { Swarm } from '../swarm/swarm.js';

const AGENT_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export interface AgentView {
  agent_id: string;
  name: string;
  type: string;
  /** unreachable: cluster mode, another process's member that does not answer the leader. */
  status: 'active' | 'crashed' | 'terminated' | 'unreachable' | 'waiting_for_bootstrap';
  role: string;
  capabilities: string[];
  term: number | null;
  applied_index: number | null;
  /** Why a crashed agent stopped itself (its stored state is damaged) and what to do. */
  fault?: string;
}

export function listAgents(swarm: Swarm, filter: 'active' | 'terminated' | 'all' = 'all'): AgentView[] {
  const m = swarm.localMachine()?.machine;
  const out: AgentView[] = [];
  // Who the leader has heard from within an election timeout (null: no leader to ask).
  const leader = swarm.cluster.leader();
  const live = leader ? swarm.liveAgents() : null;
  // Membership as the leader has it: a just-promoted member applies its promotion a moment later.
  const leaderConf = leader?.status().conf;
  for (const [id, entry] of Object.entries(swarm.data.members).sort(([a], [b]) => a.localeCompare(b))) {
    const rec = m?.agents.get(id);
    const host = swarm.cluster.hosts.get(id);
    // A peer process's member counts as running when it answers this leader's heartbeats.
    const running = host ? host.isRunning : swarm.isRunning(id);
    // crashed: its process is down. unreachable: it may run, but the leader does not hear it
    // (a partition, or another process's member that does not answer).
    const heard = live === null || live.has(id);
    const status = entry.state === 'removed' ? 'terminated' : entry.state === 'waiting' ? 'waiting_for_bootstrap' : running ? (heard ? 'active' : 'unreachable') : host || swarm.cluster.mode === 'embedded' ? 'crashed' : 'unreachable';
    if (filter === 'active' && status !== 'active') continue;
    if (filter === 'terminated' && (status === 'active' || status === 'waiting_for_bootstrap')) continue;
    const st = host?.isRunning ? host.status() : null;
    const leaderTerm = running && !host ? (swarm.cluster.leader()?.core.term ?? null) : null;
    out.push({
      agent_id: id,
      name: rec?.name ?? id,
      type: rec?.type ?? entry.pending_agent?.type ?? 'coordinator',
      status,
      // It answered the leader of this term, so it follows that leader.
      role: st ? ((leaderConf ?? st.conf).learners.includes(id) ? 'learner' : st.role) : running ? 'follower' : 'none',
      capabilities: rec?.capabilities ?? entry.pending_agent?.capabilities ?? [],
      term: st?.term ?? leaderTerm,
      applied_index: st?.applied ?? null,
      ...(host && !host.isRunning && host.fault ? { fault: damagedAdvice(swarm, id, host.fault) } : {}),
    });
  }
  return out;
}

/** A member stopped on its damaged file: the fault, and how to bring the agent back. */
function damagedAdvice(swarm: Swarm, id: string, fault: string): string {
  const file = swarm.registry.memberFile(id);
  return `${fault}. To bring ${id} back: move ${file} away (keep it for diagnosis) and agent_restart it: it joins as a new member and catches up from the others`;
}

/** Cluster mode: members are processes this server cannot start or stop. */
function processOnly(swarm: Swarm, what: string): void {
  if (swarm.cluster.mode !== 'tcp') return;
  throw new UserError(
    'unsupported',
    `${what} is not available in cluster mode: each agent is a \`concord node\` process; start, stop or kill that process instead (network_partition cuts its links)`,
  );
}

export async function spawnAgent(swarm: Swarm, o: { type?: string; name?: string; capabilities?: string[] }): Promise<unknown> {
  processOnly(swarm, 'agent_spawn');
  const members = swarm.activeMembers();
  const id = o.name ?? nextAgentName(swarm);
  if (!AGENT_ID_RE.test(id)) throw invalid('name', id, 'letters, digits, ".", "_" or "-", 1-64 characters');
  if (swarm.data.members[id] && swarm.data.members[id]!.state !== 'removed') {
    throw new UserError('conflict', `agent ${id} already exists in swarm ${swarm.name}; choose another name or agent_restart it`, 'name');
  }
  if (members.length >= swarm.data.max_agents) {
    throw new UserError(
      'conflict',
      `swarm ${swarm.name} already has ${members.length} agents (max_agents=${swarm.data.max_agents}); terminate one or swarm_init with a larger max_agents`,
      'name',
    );
  }
  const t0 = performance.now();
  const agent = { id, name: id, type: o.type ?? 'coordinator', capabilities: o.capabilities ?? [] };
  // A new member: new incarnation, new file (a removed agent's would replay its old state).
  swarm.prepareNewMember(id);
  if (!swarm.bootstrapped) {
    swarm.data.members[id] = { bootstrap: false, state: 'waiting', incarnation: randomUUID(), pending_agent: { type: agent.type, capabilities: agent.capabilities } };
    swarm.createMemberFile(id);
    const waiting = swarm.waitingMembers();
    if (waiting.length < swarm.bootstrapExpect) {
      swarm.registry.save();
      return {
        agent_id: id,
        type: agent.type,
        status: 'waiting_for_bootstrap',
        capabilities: agent.capabilities,
        joined_as: `waiting for bootstrap (${waiting.length} of ${swarm.bootstrapExpect} agents)`,
        agents_spawned: waiting.length,
        bootstrap_expect: swarm.bootstrapExpect,
        waiting: waiting,
        detail: `not started yet: the group forms when ${swarm.bootstrapExpect} agents exist (${waiting.length} so far; agent_spawn ${swarm.bootstrapExpect - waiting.length} more). They then start together as its initial voters and elect a leader.`,
        voters: [],
        join_ms: Math.round(performance.now() - t0),
      };
    }
    const bootstrap = await bootstrapGroup(swarm, waiting);
    const leader = swarm.cluster.leader();
    return {
      agent_id: id,
      type: agent.type,
      status: 'active',
      capabilities: agent.capabilities,
      joined_as: `initial voter: the group formed with ${waiting.length} agents (bootstrap_expect=${swarm.bootstrapExpect})`,
      voters: leader?.status().conf.voters ?? [],
      bootstrap,
      join_ms: Math.round(performance.now() - t0),
    };
  }
  swarm.data.members[id] = { bootstrap: false, state: 'active', incarnation: randomUUID() };
  swarm.registry.save();
  await joinAsNewMember(swarm, id);
  await finishFormation(swarm);
  await swarm.proposeOk({ t: 'agent.register', agent });
  const leader = swarm.cluster.leader();
  return {
    agent_id: id,
    type: agent.type,
    status: 'active',
    capabilities: agent.capabilities,
    joined_as: 'learner, then promoted to voter',
    voters: leader?.status().conf.voters ?? [],
    join_ms: Math.round(performance.now() - t0),
  };
}

/**
 * Form the group from the waiting agents, as Consul does once bootstrap_expect servers exist:
 * every one starts as a voter of the same initial configuration, so none can win alone, and
 * their randomized election timeouts decide who campaigns first. The registry says the group
 * formed (durably) before any member starts: a restart then reopens this group, never forms
 * a second one.
 */
async function bootstrapGroup(swarm: Swarm, voters: string[]): Promise<Record<string, unknown>> {
  swarm.data.bootstrap_voters = [...voters].sort();
  swarm.data.bootstrapped_at = new Date().toISOString();
  for (const v of voters) {
    const m = swarm.data.members[v]!;
    m.bootstrap = true;
    m.state = 'active';
  }
  swarm.registry.save();
  const t0 = performance.now();
  for (const v of swarm.data.bootstrap_voters) swarm.startMember(v);
  const leader = await swarm.waitForLeader(10_000);
  const formedMs = performance.now() - t0;
  await finishFormation(swarm);
  const st = leader.status();
  return { voters: swarm.data.bootstrap_voters, leader_id: leader.id, term: st.term, voted_by: st.votedBy, elected_ms: Math.round(formedMs) };
}

/**
 * Commit what waited for the group: the configuration given before it formed, then the
 * waiting agents' labels. Also run at later spawns, should a restart have cut it short.
 */
async function finishFormation(swarm: Swarm): Promise<void> {
  if (swarm.data.pending_config) {
    await swarm.proposeOk({ t: 'config', patch: swarm.data.pending_config });
    delete swarm.data.pending_config;
    swarm.registry.save();
  }
  for (const [id, m] of Object.entries(swarm.data.members)) {
    if (!m.pending_agent || m.state === 'waiting') continue;
    if (m.state !== 'removed') await swarm.proposeOk({ t: 'agent.register', agent: { id, name: id, ...m.pending_agent } });
    delete m.pending_agent;
    swarm.registry.save();
  }
}

/** Start `id` on a new, empty file and add it: a learner until caught up, then a voter. */
async function joinAsNewMember(swarm: Swarm, id: string): Promise<void> {
  swarm.startMember(id);
  await swarm.waitForLeader(5_000);
  await proposeConf(swarm, { type: 'addLearner', node: id });
  await waitCaughtUp(swarm, id, 10_000);
  await proposeConf(swarm, { type: 'addVoter', node: id });
}

function nextAgentName(swarm: Swarm): string {
  for (let i = 1; ; i++) {
    const id = `raft-agent-${i}`;
    const m = swarm.data.members[id];
    if (!m || m.state === 'removed') return id;
  }
}

async function proposeConf(swarm: Swarm, cc: { type: 'addLearner' | 'addVoter' | 'removeNode'; node: string }): Promise<void> {
  const deadline = performance.now() + 10_000;
  let last = '';
  while (performance.now() < deadline) {
    const leader = swarm.cluster.leader();
    if (!leader) {
      await pause(10);
      continue;
    }
    try {
      await leader.proposeConfChange(cc, 3_000);
      return;
    } catch (e) {
      last = (e as Error).message;
      if ((e as { code?: string }).code === 'invalid') {
        // A retry after a timeout whose change did commit finds it already in effect in the
        // applied (so committed) configuration: that is success, not a conflict.
        const { voters, learners } = leader.status().conf;
        const done = cc.type === 'addVoter' ? voters.includes(cc.node) : cc.type === 'addLearner' ? learners.includes(cc.node) : !voters.includes(cc.node) && !learners.includes(cc.node);
        if (done) return;
        throw new UserError('conflict', last);
      }
      await pause(20);
    }
  }
  throw new UserError('unavailable', `membership change ${cc.type} ${cc.node} not committed within 10 s: ${last}`);
}

async function waitCaughtUp(swarm: Swarm, id: string, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    const leader = swarm.cluster.leader();
    const pr = leader?.status().peers.find((p) => p.id === id);
    if (leader && pr && pr.match >= leader.status().commit) return;
    await pause(5);
  }
  throw new UserError('unavailable', `learner ${id} did not catch up within ${timeoutMs} ms`);
}

export async function terminateAgent(swarm: Swarm, id: string, mode: 'crash' | 'graceful' = 'crash'): Promise<unknown> {
  processOnly(swarm, 'agent_terminate');
  const entry = swarm.data.members[id];
  if (!entry || entry.state === 'removed') {
    throw new UserError('not_found', `agent_id=${JSON.stringify(id)} is not an agent of swarm ${swarm.name}; agents: ${swarm.activeMembers().join(', ') || '(none)'}`, 'agent_id');
  }
  if (entry.state === 'waiting') {
    // Never started, so nothing to stop and no vote to lose: it just no longer counts toward
    // bootstrap_expect. Its file holds only its identity.
    entry.state = 'removed';
    delete entry.pending_agent;
    swarm.registry.save();
    const waiting = swarm.waitingMembers();
    return {
      agent_id: id,
      mode,
      status: 'terminated',
      was_leader: false,
      note: `it was waiting for bootstrap and had not started; ${waiting.length} of bootstrap_expect=${swarm.bootstrapExpect} agents now wait`,
    };
  }
  const wasLeader = swarm.cluster.leader()?.id === id;
  const t0 = performance.now();
  if (mode === 'crash') {
    if (entry.state === 'crashed') throw new UserError('conflict', `agent ${id} is already crashed; agent_restart brings it back`, 'agent_id');
    swarm.cluster.crash(id);
    swarm.workers.get(id)?.reset();
    entry.state = 'crashed';
    swarm.registry.save();
    // Say what the crash left: a fault control (the dashboard's button too) may take the
    // swarm below its quorum, and then nothing commits until an agent_restart.
    const agents = swarm.activeMembers().length;
    const running = swarm.activeMembers().filter((a) => swarm.isRunning(a)).length;
    const quorum = majority(agents);
    const note =
      running === 0
        ? `stopped abruptly; no agent of swarm ${swarm.name} is running now: nothing commits until agent_restart`
        : running < quorum
          ? `stopped abruptly; swarm ${swarm.name} has lost its quorum (${running} of ${agents} agents running, a majority is ${quorum}): no leader can be elected and nothing commits until agent_restart`
          : 'stopped abruptly; the others notice by missed heartbeats';
    return { agent_id: id, mode, status: 'crashed', was_leader: wasLeader, agents_running: running, quorum_size: quorum, quorum_lost: running < quorum, note };
  }
  if (swarm.activeMembers().length === 1) {
    throw new UserError('conflict', `agent ${id} is the last member of swarm ${swarm.name}; use swarm_destroy to remove the swarm`, 'agent_id');
  }
  let transferredTo: string | null = null;
  if (wasLeader) {
    const others = swarm.activeMembers().filter((a) => a !== id && swarm.isRunning(a));
    const target = pickMostCaughtUp(swarm, others);
    if (target) {
      swarm.expectElection('transfer', 2_000);
      swarm.cluster.host(id).transferLeadership(target);
      // Wait for a leader other than us: right after the hand-over there may briefly be none.
      const deadline = performance.now() + 2_000;
      const other = () => {
        const l = swarm.cluster.leader();
        return l && l.id !== id ? l.id : null;
      };
      while (performance.now() < deadline && other() === null) await pause(5);
      transferredTo = other();
    }
  }
  await proposeConf(swarm, { type: 'removeNode', node: id });
  await swarm.proposeOk({ t: 'agent.remove', id });
  swarm.cluster.remove(id);
  swarm.workers.get(id)?.reset();
  entry.state = 'removed';
  swarm.registry.save();
  return { agent_id: id, mode, status: 'terminated', was_leader: wasLeader, leadership_transferred_to: transferredTo, elapsed_ms: Math.round(performance.now() - t0) };
}

function pickMostCaughtUp(swarm: Swarm, candidates: string[]): string | null {
  const leader = swarm.cluster.leader();
  if (!leader) return candidates[0] ?? null;
  const peers = leader.status().peers.filter((p) => candidates.includes(p.id) && !p.isLearner);
  peers.sort((a, b) => b.match - a.match || a.id.localeCompare(b.id));
  return peers[0]?.id ?? null;
}

export async function restartAgent(swarm: Swarm, id: string): Promise<unknown> {
  processOnly(swarm, 'agent_restart');
  const entry = swarm.data.members[id];
  if (!entry || entry.state === 'removed') throw new UserError('not_found', `agent_id=${JSON.stringify(id)} is not a restartable agent of swarm ${swarm.name}`, 'agent_id');
  if (entry.state === 'waiting') throw new UserError('conflict', `agent ${id} has not started yet: ${swarm.bootstrapSummary()}`, 'agent_id');
  if (swarm.isRunning(id)) throw new UserError('conflict', `agent ${id} is already running`, 'agent_id');
  const t0 = performance.now();
  if (!fs.existsSync(swarm.registry.memberFile(id))) return replaceLostMember(swarm, id, t0);
  let host;
  try {
    host = swarm.startMember(id);
  } catch (e) {
    if (e instanceof UserError) throw e;
    // Its file opened but its state could not be rebuilt from it (a damaged checkpoint row).
    throw new UserError(
      'conflict',
      `agent ${id} cannot start from its database ${swarm.registry.memberFile(id)}: ${(e as Error).message}. The other agents keep serving. ` +
        'If the file is damaged, move it away (keep it for diagnosis) and agent_restart the agent: it then joins as a new member and catches up from the others',
      'agent_id',
    );
  }
  entry.state = 'active';
  swarm.registry.save();
  // Replaying its log met damage in its file again (see NodeHost.fault): it stopped.
  if (!host.isRunning) throw new UserError('conflict', damagedAdvice(swarm, id, host.fault ?? `agent ${id} stopped while starting`), 'agent_id');
  const st = host.status();
  return { agent_id: id, status: 'active', recovered: { term: st.term, last_index: st.lastIndex, commit: st.commit, snapshot_index: st.snapshotIndex }, restart_ms: Math.round(performance.now() - t0) };
}

/**
 * The agent's database is gone (the operator removed a lost or corrupted file): it comes back
 * as a new member under its name, never as the old voter with an empty log. It leaves the
 * configuration, then joins again as a learner on a new file and incarnation, catches up (by
 * snapshot when the log is compacted) and is promoted.
 */
async function replaceLostMember(swarm: Swarm, id: string, t0: number): Promise<unknown> {
  await swarm.waitForLeader(5_000);
  const conf = swarm.cluster.leader()!.status().conf;
  if (conf.voters.includes(id) || conf.learners.includes(id)) await proposeConf(swarm, { type: 'removeNode', node: id });
  swarm.prepareNewMember(id);
  swarm.data.members[id] = { bootstrap: false, state: 'active', incarnation: randomUUID() };
  swarm.registry.save();
  try {
    await joinAsNewMember(swarm, id);
  } catch (e) {
    swarm.data.members[id]!.state = 'crashed';
    swarm.registry.save();
    throw e;
  }
  const st = swarm.cluster.host(id).status();
  return {
    agent_id: id,
    status: 'active',
    replaced: 'its database was missing: re-added as a new member (new incarnation) that caught up from the others',
    recovered: { term: st.term, last_index: st.lastIndex, commit: st.commit, snapshot_index: st.snapshotIndex },
    restart_ms: Math.round(performance.now() - t0),
  };
}

export function agentMetrics(swarm: Swarm, id?: string, metric?: string): unknown {
  const ids = id ? [id] : swarm.activeMembers();
  for (const a of ids) {
    if (!swarm.data.members[a]) throw new UserError('not_found', `agent_id=${JSON.stringify(a)} is not an agent of swarm ${swarm.name}`, 'agent_id');
  }
  const agents = ids.map((a) => {
    const h = swarm.cluster.hosts.get(a);
    if (!h && swarm.data.members[a]!.state === 'waiting') return { agent_id: a, status: 'waiting_for_bootstrap (not started: no metrics yet)' };
    if (!h) return { agent_id: a, status: swarm.cluster.mode === 'tcp' ? 'runs in another process (metrics are measured by each process for its own member)' : 'not started in this process' };
    const m = h.metrics();
    const st = h.isRunning ? h.status() : null;
    const all = {
      agent_id: a,
      status: h.isRunning ? 'active' : 'stopped',
      log: { first_index: st?.firstIndex ?? null, last_index: st?.lastIndex ?? null, entries_stored: m.storage.entryCount, snapshot_index: st?.snapshotIndex ?? null },
      applied_index: m.applied,
      'disk-io': {
        disk_bytes: m.storage.diskBytes,
        // This life only: an embedded restart reuses the storage, whose counters run on.
        bytes_written: m.storageThisLife.bytesWritten,
        fsync_count: m.storageThisLife.syncs,
        fsync_ms_total: round2(m.storageThisLife.syncMsTotal),
        fsync_ms_mean: m.storageThisLife.syncs > 0 ? round2(m.storageThisLife.syncMsTotal / m.storageThisLife.syncs) : null,
      },
      messages: { in: m.messagesIn, out: m.messagesOut },
      snapshots: { taken: m.snapshotsTaken, installed: m.snapshotsInstalled },
    };
    if (!metric) return all;
    const pickable: Record<string, unknown> = { 'disk-io': all['disk-io'], log: all.log, messages: all.messages, snapshots: all.snapshots, applied: all.applied_index };
    if (!(metric in pickable)) throw invalid('metric', metric, Object.keys(pickable).join(', '));
    return { agent_id: a, status: all.status, [metric]: pickable[metric] };
  });
  return {
    swarm: swarm.name,
    measured_since:
      "the agent's latest start in this process: messages, snapshots, bytes_written and fsync_* count from then (an agent restart starts them from 0); disk_bytes, log and applied_index are current values",
    agents,
  };
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}
