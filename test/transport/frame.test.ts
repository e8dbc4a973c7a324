import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createHmac, randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { clientKey, clientKeyFileText, Direction, FrameAuth, loadClientKey, loadSecret } from '../../src/transport/auth.js';
import { chunkHeader, decodeBatch, encodeBatch, invalidMessage, Reassembler } from '../../src/transport/codec.js';
import { encodeFrame, FrameDecoder, FrameError, FrameType } from '../../src/transport/frame.js';
import { msg } from './helpers.js';

const f = (type: FrameType, s: string) => encodeFrame(type, Buffer.from(s));

describe('FrameDecoder', () => {
  it('reassembles frames delivered one byte at a time', () => {
    const wire = Buffer.concat([f(FrameType.MSG, 'hello'), f(FrameType.PING, ''), f(FrameType.MSG, 'x'.repeat(1000))]);
    const d = new FrameDecoder();
    const out = [];
    for (const b of wire) out.push(...d.push(Buffer.from([b])));
    expect(out.map((x) => [x.type, x.body.length])).toEqual([[FrameType.MSG, 5], [FrameType.PING, 0], [FrameType.MSG, 1000]]);
    expect(d.buffered).toBe(0);
  });

  it('splits many frames out of one chunk and keeps a trailing partial frame', () => {
    const frames = Array.from({ length: 50 }, (_, i) => f(FrameType.MSG, `m${i}`));
    const tail = f(FrameType.MSG, 'partial-frame');
    const d = new FrameDecoder();
    const out = d.push(Buffer.concat([...frames, tail.subarray(0, 7)]));
    expect(out.map((x) => x.body.toString())).toEqual(frames.map((_, i) => `m${i}`));
    expect(d.buffered).toBe(7);
    expect(d.push(tail.subarray(7)).map((x) => x.body.toString())).toEqual(['partial-frame']);
  });

  it('rejects an oversized frame from its header alone, before buffering the body', () => {
    const d = new FrameDecoder(1024);
    const head = Buffer.alloc(5);
    head.writeUInt32BE(1025, 0);
    head[4] = FrameType.MSG;
    expect(() => d.push(head)).toThrow(/oversized frame: 1025/);
  });

  it('rejects zero length, unknown types and garbage', () => {
    expect(() => new FrameDecoder().push(Buffer.from([0, 0, 0, 0, 16]))).toThrow(FrameError);
    expect(() => new FrameDecoder().push(Buffer.from([0, 0, 0, 1, 99]))).toThrow(/unknown frame type 99/);
    expect(() => new FrameDecoder().push(Buffer.from('GET / HTTP/1.1\r\n\r\n'))).toThrow(FrameError);
  });
});

describe('FrameAuth', () => {
  const key = Buffer.alloc(32, 7);
  const payload = Buffer.from('{"a":1}');

  it('accepts frames in order and rejects flipped bits, replays, reordering and reflection', () => {
    const tx = new FrameAuth(key, Direction.InitiatorToAcceptor);
    const body = (t: Buffer) => Buffer.concat([payload, t]);
    const t0 = tx.sign(FrameType.MSG, [payload]);
    const t1 = tx.sign(FrameType.MSG, [payload]);

    const rx = new FrameAuth(key, Direction.AcceptorToInitiator);
    expect(rx.open(FrameType.MSG, body(t1))).toBeNull(); // reordered: seq 1 before seq 0
    expect(rx.open(FrameType.PING, body(t0))).toBeNull(); // type is authenticated
    const flipped = body(t0);
    flipped[2]! ^= 1;
    expect(rx.open(FrameType.MSG, flipped)).toBeNull();
    expect(rx.open(FrameType.MSG, body(t0))?.toString()).toBe('{"a":1}');
    expect(rx.open(FrameType.MSG, body(t0))).toBeNull(); // replay
    expect(rx.open(FrameType.MSG, body(t1))).not.toBeNull();

    // Reflection: the sender cannot be fed its own frames back.
    const back = new FrameAuth(key, Direction.InitiatorToAcceptor);
    expect(back.open(FrameType.MSG, body(new FrameAuth(key, Direction.InitiatorToAcceptor).sign(FrameType.MSG, [payload])))).toBeNull();
  });
});

describe('FrameAuth tags are HMAC-SHA256 over direction, sequence, type and payload', () => {
  // The reference: what every member computed with createHmac before the one-shot path, so
  // old and new members interoperate. Sizes straddle the one-shot limit (4096) and the block.
  const reference = (key: Buffer, dir: number, seq: bigint, type: number, parts: Buffer[]): Buffer => {
    const head = Buffer.alloc(10);
    head.writeUInt8(dir, 0);
    head.writeBigUInt64BE(seq, 1);
    head.writeUInt8(type, 9);
    const h = createHmac('sha256', key).update(head);
    for (const p of parts) h.update(p);
    return h.digest();
  };
  for (const keyBytes of [32, 64, 100]) {
    it(`${keyBytes}-byte key: every tag equals createHmac's, and the other end opens it`, () => {
      const key = randomBytes(keyBytes);
      const tx = new FrameAuth(key, Direction.AcceptorToInitiator);
      const rx = new FrameAuth(key, Direction.InitiatorToAcceptor);
      let seq = 0n;
      for (const size of [0, 1, 55, 64, 1000, 4095, 4096, 4097, 70_000]) {
        for (const split of [false, true]) {
          const data = randomBytes(size);
          const parts = split ? [data.subarray(0, size >> 1), data.subarray(size >> 1)] : [data];
          const type = split ? FrameType.SNAP_CHUNK : FrameType.MSG;
          const tag = tx.sign(type, parts);
          expect(tag.equals(reference(key, Direction.AcceptorToInitiator, seq++, type, parts)), `size ${size} split ${split}`).toBe(true);
          expect(rx.open(type, Buffer.concat([data, tag]))?.equals(data)).toBe(true);
        }
      }
    });
  }
  it('sequence numbers past 2^32 are tagged as 64-bit values', () => {
    const key = randomBytes(32);
    const tx = new FrameAuth(key, Direction.InitiatorToAcceptor);
    (tx as unknown as { sendSeq: bigint }).sendSeq = 2n ** 32n + 5n;
    const p = Buffer.from('[]');
    expect(tx.sign(FrameType.MSG, [p]).equals(reference(key, Direction.InitiatorToAcceptor, 2n ** 32n + 5n, FrameType.MSG, [p]))).toBe(true);
  });
});

