// InstallSnapshot as a stream of parts below the Raft core: the core still sends and receives
// one MsgSnap, but on the wire its state data travels as SNAP_PART frames, at most a window
// of them unacknowledged, between other frames, and a transfer cut by a dropped connection
// resumes from the receiver's last acknowledged byte instead of starting over.
//
// SNAP_PART payload: [u32 BE header length][header JSON][data bytes]. Every part carries the
// snapshot's identity (index, term, total bytes, SHA-256 of the bytes) and the message
// envelope (the MsgSnap with empty data), so a resumed transfer needs no extra round trip.
// SNAP_ACK payload (receiver to sender, on the same connection): JSON PartAck.

import { createHash, type Hash } from 'node:crypto';
import type { Message } from '../raft/types.js';
import { invalidMessage } from './codec.js';

export interface PartHeader {
  index: number;
  term: number;
  total: number;
  sha256: string;
  offset: number;
  /** JSON of the MsgSnap with snapshot.data = "". */
  env: string;
}

export interface PartAck {
  index: number;
  term: number;
  sha256: string;
  /** Bytes of this snapshot the receiver holds, in order from 0. */
  received: number;
  /** The receiver refused a part: the sender resumes from `received`. */
  rewind?: boolean;
  /** The receiver gave the transfer up (e.g. hash mismatch): the sender abandons it. */
  error?: string;
}

const HEX64 = /^[0-9a-f]{64}$/;
const isNat = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;

export function encodePart(h: PartHeader, data: Buffer): Buffer[] {
  const head = Buffer.from(JSON.stringify(h), 'utf8');
  const len = Buffer.allocUnsafe(4);
  len.writeUInt32BE(head.length, 0);
  return [len, head, data];
}

export function decodePart(payload: Buffer): { h: PartHeader; data: Buffer } {
  if (payload.length < 4) throw new Error('SNAP_PART frame too short');
  const n = payload.readUInt32BE(0);
  if (4 + n > payload.length) throw new Error('SNAP_PART header length past the frame');
  let h: unknown;
  try {
    h = JSON.parse(payload.subarray(4, 4 + n).toString('utf8'));
  } catch {
    throw new Error('SNAP_PART header is not JSON');
  }
  const o = h as Record<string, unknown>;
  if (typeof h !== 'object' || h === null || !isNat(o.index) || !isNat(o.term) || !isNat(o.total) || !isNat(o.offset)) {
    throw new Error('SNAP_PART header lacks index/term/total/offset');
  }
  if (typeof o.sha256 !== 'string' || !HEX64.test(o.sha256) || typeof o.env !== 'string') throw new Error('SNAP_PART header lacks sha256/env');
  return { h: h as PartHeader, data: payload.subarray(4 + n) };
}

export function decodeAck(payload: Buffer): PartAck {
  let a: unknown;
  try {
    a = JSON.parse(payload.toString('utf8'));
  } catch {
    throw new Error('SNAP_ACK is not JSON');
  }
  const o = a as Record<string, unknown>;
  if (typeof a !== 'object' || a === null || !isNat(o.index) || !isNat(o.term) || !isNat(o.received) || typeof o.sha256 !== 'string') {
    throw new Error('SNAP_ACK lacks index/term/sha256/received');
  }
  return a as PartAck;
}

export const encodeAck = (a: PartAck): Buffer => Buffer.from(JSON.stringify(a), 'utf8');

/** Sender side of one snapshot transfer to one peer. */
export class SnapshotSend {
  readonly index: number;
  readonly term: number;
  readonly total: number;
  readonly sha256: string;
  env: string;
  /** Next byte to send; rewound to `acked` when a connection is replaced. */
  sent = 0;
  /** Bytes the receiver acknowledged. */
  acked = 0;
  /** Times this transfer continued past byte 0 on a new connection or after a refusal. */
  resumes = 0;
  private readonly bytes: Buffer;
  /** The core's string, to recognise a resend of the same snapshot without rehashing. */
  private readonly data: string;

  constructor(m: Message) {
    const s = m.snapshot!;
    this.index = s.metadata.index;
    this.term = s.metadata.term;
    this.data = s.data;
    this.bytes = Buffer.from(s.data, 'utf8');
    this.total = this.bytes.length;
    this.sha256 = createHash('sha256').update(this.bytes).digest('hex');
    this.env = envelope(m);
  }

  /** The core resent this snapshot (same index, term and data): keep going, newest envelope. */
  sameAs(m: Message): boolean {
    const s = m.snapshot!;
    return s.metadata.index === this.index && s.metadata.term === this.term && s.data === this.data;
  }

  update(m: Message): void {
    this.env = envelope(m);
  }

  get done(): boolean {
    return this.acked >= this.total;
  }

  /** Whether another part may go out under a window of `windowBytes` unacknowledged. */
  canSend(windowBytes: number): boolean {
    return this.sent < this.total && this.sent - this.acked < windowBytes;
  }

