// SnapshotSend counts the state's bytes in prepare(), a slice per step (reading every part at
// construction flattened 1.1 GB of rope strings on one turn of the leader): the count, the
// parts' end offsets and the hash must be what reading it whole gives, whatever the parts hold
// (multi-byte characters, a surrogate pair at a slice boundary, an empty part).

import { createHash } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import type { Message, SnapshotData } from '../../src/raft/types.js';
import { decodePart, SnapshotSend } from '../../src/transport/snapshot-stream.js';

const snap = (data: SnapshotData): Message => ({ type: 'MsgSnap', from: 'a', to: 'b', term: 2, snapshot: { metadata: { index: 9, term: 2, confState: { voters: ['a', 'b'], learners: [] } }, data } }) as unknown as Message;

function prepared(data: SnapshotData, sliceChars: number): { s: SnapshotSend; steps: number } {
  const s = new SnapshotSend(snap(data), sliceChars);
  const q: Array<() => void> = [];
  let steps = 1;
  s.prepare(() => {}, (fn) => void q.push(fn));
  while (q.length > 0) {
    steps++;
    q.shift()!();
  }
  return { s, steps };
}

describe('SnapshotSend byte counts', () => {
  it('total, part ends and hash equal those of the whole state (multi-byte text, a pair at a slice edge, an empty part)', () => {
    const parts = ['{"k":"é€😀"}'.repeat(300), '', `${'a'.repeat(7)}😀${'ü'.repeat(500)}`, 'z'];
    const { s, steps } = prepared(parts, 8);
    expect(s.ready).toBe(true);
    const bytes = parts.map((p) => Buffer.byteLength(p, 'utf8'));
    expect(s.total).toBe(bytes.reduce((a, b) => a + b, 0));
    expect(s.chars).toBe(parts.reduce((a, p) => a + p.length, 0));
    // The first frame names the parts' end offsets.
    const ends = bytes.map((_, i) => bytes.slice(0, i + 1).reduce((a, b) => a + b, 0));
    expect((s as unknown as { ends: number[] }).ends).toEqual(ends);
    expect(s.sha256).toBe(createHash('sha256').update(Buffer.from(parts.join(''), 'utf8')).digest('hex'));
    // Counted over several steps, not on the constructor's turn.
    expect(steps).toBeGreaterThan(2);
  });

  it('a single-string state: total and hash, no part ends', () => {
    const data = 'x€'.repeat(1000);
    const { s } = prepared(data, 64);
    expect(s.total).toBe(Buffer.byteLength(data, 'utf8'));
    expect((s as unknown as { ends: number[] | undefined }).ends).toBeUndefined();
    expect(s.sha256).toBe(createHash('sha256').update(data, 'utf8').digest('hex'));
  });

  it('prepare() makes no Buffer of the state, and each frame is one Buffer holding its header and bytes', () => {
    const parts = ['{"k":"é€😀"}'.repeat(300), '', `${'a'.repeat(7)}😀${'ü'.repeat(500)}`, 'z'];
    const from = vi.spyOn(Buffer, 'from');
    let s: SnapshotSend;
    try {
      s = prepared(parts, 64).s;
      // The bytes were counted and hashed from the strings (three copies of the state went
      // through ArrayBuffers per transfer: this count, the frame's data, the frame joined).
      expect(from).not.toHaveBeenCalled();
    } finally {
      from.mockRestore();
    }
    const got: Buffer[] = [];
    let frames = 0;
    while (s.canSend(1_000_000)) {
      const f = s.nextPart();
      expect(f).toHaveLength(1);
      frames++;
      got.push(decodePart(f[0]!).data);
    }
    expect(frames).toBeGreaterThan(20);
    expect(Buffer.concat(got).equals(Buffer.from(parts.join(''), 'utf8'))).toBe(true);
  });
});
