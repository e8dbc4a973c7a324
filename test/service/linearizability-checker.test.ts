// The checker itself, on hand-made histories (it must be able to say "not linearizable") and
// on random histories of a truly atomic register (it must accept every one of them).

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkKvHistory, kvStep, type KvInput, type KvOperation, type KvOutput, type KvState } from '../helpers/linearizability.js';

const put = (client: number, key: string, value: unknown, call: number, ret: number, version: number | null, ifVersion?: number): KvOperation => ({
  client,
  input: { op: 'put', key, value, ifVersion: ifVersion ?? null },
  call,
  ret,
  output: version === null ? { ok: false } : { ok: true, version },
});
const get = (client: number, key: string, call: number, ret: number, seen: { value: unknown; version: number } | null): KvOperation => ({
  client,
  input: { op: 'get', key },
  call,
  ret,
  output: seen ? { found: true, ...seen } : { found: false },
});
const del = (client: number, key: string, call: number, ret: number, deleted: boolean | 'refused', ifVersion?: number): KvOperation => ({
  client,
  input: { op: 'delete', key, ifVersion: ifVersion ?? null },
  call,
  ret,
  output: deleted === 'refused' ? { ok: false } : { ok: true, deleted },
});
const unknown = (op: KvOperation): KvOperation => ({ ...op, output: null, ret: Infinity });

