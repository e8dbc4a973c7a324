// `concord node`: one member of a swarm per process. It runs the same service layer and MCP
// tools as the embedded server, over a one-member backend on TCP. Clients reach it on the
// member port (authenticated CLIENT_REQ): a tool call runs on the leader's process (others
// redirect), under the caller's client session so a retried call is never applied twice.

import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { RESOURCE_NOT_FOUND } from '../server/mcp-codes.js';
import { stampForwarded, type SwarmConfig } from '../machine/types.js';
import { callSession, type CallSession } from '../swarm/call-session.js';
import { Coordinator } from '../service/coordinator.js';
import { resolveDataDir } from '../service/data-dir.js';
import { invalid, UserError } from '../util/errors.js';
import { openMemberStorage } from '../swarm/member-storage.js';
import { SwarmRegistry } from '../swarm/registry.js';
import { raftTiming, TICK_MS, type Swarm } from '../swarm/swarm.js';
import type { Durability } from '../storage/sqlite-storage.js';
import { MEMBER_REQUEST_PREFIX } from '../transport/auth.js';
import type { ClientRequestContext, PeerAddress, RequestCredential } from '../transport/tcp-transport.js';
import type { TlsMaterial } from '../transport/tls.js';
import { RealClock } from '../util/clock.js';
import { logger } from '../util/logger.js';
import { startupMark } from '../util/startup-trace.js';
import { ANY_TRACE, FAILOVER_TRACE, traceWrite } from '../util/write-trace.js';
import type { StateMachine } from '../host/node-host.js';
import type { LogStorage, PersistBatch } from '../storage/types.js';
import { MemberCluster } from './member-cluster.js';
import { checkFreshStart, checkJoin, loadMembership, MembershipKeeper, membershipPath, saveMembership, watchBook } from './membership.js';
import type { ForwardedCallContext, ToolTable } from './tool-table.js';
import type { ClientRequest, MemberStatus, ToolSession } from './protocol.js';

export interface MemberNodeOptions {
  swarm: string;
  id: string;
  peers: Record<string, PeerAddress>;
  /** Bind address when it differs from this member's entry in peers. */
  listen?: PeerAddress;
  dataDir?: string;
  secret: Buffer;
  /** Mutual TLS (--cert/--key/--ca); the certificate's CN must be this member's id. */
  tls?: TlsMaterial;
  durability?: Durability;
  /** Join a running cluster through these members (HOST:PORT): this one was added with member add. */
  join?: string[];
  /** This member must stop (removed from the cluster, or its id bound to another data directory). */
  onFatal?: (message: string) => void;
  /** Serve /metrics, /health and /readyz for this member here (no token: bind it privately). */
  metrics?: PeerAddress;
  /** Ends a start that waits to bootstrap (membership.ts checkFreshStart): it then throws. */
  signal?: AbortSignal;
}

/** A tool call refused before any effect: no client session yet, or an unknown or expired one. */
export class SessionRefusedError extends Error {
  constructor(
    readonly code: 'session_required' | 'session_expired',
    message: string,
  ) {
    super(message);
  }
}

/** Thrown to a client that asked the wrong member; carries where to go. */
export class NotLeaderError extends Error {
  readonly code = 'not_leader';
  constructor(
    message: string,
    readonly leader: string | null,
  ) {
    super(message);
  }
}

/**
 * Tick timer period asked of NodeHost; it caps it below its catch-up limit (74 ms at the default
 * 150 ms minimum election timeout) and wakes earlier when a heartbeat or election timeout is due,
 * so this asks for that cap, as embedded members do. Ticks still follow elapsed time (counted
 * before every message). A 10 ms timer woke each idle follower 100 times a second: measured
 * (cpuprof IDLE, 3 pairs) an idle follower's CPU went from ~30 to ~19 ms per second without it.
 */
const CLUSTER_TICK_TIMER_MS = 1000;

/**
 * Seed of this member's Raft PRNG (its randomized election timeouts). From the OS's random
 * source: members started together share the millisecond and have consecutive pids, and
 * (Date.now() ^ pid) then often gave two of them the same seed, so they drew the same
 * timeouts, campaigned at the same instant and split the vote, failover after failover.
 */
export function electionSeed(): number {
  return randomBytes(4).readUInt32LE(0);
}
/** The request schema (zod): loaded with the first request that is not a status probe. */
let protocolModule: typeof import('./protocol.js') | undefined;

