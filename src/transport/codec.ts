// Payload codecs: strict validation of received Raft messages (an authenticated peer can
// still be buggy or a different version; the core must only ever see well-formed input) and
// the chunk header for messages too large for one frame.

import type { Message, MessageType } from '../raft/types.js';

const MESSAGE_TYPES = new Set<MessageType>([
  'MsgApp', 'MsgAppResp', 'MsgVote', 'MsgVoteResp', 'MsgPreVote', 'MsgPreVoteResp', 'MsgHeartbeat',
  'MsgHeartbeatResp', 'MsgSnap', 'MsgTimeoutNow', 'MsgReadIndex', 'MsgReadIndexResp', 'MsgTransferLeader',
]);
const ENTRY_TYPES = new Set(['normal', 'conf', 'noop']);

type Obj = Record<string, unknown>;
const isObj = (x: unknown): x is Obj => typeof x === 'object' && x !== null && !Array.isArray(x);
const isNat = (x: unknown): boolean => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
const isStrArr = (x: unknown): boolean => Array.isArray(x) && x.every((s) => typeof s === 'string');

/** Returns why `x` is not a well-formed Message, or null if it is. */
export function invalidMessage(x: unknown): string | null {
  if (!isObj(x)) return 'not an object';
  if (!MESSAGE_TYPES.has(x.type as MessageType)) return `bad type ${JSON.stringify(x.type)}`;
  for (const f of ['from', 'to', 'context'] as const) if (typeof x[f] !== 'string') return `bad ${f}`;
  for (const f of ['term', 'logTerm', 'index', 'commit', 'rejectHint', 'logTermHint'] as const) {
    if (!isNat(x[f])) return `bad ${f}`;
  }
  if (typeof x.reject !== 'boolean') return 'bad reject';
  if (!Array.isArray(x.entries)) return 'bad entries';
  for (const e of x.entries) {
    if (!isObj(e) || !isNat(e.index) || !isNat(e.term) || !ENTRY_TYPES.has(e.type as string) || typeof e.data !== 'string') {
      return 'bad entry';
    }
  }
  if (x.snapshot !== undefined) {
    const s = x.snapshot;
    if (!isObj(s) || !(typeof s.data === 'string' || isStrArr(s.data)) || !isObj(s.metadata)) return 'bad snapshot';
    const m = s.metadata;
    if (!isNat(m.index) || !isNat(m.term) || !isObj(m.confState)) return 'bad snapshot metadata';
    if (!isStrArr(m.confState.voters) || !isStrArr(m.confState.learners)) return 'bad snapshot confState';
  }
  return null;
}

/** Parse a MSG frame payload: a JSON array of messages. Throws with a reason if malformed. */
export function decodeBatch(payload: Buffer): Message[] {
  let x: unknown;
  try {
    x = JSON.parse(payload.toString('utf8'));
  } catch {
    throw new Error('MSG frame is not valid JSON');
  }
  if (!Array.isArray(x)) throw new Error('MSG frame is not a JSON array');
  for (const m of x) {
    const why = invalidMessage(m);
    if (why) throw new Error(`malformed message in MSG frame: ${why}`);
  }
  return x as Message[];
}

/** Batch of pre-serialized messages, without re-encoding each one. */
export const encodeBatch = (jsons: readonly string[]): Buffer => Buffer.from(`[${jsons.join(',')}]`, 'utf8');

/** SNAP_CHUNK payload: [u32 transfer id][u32 chunk index][u32 chunk count][bytes]. */
export const CHUNK_HEADER_BYTES = 12;

export function chunkHeader(transfer: number, index: number, count: number): Buffer {
  const h = Buffer.allocUnsafe(CHUNK_HEADER_BYTES);
  h.writeUInt32BE(transfer >>> 0, 0);
  h.writeUInt32BE(index, 4);
  h.writeUInt32BE(count, 8);
  return h;
}

/**
 * Reassembles one chunked message at a time per connection (the sender never interleaves
 * two transfers), bounded by maxBytes. Protocol violations throw; the caller closes.
 */
export class Reassembler {
  private transfer = -1;
  private next = 0;
  private count = 0;
  private parts: Buffer[] = [];
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  /** Returns the whole message's bytes when the last chunk arrives, else null. */
  push(payload: Buffer): Buffer | null {
    if (payload.length < CHUNK_HEADER_BYTES) throw new Error('SNAP_CHUNK frame too short');
    const transfer = payload.readUInt32BE(0);
    const index = payload.readUInt32BE(4);
    const count = payload.readUInt32BE(8);
    const data = payload.subarray(CHUNK_HEADER_BYTES);
    if (index === 0) {
      // A new transfer supersedes an unfinished one (the sender abandoned it).
      if (count < 1) throw new Error('SNAP_CHUNK with zero chunk count');
      this.reset();
      this.transfer = transfer;
      this.count = count;
    } else if (transfer !== this.transfer || index !== this.next || count !== this.count) {
      throw new Error(`SNAP_CHUNK out of sequence (transfer ${transfer} chunk ${index}/${count})`);
    }
    this.bytes += data.length;
    if (this.bytes > this.maxBytes) throw new Error(`chunked message exceeds ${this.maxBytes} bytes`);
    this.parts.push(data);
    this.next = index + 1;
    if (this.next < this.count) return null;
    const whole = Buffer.concat(this.parts, this.bytes);
    this.reset();
    return whole;
  }

  get inProgressBytes(): number {
    return this.bytes;
  }

  reset(): void {
    this.transfer = -1;
    this.next = 0;
    this.count = 0;
    this.parts = [];
    this.bytes = 0;
  }
}

/**
 * JSON texts packed into as few payloads as fit in `maxBytes` each: a lone text as itself,
 * several as one JSON array (a reader accepts either).
 */
export function packJson(texts: string[], maxBytes: number): Buffer[] {
  const out: Buffer[] = [];
  let group: string[] = [];
  let bytes = 2;
  const close = (): void => {
    if (group.length === 0) return;
    out.push(Buffer.from(group.length === 1 ? group[0]! : `[${group.join(',')}]`, 'utf8'));
    group = [];
    bytes = 2;
  };
  for (const t of texts) {
    const n = Buffer.byteLength(t) + 1;
    if (group.length > 0 && bytes + n > maxBytes) close();
    group.push(t);
    bytes += n;
  }
  close();
  return out;
}
