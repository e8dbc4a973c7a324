// InstallSnapshot as a stream of parts below the Raft core: the core still sends and receives
// one MsgSnap, but on the wire its state data travels as SNAP_PART frames, at most a window
// of them unacknowledged, between other frames, and a transfer cut by a dropped connection
// resumes from the receiver's last acknowledged byte instead of starting over.
//
// State data in parts (SnapshotData as a list, for a state past V8's string limit) travels as
// one byte stream too: `ends` in the header gives each part's end offset, no frame spans two
// parts, and the receiver rebuilds the list (the hash covers all parts' bytes, in order).
//
// SNAP_PART payload: [u32 BE header length][header JSON][data bytes]. Every part carries the
// snapshot's identity (index, term, total bytes, SHA-256 of the bytes) and the message
// envelope (the MsgSnap with empty data), so a resumed transfer needs no extra round trip.
// SNAP_ACK payload (receiver to sender, on the same connection): JSON PartAck.

import { createHash, type Hash } from 'node:crypto';
import { isAscii } from 'node:buffer';
import { snapshotParts, type Message, type SnapshotData } from '../raft/types.js';
import { invalidMessage } from './codec.js';

export interface PartHeader {
  index: number;
  term: number;
  total: number;
  sha256: string;
  offset: number;
  /** JSON of the MsgSnap with snapshot.data = "". */
  env: string;
  /** State data in parts: each part's end byte (the last is `total`). Absent: one string. */
  ends?: number[];
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
/** Most state data parts a header may list (64 MiB parts: 64 TiB; bounds the header). */
const MAX_DATA_PARTS = 1 << 20;
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
  if (o.ends !== undefined) {
    const e = o.ends;
    let ok = Array.isArray(e) && e.length >= 1 && e.length <= MAX_DATA_PARTS && e.at(-1) === o.total;
    for (let i = 0; ok && i < (e as unknown[]).length; i++) ok = isNat((e as unknown[])[i]) && (i === 0 || (e as number[])[i]! >= (e as number[])[i - 1]!);
    if (!ok) throw new Error('SNAP_PART header ends are not part ends ascending to the total');
  }
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

/** Parts encoded and hashed per event-loop turn while preparing (a few ms each). */
const PREPARE_PARTS_PER_TURN = 4;

/**
 * Sender side of one snapshot transfer to one peer. The state is never copied whole: parts
 * are UTF-8 encoded from slices of the core's string as they go out, and the SHA-256 the
 * first part announces is computed beforehand a few parts per event-loop turn (hashing and
 * encoding 50 MB in one go held the loop ~300 ms, past a heartbeat interval).
 */
export class SnapshotSend {
  readonly index: number;
  readonly term: number;
  /** Bytes of the whole state: known once prepare() is done (ready). */
  total = 0;
  /** UTF-16 units of the whole state, known at once: a lower bound of `total`. */
  readonly chars: number;
  sha256 = '';
  env: string;
  /** Next byte to send; rewound to `acked` when a connection is replaced. */
  sent = 0;
  /** Bytes the receiver acknowledged. */
  acked = 0;
  /** Times this transfer continued past byte 0 on a new connection. */
  resumes = 0;
  /** Hash computed; parts may go out. */
  ready = false;
  private cancelled = false;
  /** The core's data (shared, not copied); also recognises a resend of the same snapshot. */
  private readonly src: SnapshotData;
  /** The data's strings (one, or its parts). */
  private readonly segs: readonly string[];
  /** End byte of each of segs (sent as `ends` when the data is in parts), filled by prepare(). */
  private readonly ends: number[] | undefined;
  /** Frame i covers chars charFrom[i]..charTo[i] of segs[segOf[i]] and bytes byteAt[i]..byteAt[i+1]. */
  private readonly segOf: number[] = [];
  private readonly charFrom: number[] = [];
  private readonly charTo: number[] = [];
  private readonly byteAt: number[] = [0];
  private readonly partOfByte = new Map<number, number>([[0, 0]]);
  private part = 0;