/** A member that got no call loads its tools this long after start, off the rejoin's path. */
const PRELOAD_TOOLS_AFTER_MS = 1_000;
/** How long a request waits for an election in progress to produce a leader. */
const ELECTION_WAIT_MS = 1_000;

/** Most entries one `log` admin answer carries (page with from/to). */
const LOG_PAGE_MAX = 50_000;

export class MemberNode {
  readonly coord: Coordinator;
  readonly cluster: MemberCluster;
  /** The tool table (zod and the tool modules): loaded on first use, or soon after start. */
  private tableLoad: Promise<ToolTable> | null = null;
  private table: ToolTable | null = null;
  /** The MCP server and its in-process client (the SDK), for tools/list and resources. */
  private mcpLoad: Promise<LoadedMcp> | null = null;
  private mcp: LoadedMcp | null = null;
  private closed = false;
  private toolList: Promise<unknown> | undefined;
  private readonly loopDelay: IntervalHistogram = monitorEventLoopDelay({ resolution: 20 });
  private keeper: MembershipKeeper | null = null;
  /** The voters this member's log starts from ([] when it joined with --join); in status. */
  private bootstrapVoters: string[] = [];
  /** The --metrics listener, when started. */
  metricsListener: { port: number; close: () => Promise<void> } | null = null;

  private constructor(coord: Coordinator, cluster: MemberCluster) {
    this.coord = coord;
    this.cluster = cluster;
    this.loopDelay.enable();
  }

  /**
   * A member needs neither zod nor the MCP SDK to rejoin: a restarted member acknowledges
   * appends first and loads the tool table (zod and the tool modules; each module's load
   * blocks the event loop for a few ms) on the first call or PRELOAD_TOOLS_AFTER_MS after
   * start, so it is ready before it can be elected. The MCP SDK is loaded only by the first
   * request that needs it (tools/list, resources): one of its modules blocks the event loop
   * for 50-250 ms (loaded machine), which in a preload would land in whatever election
   * happens then: a member that cannot answer votes or appends for that long slows it.
   */
  private tools(): Promise<ToolTable> {
    if (this.table) return Promise.resolve(this.table);
    this.tableLoad ??= import('./tool-table.js').then(({ ToolTable: Table }) => {
      this.table = new Table(this.coord);
      startupMark('tool-table-loaded');
      return this.table;
    });
    return this.tableLoad;
  }

  private mcpServer(): Promise<LoadedMcp> {
    if (this.mcp) return Promise.resolve(this.mcp);
    this.mcpLoad ??= loadMcp(this.coord, this.cluster.id).then((m) => {
      this.mcp = m;
      startupMark('mcp-loaded');
      if (this.closed) void closeMcp(m);
      return m;
    });
    return this.mcpLoad;
  }

  /** See tools(). */
  private preload(): void {
    if (this.closed) return;
    this.tools().catch((e: unknown) => logger.error({ err: (e as Error).message }, 'loading the tools failed'));
  }

