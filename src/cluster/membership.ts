// Runtime membership on a `concord node`: the member's durable membership file, the checks a
// member started with --join passes before it runs, and the keeper that follows the
// replicated address book (dial new members, drop removed ones, exit when this member is the
// one removed), records the cluster id, binds this member's incarnation and promotes
// caught-up learners while it leads.

import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { StateMachine } from '../host/node-host.js';
import type { CoordinationMachine } from '../machine/coordination-machine.js';
import type { MemberBook } from '../machine/member-book.js';
import { UserError } from '../util/errors.js';
import { promoteCaughtUpLearners } from '../service/members.js';
import type { Swarm } from '../swarm/swarm.js';
import { TcpClient } from '../transport/tcp-client.js';
import { TcpTransport, type PeerAddress } from '../transport/tcp-transport.js';
import type { TlsMaterial } from '../transport/tls.js';
import { logger } from '../util/logger.js';
import type { MemberCluster } from './member-cluster.js';
import type { MemberStatus } from './protocol.js';

/** What a member keeps on disk about membership (the log is the source; this survives restarts). */
export interface MembershipRecord {
  cluster_id: string | null;
  /** The voters its log starts from; [] for a member that joined a running cluster. */
  bootstrap_voters: string[];
  /** The address book as last applied (addresses of members added at runtime). */
  members: Record<string, { address: string; state: 'active' | 'removed' }>;
}

export function membershipPath(swarmDir: string): string {
  return path.join(swarmDir, 'membership.json');
}

export function loadMembership(file: string): MembershipRecord | null {
  if (!fs.existsSync(file)) return null;
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as MembershipRecord;
  } catch (e) {
    throw new UserError('conflict', `membership file ${file} is unreadable (${(e as Error).message}); restore it or start this member on a new data directory under a new id`, 'data_dir');
  }
}

