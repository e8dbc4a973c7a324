// Cluster mode's runtime membership (member_list, member_add, member_remove): the same
// single-server changes embedded mode makes for agent_spawn and agent_terminate (a new member
// joins as a learner and is promoted once caught up; a leader hands leadership over before it
// is removed), with the member's address carried in the conf entry so every member learns it
// from the log. Ids are never reused: a removed id stays in the book as a tombstone.

import type { NodeHost } from '../host/node-host.js';
import type { BookEntry } from '../machine/member-book.js';
import type { ConfChange } from '../raft/types.js';
import { UserError, invalid } from '../util/errors.js';
import { pause } from '../swarm/proposer.js';
import { TICK_MS, type Swarm } from '../swarm/swarm.js';

const MEMBER_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const ADDRESS_RE = /^(\[[0-9a-fA-F:]+\]|[^:\s]+):(\d{1,5})$/;
/** How long a change waits for one the core still has in flight (a promotion, a new leader's first entry). */
const PENDING_WAIT_MS = 2_000;
/** How long a removal of the leader waits for the hand-over to another voter. */
const TRANSFER_WAIT_MS = 3_000;

/** A change a member_* call is making: others are refused while it runs (one at a time). */
const inFlight = new WeakMap<Swarm, string>();

function clusterOnly(swarm: Swarm, tool: string): void {
  if (swarm.cluster.mode === 'tcp') return;
  throw new UserError(
    'unsupported',
    `${tool} is for cluster mode (concord node processes); in embedded mode agent_spawn adds a member and agent_terminate mode=graceful removes one`,
  );
}

/** The leader this process runs (tools run on the leader; others redirect before the call). */
function leaderHere(swarm: Swarm): NodeHost {
  const l = swarm.cluster.leader();
  if (!l) throw new UserError('not_leader', `${swarm.name}: this member is not the leader; retry on the leader`);
  return l;
}

function book(swarm: Swarm): Map<string, BookEntry> {
  return swarm.localMachine()?.machine.book.members ?? new Map();
}

export function memberList(swarm: Swarm): Record<string, unknown> {
  clusterOnly(swarm, 'member_list');
  const leader = leaderHere(swarm);
  const st = leader.status();
  const b = book(swarm);
  const ids = [...new Set([...st.conf.voters, ...st.conf.learners])].sort();
  const members = ids.map((id) => {
    const pr = st.peers.find((p) => p.id === id);
    const e = b.get(id);
    return {
      id,
      address: e?.address || null,
      role: id === leader.id ? 'leader' : st.conf.learners.includes(id) ? 'learner' : 'voter',
      // Measured by this leader: the highest log index it knows the member holds.
      match_index: pr?.match ?? null,
      caught_up: pr ? pr.match >= st.commit : null,
      ms_since_heard: pr ? (id === leader.id ? 0 : pr.ticksSinceResponse * TICK_MS) : null,
      incarnation: e?.incarnation ?? null,
    };
  });
  const removed = [...b.entries()].filter(([, e]) => e.state === 'removed').map(([id, e]) => ({ id, address: e.address || null }));
  return {
    swarm: swarm.name,
    cluster_id: swarm.localMachine()?.machine.book.clusterId ?? null,
    leader: leader.id,
    commit_index: st.commit,
    members,
    voters: st.conf.voters,
    learners: st.conf.learners,
    removed,
    note: 'removed ids are never reused: a member that comes back under a removed id is refused',
  };
}

export async function memberAdd(swarm: Swarm, o: { id: string; address: string }): Promise<Record<string, unknown>> {
  clusterOnly(swarm, 'member_add');
  if (!MEMBER_ID_RE.test(o.id)) throw invalid('id', o.id, 'letters, digits, ".", "_" or "-", 1-64 characters');
  const m = ADDRESS_RE.exec(o.address);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 1 || port > 65535) throw invalid('address', o.address, 'HOST:PORT with a port 1-65535, e.g. 127.0.0.1:7004');
  const t0 = performance.now();
  const leader = leaderHere(swarm);
  const conf = leader.status().conf;
  const b = book(swarm);
  const prior = b.get(o.id);
  if (prior?.state === 'removed') {
    throw new UserError('conflict', `id=${o.id} was removed from this cluster and ids are never reused (its old state must not come back): add the member under a new id`, 'id');
  }
  if (conf.voters.includes(o.id) || conf.learners.includes(o.id)) {
    // A retry of an add whose answer was lost finds it done: the same address is success.
    if (prior && prior.address === o.address) return { id: o.id, address: o.address, role: conf.learners.includes(o.id) ? 'learner' : 'voter', already_member: true };
    throw new UserError('conflict', `id=${o.id} is already a member (address ${prior?.address || 'unknown'}); remove it first or pick a new id`, 'id');
  }
  for (const [id, e] of b) {
    if (e.state === 'active' && e.address === o.address && (conf.voters.includes(id) || conf.learners.includes(id))) {
      throw new UserError('conflict', `address=${o.address} is member ${id}'s; each member needs its own address`, 'address');
    }
  }
  const joining = conf.learners.filter((l) => l !== o.id);
  if (joining.length > 0) {
    throw new UserError('conflict', `member ${joining.join(', ')} is still joining as a learner: one membership change at a time; retry once it is a voter (member list), or remove it`, 'id');
  }
  await change(swarm, { type: 'addLearner', node: o.id, context: JSON.stringify({ address: o.address }) });
  return {
    id: o.id,
    address: o.address,
    role: 'learner',
    voters: leaderHere(swarm).status().conf.voters,
    next: `start it on an empty data directory: concord node --swarm ${swarm.name} --id ${o.id} --listen ${o.address} --join <a member's HOST:PORT> ...; it catches up (by snapshot when needed) and the leader promotes it to voter`,
    elapsed_ms: Math.round(performance.now() - t0),
  };
}