  static async start(o: MemberNodeOptions): Promise<MemberNode> {
    if (!o.peers[o.id]) throw new Error(`--peers must list this member's own address (${o.id}=HOST:PORT)`);
    // Peers check that a member's certificate names it: refuse now rather than at every connection.
    if (o.tls && o.tls.name !== o.id) throw invalid('cert', `CN=${o.tls.name}`, `a certificate naming this member, CN=${o.id} (its id in --peers)`);
    const dataDir = resolveDataDir(o.dataDir);
    // A member that ran here before has a registry entry: it must find its own file again.
    const swarmDir = path.join(dataDir, 'swarms', o.swarm);
    const prior = fs.existsSync(SwarmRegistry.file(swarmDir)) ? SwarmRegistry.load(swarmDir).data.members[o.id] : undefined;
    // Membership: the bootstrap voters are fixed at the first start (a later --peers cannot
    // change what the log starts from); members added since come from the replicated book.
    const memberFile = membershipPath(swarmDir);
    const recorded = loadMembership(memberFile);
    let seen: Record<string, { address: string; state: 'active' | 'removed' }> = {};
    const hasState = fs.existsSync(swarmDir) && fs.readdirSync(swarmDir).some((f) => f.endsWith('.db'));
    // A member that joined before (it recorded the cluster's id beside its state) restarts from
    // what it has, as etcd ignores its initial-cluster flags once the data directory exists:
    // its seeds may all be down (a whole-cluster restart), and waiting for them would keep
    // the cluster from forming. It still asks them in the background (below).
    const joinedBefore = Boolean(recorded?.cluster_id) && hasState && prior !== undefined;
    const joinArgs = o.join && o.join.length > 0 ? { id: o.id, swarm: o.swarm, join: o.join, secret: o.secret, tls: o.tls, local: recorded, hasState, incarnation: prior?.incarnation } : null;
    if (joinArgs && !joinedBefore) seen = (await checkJoin(joinArgs)).members;
    const bootstrapVoters = recorded ? recorded.bootstrap_voters : o.join && o.join.length > 0 ? [] : Object.keys(o.peers).sort();
    const peers: Record<string, PeerAddress> = { ...o.peers };
    // The seed's book first (a joiner must accept the members before it applies the book), then ours.
    for (const [id, e] of [...Object.entries(seen), ...Object.entries(recorded?.members ?? {})]) {
      if (id === o.id) continue;
      const i = e.address.lastIndexOf(':');
      if (e.state === 'removed') delete peers[id];
      else if (i > 0) peers[id] = { host: e.address.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(e.address.slice(i + 1)) };
    }
    // Nothing of this member here and no --join: it waits for evidence that its empty log and
    // votes are all it ever had (the cluster never formed, or it never ran in it).
    if (!joinArgs && prior === undefined && !fs.existsSync(path.join(swarmDir, `${o.id}.db`))) {
      await checkFreshStart({ id: o.id, swarm: o.swarm, peers, voters: bootstrapVoters, listen: o.listen, secret: o.secret, tls: o.tls, signal: o.signal });
    }
    if (!recorded) saveMembership(memberFile, { cluster_id: null, bootstrap_voters: bootstrapVoters, members: {} });
    let incarnation: string | undefined;
    let cluster: MemberCluster | undefined;
    let swarmRef: Swarm | undefined;
    const keeper = new MembershipKeeper({
      id: o.id,
      incarnation: () => incarnation,
      swarm: () => swarmRef,
      cluster: () => cluster!,
      secret: o.secret,
      tls: o.tls,
      file: memberFile,
      bootstrapVoters,
      onFatal: (message) => (o.onFatal ? o.onFatal(message) : logger.error({ id: o.id }, message)),
    });
    let listening: Promise<unknown> | undefined;
    const coord = new Coordinator({
      dataDir,
      durability: o.durability,
      member: {
        swarm: o.swarm,
        members: Object.keys(peers).sort(),
        backend: (machineFor) => {
          const file = path.join(swarmDir, `${o.id}.db`);
          fs.mkdirSync(path.dirname(file), { recursive: true });
          const opened = openMemberStorage(file, o.id, { incarnation: prior?.incarnation, fresh: prior === undefined, durability: o.durability ?? 'full' });
          incarnation = opened.incarnation;
          startupMark('storage-opened');
          cluster = new MemberCluster({
            id: o.id,
            swarm: o.swarm,
            peers,
            bootstrapVoters,
            listen: o.listen,
            secret: o.secret,
            tls: o.tls,
            storage: ANY_TRACE ? tracedStorage(opened.storage) : opened.storage,
            machineFor: (id) => {
              // The keeper reads the book off the coordination machine itself (under any tracing).
              const watched = watchBook(machineFor(id), (book) => keeper.onBook(book));
              return ANY_TRACE ? tracedMachine(watched) : watched;
            },
            clock: new RealClock(),
            seed: electionSeed(),
            tickMs: TICK_MS,
            // One process per member: waking every 2 ms cost ~5% of a core per idle member.
            // Ticks still follow elapsed time, and members' timers are not in phase.
            tickTimerMs: CLUSTER_TICK_TIMER_MS,
            raft: raftTiming(undefined),
            // Compaction writes a checkpoint: the rows changed since the last one, in the
            // member's own database (cost per entry independent of the state's size). A restart
            // then replays at most ~1,000-3,000 entries on top of the rows.
            compactionThreshold: 1000,
            // Paces whole-state snapshots only, which a checkpointing member no longer takes.
            compactionLogToSnapshotRatio: 0,
          });
          // Listen before the rest of the start-up: this member's links dial its peers at
          // once, and a leader dials back as soon as it hears from a returning member; a
          // refused dial-back would cost it a redial backoff (50-100 ms) before the first append.
          listening = cluster.listen();
          listening.catch(() => undefined); // awaited below
          return cluster;
        },
      },
    });
    const c = cluster!;
    swarmRef = coord.swarm(o.swarm);
    const self = coord.swarm(o.swarm).data.members[o.id];
    if (self && incarnation && self.incarnation !== incarnation) {
      self.incarnation = incarnation;
      coord.swarm(o.swarm).registry.save();
    }
    try {
      await listening;
    } catch (e) {
      coord.close();
      const at = o.listen ?? o.peers[o.id]!;
      throw new UserError('unavailable', `cannot listen on ${at.host}:${at.port}: ${(e as Error).message} (another process has the port? pick another with --peers/--listen)`, 'listen');
    }
    startupMark('listening');
    const node = new MemberNode(coord, c);
    c.transport.onClientRequest((body, from, credential, ctx) => node.handle(body, from, credential, ctx));
    if (o.metrics) {
      try {
        // Loaded only with --metrics: prom-client is not needed to rejoin.
        const { startMetricsListener } = await import('../server/observability.js');
        node.metricsListener = await startMetricsListener({ ...o.metrics, coord });
      } catch (e) {
        await node.close();
        throw new UserError('unavailable', `cannot listen on ${o.metrics.host}:${o.metrics.port} for --metrics: ${(e as Error).message}`, 'metrics');
      }
    }
    node.keeper = keeper;
    node.bootstrapVoters = bootstrapVoters;
    keeper.start();
    if (joinArgs && joinedBefore) {
      // Removed while it was down: the seeds say so, and it stops as a removed member does.
      // Only that stops it: a seed lagging behind this member's own add (not listing it yet)
      // must not stop a member that joined and holds state.
      checkJoin(joinArgs).catch((e: unknown) => {
        if (node.closed) return;
        if ((e as { removed?: boolean }).removed === true) (o.onFatal ?? ((m: string) => logger.error({ id: o.id }, m)))((e as Error).message);
        else logger.warn({ id: o.id, err: (e as Error).message }, '--join: could not confirm the membership with the seeds; running on local state');
      });
    }
    startupMark('serving-requests');
    setTimeout(() => node.preload(), PRELOAD_TOOLS_AFTER_MS).unref();
    return node;
  }

