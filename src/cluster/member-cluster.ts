// Cluster mode's backend: the one member this process runs, over TCP, with link-level fault
// injection that the serving leader can spread to its peers' processes (admin requests).

import { commitNoticeDelayFromEnv, diskReserveFromEnv } from '../swarm/swarm.js';
import type { ClusterBackend, Committed, FaultControl, LinkCounters } from '../host/cluster-backend.js';
import { NodeHost, type RoleChange, type StateMachine } from '../host/node-host.js';
import type { Transport } from '../host/transport.js';
import type { ConfState, Message, NodeId, RaftConfig } from '../raft/types.js';
import type { LogStorage } from '../storage/types.js';
import { TcpClient } from '../transport/tcp-client.js';
import { TcpTransport, type PeerAddress } from '../transport/tcp-transport.js';
import type { TlsMaterial } from '../transport/tls.js';
import type { Clock } from '../util/clock.js';
import { logger } from '../util/logger.js';
import { STARTUP_TRACE, startupMark } from '../util/startup-trace.js';
import { ANY_TRACE, FAILOVER_TRACE, traceWrite } from '../util/write-trace.js';

export interface MemberClusterOptions {
  id: NodeId;
  /** The swarm served: peers naming another in their handshake are refused (SecureConnOptions.swarm). */
  swarm?: string;
  /** Known members' addresses, this one's included (--peers, then the replicated book). */
  peers: Record<NodeId, PeerAddress>;
  /**
   * The voters the log starts from when storage holds no membership: the bootstrap members,
   * or none for a member joining a running cluster (it then takes its base from a snapshot).
   */
  bootstrapVoters: NodeId[];
  /** Where to bind, when not the address peers dial (e.g. 0.0.0.0 behind that address). */
  listen?: PeerAddress;
  secret: Buffer;
  /** Mutual TLS for every connection in and out (this member's certificate names its id). */
  tls?: TlsMaterial;
  storage: LogStorage;
  machineFor: (id: NodeId) => StateMachine;
  clock: Clock;
  seed: number;
  tickMs: number;
  /** Tick timer period (ms); ticks still follow elapsed time in units of tickMs. */
  tickTimerMs: number;
  raft: Partial<Omit<RaftConfig, 'id' | 'seed'>>;
  compactionThreshold: number;
  compactionLogToSnapshotRatio: number;
}

/** Requests members send each other on the client channel. */
export type PeerRequest = { kind: 'propose'; data: string } | { kind: 'admin'; op: 'block'; peers: NodeId[] } | { kind: 'admin'; op: 'unblock' } | { kind: 'admin'; op: 'removed' };

/** Drops Raft messages to and from blocked peers at this member (both directions). */
class BlockingTransport implements Transport {
  readonly blocked = new Set<NodeId>();
  /** Removed members (replicated book): their messages are dropped; ids are never reused. */
  readonly removed = new Set<NodeId>();
  readonly droppedOut = new Map<NodeId, number>();
  readonly droppedIn = new Map<NodeId, number>();

  constructor(private readonly inner: TcpTransport) {}

  send(msg: Message): void {
    if (this.blocked.has(msg.to)) return void this.droppedOut.set(msg.to, (this.droppedOut.get(msg.to) ?? 0) + 1);
    if (STARTUP_TRACE && msg.type === 'MsgAppResp' && !msg.reject) startupMark('first-append-acknowledged');
    if (ANY_TRACE) traceMessage('send', msg);
    this.inner.send(msg);
  }

  onMessage(handler: (msg: Message) => void): void {
    this.inner.onMessage((m) => {
      if (this.blocked.has(m.from) || this.removed.has(m.from)) return void this.droppedIn.set(m.from, (this.droppedIn.get(m.from) ?? 0) + 1);
      if (STARTUP_TRACE && m.type === 'MsgApp') startupMark('first-append-received');
      if (ANY_TRACE) traceMessage('recv', m);
      handler(m);
    });
  }

  close(): void {
    // The TCP transport outlives member restarts in this process; MemberCluster closes it.
  }