describe('linearizability checker: hand-made histories', () => {
  it('accepts a sequential history that follows the register', () => {
    const h = [
      get(1, 'k', 0, 1, null),
      put(1, 'k', 'a', 2, 3, 1),
      get(2, 'k', 4, 5, { value: 'a', version: 1 }),
      put(2, 'k', 'b', 6, 7, 2),
      del(1, 'k', 8, 9, true),
      get(1, 'k', 10, 11, null),
      put(2, 'k', 'c', 12, 13, 1),
    ];
    const r = checkKvHistory(h);
    expect(r.linearizable).toBe(true);
    expect(r.keys.k!.order).toEqual([0, 1, 2, 3, 4, 5, 6]);
  });

  it('rejects a read of a value overwritten before the read began (stale read)', () => {
    const h = [put(1, 'k', 'a', 0, 1, 1), put(1, 'k', 'b', 2, 3, 2), get(2, 'k', 4, 5, { value: 'a', version: 1 })];
    const r = checkKvHistory(h);
    expect(r.linearizable).toBe(false);
    expect(r.failingKey).toBe('k');
    expect(r.explanation).toMatch(/not linearizable/);
    expect(r.explanation).toMatch(/get\(k\)/);
  });

  it('rejects an old value read after a newer acknowledged write (a deposed leader serving its state)', () => {
    // Client 2's write of b completed before client 3 read: a deposed leader still holding a
    // answers the read. The value and version were really written once, so only the real-time
    // order gives the read away.
    const stale = [put(1, 'k', 'a', 0, 1, 1), put(2, 'k', 'b', 2, 3, 2), get(3, 'k', 4, 5, { value: 'a', version: 1 })];
    expect(checkKvHistory(stale).linearizable).toBe(false);
    // The same read overlapping the newer write is fine: it may be ordered before it.
    const overlapping = [put(1, 'k', 'a', 0, 1, 1), put(2, 'k', 'b', 2, 4.5, 2), get(3, 'k', 4, 5, { value: 'a', version: 1 })];
    expect(checkKvHistory(overlapping).linearizable).toBe(true);
    // Stale after several newer writes, with the newest read correctly by another client first.
    const afterMany = [
      put(1, 'k', 'a', 0, 1, 1),
      put(2, 'k', 'b', 2, 3, 2),
      put(1, 'k', 'c', 4, 5, 3),
      get(4, 'k', 6, 7, { value: 'c', version: 3 }),
      get(3, 'k', 8, 9, { value: 'b', version: 2 }),
    ];
    expect(checkKvHistory(afterMany).linearizable).toBe(false);
    // "Absent" is stale too once a put was acknowledged.
    expect(checkKvHistory([put(1, 'k', 'a', 0, 1, 1), get(2, 'k', 2, 3, null)]).linearizable).toBe(false);
    // A recreated key restarts at version 1: the old incarnation's value is still stale.
    const recreated = [put(1, 'k', 'a', 0, 1, 1), del(1, 'k', 2, 3, true), put(2, 'k', 'z', 4, 5, 1), get(3, 'k', 6, 7, { value: 'a', version: 1 })];
    expect(checkKvHistory(recreated).linearizable).toBe(false);
    // A stale read that a later CAS relied on: the CAS from the stale version must be refused.
    const staleCas = [put(1, 'k', 'a', 0, 1, 1), put(2, 'k', 'b', 2, 3, 2), put(3, 'k', 'c', 4, 5, 2, 1)];
    expect(checkKvHistory(staleCas).linearizable).toBe(false);
  });

  it('accepts either value for a read concurrent with a write', () => {
    const before = [put(1, 'k', 'a', 0, 1, 1), put(1, 'k', 'b', 2, 10, 2)];
    expect(checkKvHistory([...before, get(2, 'k', 3, 4, { value: 'a', version: 1 })]).linearizable).toBe(true);
    expect(checkKvHistory([...before, get(2, 'k', 3, 4, { value: 'b', version: 2 })]).linearizable).toBe(true);
    // ...but not a value that was never written, nor a wrong version.
    expect(checkKvHistory([...before, get(2, 'k', 3, 4, { value: 'c', version: 2 })]).linearizable).toBe(false);
    expect(checkKvHistory([...before, get(2, 'k', 3, 4, { value: 'b', version: 3 })]).linearizable).toBe(false);
  });

  it('rejects a new-then-old inversion between two reads during one write', () => {
    // put(b) is in flight over [2, 20]; read A (over before B starts) sees b, read B sees a.
    const h = [put(1, 'k', 'a', 0, 1, 1), put(1, 'k', 'b', 2, 20, 2), get(2, 'k', 3, 4, { value: 'b', version: 2 }), get(3, 'k', 5, 6, { value: 'a', version: 1 })];
    expect(checkKvHistory(h).linearizable).toBe(false);
    // Overlapping reads may see them in either order.
    const ok = [put(1, 'k', 'a', 0, 1, 1), put(1, 'k', 'b', 2, 20, 2), get(2, 'k', 3, 6, { value: 'b', version: 2 }), get(3, 'k', 5, 7, { value: 'a', version: 1 })];
    expect(checkKvHistory(ok).linearizable).toBe(true);
  });

  it('lets an operation with unknown outcome take effect, or not, but not both', () => {
    const crashed = unknown(put(1, 'k', 'x', 0, 0, 1));
    expect(checkKvHistory([crashed, get(2, 'k', 5, 6, { value: 'x', version: 1 })]).linearizable).toBe(true);
    expect(checkKvHistory([crashed, get(2, 'k', 5, 6, null)]).linearizable).toBe(true);
    // It may take effect late: absent first, then present.
    expect(checkKvHistory([crashed, get(2, 'k', 5, 6, null), get(2, 'k', 7, 8, { value: 'x', version: 1 })]).linearizable).toBe(true);
    // Seen, then gone with nothing deleting it: impossible.
    expect(checkKvHistory([crashed, get(2, 'k', 5, 6, { value: 'x', version: 1 }), get(2, 'k', 7, 8, null)]).linearizable).toBe(false);
    // It cannot take effect before it was invoked.
    const late = unknown(put(1, 'k', 'x', 10, 10, 1));
    expect(checkKvHistory([late, get(2, 'k', 5, 6, { value: 'x', version: 1 })]).linearizable).toBe(false);
    // An unknown op applies at most once: two reads can't see versions 1 and 2 from one put.
    expect(
      checkKvHistory([crashed, get(2, 'k', 5, 6, { value: 'x', version: 1 }), get(2, 'k', 7, 8, { value: 'x', version: 2 })]).linearizable,
    ).toBe(false);
  });

  it('compare-and-set: two concurrent CAS from version 0 cannot both win', () => {
    const both = [put(1, 'k', 'a', 0, 10, 1, 0), put(2, 'k', 'b', 1, 11, 1, 0)];
    expect(checkKvHistory(both).linearizable).toBe(false);
    const oneWins = [put(1, 'k', 'a', 0, 10, 1, 0), put(2, 'k', 'b', 1, 11, null, 0), get(3, 'k', 12, 13, { value: 'a', version: 1 })];
    expect(checkKvHistory(oneWins).linearizable).toBe(true);
    // A refused CAS whose condition actually held (nobody else wrote) is a violation.
    expect(checkKvHistory([put(1, 'k', 'a', 0, 1, null, 0)]).linearizable).toBe(false);
    // A CAS that succeeded although the version did not match is a violation.
    expect(checkKvHistory([put(1, 'k', 'a', 0, 1, 1), put(1, 'k', 'b', 2, 3, 2, 0)]).linearizable).toBe(false);
  });

  it('delete: a read after a completed delete cannot see the value; conditional delete checks the version', () => {
    expect(checkKvHistory([put(1, 'k', 'a', 0, 1, 1), del(1, 'k', 2, 3, true), get(2, 'k', 4, 5, { value: 'a', version: 1 })]).linearizable).toBe(false);
    expect(checkKvHistory([del(1, 'k', 0, 1, true)]).linearizable).toBe(false);
    expect(checkKvHistory([put(1, 'k', 'a', 0, 1, 1), del(1, 'k', 2, 3, 'refused', 1)]).linearizable).toBe(false);
    expect(checkKvHistory([put(1, 'k', 'a', 0, 1, 1), del(1, 'k', 2, 3, 'refused', 5), del(1, 'k', 4, 5, true, 1), put(1, 'k', 'b', 6, 7, 1)]).linearizable).toBe(true);
  });

  it('checks keys independently and names the key that fails', () => {
    const h = [put(1, 'a', 1, 0, 1, 1), get(2, 'a', 2, 3, { value: 1, version: 1 }), put(1, 'b', 1, 0, 1, 1), get(2, 'b', 2, 3, null)];
    const r = checkKvHistory(h);
    expect(r.linearizable).toBe(false);
    expect(r.failingKey).toBe('b');
    expect(r.keys.a!.linearizable).toBe(true);
    expect(r.keys.b!.linearizable).toBe(false);
  });

  it('refuses a malformed history (response before invocation)', () => {
    expect(() => checkKvHistory([put(1, 'k', 'a', 5, 4, 1)])).toThrow(/before it is invoked/);
  });

  it('copes with many concurrent writers of unknown outcome quickly (memoisation)', () => {
    // 12 crashed puts, all concurrent, then a read: which subset took effect, in which order?
    // 12! orders without the (set, state) cache; a few thousand states with it.
    const h: KvOperation[] = [];
    for (let i = 0; i < 12; i++) h.push(unknown(put(i, 'k', `v${i}`, i, 0, 1)));
    const t0 = performance.now();
    const r = checkKvHistory([...h, get(99, 'k', 101, 102, { value: 'v7', version: 5 })]);
    expect(r.linearizable).toBe(true);
    // Four others, then v7 (the rest never took effect, or later).
    expect(r.keys.k!.order!.indexOf(7)).toBe(4);
    // Version 13 would need 13 puts: the search must exhaust every subset to say no.
    const no = checkKvHistory([...h, get(99, 'k', 101, 102, { value: 'v7', version: 13 })]);
    expect(no.linearizable).toBe(false);
    expect(performance.now() - t0).toBeLessThan(5_000);
  });
});