  get swarm(): Swarm {
    return this.coord.swarm();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.keeper?.stop();
    this.loopDelay.disable();
    await this.metricsListener?.close();
    if (this.mcp) await closeMcp(this.mcp);
    this.coord.close();
  }

  status(): MemberStatus {
    const h = this.cluster.local();
    const st = h?.isRunning ? h.status() : null;
    const leader = st?.leader ?? null;
    const addr = leader ? this.cluster.address(leader) : undefined;
    const t = this.cluster.transport.stats();
    const sc = h?.isRunning ? h.snapshotCounts() : null;
    return {
      id: this.cluster.id,
      swarm: this.swarm.name,
      role: st?.role ?? 'stopped',
      term: st?.term ?? null,
      leader,
      leader_address: addr ? `${addr.host}:${addr.port}` : null,
      commit: st?.commit ?? null,
      applied: st?.applied ?? null,
      last_index: st?.lastIndex ?? null,
      first_index: st?.firstIndex ?? null,
      blocked: this.cluster.blocked(),
      links: Object.fromEntries(
        Object.entries(t.peers).map(([id, p]) => [
          id,
          {
            connected: p.connected, messages_out: p.messagesOut, messages_in: p.messagesIn, dropped: p.dropped, queued: p.queued, reconnects: p.reconnects,
            snapshot_bytes_out: p.snapshotBytesOut, snapshot_bytes_in: p.snapshotBytesIn, snapshot_resumes: p.snapshotResumes,
          },
        ]),
      ),
      snapshots: sc && { taken: sc.taken, installed: sc.installed, last_install: sc.lastInstall && { index: sc.lastInstall.index, parts: sc.lastInstall.parts, chars: sc.lastInstall.chars, restore_ms: Math.round(sc.lastInstall.restoreMs), parts_checked_on_arrival: sc.lastInstall.partsCheckedOnArrival } },
      auth_failures: t.authFailures,
      protocol_errors: t.protocolErrors,
      event_loop_delay_ms: {
        p50: ms(this.loopDelay.percentile(50)),
        p99: ms(this.loopDelay.percentile(99)),
        max: ms(this.loopDelay.max),
      },
      raft_timing: raftTimingOf(this.swarm.localMachine()?.machine.config),
      membership: this.swarm.localMachine()?.machine.book.view() ?? null,
      bootstrap: { state: 'running', voters: this.bootstrapVoters },
    };
  }