  constructor(m: Message, private readonly partChars: number) {
    const s = m.snapshot!;
    this.index = s.metadata.index;
    this.term = s.metadata.term;
    this.src = s.data;
    this.segs = snapshotParts(s.data);
    // Byte lengths are taken by prepare(), a slice per step: a part built by appending rows is
    // a rope, and reading it whole flattens it; all 20 parts of a 1.1 GB state at once held the
    // leader's loop 3.3-4.3 s (CPU profile), and its followers elected another leader.
    this.ends = typeof s.data === 'string' ? undefined : [];
    this.chars = this.segs.reduce((n, x) => n + x.length, 0);
    this.env = envelope(m);
  }

  /** Hash the state a few parts per turn, then call onReady (unless cancelled). `defer`
   * schedules the next turn (the simulator passes its virtual clock's). */
  prepare(onReady: () => void, defer: (fn: () => void) => void = setImmediate): void {
    const h = createHash('sha256');
    let seg = 0;
    let at = 0;
    const step = (): void => {
      if (this.cancelled) return;
      for (let n = 0; n < PREPARE_PARTS_PER_TURN && seg < this.segs.length; ) {
        const data = this.segs[seg]!;
        if (at >= data.length) {
          this.ends?.push(this.byteAt.at(-1)!);
          seg++;
          at = 0;
          continue;
        }
        const from = at;
        let to = Math.min(data.length, from + this.partChars);
        // Never split a surrogate pair: each part must be valid UTF-8 on its own.
        if (to < data.length && to - from > 1 && isHighSurrogate(data.charCodeAt(to - 1))) to--;
        // Hashed and counted from the string: no Buffer of each frame's bytes here (with the
        // frames' own, three copies of the state went through ArrayBuffers per transfer).
        const text = data.slice(from, to);
        h.update(text, 'utf8');
        const end = this.byteAt.at(-1)! + Buffer.byteLength(text, 'utf8');
        this.segOf.push(seg);
        this.charFrom.push(from);
        this.charTo.push(to);
        this.byteAt.push(end);
        this.partOfByte.set(end, this.byteAt.length - 1);
        at = to;
        n++;
      }
      if (seg < this.segs.length) return void defer(step);
      this.total = this.byteAt.at(-1)!;
      this.sha256 = h.digest('hex');
      this.ready = true;
      onReady();
    };
    step();
  }

  cancel(): void {
    this.cancelled = true;
  }

  /** The core resent this snapshot (same index, term and data): keep going, newest envelope. */
  sameAs(m: Message): boolean {
    const s = m.snapshot!;
    return s.metadata.index === this.index && s.metadata.term === this.term && s.data === this.src;
  }

  update(m: Message): void {
    this.env = envelope(m);
  }

  get done(): boolean {
    return this.ready && this.acked >= this.total;
  }

  /** Whether another part may go out with at most `windowParts` unacknowledged. */
  canSend(windowParts: number): boolean {
    return this.ready && this.sent < this.total && this.part - (this.partOfByte.get(this.acked) ?? 0) < windowParts;
  }

  /**
   * The next part's frame payload (at most partChars characters of state), as one Buffer: the
   * header and the state's bytes are written into it, not encoded apart and joined.
   */
  nextPart(): Buffer[] {
    const i = this.part;
    const h: PartHeader = { index: this.index, term: this.term, total: this.total, sha256: this.sha256, offset: this.sent, env: this.env };
    if (this.ends) h.ends = this.ends;
    const head = JSON.stringify(h);
    const headBytes = Buffer.byteLength(head, 'utf8');
    const dataBytes = this.byteAt[i + 1]! - this.byteAt[i]!;
    const out = Buffer.allocUnsafe(4 + headBytes + dataBytes);
    out.writeUInt32BE(headBytes, 0);
    out.write(head, 4, 'utf8');
    const wrote = out.write(this.segs[this.segOf[i]!]!.slice(this.charFrom[i]!, this.charTo[i]!), 4 + headBytes, 'utf8');
    // Counted by prepare() from the same characters: a difference is a bug, never sent.
    if (wrote !== dataBytes) throw new Error(`snapshot part ${i}: ${wrote} bytes encoded, ${dataBytes} counted`);
    this.part = i + 1;
    this.sent = this.byteAt[i + 1]!;
    return [out];
  }

