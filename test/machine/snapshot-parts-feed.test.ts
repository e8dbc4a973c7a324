// Issue 12 item 5 (peak RSS of a snapshot install): a v5 task part is loaded into the new task
// table as it arrives, one row at a time (partRowTexts splits the part, TaskRowsFeed loads each
// row), so the receiver never holds the part's parsed rows (31 MiB for a million tasks) until
// the last part is in. The split must cut exactly where JSON.parse of the whole part would,
// refuse exactly what it refuses, and parts that arrive out of order or not as PartPacker
// writes them still install (parsed whole at the check).

import { describe, expect, it, vi } from 'vitest';
import { CoordinationMachine } from '../../src/machine/coordination-machine.js';
import { parseRowText, partHead, partRowTexts } from '../../src/machine/snapshot-parts.js';
import { Prng } from '../../src/util/prng.js';
import { createOp, entry, putOp } from './machine-util.js';

/** Two orchestrations in blocks of 64 tasks, some assigned and completed, with results; memory rows. */
function state(): CoordinationMachine {
  const m = new CoordinationMachine({ tasksPerBlock: 64 });
  let i = 0;
  const op = (o: Parameters<typeof createOp>[1] | object) => m.apply(entry(++i, { op: o as never, now: 1_000 + i * 10 }));
  const seqs = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, k) => from + k);
  for (let k = 0; k < 5; k++) op(putOp(`k${k}`, { v: `a,b]"c\\d}{[é😀` }));
  op(createOp(2000));
  op(createOp(300, { priority: 'high' }));
  op({ t: 'task.assign', term: 1, lease_ms: 1000, groups: [{ orch: 'orch-6', agent: 'a,"]1', seqs: seqs(1, 900), from: seqs(1, 900).map(() => 0) }] });
  op({ t: 'task.complete', items: [], groups: [{ orch: 'orch-6', agent: 'a,"]1', seqs: seqs(1, 600), epochs: seqs(1, 600).map(() => 1), ok: true, results: seqs(1, 600).map((q) => (q % 9 === 0 ? { q, s: '],[{"x"' } : null)) }] });
  return m;
}

const taskHead = partHead(5, 'taskrows');

/** JSON.parse of the whole part, or undefined where it throws. */
function wholeRows(text: string): unknown[] | undefined {
  try {
    return (JSON.parse(text) as { rows: unknown[] }).rows;
  } catch {
    return undefined;
  }
}

/** The rows partRowTexts finds, each parsed, or undefined where the split or a row refuses. */
function splitRows(text: string): unknown[] | undefined {
  const out: unknown[] = [];
  for (const t of partRowTexts(text, taskHead)) {
    if (t === null) return undefined;
    try {
      out.push(parseRowText(t));
    } catch {
      return undefined;
    }
  }
  return out;
}

