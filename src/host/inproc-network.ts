import { HEARTBEAT_NO_ANSWER, newMessage, snapshotChars, type Message, type NodeId } from '../raft/types.js';
import type { Clock } from '../util/clock.js';
import type { Prng } from '../util/prng.js';
import { decodeAck, encodeAck, SnapshotReceive, SnapshotSend } from '../transport/snapshot-stream.js';
import type { ArrivingSnapshotHandlers, LinkStats, Transport } from './transport.js';

export interface DelayRange {
  min: number;
  max: number;
}

/** Fault settings. Unset fields fall back: link -> global -> network default. */
export interface LinkFaults {
  /** Probability in [0, 1] that a message is lost. */
  lossRate?: number;
  /** Probability in [0, 1] that a delivered message arrives a second time. */
  duplicateRate?: number;
  /** Per-copy delivery delay, integer ms drawn uniformly from [min, max] inclusive. */
  delayMs?: DelayRange;
  /** false (default): the link is FIFO like a TCP stream, random delays are clamped so a
   * message never overtakes an earlier one. true: each copy keeps its own delay and may. */
  reorder?: boolean;
}

export interface DeliveryError {
  error: unknown;
  msg: Message;
  at: number;
}

export interface InProcNetworkOptions {
  clock: Clock;
  /** The only source of randomness for loss, duplication and delay: a seed replays a run. */
  prng: Prng;
  defaultDelayMs?: DelayRange;
  /** true (default): copy by JSON round trip, which also proves the message serializes as
   * it would on TCP. false: structuredClone (on Node 20 it measured no faster than JSON
   * for Raft messages; bytes are still counted as JSON length). */
  serialize?: boolean;
  /** Called for each exception a receiving handler throws. */
  onError?: (err: DeliveryError) => void;
  /** Bound on the retained `errors` list (oldest dropped) so a failing node can't grow memory. */
  maxErrors?: number;
  /** Stream each MsgSnap as parts of this many characters, as the TCP transport does
   * (snapshot-stream.ts): each part and acknowledgement is its own delivery, subject to the
   * link's faults. Unset: a snapshot travels as one message. */
  snapshotChunkChars?: number;
  /** Parts unacknowledged at most per link (default 4). */
  snapshotWindowParts?: number;
  /**
   * With snapshotChunkChars: a snapshot its receiver accepted whole is not streamed again on
   * that link for this long when the core resends it (it resends every election timeout until
   * the follower answers, and installing a large state takes longer than that: each resend
   * re-encoded the whole state, 30+ MiB more at the peak of a 1,000,000-task install). After
   * the window, or once either end restarts, a resend streams it again, so an answer lost to
   * an injected fault costs at most this much catch-up delay. Default 10,000 ms; 0 never
   * suppresses (the simulator's default, which keeps recorded trajectories).
   */
  snapshotResendAfterMs?: number;
  /**
   * Hold a heartbeat that asks no answer (HEARTBEAT_NO_ANSWER) on its link, when nothing is
   * queued there and no loss, duplication or delay is in effect, instead of scheduling a
   * delivery: its receiver reads it, with the time it arrived, when it next reads anything
   * (any delivery to it, or drainInbound at its wake). Such a heartbeat only
   * resets an election clock, and the receiver counts that clock from the arrival time
   * (receive's `arrivedAt`), so it acts as if read on time; an idle follower is then not
   * woken for every other heartbeat (50 idle swarms: see README). Arrival times are this
   * network's clock: its members' clock must be the same (LocalCluster), or map them (the
   * simulator's PausableTransport). Default false.
   */
  holdIdleHeartbeats?: boolean;
}

export type InProcLinkStats = LinkStats & { dropped: number; duplicated: number };

type Counters = InProcLinkStats;
const zero = (): Counters => ({ messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0, dropped: 0, duplicated: 0 });

/** A copy on the wire: the sender's message as JSON text or a private clone, or a snapshot
 * part / acknowledgement (bytes, immutable once sent). One shape for all kinds, so the
 * per-message path stays monomorphic. */