  async handle(raw: unknown, from: string, credential: RequestCredential = 'client', ctx?: ClientRequestContext): Promise<unknown> {
    // Status needs no schema: a restarted member answers probes before zod is loaded.
    if (typeof raw === 'object' && raw !== null && (raw as { kind?: unknown }).kind === 'status') return this.status();
    const protocol = (protocolModule ??= await import('./protocol.js'));
    const req = protocol.parseClientRequest(raw);
    switch (req.kind) {
      case 'status':
        return this.status();
      case 'tool': {
        if (ANY_TRACE) traceWrite('tool_in');
        await this.ensureLeader(req.hold_ms, req.unreachable);
        const result = await this.runTool(req.name, req.arguments, req.session, req.session_on_write === true, ctx && { signal: ctx.signal, ...(req.progress ? { progress: ctx.progress } : {}) });
        if (ANY_TRACE) traceWrite('tool_out');
        return { result };
      }
      case 'session':
        await this.ensureLeader(req.hold_ms, req.unreachable);
        return { result: await this.swarm.proposer.registerSession(5_000, req.timeout_ms ?? null) };
      case 'tools/list':
        // Converting 30 schemas to JSON Schema takes ~30 ms; the list never changes.
        return (this.toolList ??= this.mcpServer().then((t) => t.mcp.listTools()));
      case 'resources/list':
        return (await this.mcpServer()).mcp.listResources();
      case 'resources/templates/list':
        return (await this.mcpServer()).mcp.listResourceTemplates();
      case 'resources/read': {
        const t = await this.mcpServer();
        await this.ensureLeader(req.hold_ms, req.unreachable);
        try {
          return { result: await t.mcp.readResource({ uri: req.uri }) };
        } catch (e) {
          // MCP's "resource not found" travels as a code the client side turns back into it.
          if ((e as { code?: unknown }).code === RESOURCE_NOT_FOUND) throw Object.assign(new Error((e as Error).message), { code: 'resource_not_found' });
          throw e;
        }
      }
      case 'propose': {
        // Raw log entries skip every tool's validation: only members forward them (a follower
        // relaying its own service's proposal to the leader); clients call tools.
        if (credential !== 'member') {
          logger.warn({ id: this.cluster.id, from }, 'refused a raw proposal from a client credential');
          throw Object.assign(new Error('raw proposals are accepted only from members; clients call tools'), { code: 'forbidden' });
        }
        await this.ensureLeader(req.hold_ms);
        // Stamped with this leader's clock: the sender's clock must not move log time.
        return this.cluster.leader()!.propose(stampForwarded(req.data, Date.now()), 2_000);
      }
      case 'admin':
        return this.admin(req, from, credential);
    }
  }

  private async runTool(name: string, args: Record<string, unknown>, session: ToolSession | undefined, onWrite: boolean, fwd?: ForwardedCallContext): Promise<unknown> {
    const table = this.table ?? (await this.tools());
    const call = () => table.call(name, args, fwd);
    if (!session && !onWrite) return call();
    const cs: CallSession = session ? { ...session, next: 0 } : { client: null, seq: 0, ack: 0, next: 0 };
    const result = await callSession.run(cs, call);
    // Refusals before the call changed anything (its first proposal was not made, or was
    // refused): protocol errors, so the client registers a session and decides on re-sending.
    if (cs.needsSession) throw new SessionRefusedError('session_required', `call ${name} writes: register a client session first (nothing was applied)`);
    if (cs.expired) throw new SessionRefusedError('session_expired', `client session ${session!.client} is unknown or expired; call ${session!.seq} was not applied on this attempt`);
    return result;
  }