describe('v5 task parts loaded as they arrive', () => {
  it('the parts PartPacker writes are the text JSON.stringify writes of their rows', () => {
    const parts = state().snapshotData(4096) as string[];
    expect(parts.filter((p) => p.startsWith(taskHead)).length).toBeGreaterThan(3);
    for (const p of parts) expect(JSON.stringify(JSON.parse(p))).toBe(p);
  });

  it('a task part is parsed a row at a time, never whole, and the state restored is the sender\'s', () => {
    const m = state();
    const parts = m.snapshotData(4096) as string[];
    const taskParts = parts.filter((p) => p.startsWith(taskHead));
    // The blocks' column bytes (base64): taken as slices of the part, never parsed into copies.
    const bytes = taskParts.flatMap((p) => (JSON.parse(p) as { rows: unknown[][] }).rows.map((r) => r[2]).filter((x): x is string => typeof x === 'string'));
    expect(bytes.length).toBeGreaterThan(20);
    const parsedBytes: string[] = [];
    const fresh = new CoordinationMachine();
    const arriving: string[] = [];
    const parse = vi.spyOn(JSON, 'parse');
    const seen: number[] = [];
    try {
      for (const [i, p] of parts.entries()) {
        arriving.push(p);
        parse.mockClear();
        fresh.prepareSnapshotPart(arriving, i);
        if (p.startsWith(taskHead)) {
          for (const [arg] of parse.mock.calls) {
            seen.push((arg as string).length / p.length);
            for (const b of bytes) if ((arg as string).includes(b)) parsedBytes.push(b);
          }
        }
      }
      parse.mockClear();
      expect(fresh.checkSnapshot(arriving)).toBeNull();
      // The check of the whole parses nothing: each part was taken as it arrived.
      expect(parse).not.toHaveBeenCalled();
    } finally {
      parse.mockRestore();
    }
    // Rows (several per part), none of them the part itself.
    expect(seen.length).toBeGreaterThan(taskParts.length * 2);
    expect(Math.max(...seen)).toBeLessThan(1);
    expect(parsedBytes).toEqual([]);
    fresh.restore(arriving);
    expect(fresh.snapshot()).toBe(m.snapshot());
    expect(fresh.stateHash()).toBe(m.stateHash());
  });

  it('parts arriving out of order, or written otherwise (spaces), are parsed again at the check and restore the same state', () => {
    const m = state();
    const parts = m.snapshotData(4096) as string[];
    const t = parts.findIndex((p) => p.startsWith(taskHead));
    expect(parts[t + 1]!.startsWith(taskHead)).toBe(true);
    // Out of order: the second task part before the first.
    const swapped = new CoordinationMachine();
    const a: string[] = [...parts];
    const order = [0, t + 1, t, ...parts.keys()].filter((x, k, all) => all.indexOf(x) === k);
    for (const i of order) swapped.prepareSnapshotPart(a, i);
    expect(swapped.checkSnapshot(a)).toBeNull();
    swapped.restore(a);
    expect(swapped.snapshot()).toBe(m.snapshot());
    // The second task part with spaces in it (valid JSON, not PartPacker's head): parsed whole.
    const spaced = [...parts];
    spaced[t + 1] = JSON.stringify(JSON.parse(parts[t + 1]!), null, 1);
    const r = new CoordinationMachine();
    spaced.forEach((_, i) => r.prepareSnapshotPart(spaced, i));
    expect(r.checkSnapshot(spaced)).toBeNull();
    r.restore(spaced);
    expect(r.snapshot()).toBe(m.snapshot());
    // A part missing on arrival (never prepared) is parsed at the check.
    const gap = new CoordinationMachine();
    parts.forEach((_, i) => i !== t + 1 && gap.prepareSnapshotPart(parts, i));
    expect(gap.checkSnapshot(parts)).toBeNull();
    gap.restore(parts);
    expect(gap.snapshot()).toBe(m.snapshot());
  });

  it('a row\'s base64 column bytes come back as JSON.parse gives them, and rows that are not JSON are refused alike', () => {
    const b64 = Buffer.from(Array.from({ length: 300 }, (_, k) => (k * 37) & 255)).toString('base64');
    const rows = [
      `[65,[["b",[1,0,0]],0],"${b64}"]`,
      `[65,"${b64}"]`,
      `["${b64}"]`,
      `[65,"x,"${b64}"]`,
      `[65,"x\\",\"${b64}"]`,
      `[65,"x\\","${b64}"]`,
      `[65,{"a":"${b64}"}]`,
      `[65,[0],"${b64}" ]`,
      ` [65,[0],"${b64}"]`,
      `[65,[0] , "${b64}"]`,
      `[65,[0],,"${b64}"]`,
      `[65,[0,"${b64}"]`,
      `65,[0],"${b64}"]`,
      `[65,[0],"${b64}="]`,
      `[65,[0],"${b64.slice(0, -1)}!"]`,
      `[65,[0],"\u0041${b64}"]`,
    ];
    for (const r of rows) {
      let want: unknown;
      try {
        want = JSON.parse(r);
      } catch {
        want = 'refused';
      }
      let got: unknown;
      try {
        got = parseRowText(r);
      } catch {
        got = 'refused';
      }
      expect(got, r.slice(0, 40)).toEqual(want);
    }
  });

  it('splits a part exactly where JSON.parse of the whole would, and refuses exactly what it refuses', () => {
    const parts = state().snapshotData(4096) as string[];
    const samples = [
      ...parts.filter((p) => p.startsWith(taskHead)),
      `${taskHead}]}`,
      `${taskHead} ] } `,
      `${taskHead}[1,"a,]\\"[{"],{"k":[[]]},"\\\\",-1.5e3, true ,null]}`,
      `${taskHead}[1,2],]}`,
      `${taskHead}[1,2]`,
      `${taskHead}[1,"abc]}`,
      `${taskHead}[1,2]]}x`,
      `${taskHead},]}`,
      `${taskHead}[1,2]]}}`,
    ];
    for (const s of samples) expect(splitRows(s), s.slice(0, 120)).toEqual(wholeRows(s));
    // Every one-character change of a real part past its head (one of the JSON-significant
    // characters, or one taken from elsewhere in the part): the same verdict and rows.
    const prng = new Prng(7);
    const text = parts.filter((p) => p.startsWith(taskHead)).sort((x, y) => x.length - y.length)[0]!;
    const chars = ['"', '\\', ',', '[', ']', '{', '}', ' ', '0', 'a'];
    let refused = 0;
    for (let n = 0; n < 3000; n++) {
      const at = taskHead.length + prng.int(0, text.length - taskHead.length);
      const c = n % 2 === 0 ? chars[prng.int(0, chars.length)]! : text[prng.int(0, text.length)]!;
      const bad = text.slice(0, at) + c + text.slice(at + (n % 3 === 0 ? 0 : 1));
      const whole = wholeRows(bad);
      if (whole === undefined) refused++;
      expect(splitRows(bad), `${at}: ${JSON.stringify(c)}`).toEqual(whole);
    }
    expect(refused).toBeGreaterThan(100);
  });
});