interface Wire {
  kind: 'json' | 'clone' | 'part' | 'ack';
  data: string | Message | Buffer;
  bytes: number;
}

/** One direction of a link: its counters and, when FIFO, the copies in send order and the latest delivery time scheduled. */
interface LinkState {
  from: NodeId;
  to: NodeId;
  counters: Counters;
  queue: Wire[];
  /** When each queued copy is due (parallel to queue): drainTo delivers only those. */
  queueAt: number[];
  /** Copies drainInbound delivered ahead of their timers: that many firings find nothing. */
  drained: number;
  /** Latest delivery time scheduled behind a queued copy or with a delay. Read only while the
   * queue is non-empty or for a delayed copy: an empty queue has nothing to be overtaken. */
  lastAt: number;
  fire: () => void;
  /** The receiver's inbox (shared by every link into it). */
  inbox: Inbox;
  /** A held heartbeat (holdIdleHeartbeats) and when it arrived; read before anything else. */
  held: Message | null;
  heldAt: number;
}

/** Links into one receiver and how many copies wait in their queues: a member's drainInbound
 * runs at each of its wakes, and with nothing queued it must cost a field read, not a walk. */
interface Inbox {
  links: LinkState[];
  queued: number;
  /** Links holding a heartbeat for this receiver (holdIdleHeartbeats). */
  held: number;
  /** The receiver's open endpoint (what endpoints holds for it), read at each delivery. */
  ep: InProcEndpoint | null;
}

const NO_FAULTS: LinkFaults = Object.freeze({});

/** A member's message handler; arrivedAt is set for a held heartbeat read after it arrived. */
export type InProcHandler = (msg: Message, arrivedAt?: number) => void;

export class InProcEndpoint implements Transport {
  private handler: InProcHandler | null = null;
  /** @internal Parts of snapshots arriving here (see Transport.onArrivingSnapshot). */
  arriving: ArrivingSnapshotHandlers | null = null;
  private isClosed = false;

  constructor(
    readonly id: NodeId,
    private readonly net: InProcNetwork,
  ) {}

  get closed(): boolean {
    return this.isClosed;
  }

  /** Routes to msg.to. A message that cannot be serialized throws here, at the sender. */
  send(msg: Message): void {
    if (msg.from !== this.id) throw new Error(`InProcEndpoint ${this.id}: send with from=${msg.from}`);
    this.net.route(msg, this.isClosed);
  }

  /** Replaces any previous handler. */
  onMessage(handler: InProcHandler): void {
    this.handler = handler;
  }

  drainInbound(): void {
    if (!this.isClosed && (this.inbox.queued > 0 || this.inbox.held > 0)) this.net.drainTo(this.id);
  }

  /** @internal The links into this id (set by the network). */
  inbox: Inbox = { links: [], queued: 0, held: 0, ep: null };

  onArrivingSnapshot(handlers: ArrivingSnapshotHandlers): void {
    this.arriving = handlers;
  }

  close(): void {
    this.isClosed = true;
    this.handler = null;
    this.arriving = null;
    this.net.detach(this);
  }

  /** @internal Delivery hook; false when nothing listens. */
  receive(msg: Message, arrivedAt?: number): boolean {
    if (this.isClosed || !this.handler) return false;
    this.handler(msg, arrivedAt);
    return true;
  }
}

/**
 * In-process network with seeded fault injection. Delivery always goes through
 * clock.setTimeout, never synchronously, so a handler that sends never re-enters another
 * handler. Connectivity is checked at send and again at delivery, so a partition or crash
 * also drops messages already in flight.
 */
export class InProcNetwork {
  /** Handler exceptions, newest last. Collected rather than thrown: one failing node must
   * not stop delivery to the others, nor crash the timer loop that drives the whole cluster. */
  readonly errors: DeliveryError[] = [];