export function saveMembership(file: string, rec: MembershipRecord): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp`;
  const fd = fs.openSync(tmp, 'w', 0o600);
  try {
    fs.writeSync(fd, JSON.stringify(rec, null, 2));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

/** The membership a member exposes in its status (any member answers; clients hold the client key). */
export type StatusMembership = MemberStatus['membership'];

/**
 * Before a member started with --join runs: a seed's view of the book must list this id as
 * added and not removed, bound to no other incarnation, and a data directory that already
 * holds state must be this cluster's. Returns the seed's view of the book: the joiner dials
 * (and accepts) those members before it has applied the book itself.
 */
export async function checkJoin(o: {
  id: string;
  /** The swarm it joins: a seed of another swarm (same secret, an address mixed up) is skipped. */
  swarm?: string;
  join: string[];
  secret: Buffer;
  /** With TLS the certificate names this member: it asks as the member (seeds know it once added). */
  tls?: TlsMaterial;
  local: MembershipRecord | null;
  /** Files of this swarm's data directory other than the membership file (state from a previous run). */
  hasState: boolean;
  incarnation: string | undefined;
}): Promise<NonNullable<StatusMembership>> {
  const errors: string[] = [];
  let view: NonNullable<StatusMembership> | null = null;
  /** A seed that answered with the book but without this id (it may lag behind the add). */
  let unlisted: string | null = null;
  /** A seed that listed this id but is not a current leader (its book may lag behind the bind). */
  let follower: string | null = null;
  const deadline = Date.now() + 10_000;
  while (view === null && Date.now() < deadline) {
    // The seeds, then the leaders they name (asked in the same round).
    const targets = [...o.join];
    for (let k = 0; k < targets.length; k++) {
      const seed = targets[k]!;
      const i = seed.lastIndexOf(':');
      const c = new TcpClient({ host: seed.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(seed.slice(i + 1)), secret: o.secret, tls: o.tls, ...(o.tls ? { asMember: o.id } : {}), name: `joining-${o.id}`, failFast: true });
      try {
        const st = (await c.request({ kind: 'status' }, 2_000, 1_000)) as MemberStatus;
        const b = st.membership;
        if (o.swarm !== undefined && st.swarm !== o.swarm) {
          errors.push(`${seed}: a member of swarm ${JSON.stringify(st.swarm)}, not ${JSON.stringify(o.swarm)}`);
          continue;
        }
        if (!b?.cluster_id) {
          errors.push(`${seed}: no cluster id recorded yet`);
          continue;
        }
        // A removal is committed once any member applied it: authoritative from any seed.
        if (b.members[o.id]?.state === 'removed') {
          throw Object.assign(new UserError('conflict', `--join: member id ${o.id} was removed from this cluster and ids are never reused; add this member under a new id`, 'id'), { removed: true });
        }
        const listed = b.members[o.id];
        if (listed) {
          // Bound to another directory: authoritative from any seed (a bind is never undone).
          if (listed.incarnation && listed.incarnation !== o.incarnation) {
            view = b;
            break;
          }
          // Unbound (or bound to this directory) on the word of a leader that applied all it
          // committed only: a follower that fell behind before a wiped member's bind lists it
          // unbound too. Ask the leader it names.
          if (st.role === 'leader' && st.applied !== null && st.commit !== null && st.applied >= st.commit) {
            view = b;
            break;
          }
          follower = `${seed} (${st.id}, ${st.role}${st.leader ? `, following ${st.leader}` : ''})`;
          if (st.leader_address && !targets.includes(st.leader_address)) targets.push(st.leader_address);
          continue;
        }
        unlisted = `${seed} (${st.id})`;
      } catch (e) {
        if (e instanceof UserError) throw e;
        errors.push(`${seed}: ${(e as Error).message}`);
      } finally {
        c.close();
      }
    }
    if (view === null) await new Promise((r) => setTimeout(r, 200));
  }
  if (view === null && follower !== null) {
    throw new UserError('unavailable', `--join: member ${o.id} is listed by ${follower}, but no leader confirmed it within 10 s (a follower's view may lag behind the cluster's); retry once a leader is reachable from here`, 'join');
  }
  if (view === null && unlisted !== null) {
    throw new UserError('conflict', `--join: member ${o.id} is not in the cluster's configuration (as ${unlisted} reports); add it first: concord member add --id ${o.id} --address HOST:PORT`, 'id');
  }
  if (view === null) throw new UserError('unavailable', `--join: no member answered with the cluster's membership within 10 s (${errors.slice(-3).join('; ')})`, 'join');
  const me = view.members[o.id]!;
  if (o.local?.cluster_id && o.local.cluster_id !== view.cluster_id) {
    throw new UserError('conflict', `--join: this data directory holds state of cluster ${o.local.cluster_id}, not ${view.cluster_id}; start on an empty data directory`, 'data_dir');
  }
  if (!o.local?.cluster_id && o.hasState && (o.local === null || o.local.bootstrap_voters.length > 0)) {
    throw new UserError('conflict', `--join: this data directory holds a member's state from another cluster (or from before membership records); start on an empty data directory`, 'data_dir');
  }
  if (me.incarnation && me.incarnation !== o.incarnation) {
    throw new UserError('conflict', `--join: member id ${o.id} is bound to another data directory (incarnation ${me.incarnation}); a member's id is never reused for different state: add this one under a new id`, 'id');
  }
  return view;
}

/** Between probe rounds of a member waiting to bootstrap. */
const BOOTSTRAP_PROBE_MS = 200;
/** A waiting member says on stderr why it waits, and whom it heard from, this often. */
const BOOTSTRAP_LOG_MS = 5_000;

