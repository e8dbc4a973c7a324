// `concord node`: one member of a swarm per process. It runs the same service layer and MCP
// tools as the embedded server, over a one-member backend on TCP. Clients reach it on the
// member port (authenticated CLIENT_REQ): a tool call runs on the leader's process (others
// redirect), under the caller's client session so a retried call is never applied twice.

import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { createServer } from '../server/create-server.js';
import { stampForwarded } from '../machine/types.js';
import { callSession, type CallSession } from '../service/call-session.js';
import { Coordinator } from '../service/coordinator.js';
import { resolveDataDir } from '../service/data-dir.js';
import { UserError } from '../service/errors.js';
import { openMemberStorage } from '../service/member-storage.js';
import { SwarmRegistry } from '../service/registry.js';
import { raftTiming, TICK_MS, type Swarm } from '../service/swarm.js';
import type { Durability } from '../storage/sqlite-storage.js';
import type { PeerAddress, RequestCredential } from '../transport/tcp-transport.js';
import { RealClock } from '../util/clock.js';
import { logger } from '../util/logger.js';
import { MemberCluster } from './member-cluster.js';
import { checkJoin, loadMembership, MembershipKeeper, membershipPath, saveMembership, watchBook } from './membership.js';
import { ToolTable } from './tool-table.js';
import { parseClientRequest, type ClientRequest, type MemberStatus, type ToolSession } from './protocol.js';

export interface MemberNodeOptions {
  swarm: string;
  id: string;
  peers: Record<string, PeerAddress>;
  /** Bind address when it differs from this member's entry in peers. */
  listen?: PeerAddress;
  dataDir?: string;
  secret: Buffer;
  durability?: Durability;
  /** Join a running cluster through these members (HOST:PORT): this one was added with member add. */
  join?: string[];
  /** This member must stop (removed from the cluster, or its id bound to another data directory). */
  onFatal?: (message: string) => void;
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

const CLUSTER_TICK_TIMER_MS = 10;
/** How long a request waits for an election in progress to produce a leader. */
const ELECTION_WAIT_MS = 1_000;

/** Most entries one `log` admin answer carries (page with from/to). */
const LOG_PAGE_MAX = 50_000;

export class MemberNode {
  readonly coord: Coordinator;
  readonly cluster: MemberCluster;
  private readonly server: McpServer;
  private readonly mcp: Client;
  private closed = false;
  private toolList: Promise<unknown> | undefined;
  private readonly tools: ToolTable;
  private readonly loopDelay: IntervalHistogram = monitorEventLoopDelay({ resolution: 20 });
  private keeper: MembershipKeeper | null = null;

  private constructor(coord: Coordinator, cluster: MemberCluster, server: McpServer, mcp: Client) {
    this.coord = coord;
    this.cluster = cluster;
    this.server = server;
    this.mcp = mcp;
    this.tools = new ToolTable(coord);
    this.loopDelay.enable();
  }

