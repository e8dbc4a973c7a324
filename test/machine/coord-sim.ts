// A deterministic cluster of CoordinationMachine replicas on the virtual clock, with
// simulated clients (sessions with retries), a scheduler and agents, driven by the test.
// Everything (timing, network faults, elections) follows from one seed.

import { LocalCluster } from '../../src/host/local-cluster.js';
import type { NodeHost } from '../../src/host/node-host.js';
import { CoordinationMachine, type OpResult } from '../../src/machine/coordination-machine.js';
import type { Command, Op } from '../../src/machine/types.js';
import type { NodeId } from '../../src/raft/types.js';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import { Prng } from '../../src/util/prng.js';
import { VirtualClock } from '../../src/util/virtual-clock.js';

export interface Pending {
  seq: number;
  op: Op;
  result: OpResult | null;
  inflight: boolean;
  nextTryAt: number;
  attempts: number;
  onAnswer?: (r: OpResult) => void;
}

/**
 * A client session like the service's Proposer: registers its session first (a retried
 * registration may leave an unused one behind), then one (client, seq) per request, retried
 * with the same seq against whoever leads until answered; acks every seq below its oldest
 * unanswered one. It may also re-send answered requests (duplicated network copies).
 */
export class SimClient {
  private seq = 0;
  /** The registered session id, once a registration was answered. */
  session: string | null = null;
  private registering = false;
  readonly outstanding = new Map<number, Pending>();
  readonly answered = new Map<number, Pending>();
  sends = 0;

  constructor(
    readonly id: string,
    private readonly sim: CoordSim,
  ) {}

  submit(op: Op, onAnswer?: (r: OpResult) => void): Pending {
    const p: Pending = { seq: ++this.seq, op, result: null, inflight: false, nextTryAt: 0, attempts: 0, onAnswer };
    this.outstanding.set(p.seq, p);
    this.send(p);
    return p;
  }

  get ack(): number {
    let min = this.seq + 1;
    for (const s of this.outstanding.keys()) if (s < min) min = s;
    return min;
  }

  /** Retry whatever is due. */
  pump(): void {
    const now = this.sim.clock.now();
    for (const p of this.outstanding.values()) if (!p.inflight && p.nextTryAt <= now) this.send(p);
  }

  /** Re-send an already answered request verbatim: it must be answered from the session. */
  resendAnswered(pick: number): boolean {
    const list = [...this.answered.values()];
    if (list.length === 0) return false;
    const p = list[pick % list.length]!;
    const leader = this.sim.cluster.leader();
    if (!leader || this.session === null) return false;
    this.sends++;
    this.sim.proposeRaw(leader, { op: p.op, now: this.sim.clock.now(), client: this.session, seq: p.seq, ack: this.ack }).then(
      (r) => {
        if (r === undefined) return;
        // Same (client, seq): the session answers with the original outcome or, once the
        // client acked it, refuses it. Never a second application.
        if (r.ok || r.code !== 'stale_sequence') {
          if (JSON.stringify(r) !== JSON.stringify(p.result)) {
            this.sim.violations.push(`${this.id}#${p.seq}: resend answered ${JSON.stringify(r)}, first answer ${JSON.stringify(p.result)}`);
          }
        }
      },
      () => undefined,
    );
    return true;
  }

  private register(): void {
    const leader = this.sim.cluster.leader();
    if (this.registering || !leader) return;
    this.registering = true;
    this.sim.proposeRaw(leader, { op: { t: 'session.register' }, now: this.sim.clock.now() }).then(
      (r) => {
        this.registering = false;
        if (r?.ok && this.session === null) this.session = (r.value as { session: string }).session;
      },
      () => {
        this.registering = false;
      },
    );
  }

  private send(p: Pending): void {
    const leader = this.sim.cluster.leader();
    if (!leader || this.session === null) {
      if (this.session === null) this.register();
      p.nextTryAt = this.sim.clock.now() + 20;
      return;
    }
    p.attempts++;
    p.inflight = true;
    this.sends++;
    this.sim.proposeRaw(leader, { op: p.op, now: this.sim.clock.now(), client: this.session, seq: p.seq, ack: this.ack }).then(
      (r) => {
        p.inflight = false;
        if (r === undefined) {
          p.nextTryAt = this.sim.clock.now() + 20 + this.sim.prng.int(0, 30);
          return;
        }
        // Sessions live an hour of log time and the sim makes a few dozen: none may expire.
        if (!r.ok && r.code === 'session_expired') this.sim.violations.push(`${this.id}#${p.seq}: ${r.message}`);
        if (p.result !== null) return;
        p.result = r;
        this.outstanding.delete(p.seq);
        this.answered.set(p.seq, p);
        p.onAnswer?.(r);
      },
      (e: unknown) => {
        p.inflight = false;
        this.sim.violations.push(`${this.id}#${p.seq}: unexpected error ${(e as Error).message}`);
      },
    );
  }
}