/** What one peer's answer says to a member with no state deciding whether it may bootstrap. */
type PeerWord =
  | { kind: 'silent' }
  /** Waiting to bootstrap too, or running from a bootstrap of the same voters with nothing committed. */
  | { kind: 'fresh'; state: 'waiting' | 'running' }
  /**
   * A formed cluster (a recorded cluster id): what its book says about this id. `current`: the
   * word of a leader that applied all it committed; a follower's book may lag behind a bind.
   */
  | { kind: 'cluster'; cluster_id: string; me: { state: 'active' | 'removed'; incarnation: string | null } | undefined; current: boolean }
  /** Neither: other voters (another --peers), or a member too old to say. */
  | { kind: 'other'; why: string };

function sameIds(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && [...a].sort().every((id, i) => id === [...b].sort()[i]);
}

function classify(id: string, swarm: string, voters: readonly string[], peer: string, st: MemberStatus): PeerWord {
  // Another member at this peer's address (two ids given one address, or an address reused):
  // its word must not count for this peer too (one fresh member counted twice makes a majority).
  if (st.id !== peer) return { kind: 'other', why: `member ${JSON.stringify(st.id)} answers at its address` };
  // Another swarm's member at a peer's address (same secret, a port mixed up): its book and
  // its freshness say nothing about this swarm.
  if (st.swarm !== swarm) return { kind: 'other', why: `it is a member of swarm ${JSON.stringify(st.swarm)}, not ${JSON.stringify(swarm)}` };
  const b = st.membership;
  if (b?.cluster_id) return { kind: 'cluster', cluster_id: b.cluster_id, me: b.members[id], current: st.role === 'leader' && st.applied !== null && st.commit !== null && st.applied >= st.commit };
  if (!st.bootstrap) return { kind: 'other', why: 'no cluster id yet and no bootstrap state (an older member?)' };
  if (!sameIds(st.bootstrap.voters, voters)) return { kind: 'other', why: `it bootstraps other voters (${st.bootstrap.voters.join(',') || 'none: it joined with --join'})` };
  // Entries in its log and no cluster id yet: the first leader is recording it (ask again), or
  // this peer fell behind the cluster (its commit index unknown: 0). Either way it took part.
  if (st.bootstrap.state === 'running' && ((st.commit ?? 0) > 0 || (st.last_index ?? 0) > 0)) return { kind: 'other', why: 'it holds log entries but records no cluster id yet' };
  return { kind: 'fresh', state: st.bootstrap.state };
}

/**
 * Before a member runs on a data directory holding nothing of it (no registry entry, no
 * database) without --join: a bootstrap member's first start, or one whose directory was
 * wiped. An empty voter forgot the votes it granted and the entries it acknowledged, so it
 * runs only on positive evidence, as Consul's bootstrap_expect waits for its servers:
 * - a peer reports a formed cluster (a recorded cluster id): its book decides. This id bound
 *   to an incarnation (it ran on another directory) or removed: refused, on any member's
 *   word. Listed and never bound: a bootstrap member that was down at the first start (it
 *   never ran, so it forgot nothing): it starts and catches up, on the word of a leader that
 *   applied all it committed (a follower that fell behind before the bind lists it unbound
 *   too). Not listed: it must be added and started with --join.
 * - no peer reports a formed cluster, and a majority of the bootstrap voters, itself
 *   included, are fresh (waiting here too, or running from a bootstrap of the same voters
 *   with an empty log): the cluster never formed, and it starts. Running members count: the
 *   first to start stops waiting at once, and the others must still see it. A running member
 *   with log entries took part in a cluster, whatever commit index it knows.
 * Otherwise it waits, probing every BOOTSTRAP_PROBE_MS, and serves status probes on its
 * member port ("waiting") so fresh members see each other. It waits without limit (a member
 * started first, or restarted by a supervisor, must not give up before the others come up);
 * `signal` ends the wait (the process exits on SIGTERM).
 *
 * Limit: a majority counting its own word cannot tell a first start with a member down from
 * "a cluster formed without member X, then all its members but this wiped one are down, and
 * X comes up". Only more fresh peers (n - majority + 1 besides itself) would rule that out.
 */