// ---- random histories of an atomic register ------------------------------------------------

interface GenOp {
  client: number;
  key: number;
  kind: 'put' | 'cas' | 'get' | 'delete' | 'cdelete';
  expect: number;
  start: number;
  /** Where in [start, end] the operation takes effect, as a fraction. */
  at: number;
  len: number;
  crash: boolean;
  applied: boolean;
}

const genOpArb = fc.record({
  client: fc.nat(4),
  key: fc.nat(2),
  kind: fc.constantFrom<GenOp['kind']>('put', 'put', 'cas', 'get', 'get', 'get', 'delete', 'cdelete'),
  expect: fc.nat(3),
  start: fc.integer({ min: 0, max: 1000 }),
  at: fc.double({ min: 0, max: 1, noNaN: true }),
  len: fc.integer({ min: 0, max: 80 }),
  crash: fc.nat(9).map((x) => x === 0),
  applied: fc.boolean(),
});

/**
 * Execute the operations atomically at their linearization points against the model and
 * record what each returned: a linearizable history by construction.
 */
function atomicHistory(gen: GenOp[]): KvOperation[] {
  const withPoints = gen.map((g, i) => ({ g, i, point: g.start + g.at * g.len, value: `c${g.client}-${i}` }));
  const byPoint = [...withPoints].sort((a, b) => a.point - b.point || a.i - b.i);
  const states = new Map<string, KvState>();
  const out: KvOperation[] = [];
  for (const { g, point, value } of byPoint) {
    const key = `k${g.key}`;
    const input: KvInput =
      g.kind === 'get'
        ? { op: 'get', key }
        : g.kind === 'put' || g.kind === 'cas'
          ? { op: 'put', key, value, ifVersion: g.kind === 'cas' ? g.expect : null }
          : { op: 'delete', key, ifVersion: g.kind === 'cdelete' ? g.expect : null };
    const s = states.get(key) ?? null;
    const output = realOutput(s, input);
    const effective = !g.crash || g.applied;
    if (effective) states.set(key, kvStep(s, input, output)!);
    // A crashed op's effect (if any) happened at its point; the caller never learned of it.
    out.push({ client: g.client, input, call: g.start, ret: g.crash ? Infinity : g.start + g.len, output: g.crash ? null : output });
    void point;
  }
  return out;
}