describe('loadSecret', () => {
  const dir = mkdtempSync(join(tmpdir(), 'concord-secret-'));
  const GOOD = randomBytes(32).toString('hex');
  const put = (name: string, content: string | Buffer, mode = 0o600): string => {
    const f = join(dir, name);
    writeFileSync(f, content, { mode });
    chmodSync(f, mode); // writeFileSync's mode is masked by the umask
    return f;
  };
  it('reads and trims a secret file', () => {
    expect(loadSecret(put('ok', `${GOOD}\n`)).toString()).toBe(GOOD);
  });
  it('refuses a missing secret, or one shorter than 32 bytes', () => {
    expect(() => loadSecret(join(dir, 'missing'))).toThrow(/cannot be read/);
    expect(() => loadSecret(put('short', 'tooshort\n'))).toThrow(/8 bytes; at least 32/);
    // 16..31 bytes were accepted before.
    expect(() => loadSecret(put('short24', GOOD.slice(0, 24)))).toThrow(/24 bytes; at least 32/);
  });
  it('refuses group- or world-accessible files, as ssh does for keys', () => {
    for (const mode of [0o666, 0o777, 0o640, 0o604]) {
      expect(() => loadSecret(put(`mode${mode.toString(8)}`, GOOD, mode))).toThrow(new RegExp(`mode 0${mode.toString(8)}: group and others must have no access`));
    }
    expect(loadSecret(put('mode400', GOOD, 0o400)).toString()).toBe(GOOD);
  });
  it('refuses low-entropy content: 40 NUL bytes, a repeated byte or pattern, few distinct values', () => {
    expect(() => loadSecret(put('nul', Buffer.alloc(40)))).toThrow(/only 1 distinct byte values/);
    expect(() => loadSecret(put('aaa', 'a'.repeat(64)))).toThrow(/only 1 distinct/);
    expect(() => loadSecret(put('abab', 'ab'.repeat(32)))).toThrow(/only 2 distinct/);
    expect(() => loadSecret(put('pattern', 'abcdefghij'.repeat(4)))).toThrow(/repeats a 10-byte pattern/);
    expect(() => loadSecret(put('skewed', `${'a'.repeat(40)}bcdefghij`))).toThrow(/about \d+ bits of entropy/);
    // Real secrets pass: hex, base64 and raw random bytes (40: trailing whitespace bytes are trimmed), many draws.
    for (let i = 0; i < 200; i++) {
      for (const s of [randomBytes(32).toString('hex'), randomBytes(32).toString('base64'), randomBytes(40)]) {
        const f = put('random', s);
        expect(loadSecret(f).length).toBeGreaterThanOrEqual(32);
      }
    }
  });
  it('a client key file works for clients and is refused as a member secret', () => {
    const secret = loadSecret(put('cluster', GOOD));
    const f = put('client.key', clientKeyFileText(secret));
    expect(loadClientKey(f).equals(clientKey(secret))).toBe(true);
    // The cluster secret given to a client yields only the client key.
    expect(loadClientKey(put('cluster2', GOOD)).equals(clientKey(secret))).toBe(true);
    expect(() => loadSecret(f)).toThrow(/holds a client key, not the cluster secret/);
    expect(() => loadClientKey(put('client-open.key', clientKeyFileText(secret), 0o644))).toThrow(/mode 0644/);
  });
});

describe('codec', () => {
  it('round-trips a batch and rejects malformed messages', () => {
    const m = msg('a', 'b', { entries: [{ index: 1, term: 1, type: 'normal', data: 'x' }] });
    expect(decodeBatch(encodeBatch([JSON.stringify(m)]))).toEqual([m]);
    expect(() => decodeBatch(Buffer.from('{'))).toThrow(/not valid JSON/);
    expect(() => decodeBatch(Buffer.from('{}'))).toThrow(/not a JSON array/);
    expect(invalidMessage({ ...m, type: 'MsgEvil' })).toMatch(/bad type/);
    expect(invalidMessage({ ...m, term: -1 })).toMatch(/bad term/);
    expect(invalidMessage({ ...m, entries: [{ index: 1 }] })).toMatch(/bad entry/);
    expect(invalidMessage({ ...m, snapshot: { data: 1 } })).toMatch(/bad snapshot/);
  });

  it('reassembles chunks in order, bounded, and rejects gaps', () => {
    const r = new Reassembler(10);
    const c = (t: number, i: number, n: number, s: string) => Buffer.concat([chunkHeader(t, i, n), Buffer.from(s)]);
    expect(r.push(c(1, 0, 2, 'abc'))).toBeNull();
    expect(r.push(c(1, 1, 2, 'def'))?.toString()).toBe('abcdef');
    expect(r.push(c(2, 0, 3, 'abc'))).toBeNull();
    expect(() => r.push(c(2, 2, 3, 'x'))).toThrow(/out of sequence/);
    const small = new Reassembler(4);
    small.push(c(1, 0, 2, 'abc'));
    expect(() => small.push(c(1, 1, 2, 'def'))).toThrow(/exceeds 4 bytes/);
  });
});
