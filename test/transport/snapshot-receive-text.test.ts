// Issue 12 item 5 (peak RSS of a snapshot install): the receiver keeps a part's bytes as they
// arrive and decodes the part once when it ends. An ASCII part (a task part: JSON and base64)
// is decoded as latin1, which Node makes an external string: outside the V8 heap, where a rope
// of per-frame strings plus its flattened copy used to grow the heap by twice the part.

import { describe, expect, it } from 'vitest';
import { newMessage, type Message, type SnapshotData } from '../../src/raft/types.js';
import { SnapshotReceive, SnapshotSend } from '../../src/transport/snapshot-stream.js';

const snap = (data: SnapshotData): Message => newMessage({ type: 'MsgSnap', from: 'a', to: 'b', term: 2, snapshot: { metadata: { index: 9, term: 2, confState: { voters: ['a', 'b'], learners: [] } }, data } });

/** Streams `data` through a SnapshotSend and a SnapshotReceive; the message delivered. */
function transfer(data: SnapshotData, frameChars: number): { msg: Message; parts: number } {
  const s = new SnapshotSend(snap(data), frameChars);
  const q: Array<() => void> = [];
  s.prepare(() => {}, (fn) => void q.push(fn));
  while (q.length > 0) q.shift()!();
  let parts = 0;
  const rx = new SnapshotReceive(Number.MAX_SAFE_INTEGER, { part: () => void parts++, drop: () => {} });
  for (;;) {
    expect(s.canSend(4)).toBe(true);
    const r = rx.push(s.nextPart()[0]!);
    if (r.ack) s.onAck(r.ack);
    if (r.message) return { msg: r.message, parts };
  }
}

describe('SnapshotReceive part text', () => {
  it('parts arrive exactly as sent (ASCII, multi-byte across frame edges, empty)', () => {
    const parts = ['{"k":"é€😀"}'.repeat(3000), '', 'x'.repeat(100_000), `${'a'.repeat(7)}😀${'ü'.repeat(500)}`];
    const { msg, parts: seen } = transfer(parts, 1000);
    expect(seen).toBe(parts.length);
    expect(msg.snapshot!.data).toEqual(parts);
    const one = 'ab€😀'.repeat(5000);
    expect(transfer(one, 777).msg.snapshot!.data).toBe(one);
  });

  it('an ASCII part is held outside the V8 heap (an external string), not as heap strings', () => {
    const big = `{"v":5,"k":"taskrows","rows":[${Array.from({ length: 200 }, (_, i) => `[${i},[0],"${'QUJD'.repeat(5000)}"]`).join(',')}]}`;
    expect(big.length).toBeGreaterThan(4_000_000);
    const outside = () => {
      const m = process.memoryUsage();
      return m.external - m.arrayBuffers;
    };
    const before = outside();
    const { msg } = transfer(['{"v":5,"parts":2}', big], 64 << 10);
    const got = (msg.snapshot!.data as string[])[1]!;
    // External strings count in `external` and not in `arrayBuffers`; heap strings in neither.
    expect(outside() - before).toBeGreaterThan(big.length * 0.5);
    expect(got).toBe(big);
  });
});
