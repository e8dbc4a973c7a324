// The members of one process apply the same large entries: the entry text is parsed once per
// process (parse-shared.ts) and each replica gets its own copy of the tree. Checked: one parse
// and one size count of the value for five replicas (before: five each), replicas hash equal, no object is shared between them
// (changing one replica's record leaves the others alone), and copies equal JSON.parse.

import { afterEach, describe, expect, it, vi } from 'vitest';
import { CoordinationMachine } from '../../src/machine/coordination-machine.js';
import { parseShared } from '../../src/machine/parse-shared.js';
import { MAX_VALUE_BYTES } from '../../src/machine/types.js';
import { entry, putOp } from './machine-util.js';

const MiB = 1 << 20;

afterEach(() => {
  vi.restoreAllMocks();
});

function bigParses(spy: { mock: { calls: unknown[][] } }): number {
  return spy.mock.calls.filter((c) => typeof c[0] === 'string' && (c[0] as string).length >= MiB / 2).length;
}

describe('large entries parsed once per process', () => {
  it('five replicas applying a 1 MiB write parse its text once and hash equal', () => {
    const machines = Array.from({ length: 5 }, () => new CoordinationMachine());
    const value = (i: number) => 'v'.repeat(MiB - 64 - i);
    const es = [1, 2, 3].map((i) => entry(i, { op: putOp(`big/${i}`, value(i)), now: 1_000 + i }));
    const spy = vi.spyOn(JSON, 'parse');
    // The size check counts the value's bytes.
    const counts = vi.spyOn(Buffer, 'byteLength');
    // Interleaved as members of one process apply: every replica applies entry i before i+1.
    for (const e of es) for (const m of machines) expect(m.apply(e)).toMatchObject({ ok: true });
    expect(bigParses(spy)).toBe(es.length); // before: es.length * machines.length
    expect(bigParses(counts)).toBe(es.length); // before: es.length * machines.length
    const hashes = machines.map((m) => m.stateHash());
    expect(new Set(hashes).size).toBe(1);
    expect(machines[4]!.memory.get('default', 'big/3', 2_000)?.value).toBe(value(3));
  });

  it('replicas never share an object of a large value: changing one leaves the others as applied', () => {
    const big = { items: Array.from({ length: 5_000 }, (_, i) => ({ i, name: `item-${i}`, tags: ['a', 'b'] })) };
    const e = entry(1, { op: putOp('obj', big), now: 1_000 });
    expect(e.data.length).toBeGreaterThan(64 << 10);
    const a = new CoordinationMachine();
    const b = new CoordinationMachine();
    a.apply(e);
    b.apply(e);
    const va = a.memory.get('default', 'obj', 2_000)!.value as typeof big;
    const vb = b.memory.get('default', 'obj', 2_000)!.value as typeof big;
    expect(va).not.toBe(vb);
    expect(va.items[7]).not.toBe(vb.items[7]);
    expect(va.items[7]!.tags).not.toBe(vb.items[7]!.tags);
    const hashB = b.stateHash();
    va.items[7]!.tags.push('changed');
    va.items.pop();
    expect(b.stateHash()).toBe(hashB);
    expect(vb).toEqual(big);
  });

  it('a copy equals JSON.parse: key order, numbers, nulls, nested arrays, an own "__proto__" key', () => {
    const text = `{"b":1,"a":[1,-0,2.5e300,null,true,{"x":"y"}],"__proto__":{"polluted":true},"2":"two","pad":"${'p'.repeat(70_000)}"}`;
    const first = parseShared(text) as Record<string, unknown>;
    const second = parseShared(text) as Record<string, unknown>;
    const want = JSON.parse(text) as Record<string, unknown>;
    for (const got of [first, second]) {
      expect(Object.keys(got)).toEqual(Object.keys(want));
      expect(got).toEqual(want);
      expect(Object.getPrototypeOf(got)).toBe(Object.prototype);
      expect(Object.getOwnPropertyDescriptor(got, '__proto__')?.value).toEqual({ polluted: true });
      expect(Object.is((got.a as unknown[])[1], -0)).toBe(true);
    }
    expect(first).not.toBe(second);
    expect(first.a).not.toBe(second.a);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('the size check of a large string stays exact when strings alternate', () => {
    const m = new CoordinationMachine();
    const plain = 'v'.repeat(MAX_VALUE_BYTES - 2); // JSON: exactly the limit
    // Same length, but every quote JSON-escapes to two bytes: over the limit.
    const quoted = '"'.repeat(MAX_VALUE_BYTES - 2);
    const put = (i: number, key: string, v: string) => m.apply(entry(i, { op: putOp(key, v), now: 1_000 + i }));
    expect(put(1, 'plain', plain)).toMatchObject({ ok: true });
    expect(put(2, 'quoted', quoted)).toMatchObject({ ok: false, code: 'invalid', message: `value is ${2 * (MAX_VALUE_BYTES - 2) + 2} bytes; accepted: <= ${MAX_VALUE_BYTES} bytes` });
    expect(put(3, 'plain2', plain)).toMatchObject({ ok: true });
    expect(put(4, 'over', `${plain}x`)).toMatchObject({ ok: false, message: `value is ${MAX_VALUE_BYTES + 1} bytes; accepted: <= ${MAX_VALUE_BYTES} bytes` });
  });
});