  flush(): void {
    this.inner.flush();
  }

  abandonSnapshots(): void {
    this.inner.abandonSnapshots();
  }
}

/** Appends carrying entries and their acknowledgements, by the last entry's index; with the failover trace also heartbeats and vote traffic. */
function traceMessage(dir: 'send' | 'recv', m: Message): void {
  const peer = dir === 'send' ? m.to : m.from;
  if (m.type === 'MsgApp' && m.entries.length > 0) traceWrite(`app_${dir}`, m.entries[m.entries.length - 1]!.index, peer);
  else if (m.type === 'MsgAppResp' && !m.reject) traceWrite(`ack_${dir}`, m.index, peer);
  else if (!FAILOVER_TRACE) return;
  else if (m.type === 'MsgHeartbeat' || m.type === 'MsgPreVote' || m.type === 'MsgVote') traceWrite(`${m.type}_${dir}`, undefined, peer, { term: m.term });
  else if (m.type === 'MsgPreVoteResp' || m.type === 'MsgVoteResp') traceWrite(`${m.type}_${dir}`, undefined, peer, { term: m.term, reject: m.reject });
}

export class MemberCluster implements ClusterBackend {
  readonly mode = 'tcp' as const;
  readonly hosts = new Map<NodeId, NodeHost>();
  readonly network: FaultControl;
  readonly transport: TcpTransport;
  private readonly links: BlockingTransport;
  private readonly clients = new Map<NodeId, TcpClient>();
  private listeners: Array<(c: RoleChange) => void> = [];
  /** The partition this process last spread (who blocks whom), for connected(). */
  private plan: Map<NodeId, Set<NodeId>> | null = null;

  constructor(private readonly o: MemberClusterOptions) {
    const self = o.peers[o.id];
    if (!self) throw new Error(`--peers must include this member (${o.id})`);
    const others = Object.fromEntries(Object.entries(o.peers).filter(([id]) => id !== o.id));
    const bind = o.listen ?? self;
    this.transport = new TcpTransport({ id: o.id, swarm: o.swarm, secret: o.secret, tls: o.tls, host: bind.host, port: bind.port, peers: others });
    this.links = new BlockingTransport(this.transport);
    // A crashed leader's address refuses our redial at once: no need to wait out its lease.
    this.transport.onPeerRefused((id) => {
      if (this.links.blocked.has(id)) return;
      const h = this.local();
      const traced = FAILOVER_TRACE && h?.isRunning === true && h.core.lead === id;
      h?.leaderUnreachable(id);
      // How many ticks the election timer then had left (its random part).
      if (traced) traceWrite('leader_refused', undefined, id, { ticks_left: h!.core.ticksUntilTimeout(), role: h!.core.role });
    });
    // Parts of a snapshot are checked as they arrive, not all at once at the end (1 GiB: seconds).
    this.transport.onSnapshotParts(
      (peer, parts, i) => {
        if (!this.links.blocked.has(peer)) this.local()?.prepareSnapshotPart(parts, i);
      },
      (_peer, parts) => this.local()?.dropSnapshotParts(parts),
    );
    this.network = this.faults();
  }

  get id(): NodeId {
    return this.o.id;
  }

  /** The members of the configuration this member applied (the known peers before it runs). */
  get memberIds(): NodeId[] {
    const h = this.hosts.get(this.o.id);
    if (h?.isRunning) {
      const c = h.core.confState();
      const ids = [...c.voters, ...c.learners];
      if (ids.length > 0) return [...new Set(ids)].sort();
    }
    return Object.keys(this.o.peers).sort();
  }