  private readonly clock: Clock;
  private readonly prng: Prng;
  private readonly defaultDelay: DelayRange;
  private readonly serialize: boolean;
  private readonly onError: ((err: DeliveryError) => void) | undefined;
  private readonly maxErrors: number;
  /** effective() when no fault is set. */
  private readonly noFaults: Required<LinkFaults>;

  private readonly endpoints = new Map<NodeId, InProcEndpoint>();
  private readonly linkFaults = new Map<string, LinkFaults>();
  private globalFaults: LinkFaults = NO_FAULTS;
  private groupOf: Map<NodeId, number> | null = null;
  private readonly isolated = new Set<NodeId>();
  private readonly downed = new Set<NodeId>();
  /** from -> to -> the link's counters and FIFO queue: looked up once per message. */
  private readonly linkStates = new Map<NodeId, Map<NodeId, LinkState>>();
  /** Snapshot streams by link (from, to): the sender's and the receiver's state. */
  private readonly snapOut = new Map<string, SnapshotSend>();
  private readonly snapIn = new Map<string, SnapshotReceive>();
  /** Snapshots accepted whole by their receiver, by link: see snapshotResendAfterMs. */
  private readonly snapDelivered = new Map<string, { index: number; term: number; at: number }>();
  private readonly resendAfterMs: number;
  /** Resends of a delivered snapshot not streamed again (see snapshotResendAfterMs). */
  snapshotResendsSkipped = 0;

  constructor(opts: InProcNetworkOptions) {
    this.clock = opts.clock;
    this.prng = opts.prng;
    this.defaultDelay = checkDelay(opts.defaultDelayMs ?? { min: 0, max: 0 });
    this.serialize = opts.serialize ?? true;
    this.onError = opts.onError;
    this.maxErrors = opts.maxErrors ?? 1000;
    this.noFaults = Object.freeze({ lossRate: 0, duplicateRate: 0, delayMs: this.defaultDelay, reorder: false });
    this.chunkChars = opts.snapshotChunkChars ?? 0;
    this.windowParts = opts.snapshotWindowParts ?? 4;
    this.resendAfterMs = opts.snapshotResendAfterMs ?? 10_000;
    this.holdIdle = opts.holdIdleHeartbeats ?? false;
  }

  private readonly holdIdle: boolean;
  /** Heartbeats held (holdIdleHeartbeats), and those a newer heartbeat on their link replaced before their receiver read them. */
  heartbeatsHeld = 0;
  heartbeatsCoalesced = 0;

  private readonly chunkChars: number;
  private readonly windowParts: number;

  /** One open endpoint per id; after close() the id may be reopened (a restarted node). */
  endpoint(id: NodeId): InProcEndpoint {
    if (this.endpoints.has(id)) throw new Error(`InProcNetwork: endpoint ${id} is already open`);
    const ep = new InProcEndpoint(id, this);
    ep.inbox = this.inboxOf(id);
    ep.inbox.ep = ep;
    this.endpoints.set(id, ep);
    return ep;
  }

  setLinkFaults(from: NodeId, to: NodeId, faults: LinkFaults): void {
    this.linkFaults.set(key(from, to), checkFaults(faults));
  }

  setGlobalFaults(faults: LinkFaults): void {
    this.globalFaults = checkFaults(faults);
  }

  clearFaults(): void {
    this.linkFaults.clear();
    this.globalFaults = NO_FAULTS;
  }

  /** Replaces any partition. Messages flow only within a group; a node in no group reaches
   * nobody (not even other unlisted nodes). */
  partition(groups: NodeId[][]): void {
    const groupOf = new Map<NodeId, number>();
    groups.forEach((g, i) => {
      for (const id of g) {
        if (groupOf.has(id)) throw new Error(`InProcNetwork.partition: ${id} is in two groups`);
        groupOf.set(id, i);
      }
    });
    this.groupOf = groupOf;
  }

  isolate(id: NodeId): void {
    this.isolated.add(id);
  }