  /**
   * Tools run where the state is current: on a leader that committed an entry of its term
   * (until then its applied state may lack entries a previous leader committed). While no
   * leader is known (an election is running) the request waits for the outcome, so its
   * client is sent to the new leader as soon as there is one instead of polling for it. So
   * does a request whose client could not reach the leader this member still follows (it
   * crashed; this member will notice by its election timeout): redirecting the client there
   * would only have it bounce between members until the election is over.
   */
  private async ensureLeader(holdMs = ELECTION_WAIT_MS, unreachable: readonly string[] = []): Promise<void> {
    const deadline = performance.now() + Math.min(holdMs, ELECTION_WAIT_MS);
    for (;;) {
      const l = this.cluster.leader();
      if (l && l.core.log.term(l.core.log.committed) === l.core.term) return;
      const remote = l ? null : this.cluster.remoteLeader();
      if (remote !== null && !this.isUnreachable(remote, unreachable)) throw this.notLeader();
      if (performance.now() > deadline) throw this.notLeader(l ? 'leader has not committed an entry of its term yet' : remote !== null ? 'the caller cannot reach it, and no new leader was elected yet' : 'no leader elected yet');
      await this.nextPoll();
    }
  }

  /** Held requests (an election running) look again every ms on ONE shared timer, not one each. */
  private pollWaiters: Array<() => void> = [];
  private nextPoll(): Promise<void> {
    return new Promise((resolve) => {
      this.pollWaiters.push(resolve);
      if (this.pollWaiters.length > 1) return;
      setTimeout(() => {
        const ws = this.pollWaiters;
        this.pollWaiters = [];
        for (const w of ws) w();
      }, 1);
    });
  }

  /** The caller said it could not reach `id`'s address (as this member names it in redirects). */
  private isUnreachable(id: string, unreachable: readonly string[]): boolean {
    if (unreachable.length === 0) return false;
    const a = this.cluster.address(id);
    return a !== undefined && unreachable.includes(`${a.host}:${a.port}`);
  }

  private notLeader(why?: string): NotLeaderError {
    // The core's view, the one ensureLeader decided on. The published status lags it by a
    // Ready (an fsync, long on a loaded disk): it could still name a leader this member stopped
    // following, and say "no leader elected yet; the leader is m1" in one breath.
    const lead = this.cluster.leader() ? this.cluster.id : this.cluster.remoteLeader();
    const a = lead !== null ? this.cluster.address(lead) : undefined;
    const address = a ? `${a.host}:${a.port}` : null;
    const where = lead !== null ? `the leader is ${lead} at ${address}` : 'no leader is known yet';
    if (FAILOVER_TRACE) traceWrite('not_leader', undefined, lead ?? undefined, { why });
    return new NotLeaderError(`${this.cluster.id} is not the leader${why ? ` (${why})` : ''}; ${where}`, address);
  }

  private admin(req: Extract<ClientRequest, { kind: 'admin' }>, from: string, credential: RequestCredential): unknown {
    logger.warn({ id: this.cluster.id, from, op: req.op }, 'admin request');
    switch (req.op) {
      case 'block':
        this.cluster.block(req.peers);
        return { id: this.cluster.id, blocked: this.cluster.blocked() };
      case 'unblock':
        this.cluster.block([]);
        return { id: this.cluster.id, blocked: [] };
      case 'log':
        return this.logDigest(req.from, req.to);
      case 'removed': {
        // Only a member (holder of the cluster secret, whose id its key proves) may say so.
        if (credential !== 'member') throw Object.assign(new Error('only a member may report a removal'), { code: 'forbidden' });
        // And not while this member follows another leader: the one that committed the removal
        // sends it right after, when this member still follows it or, cut off from it (which
        // is when the notice matters: it never gets the entry), follows no one. Otherwise any
        // member's word would stop a healthy member; one refused here keeps running, ignored
        // by the others if it really was removed, and its next --join start finds out.
        // A leader is told by no one: it applies its own removal and steps down.
        const sender = from.startsWith(MEMBER_REQUEST_PREFIX) ? from.slice(MEMBER_REQUEST_PREFIX.length) : from;
        const lead = this.cluster.leader() ? this.cluster.id : this.cluster.remoteLeader();
        if (lead !== null && sender !== lead) {
          logger.warn({ id: this.cluster.id, from: sender, leader: lead }, 'refused a removal notice from a member that is not the leader this member follows');
          throw Object.assign(new Error(`only the leader ${this.cluster.id} follows may report its removal; ${sender} is not (leader: ${lead})`), { code: 'forbidden' });
        }
        this.keeper?.removedBy(sender);
        return { id: this.cluster.id, stopping: true };
      }
    }
  }