  /**
   * Adopt the replicated address book: dial members it adds (and accept their connections),
   * forget removed ones (their connections are refused from then on, their messages dropped).
   */
  applyBook(members: Record<NodeId, { address: string; state: 'active' | 'removed' }>): void {
    for (const [id, e] of Object.entries(members)) {
      if (id === this.o.id) continue;
      if (e.state === 'removed') {
        if (this.links.removed.has(id)) continue;
        this.links.removed.add(id);
        const drop = (): void => {
          delete this.o.peers[id];
          this.transport.removePeer(id);
          this.clients.get(id)?.close();
          this.clients.delete(id);
          logger.warn({ id: this.o.id, removed: id }, 'member removed from the configuration: its links are closed');
        };
        // The leader stops replicating to it, so it would never apply its removal: tell it
        // (as a member; it stops), then close the links. Its Raft messages are dropped already.
        if (this.leader()) void this.peerRequest(id, { kind: 'admin', op: 'removed' }, 1_000).catch(() => undefined).finally(drop);
        else drop();
        continue;
      }
      const a = splitAddress(e.address);
      if (!a) continue;
      const cur = this.o.peers[id];
      if (cur && cur.host === a.host && cur.port === a.port) continue;
      this.o.peers[id] = a;
      this.transport.setPeer(id, a);
      this.clients.get(id)?.close();
      this.clients.delete(id);
      logger.info({ id: this.o.id, peer: id, address: e.address }, 'member address from the replicated configuration');
    }
  }

  /** Known addresses (id -> HOST:PORT), this member's included. */
  addresses(): Record<NodeId, string> {
    return Object.fromEntries(Object.entries(this.o.peers).map(([id, a]) => [id, `${a.host}:${a.port}`]));
  }

  address(id: NodeId): PeerAddress | undefined {
    return this.o.peers[id];
  }

  listen(): Promise<PeerAddress> {
    return this.transport.listen();
  }

  canRun(id: NodeId): boolean {
    return id === this.o.id;
  }

  /** The bootstrap members start as voters; a joiner starts with no membership (see bootstrapVoters). */
  start(id: NodeId, _conf?: ConfState): NodeHost {
    if (id !== this.o.id) throw new Error(`member ${id} runs in another process`);
    const existing = this.hosts.get(id);
    if (existing?.isRunning) return existing;
    const host = new NodeHost({
      id,
      clock: this.o.clock,
      transport: this.links,
      storage: this.o.storage,
      machine: this.o.machineFor(id),
      initialConf: { voters: [...this.o.bootstrapVoters].sort(), learners: [] },
      seed: this.o.seed,
      tickMs: this.o.tickMs,
      tickTimerMs: this.o.tickTimerMs,
      raft: this.o.raft,
      compactionThreshold: this.o.compactionThreshold,
      compactionLogToSnapshotRatio: this.o.compactionLogToSnapshotRatio,
      requestTimeoutMs: 5_000,
      diskReserveBytes: diskReserveFromEnv(),
      // One member per process: nothing else shares the loop (see NodeHostOptions).
      inlineLightSyncs: true,
      commitNoticeDelayMs: commitNoticeDelayFromEnv(),
    });
    host.onRoleChange((c) => {
      for (const l of this.listeners) l(c);
    });
    this.hosts.set(id, host);
    host.start();
    return host;
  }

  crash(id: NodeId): void {
    this.hosts.get(id)?.stop(`${id} stopped`);
  }

  /** Static membership: a member process leaves by being stopped; its file is the operator's. */
  remove(id: NodeId): void {
    this.crash(id);
  }

  host(id: NodeId): NodeHost {
    const h = this.hosts.get(id);
    if (!h) throw new Error(`member ${id} runs in another process`);
    return h;
  }

  local(): NodeHost | undefined {
    return this.hosts.get(this.o.id);
  }

  leader(): NodeHost | undefined {
    const h = this.local();
    return h?.isRunning && h.core.role === 'leader' ? h : undefined;
  }

  /** The leader this member follows, if it knows one in another process. */
  remoteLeader(): NodeId | null {
    const h = this.local();
    if (!h?.isRunning) return null;
    const lead = h.core.lead;
    return lead !== null && lead !== this.o.id ? lead : null;
  }

  running(): NodeHost[] {
    return [...this.hosts.values()].filter((h) => h.isRunning);
  }