export interface CoordSimOptions {
  seed: number;
  n?: number;
  compactionThreshold?: number;
  lossRate?: number;
  duplicateRate?: number;
  reorder?: boolean;
}

export class CoordSim {
  readonly clock = new VirtualClock();
  readonly prng: Prng;
  readonly ids: NodeId[];
  readonly cluster: LocalCluster;
  readonly machines = new Map<NodeId, CoordinationMachine>();
  readonly violations: string[] = [];
  /** Elections this harness proposed a record for (like the Swarm does). */
  elections = 0;

  constructor(o: CoordSimOptions) {
    this.prng = new Prng(o.seed);
    this.ids = Array.from({ length: o.n ?? 5 }, (_, i) => `n${i + 1}`);
    this.cluster = new LocalCluster({
      ids: this.ids,
      clock: this.clock,
      prng: this.prng.fork(),
      storageFor: () => new MemoryStorage(),
      machineFor: (id) => {
        const m = new CoordinationMachine();
        this.machines.set(id, m);
        return m;
      },
      tickMs: 10,
      compactionThreshold: o.compactionThreshold ?? 40,
      requestTimeoutMs: 800,
      serializeMessages: true,
    });
    this.cluster.network.setGlobalFaults({
      delayMs: { min: 1, max: 8 },
      lossRate: o.lossRate ?? 0,
      duplicateRate: o.duplicateRate ?? 0,
      reorder: o.reorder ?? false,
    });
    this.cluster.onRoleChange((c) => {
      if (!c.election) return;
      // The new leader records its election, as Swarm.onRoleChange does (no session).
      const host = this.cluster.hosts.get(c.id);
      if (!host?.isRunning) return;
      this.elections++;
      const record = { term: c.term, old_leader: c.previousLeader, new_leader: c.id, voted_by: c.election.votedBy, election_duration_ms: Math.round(c.election.durationMs), cause: 'unknown' as const };
      void this.proposeRaw(host, { op: { t: 'election', record }, now: this.clock.now() });
    });
  }

  start(): void {
    this.cluster.startAll();
  }

  /** Propose on `host`; resolves with the machine's result, or undefined when it must be retried. */
  proposeRaw(host: NodeHost, cmd: Command): Promise<OpResult | undefined> {
    let p: Promise<{ index: number; result: unknown }>;
    try {
      p = host.propose(JSON.stringify(cmd));
    } catch {
      return Promise.resolve(undefined); // not leader / transfer in progress / backlog: retry
    }
    return p.then(
      (r) => r.result as OpResult,
      () => undefined,
    );
  }

  running(): NodeId[] {
    return this.ids.filter((id) => this.cluster.hosts.get(id)?.isRunning);
  }

  /**
   * Replicas that are running and sit at the same applied index must hold identical state.
   * Returns how many pairs were compared.
   */
  compareReplicas(): number {
    const byIndex = new Map<number, NodeId[]>();
    for (const id of this.running()) {
      const m = this.machines.get(id)!;
      const list = byIndex.get(m.appliedIndex) ?? [];
      list.push(id);
      byIndex.set(m.appliedIndex, list);
    }
    let pairs = 0;
    for (const [index, ids] of byIndex) {
      if (ids.length < 2) continue;
      const ref = this.machines.get(ids[0]!)!.snapshot();
      for (const other of ids.slice(1)) {
        pairs++;
        if (this.machines.get(other)!.snapshot() !== ref) this.violations.push(`replicas ${ids[0]} and ${other} differ at applied index ${index}`);
      }
    }
    return pairs;
  }

  /** Run the clock in slices, letting promise callbacks run between them. */
  async run(ms: number, slice = 10, each?: () => void): Promise<void> {
    const end = this.clock.now() + ms;
    while (this.clock.now() < end) {
      this.clock.runFor(Math.min(slice, end - this.clock.now()));
      await new Promise<void>((r) => setImmediate(r));
      each?.();
    }
  }
}