  /** Committed entries this member still holds, hashed: replicas compare logs by these. */
  private logDigest(from?: number, to?: number): unknown {
    const h = this.cluster.local();
    if (!h?.isRunning) throw new Error(`${this.cluster.id} is not running`);
    const log = h.core.log;
    const lo = Math.max(from ?? 0, log.firstIndex());
    const hi = Math.min(to ?? log.committed, log.committed, lo + LOG_PAGE_MAX - 1);
    const entries = hi >= lo ? log.slice(lo, hi + 1) : [];
    return {
      id: this.cluster.id,
      commit: log.committed,
      first_index: log.firstIndex(),
      entries: entries.map((e) => ({ index: e.index, term: e.term, hash: createHash('sha256').update(`${e.type}\n${e.data}`).digest('hex').slice(0, 16) })),
    };
  }
}

/** `inner` with one method replaced; every other member read from (and bound to) `inner` itself. */
function withMethod<T extends object>(inner: T, name: string, fn: unknown): T {
  return new Proxy(inner, {
    get: (target, p) => {
      if (p === name) return fn;
      const v = Reflect.get(target, p, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/**
 * CONCORD_WRITE_TRACE / CONCORD_FAILOVER_TRACE: each batch's fsync, by the batch's last entry
 * index (-1: no entries), on the threadpool (saveAsync) or inline (save, see inlineLightSyncs).
 */
function tracedStorage(inner: LogStorage): LogStorage {
  const saveAsync = inner.saveAsync?.bind(inner);
  if (!saveAsync) return inner;
  const save = inner.save.bind(inner);
  const lastIndex = (batch: PersistBatch): number => (batch.entries.length > 0 ? batch.entries[batch.entries.length - 1]!.index : -1);
  const traced = withMethod(inner, 'saveAsync', (batch: PersistBatch, done: (err: Error | null) => void): boolean => {
    const idx = lastIndex(batch);
    traceWrite('fsync_start', idx);
    const durable = saveAsync(batch, (err) => {
      traceWrite('fsync_end', idx);
      done(err);
    });
    if (durable) traceWrite('fsync_end', idx);
    return durable;
  });
  return withMethod(traced, 'save', (batch: PersistBatch): void => {
    const idx = lastIndex(batch);
    traceWrite('fsync_start', idx);
    save(batch);
    traceWrite('fsync_end', idx);
  });
}

/** CONCORD_WRITE_TRACE / CONCORD_FAILOVER_TRACE: when each entry is applied. */
function tracedMachine(inner: StateMachine): StateMachine {
  return withMethod(inner, 'apply', (e: Parameters<StateMachine['apply']>[0]) => {
    const r = inner.apply(e);
    traceWrite('apply', e.index);
    return r;
  });
}

interface LoadedMcp {
  server: McpServer;
  mcp: Client;
}

async function loadMcp(coord: Coordinator, id: string): Promise<LoadedMcp> {
  const [{ createServer }, { Client: McpClient }, { InMemoryTransport }] = await Promise.all([
    import('../server/create-server.js'),
    import('@modelcontextprotocol/sdk/client/index.js'),
    import('@modelcontextprotocol/sdk/inMemory.js'),
  ]);
  const server = createServer(coord);
  const mcp = new McpClient({ name: `concord-node-${id}`, version: '0.1.0' });
  const [a, b] = InMemoryTransport.createLinkedPair();
  await server.connect(a);
  await mcp.connect(b);
  return { server, mcp };
}

async function closeMcp(m: LoadedMcp): Promise<void> {
  await m.mcp.close().catch(() => undefined);
  await m.server.close().catch(() => undefined);
}

/** Histogram nanoseconds to ms, 0.01 ms resolution. */
function ms(ns: number): number {
  return Math.round(ns / 1e4) / 100;
}

function raftTimingOf(c: SwarmConfig | undefined): MemberStatus['raft_timing'] {
  return c ? { election_timeout_min_ms: c.election_timeout_min, election_timeout_max_ms: c.election_timeout_max, heartbeat_interval_ms: c.heartbeat_interval } : null;
}