  /** Clears partitions and isolation; faults and down nodes stay (see clearFaults, up). */
  heal(): void {
    this.groupOf = null;
    this.isolated.clear();
  }

  /** Crash: everything to or from the node is dropped until up(). */
  down(id: NodeId): void {
    this.downed.add(id);
  }

  up(id: NodeId): void {
    this.downed.delete(id);
  }

  /** Whether a message from a to b would currently pass partitions, isolation and crashes. */
  connected(a: NodeId, b: NodeId): boolean {
    // Asked twice per message: answer without lookups while nothing is cut.
    if (this.groupOf === null && this.downed.size === 0 && this.isolated.size === 0) return true;
    if (this.downed.has(a) || this.downed.has(b)) return false;
    if (a === b) return true;
    if (this.isolated.has(a) || this.isolated.has(b)) return false;
    if (!this.groupOf) return true;
    const ga = this.groupOf.get(a);
    return ga !== undefined && ga === this.groupOf.get(b);
  }

  linkStats(from: NodeId, to: NodeId): InProcLinkStats {
    const ls = this.linkStates.get(from)?.get(to);
    return { ...(ls ? ls.counters : zero()) };
  }

  /** Sums over the links from and to `id` (kept per link only: no second count per message). */
  endpointStats(id: NodeId): LinkStats {
    const t: LinkStats = { messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0 };
    for (const ls of this.linkStates.get(id)?.values() ?? []) {
      t.messagesOut += ls.counters.messagesOut;
      t.bytesOut += ls.counters.bytesOut;
    }
    for (const ls of this.inboxes.get(id)?.links ?? []) {
      t.messagesIn += ls.counters.messagesIn;
      t.bytesIn += ls.counters.bytesIn;
    }
    return t;
  }

  /** @internal Called by InProcEndpoint.send. */
  route(msg: Message, senderClosed: boolean): void {
    const { from, to } = msg;
    if (this.chunkChars > 0 && msg.type === 'MsgSnap' && msg.snapshot) return this.sendSnapshot(msg, senderClosed);
    if (this.holdIdle && msg.context === HEARTBEAT_NO_ANSWER && msg.type === 'MsgHeartbeat' && this.hold(msg, senderClosed)) return;
    // Snapshot now, so later mutation by the sender cannot leak into the receiver. Without
    // serialization, bytes are the payload size (entry and snapshot data plus a fixed header
    // per entry), not the JSON length: computing JSON only to count it cost ~20% of CPU.
    let wire: Wire;
    if (this.serialize) {
      const json = JSON.stringify(msg);
      wire = { kind: 'json', data: json, bytes: json.length };
    } else {
      wire = { kind: 'clone', data: cloneMessage(msg), bytes: payloadBytes(msg) };
    }
    this.transmit(from, to, wire, senderClosed, true);
  }

  /**
   * holdIdleHeartbeats: keep the heartbeat on its link for the receiver to read at its next
   * read. Only on a link with nothing queued (it would overtake) and no loss, duplication or
   * delay in effect (they keep their per-message meaning); false: send it as any message.
   */
  private hold(msg: Message, senderClosed: boolean): boolean {
    const ls = this.link(msg.from, msg.to);
    if (ls.queue.length > 0) return false;
    const f = this.effective(msg.from, msg.to);
    if (f !== this.noFaults && (f.lossRate > 0 || f.duplicateRate > 0 || f.delayMs.max > 0)) return false;
    const bytes = payloadBytes(msg);
    ls.counters.messagesOut++;
    ls.counters.bytesOut += bytes;
    if (senderClosed || !this.connected(msg.from, msg.to)) {
      ls.counters.dropped++;
      return true;
    }
    // A newer heartbeat of the same link says all the older one did (same leader, its commit
    // no lower; a lost message to Raft): the receiver reads the newer.
    this.heartbeatsHeld++;
    if (ls.held) this.heartbeatsCoalesced++;
    else ls.inbox.held++;
    ls.held = cloneMessage(msg);
    ls.heldAt = this.clock.now();
    return true;
  }