export async function memberRemove(swarm: Swarm, o: { id: string }): Promise<Record<string, unknown>> {
  clusterOnly(swarm, 'member_remove');
  const t0 = performance.now();
  const leader = leaderHere(swarm);
  const conf = leader.status().conf;
  const prior = book(swarm).get(o.id);
  if (!conf.voters.includes(o.id) && !conf.learners.includes(o.id)) {
    if (prior?.state === 'removed') return { id: o.id, removed: true, already_removed: true };
    throw new UserError('not_found', `id=${o.id} is not a member; members: ${[...conf.voters, ...conf.learners].sort().join(', ')}`, 'id');
  }
  if (conf.voters.length === 1 && conf.voters[0] === o.id) {
    throw new UserError('conflict', `id=${o.id} is the last voter; a cluster cannot remove its last voter`, 'id');
  }
  if (o.id === leader.id) {
    // Hand leadership over first (dissertation 3.10), then the new leader removes this one:
    // the client follows the not_leader answer to it, with the same session.
    const target = mostCaughtUpVoter(leader);
    if (!target) throw new UserError('unavailable', `cannot remove leader ${o.id}: no other voter is caught up to take over; retry shortly`);
    swarm.expectElection('transfer', TRANSFER_WAIT_MS);
    leader.transferLeadership(target);
    const deadline = performance.now() + TRANSFER_WAIT_MS;
    while (performance.now() < deadline && swarm.cluster.leader()) await pause(5);
    throw new UserError('not_leader', `leadership of ${swarm.name} is moving from ${o.id} to ${target} so that ${o.id} can be removed; retry on the new leader`);
  }
  await change(swarm, { type: 'removeNode', node: o.id, context: JSON.stringify({ address: prior?.address }) });
  const st = leaderHere(swarm).status();
  return { id: o.id, removed: true, was_voter: conf.voters.includes(o.id), removed_by_leader: leader.id, term: st.term, voters: st.conf.voters, elapsed_ms: Math.round(performance.now() - t0) };
}

/**
 * Promote every learner that holds the whole committed log (the criterion agent_spawn uses)
 * and whose id is bound to its data directory's incarnation (member.bind). Run periodically by
 * a cluster-mode leader: a member added with member_add becomes a voter once the process
 * started with --join has caught up and bound itself. Unbound, a wiped directory could join
 * again under the id (checkJoin has no incarnation to compare) as a voter that forgot what it
 * acknowledged and voted for; a learner that forgets is harmless.
 */
export async function promoteCaughtUpLearners(swarm: Swarm): Promise<string[]> {
  const leader = swarm.cluster.leader();
  if (!leader || inFlight.has(swarm)) return [];
  const st = leader.status();
  const b = book(swarm);
  const promoted: string[] = [];
  for (const id of st.conf.learners) {
    const pr = st.peers.find((p) => p.id === id);
    if (!pr || pr.match < st.commit || st.commit === 0) continue;
    if (!b.get(id)?.incarnation) continue;
    try {
      await leader.proposeConfChange({ type: 'addVoter', node: id, context: JSON.stringify({ address: book(swarm).get(id)?.address }) }, 3_000);
      promoted.push(id);
    } catch {
      // Another change in flight or leadership lost: the next round tries again.
    }
  }
  return promoted;
}

function mostCaughtUpVoter(leader: NodeHost): string | null {
  const st = leader.status();
  const peers = st.peers.filter((p) => p.id !== leader.id && st.conf.voters.includes(p.id));
  peers.sort((a, b) => b.match - a.match || a.ticksSinceResponse - b.ticksSinceResponse || a.id.localeCompare(b.id));
  return peers[0]?.id ?? null;
}

/** Propose one change and wait until it is applied; concurrent member_* changes are refused. */
async function change(swarm: Swarm, cc: ConfChange): Promise<void> {
  const busy = inFlight.get(swarm);
  if (busy) throw new UserError('conflict', `a membership change is in progress (${busy}): Raft makes one at a time; retry when it finishes`, 'id');
  const what = `${cc.type} ${cc.node}`;
  inFlight.set(swarm, what);
  try {
    const deadline = performance.now() + PENDING_WAIT_MS;
    for (;;) {
      const leader = leaderHere(swarm);
      try {
        await leader.proposeConfChange(cc, 5_000);
        return;
      } catch (e) {
        const code = (e as { code?: string }).code;
        const msg = (e as Error).message;
        if (code === 'conf_change_pending' && performance.now() < deadline) {
          await pause(20);
          continue;
        }
        if (code === 'conf_change_pending') throw new UserError('conflict', `a membership change is in progress: ${msg}`, 'id');
        if (code === 'not_leader' || code === 'transfer_in_progress') throw new UserError('not_leader', `${what}: ${msg}`);
        if (code === 'invalid') throw new UserError('conflict', `${what}: ${msg}`, 'id');
        // A timeout: the outcome is unknown (it may still commit); the caller may retry, which
        // finds an applied change done.
        throw new UserError('unavailable', `${what} was not applied within 5 s (${msg}); member list shows whether it took effect`);
      }
    }
  } finally {
    inFlight.delete(swarm);
  }
}