  /** The next part's frame payload, at most chunkBytes of data. */
  nextPart(chunkBytes: number): Buffer[] {
    const data = this.bytes.subarray(this.sent, Math.min(this.total, this.sent + chunkBytes));
    const parts = encodePart({ index: this.index, term: this.term, total: this.total, sha256: this.sha256, offset: this.sent, env: this.env }, data);
    this.sent += data.length;
    return parts;
  }

  /** A new connection: what the receiver has not acknowledged goes again. */
  rewind(): void {
    if (this.acked > 0 && this.sent > this.acked) this.resumes++;
    this.sent = this.acked;
  }

  /** Returns false if the ack is not about this transfer. */
  onAck(a: PartAck): boolean {
    if (a.index !== this.index || a.term !== this.term || a.sha256 !== this.sha256) return false;
    if (a.received > this.total) throw new Error(`SNAP_ACK for ${a.received} bytes of a ${this.total}-byte snapshot`);
    if (a.rewind) {
      if (a.received > 0) this.resumes++;
      this.acked = a.received;
      this.sent = a.received;
    } else {
      this.acked = Math.max(this.acked, a.received);
      if (this.sent < this.acked) this.sent = this.acked;
    }
    return true;
  }
}

function envelope(m: Message): string {
  return JSON.stringify({ ...m, snapshot: { metadata: m.snapshot!.metadata, data: '' } });
}

export interface PartResult {
  ack: PartAck | null;
  /** The announced size of the snapshot the part belongs to. */
  total: number;
  /** Data bytes of this part accepted (0 if refused). */
  accepted?: number;
  /** The whole snapshot message, once the last part arrived and its hash matched. */
  message?: Message;
}

/**
 * Receiver side for one peer. Survives the connection (that is what makes resuming work);
 * holds at most one snapshot's bytes, at most maxBytes. Protocol violations throw (the
 * caller closes the connection and drops this state).
 */
export class SnapshotReceive {
  private cur: { index: number; term: number; total: number; sha256: string; parts: Buffer[]; received: number; hash: Hash } | null = null;
  /** The rewind last asked for (snapshot and offset); in-flight parts past it are dropped silently. */
  private rewindKey = '';

  constructor(private readonly maxBytes: number) {}

  get inProgressBytes(): number {
    return this.cur?.received ?? 0;
  }

  push(payload: Buffer): PartResult {
    const { h, data } = decodePart(payload);
    if (h.total > this.maxBytes) throw new Error(`snapshot of ${h.total} bytes exceeds the ${this.maxBytes}-byte limit`);
    if (h.offset + data.length > h.total) throw new Error(`SNAP_PART bytes ${h.offset}..${h.offset + data.length} past the announced total ${h.total}`);
    if (data.length === 0 && h.total > 0) throw new Error('SNAP_PART without data');
    const c = this.cur;
    const same = c !== null && c.index === h.index && c.term === h.term && c.total === h.total && c.sha256 === h.sha256;
    if (h.offset === 0 && !(same && c.received === 0)) {
      // The start of a transfer: supersedes whatever was held (another snapshot, or this one
      // restarted by the sender).
      this.cur = { index: h.index, term: h.term, total: h.total, sha256: h.sha256, parts: [], received: 0, hash: createHash('sha256') };
      this.rewindKey = '';
    } else if (!same || h.offset !== c.received) {
      // A part that does not continue what we hold: refuse it and say where to resume, once
      // (the parts already in flight behind it are dropped without another answer).
      const received = same ? c.received : 0;
      if (!same) this.cur = null;
      const key = `${h.index}:${h.term}:${h.sha256}:${received}`;
      if (this.rewindKey === key) return { ack: null, total: h.total };
      this.rewindKey = key;
      return { ack: { index: h.index, term: h.term, sha256: h.sha256, received, rewind: true }, total: h.total };
    }
    const t = this.cur!;
    t.parts.push(data);
    t.hash.update(data);
    t.received += data.length;
    this.rewindKey = '';
    const ack: PartAck = { index: t.index, term: t.term, sha256: t.sha256, received: t.received };
    if (t.received < t.total) return { ack, total: t.total, accepted: data.length };
    this.cur = null;
    const digest = t.hash.digest('hex');
    if (digest !== t.sha256) {
      return { ack: { ...ack, received: 0, error: `SHA-256 ${digest} does not match the announced ${t.sha256}` }, total: t.total };
    }
    const whole = Buffer.concat(t.parts, t.total);
    t.parts = [];
    let m: Message;
    try {
      m = JSON.parse(h.env) as Message;
    } catch {
      throw new Error('SNAP_PART envelope is not JSON');
    }
    if (m?.type !== 'MsgSnap' || !m.snapshot || m.snapshot.metadata?.index !== t.index || m.snapshot.metadata?.term !== t.term) {
      throw new Error('SNAP_PART envelope is not the MsgSnap it announces');
    }
    m.snapshot.data = whole.toString('utf8');
    const why = invalidMessage(m);
    if (why) throw new Error(`malformed snapshot message: ${why}`);
    return { ack, total: t.total, accepted: data.length, message: m };
  }

  reset(): void {
    this.cur = null;
    this.rewindKey = '';
  }
}