  /** Hand the receiver the heartbeats held for it, with their arrival times (before anything newer). */
  private readHeld(inbox: Inbox): void {
    for (const ls of inbox.links) {
      const msg = ls.held;
      if (msg === null) continue;
      ls.held = null;
      inbox.held--;
      const ep = inbox.ep;
      if (!ep || !this.connected(ls.from, ls.to)) {
        ls.counters.dropped++;
        continue;
      }
      this.handOver(ls, ep, msg, payloadBytes(msg), ls.heldAt);
    }
  }

  /** Count and send one wire item through the link's connectivity and faults. */
  private transmit(from: NodeId, to: NodeId, wire: Wire, senderClosed: boolean, isMessage: boolean): void {
    const ls = this.link(from, to);
    const link = ls.counters;
    const bytes = wire.bytes;
    if (isMessage) link.messagesOut++;
    link.bytesOut += bytes;

    if (senderClosed || !this.connected(from, to)) {
      link.dropped++;
      return;
    }
    const f = this.effective(from, to);
    // Draw order is fixed and draws are skipped when the outcome is certain, so a seed
    // replays identically and fault-free links consume no randomness.
    if (f.lossRate >= 1 || (f.lossRate > 0 && this.prng.chance(f.lossRate))) {
      link.dropped++;
      return;
    }
    const copies = f.duplicateRate >= 1 || (f.duplicateRate > 0 && this.prng.chance(f.duplicateRate)) ? 2 : 1;
    if (copies === 2) link.duplicated++;
    for (let i = 0; i < copies; i++) {
      const copy: Wire = i === 0 || wire.kind !== 'clone' ? wire : { kind: 'clone', data: cloneMessage(wire.data as Message), bytes };
      this.schedule(ls, copy, f);
    }
  }

  /** A MsgSnap with chunking on: continue the link's stream of it, or start a new one. */
  private sendSnapshot(msg: Message, senderClosed: boolean): void {
    const k = key(msg.from, msg.to);
    this.link(msg.from, msg.to).counters.messagesOut++;
    if (senderClosed) return;
    const md = msg.snapshot!.metadata;
    const d = this.snapDelivered.get(k);
    if (d && d.index === md.index && d.term === md.term && this.clock.now() - d.at < this.resendAfterMs) {
      this.snapshotResendsSkipped++;
      return;
    }
    const cur = this.snapOut.get(k);
    if (cur && !cur.done && cur.sameAs(msg)) {
      cur.update(msg);
      if (cur.stalled()) cur.rewind();
      this.pump(msg.from, msg.to);
      return;
    }
    cur?.cancel();
    const s = new SnapshotSend(msg, this.chunkChars);
    this.snapOut.set(k, s);
    s.prepare(() => this.pump(msg.from, msg.to), (fn) => (this.clock.defer ? this.clock.defer(fn) : this.clock.setTimeout(fn, 0)));
  }

