// Cluster-secret authentication. Both ends prove knowledge of the secret with HMAC-SHA256
// over a transcript of fresh per-connection nonces and both identities (mutual, so a member
// never talks to an impostor either), then derive a session key that tags every frame.
// The secret itself never crosses the wire.

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';

export const PROTOCOL_VERSION = 1;
export const NONCE_BYTES = 32;
export const TAG_BYTES = 32;
export const MIN_SECRET_BYTES = 16;
/** Connections whose identity starts with this are clients, anything else is a member. */
export const CLIENT_PREFIX = 'client:';

/** Read the cluster secret. Trailing whitespace is trimmed (`echo s3cret > file`). */
export function loadSecret(file: string): Buffer {
  let raw: Buffer;
  try {
    raw = readFileSync(file);
  } catch (e) {
    throw new Error(`cluster secret file ${file} cannot be read: ${(e as Error).message}`);
  }
  let end = raw.length;
  while (end > 0 && [0x20, 0x09, 0x0a, 0x0d].includes(raw[end - 1]!)) end--;
  const secret = raw.subarray(0, end);
  if (secret.length < MIN_SECRET_BYTES) {
    throw new Error(
      `cluster secret in ${file} is ${secret.length} bytes; at least ${MIN_SECRET_BYTES} are required ` +
        `(e.g. \`openssl rand -hex 32 > ${file}\`)`,
    );
  }
  return Buffer.from(secret);
}

export const newNonce = (): Buffer => randomBytes(NONCE_BYTES);

/** Length-prefixed concatenation, so ("ab","c") and ("a","bc") never hash alike. */
function transcript(parts: Array<string | Buffer>): Buffer {
  const bufs: Buffer[] = [];
  for (const p of parts) {
    const b = typeof p === 'string' ? Buffer.from(p, 'utf8') : p;
    const len = Buffer.allocUnsafe(4);
    len.writeUInt32BE(b.length, 0);
    bufs.push(len, b);
  }
  return Buffer.concat(bufs);
}

export interface HandshakeParams {
  initiatorId: string;
  acceptorId: string;
  initiatorNonce: Buffer;
  acceptorNonce: Buffer;
}

const mac = (key: Buffer, label: string, p: HandshakeParams): Buffer =>
  createHmac('sha256', key)
    .update(transcript([label, `v${PROTOCOL_VERSION}`, p.initiatorId, p.acceptorId, p.initiatorNonce, p.acceptorNonce]))
    .digest();

// Distinct labels per role: a proof one side produced can never be reflected as the other's.
export const initiatorProof = (secret: Buffer, p: HandshakeParams): Buffer => mac(secret, 'concord-proof-initiator', p);
export const acceptorProof = (secret: Buffer, p: HandshakeParams): Buffer => mac(secret, 'concord-proof-acceptor', p);
export const sessionKey = (secret: Buffer, p: HandshakeParams): Buffer => mac(secret, 'concord-session', p);

export function equalMac(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Direction byte in each tag: a frame can't be bounced back to its sender. */
export const Direction = { InitiatorToAcceptor: 0, AcceptorToInitiator: 1 } as const;
export type Direction = (typeof Direction)[keyof typeof Direction];

/**
 * Per-direction frame tagging. The sequence number is implicit (both ends count frames), so
 * a dropped, replayed or reordered frame fails verification, as does any flipped bit.
 */
export class FrameAuth {
  private sendSeq = 0n;
  private recvSeq = 0n;

  constructor(
    private readonly key: Buffer,
    private readonly sendDir: Direction,
  ) {}

  private tag(dir: number, seq: bigint, type: number, parts: readonly Buffer[]): Buffer {
    const head = Buffer.allocUnsafe(10);
    head.writeUInt8(dir, 0);
    head.writeBigUInt64BE(seq, 1);
    head.writeUInt8(type, 9);
    const h = createHmac('sha256', this.key).update(head);
    for (const p of parts) h.update(p);
    return h.digest();
  }

  sign(type: number, parts: readonly Buffer[]): Buffer {
    return this.tag(this.sendDir, this.sendSeq++, type, parts);
  }

  /** Verifies body = payload || tag and returns the payload, or null if the tag is wrong. */
  open(type: number, body: Buffer): Buffer | null {
    if (body.length < TAG_BYTES) return null;
    const payload = body.subarray(0, body.length - TAG_BYTES);
    const expected = this.tag(1 - this.sendDir, this.recvSeq, type, [payload]);
    if (!equalMac(expected, body.subarray(body.length - TAG_BYTES))) return null;
    this.recvSeq++;
    return payload;
  }
}