  /** Continue from byte `to` (a part boundary; anything else restarts from 0). */
  private seek(to: number): void {
    const i = this.partOfByte.get(to) ?? 0;
    this.part = i;
    this.sent = this.byteAt[i]!;
    if (this.acked > this.sent) this.acked = this.sent;
  }

  private ackedAtLastCheck = -1;

  /** Parts are out but nothing was acknowledged since the previous call (the core's resend timer). */
  stalled(): boolean {
    const stalled = this.ready && this.sent > this.acked && this.acked === this.ackedAtLastCheck;
    this.ackedAtLastCheck = this.acked;
    return stalled;
  }

  /** A new connection: what the receiver has not acknowledged goes again. */
  rewind(): void {
    if (this.acked > 0 && this.sent > 0) this.resumes++;
    this.seek(this.acked);
  }

  /** Returns false if the ack is not about this transfer. */
  onAck(a: PartAck): boolean {
    if (!this.ready || a.index !== this.index || a.term !== this.term || a.sha256 !== this.sha256) return false;
    if (a.received > this.total) throw new Error(`SNAP_ACK for ${a.received} bytes of a ${this.total}-byte snapshot`);
    if (a.rewind) {
      this.acked = a.received;
      this.seek(a.received);
    } else {
      this.acked = Math.max(this.acked, a.received);
      if (this.sent < this.acked) this.seek(this.acked);
    }
    return true;
  }
}

const isHighSurrogate = (c: number): boolean => c >= 0xd800 && c <= 0xdbff;

function envelope(m: Message): string {
  return JSON.stringify({ ...m, snapshot: { metadata: m.snapshot!.metadata, data: '' } });
}

/**
 * The bytes gathered for the current part, as its text (the chunks are let go). ASCII (a task
 * part: JSON and base64) is decoded as latin1, the same characters, which Node makes an external
 * string past about 1 MB: its bytes live outside the V8 heap and are freed with it, instead of
 * growing the heap by each part received until a full GC (measured: +50 MB heap for a 50 MB
 * utf8 decode, +0 heap and +50 MB external as latin1).
 */
function takeText(t: { chunks: Buffer[]; chunkBytes: number }): string {
  const b = t.chunks.length === 1 ? t.chunks[0]! : Buffer.concat(t.chunks, t.chunkBytes);
  t.chunks = [];
  t.chunkBytes = 0;
  return isAscii(b) ? b.toString('latin1') : b.toString('utf8');
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
  private cur: {
    index: number;
    term: number;
    total: number;
    sha256: string;
    /** Part ends (header `ends`, as JSON to compare), or '' for one string. */
    endsKey: string;
    ends: number[] | undefined;
    /** Finished parts; `chunks` hold the current one's bytes so far (decoded when it ends). */
    done: string[];
    chunks: Buffer[];
    chunkBytes: number;
    received: number;
    hash: Hash;
  } | null = null;
  /** The rewind last asked for (snapshot and offset); in-flight parts past it are dropped silently. */
  private rewindKey = '';
  private rewindOffset = -1;

  /**
   * `parts`: each part of the state data as it completes (same array as the message's data
   * later; its hash is not checked yet), so the receiver's machine can check and parse it then
   * instead of all at the end. `drop`: that array's transfer is gone (restarted, superseded,
   * refused): what was parsed from it can go.
   */
  constructor(
    private readonly maxBytes: number,
    private readonly parts?: { part(parts: readonly string[], i: number): void; drop(parts: readonly string[]): void },
  ) {}

  /** Forget the transfer in progress, telling `parts`. */
  private forget(): void {
    const c = this.cur;
    this.cur = null;
    if (c?.ends) this.parts?.drop(c.done);
  }

  get inProgressBytes(): number {
    return this.cur?.received ?? 0;
  }

  push(payload: Buffer): PartResult {
    const { h, data } = decodePart(payload);
    if (h.total > this.maxBytes) throw new Error(`snapshot of ${h.total} bytes exceeds the ${this.maxBytes}-byte limit`);
    if (h.offset + data.length > h.total) throw new Error(`SNAP_PART bytes ${h.offset}..${h.offset + data.length} past the announced total ${h.total}`);
    if (data.length === 0 && h.total > 0) throw new Error('SNAP_PART without data');
    const c = this.cur;
    const endsKey = h.ends ? JSON.stringify(h.ends) : '';
    const same = c !== null && c.index === h.index && c.term === h.term && c.total === h.total && c.sha256 === h.sha256 && c.endsKey === endsKey;
    if (h.offset === 0 && !(same && c.received === 0)) {
      // The start of a transfer: supersedes whatever was held (another snapshot, or this one
      // restarted by the sender).
      this.forget();
      this.cur = {
        index: h.index, term: h.term, total: h.total, sha256: h.sha256, endsKey, ends: h.ends,
        done: [], chunks: [], chunkBytes: 0, received: 0, hash: createHash('sha256'),
      };
      this.rewindKey = '';
    } else if (same && h.offset < c.received) {
      // Already held (sent again after a reconnect, before the sender learned how far we
      // got): say how far, so it skips ahead rather than resending more.
      return { ack: { index: c.index, term: c.term, sha256: c.sha256, received: c.received }, total: h.total };
    } else if (!same || h.offset !== c.received) {
      // A gap, or a part of another snapshot's middle: refuse it and say where to resume, once
      // (the parts already in flight behind it are dropped without another answer).
      const received = same ? c.received : 0;
      if (!same) this.forget();
      // Parts further along the same train as the last refused one are dropped silently; a
      // part at or before it is the sender going back (its retry after our answer was lost),
      // so it is answered again.
      const key = `${h.index}:${h.term}:${h.sha256}:${received}`;
      if (this.rewindKey === key && h.offset > this.rewindOffset) {
        this.rewindOffset = h.offset;
        return { ack: null, total: h.total };
      }
      this.rewindKey = key;
      this.rewindOffset = h.offset;
      return { ack: { index: h.index, term: h.term, sha256: h.sha256, received, rewind: true }, total: h.total };
    }
    const t = this.cur!;
    if (t.ends) {
      // A frame never spans two parts of the data (the sender cuts at their ends).
      const end = t.ends[t.done.length];
      if (end !== undefined && t.received < end && t.received + data.length > end) throw new Error(`SNAP_PART bytes ${t.received}..${t.received + data.length} span the data part ending at ${end}`);
    }
    // Decoded as it arrives (no buffer of the whole, no long decode at the end).
    // Kept as bytes (a copy: the frame's buffer is the connection's) and decoded once per part:
    // a string grown frame by frame is a rope, flattened into a second copy by its first reader.
    t.chunks.push(Buffer.from(data));
    t.chunkBytes += data.length;
    t.hash.update(data);
    t.received += data.length;
    if (t.ends) {
      // Parts that end here are finished (empty ones too).
      while (t.done.length < t.ends.length && t.ends[t.done.length]! <= t.received) {
        t.done.push(takeText(t));
        this.parts?.part(t.done, t.done.length - 1);
      }
    }
    this.rewindKey = '';
    const ack: PartAck = { index: t.index, term: t.term, sha256: t.sha256, received: t.received };
    if (t.received < t.total) return { ack, total: t.total, accepted: data.length };
    this.cur = null;
    const digest = t.hash.digest('hex');
    if (digest !== t.sha256) {
      if (t.ends) this.parts?.drop(t.done);
      return { ack: { ...ack, received: 0, error: `SHA-256 ${digest} does not match the announced ${t.sha256}` }, total: t.total };
    }
    const text = takeText(t);
    const parts = t.done;
    t.done = [];
    let m: Message;
    try {
      m = JSON.parse(h.env) as Message;
    } catch {
      throw new Error('SNAP_PART envelope is not JSON');
    }
    if (m?.type !== 'MsgSnap' || !m.snapshot || m.snapshot.metadata?.index !== t.index || m.snapshot.metadata?.term !== t.term) {
      throw new Error('SNAP_PART envelope is not the MsgSnap it announces');
    }
    m.snapshot.data = t.ends ? parts : text;
    const why = invalidMessage(m);
    if (why) throw new Error(`malformed snapshot message: ${why}`);
    return { ack, total: t.total, accepted: data.length, message: m };
  }

  reset(): void {
    this.forget();
    this.rewindKey = '';
  }
}