  private pump(from: NodeId, to: NodeId): void {
    const s = this.snapOut.get(key(from, to));
    if (!s || !this.endpoints.has(from)) return;
    while (s.canSend(this.windowParts)) {
      const pieces = s.nextPart();
      const part = pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces);
      this.transmit(from, to, { kind: 'part', data: part, bytes: part.length }, false, false);
    }
  }

  /** Snapshot parts that reached their receiver (copies and resends included). */
  snapshotPartsDelivered = 0;
  /** Tests: each snapshot part (SNAP_PART payload) as it arrives; return it, a changed copy, or null to drop it. */
  partFault: ((from: NodeId, to: NodeId, part: Buffer) => Buffer | null) | null = null;

  /** A part arrived at `to`: acknowledge it, and deliver the snapshot once whole. */
  private receivePart(from: NodeId, to: NodeId, ep: InProcEndpoint, part: Buffer): void {
    this.snapshotPartsDelivered++;
    const k = key(from, to);
    let rx = this.snapIn.get(k);
    if (!rx) {
      // Looked up per call: the receiver's endpoint may be a restarted member's by then.
      const parts = { part: (p: readonly string[], i: number) => this.endpoints.get(to)?.arriving?.part(p, i), drop: (p: readonly string[]) => this.endpoints.get(to)?.arriving?.drop(p) };
      this.snapIn.set(k, (rx = new SnapshotReceive(Number.MAX_SAFE_INTEGER, parts)));
    }
    let r;
    try {
      r = rx.push(part);
    } catch (error) {
      // What closes a TCP connection: drop the partial state; the sender starts over.
      rx.reset();
      this.recordError(error, newMessage({ type: 'MsgSnap', from, to, term: 0 }));
      return;
    }
    if (r.ack) this.transmit(to, from, { kind: 'ack', data: encodeAck(r.ack), bytes: 64 }, false, false);
    if (r.message) {
      this.receiveWhole(from, to, ep, r.message);
      // Delivered (checked then, or skipped): what was parsed or staged for it is not kept
      // unless the member took it (as TcpTransport does).
      const d = r.message.snapshot?.data;
      if (Array.isArray(d)) ep.arriving?.drop(d);
    }
  }

  private receiveAck(from: NodeId, to: NodeId, ack: Buffer): void {
    // An ack travels to -> from of the stream it answers: here `to` is the snapshot's sender.
    const k = key(to, from);
    const s = this.snapOut.get(k);
    if (!s) return;
    const a = decodeAck(ack);
    if (!s.onAck(a)) return;
    if (a.error || s.done) {
      this.snapOut.delete(k);
      return;
    }
    this.pump(to, from);
  }

  private receiveWhole(from: NodeId, to: NodeId, ep: InProcEndpoint, msg: Message): void {
    const link = this.link(from, to).counters;
    try {
      if (!ep.receive(msg)) {
        link.dropped++;
        return;
      }
      if (msg.snapshot && this.resendAfterMs > 0) {
        this.snapDelivered.set(key(from, to), { index: msg.snapshot.metadata.index, term: msg.snapshot.metadata.term, at: this.clock.now() });
      }
    } catch (error) {
      this.recordError(error, msg);
    }
    link.messagesIn++;
  }

  private recordError(error: unknown, msg: Message): void {
    const rec: DeliveryError = { error, msg, at: this.clock.now() };
    this.errors.push(rec);
    if (this.errors.length > this.maxErrors) this.errors.shift();
    this.onError?.(rec);
  }

  /** @internal Called by InProcEndpoint.close. */
  detach(ep: InProcEndpoint): void {
    if (this.endpoints.get(ep.id) === ep) this.endpoints.delete(ep.id);
    if (ep.inbox.ep === ep) ep.inbox.ep = null;
    // Held heartbeats are in the crashed receiver's hands already: lost with it.
    for (const ls of ep.inbox.links) {
      if (ls.held === null) continue;
      ls.held = null;
      ep.inbox.held--;
      ls.counters.dropped++;
    }
    // A closed (crashed) endpoint's streams die with its memory, in and out.
    for (const m of [this.snapOut, this.snapIn, this.snapDelivered]) {
      for (const [k, v] of m) {
        const [a, b] = JSON.parse(k) as [NodeId, NodeId];
        if (a === ep.id || b === ep.id) {
          if (v instanceof SnapshotSend) v.cancel();
          m.delete(k);
        }
      }
    }
  }

  private schedule(ls: LinkState, wire: Wire, f: Required<LinkFaults>): void {
    const { min, max } = f.delayMs;
    let delay = max > min ? this.prng.int(min, max + 1) : min;
    if (f.reorder) {
      const deliver = () => this.deliver(ls, wire);
      if (delay <= 0 && this.clock.defer) this.clock.defer(deliver);
      else this.clock.setTimeout(deliver, delay);
      return;
    }
    // Nothing queued and no delay: nothing to stay behind, due at once, and no clock read
    // per message.
    let at = -Infinity;
    if (delay > 0 || ls.queue.length > 0) {
      const now = this.clock.now();
      delay = Math.max(delay, ls.lastAt - now);
      ls.lastAt = at = now + delay;
    }
    ls.queue.push(wire);
    ls.queueAt.push(at);
    ls.inbox.queued++;
    // Zero delay on a real clock: setImmediate rather than a ~1 ms timer per hop.
    if (delay <= 0 && this.clock.defer) this.clock.defer(ls.fire);
    else this.clock.setTimeout(ls.fire, delay);
  }

  /**
   * Deliver now the messages already due to `to` that wait for their turn of the event loop.
   * Members of one process share its loop: a heartbeat sent before a long task (another
   * member's fsync) is read after it, and a member whose timer fires first would judge a
   * timeout (an election, a leader's quorum check) without what reached it in time.
   * Stops at a snapshot part on a link, so each link stays FIFO.
   */
  drainTo(to: NodeId): void {
    const inbox = this.inboxes.get(to);
    if (!inbox) return;
    if (inbox.held > 0) this.readHeld(inbox);
    if (inbox.queued === 0) return;
    const now = this.clock.now();
    for (const ls of inbox.links) {
      while (ls.queue.length > 0 && ls.queueAt[0]! <= now) {
        const head = ls.queue[0]!;
        if (head.kind === 'part' || head.kind === 'ack') break;
        ls.queue.shift();
        ls.queueAt.shift();
        inbox.queued--;
        ls.drained++;
        this.deliver(ls, head);
      }
    }
  }

  /** Receiver id -> its inbox, created with its first link or endpoint and kept (restarts reuse it). */
  private readonly inboxes = new Map<NodeId, Inbox>();

  private inboxOf(to: NodeId): Inbox {
    let inbox = this.inboxes.get(to);
    if (!inbox) this.inboxes.set(to, (inbox = { links: [], queued: 0, held: 0, ep: null }));
    return inbox;
  }

  /** The link's state, created at its first message. */
  private link(from: NodeId, to: NodeId): LinkState {
    let byTo = this.linkStates.get(from);
    if (!byTo) this.linkStates.set(from, (byTo = new Map()));
    let ls = byTo.get(to);
    if (!ls) {
      const state: LinkState = {
        from,
        to,
        counters: zero(),
        queue: [],
        queueAt: [],
        drained: 0,
        lastAt: -Infinity,
        inbox: this.inboxOf(to),
        held: null,
        heldAt: 0,
        // Each timer delivers the queue head rather than its own copy: FIFO holds even on a
        // clock that does not fire equal-time timers in creation order. One function per
        // link, not a closure per message: idle swarms send thousands of heartbeats a second.
        fire: () => {
          if (state.drained > 0) {
            state.drained--;
            return;
          }
          const w = state.queue.shift();
          state.queueAt.shift();
          if (w) {
            state.inbox.queued--;
            this.deliver(state, w);
          }
        },
      };
      state.inbox.links.push(state);
      byTo.set(to, (ls = state));
    }
    return ls;
  }

  private deliver(ls: LinkState, wire: Wire): void {
    const { from, to } = ls;
    const link = ls.counters;
    const bytes = wire.bytes;
    const ep = ls.inbox.ep;
    if (!ep || !this.connected(from, to)) {
      link.dropped++;
      return;
    }
    if (wire.kind === 'part' || wire.kind === 'ack') {
      if (ls.inbox.held > 0) this.readHeld(ls.inbox);
      link.bytesIn += bytes;
      if (wire.kind === 'part') {
        // Tests corrupt or drop parts in flight here (faults loss alone cannot make).
        const part = this.partFault ? this.partFault(from, to, wire.data as Buffer) : (wire.data as Buffer);
        if (part === null) {
          link.dropped++;
          return;
        }
        this.receivePart(from, to, ep, part);
      }
      else this.receiveAck(from, to, wire.data as Buffer);
      return;
    }
    const msg: Message = wire.kind === 'json' ? (JSON.parse(wire.data as string) as Message) : (wire.data as Message);
    if (ls.inbox.held > 0) {
      // A heartbeat held on this link and a newer one from the same sender: the newer says all
      // the held one did and resets the election clock later (one read instead of two, in the
      // round where a follower reads its leader's next asking heartbeat).
      const h = ls.held;
      if (h !== null && msg.type === 'MsgHeartbeat' && msg.term >= h.term) {
        ls.held = null;
        ls.inbox.held--;
        this.heartbeatsCoalesced++;
      }
      // Held heartbeats arrived before this: read first (FIFO on their link; and a vote is
      // judged against the leader lease they renew).
      if (ls.inbox.held > 0) this.readHeld(ls.inbox);
    }
    this.handOver(ls, ep, msg, bytes);
  }

  private handOver(ls: LinkState, ep: InProcEndpoint, msg: Message, bytes: number, arrivedAt?: number): void {
    const link = ls.counters;
    try {
      if (!ep.receive(msg, arrivedAt)) {
        link.dropped++;
        return;
      }
    } catch (error) {
      const rec: DeliveryError = { error, msg, at: this.clock.now() };
      this.errors.push(rec);
      if (this.errors.length > this.maxErrors) this.errors.shift();
      this.onError?.(rec);
    }
    // A throwing handler still received the message.
    link.messagesIn++;
    link.bytesIn += bytes;
  }

  private effective(from: NodeId, to: NodeId): Required<LinkFaults> {
    // No fault anywhere (production): one shared answer instead of an object per message.
    if (this.linkFaults.size === 0 && this.globalFaults === NO_FAULTS) return this.noFaults;
    const l = this.linkFaults.size === 0 ? NO_FAULTS : (this.linkFaults.get(key(from, to)) ?? NO_FAULTS);
    const g = this.globalFaults;
    return {
      lossRate: l.lossRate ?? g.lossRate ?? 0,
      duplicateRate: l.duplicateRate ?? g.duplicateRate ?? 0,
      delayMs: l.delayMs ?? g.delayMs ?? this.defaultDelay,
      reorder: l.reorder ?? g.reorder ?? false,
    };
  }
}