  onRoleChange(fn: (c: RoleChange) => void): () => void {
    this.listeners.push(fn);
    return () => {
      this.listeners = this.listeners.filter((l) => l !== fn);
    };
  }

  forwardProposal(data: string, timeoutMs: number): Promise<Committed> | undefined {
    const lead = this.remoteLeader();
    if (!lead) return undefined;
    return this.peerRequest(lead, { kind: 'propose', data }, timeoutMs) as Promise<Committed>;
  }

  /** A request to a peer's process over the authenticated client channel. */
  peerRequest(id: NodeId, req: PeerRequest, timeoutMs: number): Promise<unknown> {
    let c = this.clients.get(id);
    if (!c) {
      const a = this.o.peers[id];
      if (!a) return Promise.reject(new Error(`unknown member ${id}`));
      c = new TcpClient({ host: a.host, port: a.port, secret: this.o.secret, tls: this.o.tls, name: this.o.id, asMember: this.o.id, expectServer: id });
      this.clients.set(id, c);
    }
    return c.request(req, timeoutMs);
  }

  /** Admin: drop Raft traffic with these peers at this member (replaces earlier blocks). */
  block(peers: NodeId[]): void {
    this.links.blocked.clear();
    for (const p of peers) if (p !== this.o.id) this.links.blocked.add(p);
    logger.warn({ id: this.o.id, blocked: [...this.links.blocked] }, 'fault injection: links blocked');
  }

  blocked(): NodeId[] {
    return [...this.links.blocked].sort();
  }

  close(): void {
    for (const h of this.hosts.values()) h.stop('member closed');
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
    this.transport.close();
    this.o.storage.close();
  }

  private faults(): FaultControl {
    const self = this.o.id;
    const spread = async (plan: Map<NodeId, Set<NodeId>> | null): Promise<void> => {
      const failures: string[] = [];
      await Promise.all(
        this.memberIds.map(async (id) => {
          const peers = [...(plan?.get(id) ?? [])];
          if (id === self) return void this.block(peers);
          const req: PeerRequest = peers.length > 0 ? { kind: 'admin', op: 'block', peers } : { kind: 'admin', op: 'unblock' };
          try {
            await this.peerRequest(id, req, 2_000);
          } catch (e) {
            failures.push(`${id}: ${(e as Error).message}`);
          }
        }),
      );
      this.plan = plan;
      if (failures.length > 0) {
        throw new Error(`fault injection reached only some members (the others applied it); unreachable: ${failures.join('; ')}`);
      }
    };
    const planFor = (groups: NodeId[][]): Map<NodeId, Set<NodeId>> => {
      const plan = new Map<NodeId, Set<NodeId>>();
      for (const id of this.memberIds) {
        const mine = groups.find((g) => g.includes(id)) ?? [id];
        plan.set(id, new Set(this.memberIds.filter((p) => !mine.includes(p))));
      }
      return plan;
    };
    return {
      connected: (from, to) => {
        if (from === self) return !this.links.blocked.has(to);
        if (to === self) return !this.links.blocked.has(from);
        return !(this.plan?.get(from)?.has(to) ?? false);
      },
      linkStats: (from, to): LinkCounters | null => {
        const st = this.transport.stats().peers;
        if (from === self && st[to]) return { messagesOut: st[to]!.messagesOut, messagesIn: null, dropped: st[to]!.dropped + (this.links.droppedOut.get(to) ?? 0) };
        if (to === self && st[from]) return { messagesOut: null, messagesIn: st[from]!.messagesIn, dropped: this.links.droppedIn.get(from) ?? 0 };
        return null;
      },
      isolate: (id) => spread(planFor([[id], this.memberIds.filter((m) => m !== id)])),
      partition: (groups) => spread(planFor(groups)),
      heal: () => spread(null),
      clearFaults: () => undefined,
    };
  }
}

function splitAddress(spec: string): PeerAddress | null {
  const m = /^(\[[0-9a-fA-F:]+\]|[^:\s]+):(\d{1,5})$/.exec(spec);
  if (!m) return null;
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}