export async function checkFreshStart(o: {
  id: string;
  swarm: string;
  peers: Record<string, PeerAddress>;
  /** The bootstrap voters (ids of --peers): fresh peers must name the same. */
  voters: string[];
  listen?: PeerAddress;
  secret: Buffer;
  tls?: TlsMaterial;
  signal?: AbortSignal;
}): Promise<void> {
  const others = Object.entries(o.peers).filter(([id]) => id !== o.id);
  const need = Math.floor(o.voters.length / 2) + 1;
  // Alone in its configuration: nothing else could have formed a cluster with it.
  if (others.length === 0 && need <= 1) return;
  const words = new Map<string, PeerWord>();
  const listener = await waitingListener(o);
  const t0 = Date.now();
  // The first word after a second of waiting: members started together wait about one round,
  // and a start that waits for nothing writes nothing (nor loads the logger).
  let lastLog = t0 - BOOTSTRAP_LOG_MS + 1_000;
  try {
    for (;;) {
      if (o.signal?.aborted) throw new UserError('unavailable', `member ${o.id}: start cancelled while waiting to bootstrap`, 'peers');
      await Promise.all(others.map(async ([peer, a]) => words.set(peer, await probe(o, peer, a))));
      // Every report of a formed cluster is read before any lets it start: one refusal wins.
      const cluster = [...words].filter((e): e is [string, Extract<PeerWord, { kind: 'cluster' }>] => e[1].kind === 'cluster');
      for (const [peer, w] of cluster) {
        if (w.me?.state === 'removed') {
          throw new UserError('conflict', `member id ${o.id} was removed from this cluster (as ${peer} reports) and ids are never reused; add a new member under a new id`, 'id');
        }
        if (w.me?.incarnation) {
          throw new UserError(
            'conflict',
            `member id ${o.id} is bound to another data directory (incarnation ${w.me.incarnation}, as ${peer} reports), and this one holds nothing of it (wiped or new): a member that forgot its log and votes must not vote. Restore its data directory, or remove it (concord member remove --id ${o.id}) and add a new member under a new id`,
            'data_dir',
          );
        }
        if (!w.me) {
          throw new UserError('conflict', `cluster ${w.cluster_id} (as ${peer} reports) does not list member id ${o.id}: add it (concord member add --id ${o.id} --address HOST:PORT) and start it with --join on an empty data directory`, 'id');
        }
      }
      // Listed, never bound: it never ran (down at the first start). It starts and catches up,
      // on a current leader's word only: a follower that fell behind before this id's bind
      // applied lists it unbound too, and with the leader down the two would be a majority.
      const current = cluster.filter(([, w]) => w.current);
      if (current.length > 0) {
        logger.info({ id: o.id, cluster_id: current[0]![1].cluster_id, from: current.map(([p]) => p) }, 'the cluster formed without this member; starting to catch up');
        return;
      }
      const fresh = [...words].filter(([, w]) => w.kind === 'fresh').map(([p]) => p);
      // A peer of a formed cluster says it formed: a fresh majority is no evidence then.
      if (cluster.length === 0 && fresh.length + 1 >= need) {
        logger.info({ id: o.id, fresh, waited_ms: Date.now() - t0 }, 'bootstrapping: a majority of the members are fresh');
        return;
      }
      if (Date.now() - lastLog >= BOOTSTRAP_LOG_MS) {
        lastLog = Date.now();
        const heard = Object.fromEntries(
          [...words].map(([p, w]) => [p, w.kind === 'fresh' ? `fresh (${w.state})` : w.kind === 'other' ? w.why : w.kind === 'cluster' ? `cluster ${w.cluster_id}, not its leader (waiting for the leader's word)` : 'no answer']),
        );
        logger.warn(
          { id: o.id, need, fresh: fresh.length + 1, heard, waited_ms: Date.now() - t0 },
          `waiting to bootstrap: no state here and no --join; starting as a voter needs ${need} of ${o.voters.length} members fresh (itself included) or a peer of a formed cluster`,
        );
      }
      await new Promise((r) => setTimeout(r, BOOTSTRAP_PROBE_MS));
    }
  } finally {
    listener.close();
    // Let the listening socket close before the member's own transport binds the port.
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function probe(o: { id: string; swarm: string; secret: Buffer; tls?: TlsMaterial; voters: string[] }, peer: string, a: PeerAddress): Promise<PeerWord> {
  const c = new TcpClient({ host: a.host, port: a.port, secret: o.secret, tls: o.tls, ...(o.tls ? { asMember: o.id } : {}), name: `fresh-${o.id}`, failFast: true });
  try {
    return classify(o.id, o.swarm, o.voters, peer, (await c.request({ kind: 'status' }, 1_000, 500)) as MemberStatus);
  } catch {
    return { kind: 'silent' }; // down, starting, or refusing us
  } finally {
    c.close();
  }
}

/** The member port while it waits: status probes only ("waiting to bootstrap"). */
async function waitingListener(o: { id: string; swarm: string; peers: Record<string, PeerAddress>; voters: string[]; listen?: PeerAddress; secret: Buffer; tls?: TlsMaterial }): Promise<{ close: () => void }> {
  const bind = o.listen ?? o.peers[o.id]!;
  // Peers known, so that members probing as themselves (TLS) are admitted.
  const t = new TcpTransport({ id: o.id, swarm: o.swarm, secret: o.secret, tls: o.tls, host: bind.host, port: bind.port, peers: Object.fromEntries(Object.entries(o.peers).filter(([id]) => id !== o.id)) });
  const loop = monitorEventLoopDelay({ resolution: 20 });
  loop.enable();
  t.onClientRequest(async (req) => {
    // As a follower that knows no leader answers: clients go on to the other members.
    if ((req as { kind?: unknown } | null)?.kind !== 'status') throw Object.assign(new Error(`${o.id} is not the leader (waiting to bootstrap: fresh, not yet a voter); no leader is known yet`), { code: 'not_leader' });
    const s = t.stats();
    const ms = (ns: number): number => Math.round(ns / 1e4) / 100;
    const status: MemberStatus = {
      id: o.id,
      swarm: o.swarm,
      role: 'waiting-to-bootstrap',
      term: null,
      leader: null,
      leader_address: null,
      commit: null,
      applied: null,
      last_index: null,
      first_index: null,
      blocked: [],
      links: {},
      auth_failures: s.authFailures,
      protocol_errors: s.protocolErrors,
      event_loop_delay_ms: { p50: ms(loop.percentile(50)), p99: ms(loop.percentile(99)), max: ms(loop.max) },
      membership: null,
      bootstrap: { state: 'waiting', voters: o.voters },
    };
    return status;
  });
  try {
    await t.listen();
  } catch (e) {
    t.close();
    loop.disable();
    throw new UserError('unavailable', `cannot listen on ${bind.host}:${bind.port}: ${(e as Error).message} (another process has the port? pick another with --peers/--listen)`, 'listen');
  }
  return {
    close: () => {
      loop.disable();
      t.close();
    },
  };
}

/**
 * A StateMachine that tells `changed` whenever the book of the machine under it changed (an
 * applied conf or member entry, or a restored snapshot).
 */
export function watchBook(inner: StateMachine, changed: (book: MemberBook) => void): StateMachine {
  const m = inner as CoordinationMachine;
  let seen: MemberBook | null = null;
  let version = -1;
  const check = (): void => {
    if (m.book === seen && m.book.version === version) return;
    seen = m.book;
    version = m.book.version;
    changed(m.book);
  };
  return {
    apply: (e) => {
      const r = m.apply(e);
      if (e.type !== 'noop') check();
      return r;
    },
    snapshot: () => m.snapshot(),
    snapshotData: () => m.snapshotData(),
    snapshotSteps: () => m.snapshotSteps(),
    restore: (d) => {
      m.restore(d);
      check();
    },
    sizeHint: () => m.sizeHint(),
    checkSnapshot: (d) => m.checkSnapshot(d),
    prepareSnapshotPart: (parts, i) => m.prepareSnapshotPart(parts, i),
    dropSnapshotParts: (parts) => m.dropSnapshotParts(parts),
    takeCheckpoint: () => m.takeCheckpoint(),
    checkpointSteps: () => m.checkpointSteps(),
    restoreCheckpoint: (c) => {
      m.restoreCheckpoint(c);
      check();
    },
    dirtyRows: () => m.dirtyRows(),
    markCheckpointLost: () => m.markCheckpointLost(),
  };
}

const KEEPER_PERIOD_MS = 200;
/**
 * Without word from a leader this long, ask the peers whether this member was removed: a
 * removed member never hears its removal commit (the leader stops replicating to it and the
 * others refuse its connections), as etcd's removed members learn it from their peers.
 */
const LEADERLESS_CHECK_MS = 1_000;

/** Runs on every member; see the file comment. */
export class MembershipKeeper {
  private timer: NodeJS.Timeout | null = null;
  private busy = false;
  private leaderlessSince: number | null = null;
  private lastPeerCheck = 0;
  /** The leader this member followed at the last round, and the messages received from it by then. */
  private lastLead: string | null = null;
  private lastLeadIn = -1;
  private fatal = false;

  constructor(
    private readonly o: {
      id: string;
      incarnation: () => string | undefined;
      /** Undefined while the member replays its log at start-up. */
      swarm: () => Swarm | undefined;
      cluster: () => MemberCluster;
      secret: Buffer;
      /**
       * With TLS the certificate names this member, so it asks as the member: peers that removed
       * it refuse that, and a member removed while it was down is then refused but does not exit.
       */
      tls?: TlsMaterial;
      file: string;
      bootstrapVoters: string[];
      /** This member must stop: it was removed, or its id is another data directory's. */
      onFatal: (message: string) => void;
    },
  ) {}

  /** The book changed (called while entries apply). */
  onBook(book: MemberBook): void {
    const view = book.view();
    const members = Object.fromEntries(Object.entries(view.members).map(([id, e]) => [id, { address: e.address, state: e.state }]));
    this.o.cluster().applyBook(members);
    try {
      saveMembership(this.o.file, { cluster_id: view.cluster_id, bootstrap_voters: this.o.bootstrapVoters, members });
    } catch (e) {
      logger.error({ file: this.o.file, err: (e as Error).message }, 'could not save the membership file');
    }
    this.syncRegistry(view.members);
    const me = view.members[this.o.id];
    if (me?.state === 'removed') this.die(`member ${this.o.id} was removed from the cluster configuration; stopping (its id is never reused: add a new member under a new id)`);
    const inc = this.o.incarnation();
    if (me?.incarnation && inc && me.incarnation !== inc) this.die(`member id ${this.o.id} is bound to another data directory (incarnation ${me.incarnation}, this one is ${inc}); stopping`);
  }

  /**
   * Members added at runtime join this process's agent registry, so the scheduler treats them
   * as its own (takes work back from one that goes silent instead of waiting for its lease).
   * Removed ones stay as they were: silent, their work is taken back.
   */
  syncRegistry(members = this.o.swarm()?.localMachine()?.machine.book.view().members ?? {}): void {
    const swarm = this.o.swarm();
    if (!swarm) return;
    let changed = false;
    for (const [id, e] of Object.entries(members)) {
      if (e.state !== 'active' || swarm.data.members[id]) continue;
      swarm.data.members[id] = { bootstrap: false, state: 'active' };
      changed = true;
    }
    if (changed) swarm.registry.save();
  }

  /** The leader that removed this member says so (it no longer replicates to it). */
  removedBy(from: string): void {
    this.die(`member ${this.o.id} was removed from the cluster configuration (${from} reports it); stopping: its id is never reused, add a new member under a new id`);
  }

  start(): void {
    this.syncRegistry();
    this.timer = setInterval(() => void this.round(), KEEPER_PERIOD_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private die(message: string): void {
    if (this.fatal) return;
    this.fatal = true;
    this.stop();
    logger.error({ id: this.o.id }, message);
    // Not from inside the apply loop: let the host finish the entry it is applying.
    setImmediate(() => this.o.onFatal(message));
  }

  private async round(): Promise<void> {
    if (this.busy || this.fatal) return;
    this.busy = true;
    try {
      const swarm = this.o.swarm()!;
      const cluster = this.o.cluster();
      const leader = cluster.leader();
      const book = swarm.localMachine()?.machine.book;
      const now = Date.now();
      const lead = cluster.remoteLeader();
      const hasLeader = leader !== undefined || lead !== null;
      // Heard from a leader since the last round: it leads here, or its link delivered messages.
      const leadIn = lead ? (cluster.transport.stats().peers[lead]?.messagesIn ?? 0) : -1;
      const heard = leader !== undefined || (lead !== null && lead === this.lastLead && leadIn !== this.lastLeadIn);
      this.lastLead = lead;
      this.lastLeadIn = leadIn;
      this.leaderlessSince = heard ? null : (this.leaderlessSince ?? now);
      if (leader && book && leader.core.log.term(leader.core.log.committed) === leader.core.term) {
        if (book.clusterId === null) {
          // The first leader records the cluster's id and the bootstrap members' addresses.
          const addrs = cluster.addresses();
          const members = Object.fromEntries(this.o.bootstrapVoters.filter((id) => addrs[id]).map((id) => [id, addrs[id]!]));
          await swarm.propose({ t: 'member.seed', cluster_id: randomUUID(), members }, 3_000);
        }
        await promoteCaughtUpLearners(swarm);
      }
      const me = book?.members.get(this.o.id);
      const inc = this.o.incarnation();
      if (hasLeader && me && me.state === 'active' && me.incarnation === null && inc) {
        const r = await swarm.propose({ t: 'member.bind', id: this.o.id, incarnation: inc }, 3_000);
        if (!r.ok && r.code === 'conflict') this.die(`refused by the cluster: ${r.message}`);
      }
      if (this.leaderlessSince !== null && now - this.leaderlessSince > LEADERLESS_CHECK_MS && now - this.lastPeerCheck > LEADERLESS_CHECK_MS) {
        this.lastPeerCheck = now;
        await this.askPeers();
      }
    } catch (e) {
      logger.debug({ id: this.o.id, err: (e as Error).message }, 'membership round');
    } finally {
      this.busy = false;
    }
  }

  /**
   * A member removed while it was down never applies its removal (the others refuse its
   * connections): it asks them, as a client, what the configuration says about it.
   */
  private async askPeers(): Promise<void> {
    const addrs = this.o.cluster().addresses();
    await Promise.all(
      Object.entries(addrs)
        .filter(([id]) => id !== this.o.id)
        .map(async ([, a]) => {
          const i = a.lastIndexOf(':');
          const c = new TcpClient({ host: a.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(a.slice(i + 1)), secret: this.o.secret, tls: this.o.tls, ...(this.o.tls ? { asMember: this.o.id } : {}), name: `member-check-${this.o.id}`, failFast: true });
          try {
            const st = (await c.request({ kind: 'status' }, 1_000, 500)) as MemberStatus;
            const me = st.membership?.members[this.o.id];
            if (me?.state === 'removed') this.die(`member ${this.o.id} was removed from the cluster configuration (as ${st.id} reports); stopping: its id is never reused, add a new member under a new id`);
            const inc = this.o.incarnation();
            if (me?.incarnation && inc && me.incarnation !== inc) this.die(`member id ${this.o.id} is bound to another data directory (incarnation ${me.incarnation}, as ${st.id} reports); stopping`);
          } catch {
            // Down or unreachable: another round asks again.
          } finally {
            c.close();
          }
        }),
    );
  }
}