  static async start(o: MemberNodeOptions): Promise<MemberNode> {
    if (!o.peers[o.id]) throw new Error(`--peers must list this member's own address (${o.id}=HOST:PORT)`);
    const dataDir = resolveDataDir(o.dataDir);
    // A member that ran here before has a registry entry: it must find its own file again.
    const swarmDir = path.join(dataDir, 'swarms', o.swarm);
    const prior = fs.existsSync(SwarmRegistry.file(swarmDir)) ? SwarmRegistry.load(swarmDir).data.members[o.id] : undefined;
    // Membership: the bootstrap voters are fixed at the first start (a later --peers cannot
    // change what the log starts from); members added since come from the replicated book.
    const memberFile = membershipPath(swarmDir);
    const recorded = loadMembership(memberFile);
    let seen: Record<string, { address: string; state: 'active' | 'removed' }> = {};
    if (o.join && o.join.length > 0) {
      const hasState = fs.existsSync(swarmDir) && fs.readdirSync(swarmDir).some((f) => f.endsWith('.db'));
      seen = (await checkJoin({ id: o.id, join: o.join, secret: o.secret, local: recorded, hasState, incarnation: prior?.incarnation })).members;
    }
    const bootstrapVoters = recorded ? recorded.bootstrap_voters : o.join && o.join.length > 0 ? [] : Object.keys(o.peers).sort();
    const peers: Record<string, PeerAddress> = { ...o.peers };
    // The seed's book first (a joiner must accept the members before it applies the book), then ours.
    for (const [id, e] of [...Object.entries(seen), ...Object.entries(recorded?.members ?? {})]) {
      if (id === o.id) continue;
      const i = e.address.lastIndexOf(':');
      if (e.state === 'removed') delete peers[id];
      else if (i > 0) peers[id] = { host: e.address.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(e.address.slice(i + 1)) };
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
      file: memberFile,
      bootstrapVoters,
      onFatal: (message) => (o.onFatal ? o.onFatal(message) : logger.error({ id: o.id }, message)),
    });
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
          cluster = new MemberCluster({
            id: o.id,
            peers,
            bootstrapVoters,
            listen: o.listen,
            secret: o.secret,
            storage: opened.storage,
            machineFor: (id) => watchBook(machineFor(id), (book) => keeper.onBook(book)),
            clock: new RealClock(),
            seed: (Date.now() ^ process.pid) >>> 0,
            tickMs: TICK_MS,
            // One process per member: waking every 2 ms cost ~5% of a core per idle member.
            // Ticks still follow elapsed time, and members' timers are not in phase.
            tickTimerMs: CLUSTER_TICK_TIMER_MS,
            raft: raftTiming(undefined),
            compactionThreshold: 1000,
            // Each member process serializes its whole state per snapshot: wait until the log
            // since the last one is as large as the state (LogCabin's policy; etcd snapshots
            // every 100,000 entries), so the cost per entry stays constant as state grows.
            compactionLogToSnapshotRatio: 1,
          });
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
      await c.listen();
    } catch (e) {
      coord.close();
      const at = o.listen ?? o.peers[o.id]!;
      throw new UserError('unavailable', `cannot listen on ${at.host}:${at.port}: ${(e as Error).message} (another process has the port? pick another with --peers/--listen)`, 'listen');
    }
    const server = createServer(coord);
    const mcp = new Client({ name: `concord-node-${o.id}`, version: '0.1.0' });
    const [a, b] = InMemoryTransport.createLinkedPair();
    await server.connect(a);
    await mcp.connect(b);
    const node = new MemberNode(coord, c, server, mcp);
    c.transport.onClientRequest((body, from, credential) => node.handle(body, from, credential));
    node.keeper = keeper;
    keeper.start();
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
    await this.mcp.close().catch(() => undefined);
    await this.server.close().catch(() => undefined);
    this.coord.close();
  }

  status(): MemberStatus {
    const h = this.cluster.local();
    const st = h?.isRunning ? h.status() : null;
    const leader = st?.leader ?? null;
    const addr = leader ? this.cluster.address(leader) : undefined;
    const t = this.cluster.transport.stats();
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
          { connected: p.connected, messages_out: p.messagesOut, messages_in: p.messagesIn, dropped: p.dropped, queued: p.queued, reconnects: p.reconnects },
        ]),
      ),
      auth_failures: t.authFailures,
      protocol_errors: t.protocolErrors,
      event_loop_delay_ms: {
        p50: ms(this.loopDelay.percentile(50)),
        p99: ms(this.loopDelay.percentile(99)),
        max: ms(this.loopDelay.max),
      },
      membership: this.swarm.localMachine()?.machine.book.view() ?? null,
    };
  }

  async handle(raw: unknown, from: string, credential: RequestCredential = 'client'): Promise<unknown> {
    const req = parseClientRequest(raw);
    switch (req.kind) {
      case 'status':
        return this.status();
      case 'tool':
        await this.ensureLeader(req.hold_ms);
        return { result: await this.runTool(req.name, req.arguments, req.session, req.session_on_write === true) };
      case 'session':
        await this.ensureLeader(req.hold_ms);
        return { result: await this.swarm.proposer.registerSession(5_000, req.timeout_ms ?? null) };
      case 'tools/list':
        // Converting 30 schemas to JSON Schema takes ~30 ms; the list never changes.
        return (this.toolList ??= this.mcp.listTools());
      case 'resources/list':
        return this.mcp.listResources();
      case 'resources/templates/list':
        return this.mcp.listResourceTemplates();
      case 'resources/read':
        await this.ensureLeader(req.hold_ms);
        return { result: await this.mcp.readResource({ uri: req.uri }) };
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
        return this.admin(req, from);
    }
  }

  private async runTool(name: string, args: Record<string, unknown>, session: ToolSession | undefined, onWrite: boolean): Promise<unknown> {
    const call = () => this.tools.call(name, args);
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
   * client is sent to the new leader as soon as there is one instead of polling for it.
   */
  private async ensureLeader(holdMs = ELECTION_WAIT_MS): Promise<void> {
    const deadline = performance.now() + Math.min(holdMs, ELECTION_WAIT_MS);
    for (;;) {
      const l = this.cluster.leader();
      if (l && l.core.log.term(l.core.log.committed) === l.core.term) return;
      if (!l && this.cluster.remoteLeader() !== null) throw this.notLeader();
      if (performance.now() > deadline) throw this.notLeader(l ? 'leader has not committed an entry of its term yet' : 'no leader elected yet');
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  private notLeader(why?: string): NotLeaderError {
    const s = this.status();
    const where = s.leader ? `the leader is ${s.leader} at ${s.leader_address}` : 'no leader is known yet';
    return new NotLeaderError(`${this.cluster.id} is not the leader${why ? ` (${why})` : ''}; ${where}`, s.leader_address);
  }

  private admin(req: Extract<ClientRequest, { kind: 'admin' }>, from: string): unknown {
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

/** Histogram nanoseconds to ms, 0.01 ms resolution. */
function ms(ns: number): number {
  return Math.round(ns / 1e4) / 100;
}