function realOutput(s: KvState, input: KvInput): KvOutput {
  const v = s?.version ?? 0;
  switch (input.op) {
    case 'get':
      return s ? { found: true, value: s.value, version: s.version } : { found: false };
    case 'put':
      return input.ifVersion != null && input.ifVersion !== v ? { ok: false } : { ok: true, version: v + 1 };
    case 'delete':
      if (!s) return { ok: true, deleted: false };
      return input.ifVersion != null && input.ifVersion !== s.version ? { ok: false } : { ok: true, deleted: true };
  }
}

describe('linearizability checker: random histories', () => {
  it('accepts every history of an atomic register (including crashed operations)', () => {
    fc.assert(
      fc.property(fc.array(genOpArb, { minLength: 1, maxLength: 60, size: 'large' }), (gen) => {
        const h = atomicHistory(gen);
        const r = checkKvHistory(h);
        if (!r.linearizable) expect.fail(r.explanation);
      }),
      { numRuns: 300 },
    );
  });

  it('rejects an atomic history once a completed read is made to return a stale or invented value', () => {
    let rejected = 0;
    let tried = 0;
    fc.assert(
      fc.property(fc.array(genOpArb, { minLength: 5, maxLength: 40, size: 'large' }), fc.nat(), (gen, pick) => {
        // Strictly sequential (no overlap, no crashes): then every read has exactly one answer.
        const seq = gen.map((g, i) => ({ ...g, start: i * 100, len: 10, crash: false }));
        const h = atomicHistory(seq);
        const reads = h.map((o, i) => ({ o, i })).filter(({ o }) => o.input.op === 'get');
        if (reads.length === 0) return;
        const { o, i } = reads[pick % reads.length]!;
        const cur = o.output as Extract<KvOutput, { found: boolean }>;
        const forged: KvOutput = cur.found ? { found: true, value: cur.value, version: cur.version + 1 } : { found: true, value: 'never-written', version: 1 };
        const bad = h.map((x, j) => (j === i ? { ...x, output: forged } : x));
        tried++;
        const r = checkKvHistory(bad);
        if (!r.linearizable) rejected++;
        expect(r.linearizable).toBe(false);
      }),
      { numRuns: 200 },
    );
    expect(tried).toBeGreaterThan(100);
    expect(rejected).toBe(tried);
  });
  it('rejects an atomic history once a completed read is made to return an older state of its key', () => {
    let tried = 0;
    fc.assert(
      fc.property(fc.array(genOpArb, { minLength: 5, maxLength: 40, size: 'large' }), fc.nat(), (gen, pick) => {
        const seq = gen.map((g, i) => ({ ...g, start: i * 100, len: 10, crash: false }));
        const h = atomicHistory(seq);
        // Every state each key held before each read (values are unique per put, so an older
        // state never equals the current one unless nothing changed).
        const seen = new Map<string, KvState[]>();
        const candidates: Array<{ i: number; older: KvState }> = [];
        let states = new Map<string, KvState>();
        for (const [i, o] of h.entries()) {
          const key = o.input.key;
          const cur = states.get(key) ?? null;
          const past = seen.get(key) ?? [null];
          if (o.input.op === 'get') {
            for (const older of past) if (JSON.stringify(older) !== JSON.stringify(cur)) candidates.push({ i, older });
          }
          const next = kvStep(cur, o.input, o.output)!;
          states = new Map(states).set(key, next);
          if (!past.some((p) => JSON.stringify(p) === JSON.stringify(next))) seen.set(key, [...past, next]);
          else seen.set(key, past);
        }
        if (candidates.length === 0) return;
        const { i, older } = candidates[pick % candidates.length]!;
        const forged: KvOutput = older ? { found: true, value: older.value, version: older.version } : { found: false };
        const bad = h.map((x, j) => (j === i ? { ...x, output: forged } : x));
        tried++;
        expect(checkKvHistory(bad).linearizable).toBe(false);
      }),
      { numRuns: 200 },
    );
    expect(tried).toBeGreaterThan(50);
  });
});