// JSON of the pair cannot collide, whatever characters node ids contain.
const key = (from: NodeId, to: NodeId): string => JSON.stringify([from, to]);

function checkFaults(f: LinkFaults): LinkFaults {
  for (const r of [f.lossRate, f.duplicateRate]) {
    if (r !== undefined && !(r >= 0 && r <= 1)) throw new RangeError(`InProcNetwork: rate ${r} not in [0, 1]`);
  }
  if (f.delayMs) checkDelay(f.delayMs);
  return { ...f, ...(f.delayMs ? { delayMs: { ...f.delayMs } } : {}) };
}

function checkDelay(d: DelayRange): DelayRange {
  if (!(Number.isInteger(d.min) && Number.isInteger(d.max) && d.min >= 0 && d.max >= d.min)) {
    throw new RangeError(`InProcNetwork: delay {min: ${d.min}, max: ${d.max}} must be integers, 0 <= min <= max`);
  }
  return { ...d };
}

/** Field-by-field copy: entries and snapshot metadata are fresh objects, strings are shared. */
function cloneMessage(m: Message): Message {
  // No entries (heartbeats, answers, votes: most messages): the empty array is shared.
  const c: Message = { ...m, entries: m.entries.length === 0 ? m.entries : m.entries.map((e) => ({ ...e })) };
  if (m.snapshot) {
    const md = m.snapshot.metadata;
    c.snapshot = {
      metadata: { index: md.index, term: md.term, confState: { voters: [...md.confState.voters], learners: [...md.confState.learners] } },
      data: m.snapshot.data,
    };
  }
  return c;
}

function payloadBytes(m: Message): number {
  let n = 64 + m.context.length;
  for (const e of m.entries) n += 24 + e.data.length;
  if (m.snapshot) n += 64 + snapshotChars(m.snapshot.data);
  return n;
}
