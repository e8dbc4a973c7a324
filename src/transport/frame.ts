// Wire framing: [u32 BE length of the rest][u8 type][body]. The length covers type + body,
// so a reader knows the whole frame size from the first 4 bytes and can refuse an oversized
// frame before buffering any of it.

export const FrameType = {
  HELLO: 1,
  CHALLENGE: 2,
  PROOF: 3,
  ACCEPT: 4,
  /** Pre-authentication refusal with a short reason, sent just before closing. */
  REFUSE: 5,
  /** JSON array of Raft messages (one batch per event-loop turn). */
  MSG: 16,
  /** One piece of a message too large for a single frame (snapshots). */
  SNAP_CHUNK: 17,
  CLIENT_REQ: 18,
  CLIENT_RESP: 19,
  PING: 20,
  PONG: 21,
  /** One piece of a snapshot's state data (snapshot-stream.ts): resumable, flow-controlled. */
  SNAP_PART: 22,
  /** Receiver to sender: how much of a snapshot it holds (or where to resume). */
  SNAP_ACK: 23,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

const KNOWN = new Set<number>(Object.values(FrameType));
export const frameTypeName = (t: number): string =>
  Object.entries(FrameType).find(([, v]) => v === t)?.[0] ?? `unknown(${t})`;

export const HEADER_BYTES = 5;
/** Largest frame (type + body) accepted after authentication. */
export const MAX_FRAME_BYTES = 8 * 1024 * 1024;
/** Before authentication nobody gets to make us buffer more than this. */
export const PRE_AUTH_MAX_FRAME_BYTES = 4096;

export class FrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FrameError';
  }
}

export interface Frame {
  type: FrameType;
  body: Buffer;
}

/** Header for a frame whose body is `bodyBytes` long; the body is written separately so a
 * large payload is never copied just to prepend five bytes. */
export function frameHeader(type: FrameType, bodyBytes: number): Buffer {
  const h = Buffer.allocUnsafe(HEADER_BYTES);
  h.writeUInt32BE(bodyBytes + 1, 0);
  h.writeUInt8(type, 4);
  return h;
}

export function encodeFrame(type: FrameType, body: Buffer = Buffer.alloc(0)): Buffer {
  return Buffer.concat([frameHeader(type, body.length), body]);
}

/**
 * Streaming decoder: accepts arbitrary chunks (partial frames, many frames per chunk) and
 * throws FrameError on the first malformed header. Chunks are only concatenated once a
 * whole frame is present, so a large frame arriving in many reads costs one copy.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private total = 0;
  /** Size of the frame being assembled (header included); 0 while its header is unread. */
  private need = 0;

  constructor(public maxFrameBytes: number = MAX_FRAME_BYTES) {}

  /** Bytes held that do not yet form a whole frame (a non-zero value at EOF = truncated). */
  get buffered(): number {
    return this.total;
  }

  push(chunk: Buffer): Frame[] {
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.total += chunk.length;
    }
    const out: Frame[] = [];
    for (;;) {
      if (this.need === 0) {
        if (this.total < HEADER_BYTES) break;
        const head = this.peekHeader();
        const len = head.readUInt32BE(0);
        const type = head.readUInt8(4);
        if (len < 1) throw new FrameError('zero-length frame');
        if (len > this.maxFrameBytes) throw new FrameError(`oversized frame: ${len} bytes > limit ${this.maxFrameBytes}`);
        if (!KNOWN.has(type)) throw new FrameError(`unknown frame type ${type}`);
        this.need = 4 + len;
      }
      if (this.total < this.need) break;
      const frame = this.take(this.need);
      this.need = 0;
      out.push({ type: frame.readUInt8(4) as FrameType, body: frame.subarray(HEADER_BYTES) });
    }
    return out;
  }

  private peekHeader(): Buffer {
    if (this.chunks[0]!.length < HEADER_BYTES) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0]!;
  }

  private take(n: number): Buffer {
    const first = this.chunks[0]!;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      const all = Buffer.concat(this.chunks);
      out = all.subarray(0, n);
      this.chunks = all.length > n ? [all.subarray(n)] : [];
    }
    this.total -= n;
    return out;
  }
}
