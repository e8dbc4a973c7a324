// Backups in parts (issue 12): a state past V8's string limit cannot be one string, so a backup
// file holds CoordinationMachine.snapshotData()'s parts, each with its own SHA-256 in the
// header, written and read part by part. Small parts are forced here
// (CONCORD_SNAPSHOT_PART_CHARS, CONCORD_SNAPSHOT_SLICE_CHARS), so a few hundred KB of state
// spans dozens of parts and hundreds of copy steps. A backup round-trips exactly into a fresh
// data directory; a damaged, truncated or re-counted file is refused naming the file and the
// check, and nothing is restored; a file written by the format 1 writer still restores.

import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { CoordinationMachine } from '../../src/machine/coordination-machine.js';
import { saveSnapshotFile } from '../../src/service/backup.js';
import { Coordinator } from '../../src/service/coordinator.js';
import { memoryRetrieve, memoryStore } from '../../src/service/memory.js';
import { restoreSnapshot } from '../../src/service/restore.js';
import { readSnapshotFile, stateSha256, utf8Chunks, type SnapshotHeader } from '../../src/service/snapshot-file.js';
import { orchestrate } from '../../src/service/tasks.js';
import type { Swarm } from '../../src/swarm/swarm.js';
import { swarmWithAgents, testResources } from './service-util.js';

const res = testResources();
const PART_CHARS = 4096;
const SLICE_CHARS = 1024;
const FIXTURE = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'format1.snapshot');

const saved: Record<string, string | undefined> = {};
beforeAll(() => {
  for (const k of ['CONCORD_SNAPSHOT_PART_CHARS', 'CONCORD_SNAPSHOT_SLICE_CHARS']) saved[k] = process.env[k];
  process.env.CONCORD_SNAPSHOT_PART_CHARS = String(PART_CHARS);
  process.env.CONCORD_SNAPSHOT_SLICE_CHARS = String(SLICE_CHARS);
});
afterAll(() => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

/** The state hash a backup records, computed from a live replica the same way. */
function liveHash(m: CoordinationMachine): string {
  return stateSha256(m.snapshotData(PART_CHARS));
}

async function filled(tag: string): Promise<{ dir: string; swarm: Swarm }> {
  const dir = res.dir(tag);
  const { coordinator, swarm } = await swarmWithAgents(dir, { name: 'src', agents: 3 });
  res.keep(coordinator);
  for (let i = 0; i < 60; i += 6) {
    await Promise.all([0, 1, 2, 3, 4, 5].map((j) => memoryStore(swarm, { key: `k/${i + j}`, value: { i: i + j, pad: 'é'.repeat(2000 + i + j) } })));
  }
  await orchestrate(swarm, { task: 'work', count: 200 });
  return { dir, swarm };
}

function listTree(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[]).sort();
}

/** The file's lines: format, header, parts..., hash line (parts hold no raw newline). */
function lines(bytes: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < bytes.length; ) {
    const nl = bytes.indexOf(0x0a, at);
    out.push(bytes.subarray(at, nl + 1));
    at = nl + 1;
  }
  return out;
}

/** A file put together again from `header` and `parts`, every hash recomputed (as a foreign writer might). */
function rebuilt(header: SnapshotHeader, parts: Buffer[]): Buffer {
  const body = Buffer.concat([Buffer.from(`CONCORD-SNAPSHOT 2\n${JSON.stringify(header)}\n`), ...parts.map((p) => Buffer.concat([p, Buffer.from('\n')]))]);
  return Buffer.concat([body, Buffer.from(`sha256 ${createHash('sha256').update(body).digest('hex')}\n`)]);
}

describe('backups in parts', () => {
  it('a backup of many parts round-trips exactly into a fresh data directory, copied over many event-loop turns', async () => {
    const { dir, swarm } = await filled('parts-src');
    const leader = swarm.localMachine()!.machine;
    const file = path.join(dir, 'parts.snapshot');
    // Which event-loop turn each step of the leader's copy runs in: a step per turn, not all
    // of them in the turn that answered the ReadIndex round.
    let turn = 0;
    let ticking = true;
    const tick = (): void => {
      turn++;
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);
    const serving = swarm.machines.get(swarm.cluster.leader()!.id)!;
    const steps = serving.snapshotSteps.bind(serving);
    const stepTurns: number[] = [];
    serving.snapshotSteps = function* (maxPartChars?: number, sliceChars?: number) {
      const g = steps(maxPartChars, sliceChars);
      for (;;) {
        stepTurns.push(turn);
        const r = g.next();
        if (r.done) return r.value;
        yield;
      }
    };
    const s = await saveSnapshotFile(swarm, file, { overwrite: false });
    ticking = false;

    const snap = readSnapshotFile(file);
    const h = snap.header;
    expect(h.format_version).toBe(2);
    expect(h.part_chars).toBe(PART_CHARS);
    expect(h.parts!.length).toBeGreaterThan(20);
    expect(s.parts).toBe(h.parts!.length);
    expect(Array.isArray(snap.state) && snap.state.length).toBe(h.parts!.length);
    for (const p of snap.state as string[]) expect(p.length).toBeLessThanOrEqual(PART_CHARS + 2100); // one row may pass the bound alone
    expect(s.bytes).toBe(fs.statSync(file).size);
    expect(s.sha256).toBe(snap.sha256);
    expect(h.state_sha256).toBe(s.state_sha256);
    // About one step per SLICE_CHARS of state (a row is never cut: a task block row larger than
    // a slice is one step), each in a turn of its own.
    const chars = (snap.state as string[]).reduce((n, p) => n + p.length, 0);
    expect(stepTurns.length).toBeGreaterThan(chars / SLICE_CHARS / 3);
    expect(new Set(stepTurns).size).toBe(stepTurns.length);
    // The parts are the leader's state at that index: loaded into a machine, cut again alike.
    const m = new CoordinationMachine();
    m.restore(snap.state);
    expect(m.appliedIndex).toBe(h.index);
    expect(liveHash(m)).toBe(h.state_sha256);
    expect(m.memory.size).toBe(leader.memory.size);

    const dst = res.dir('parts-dst');
    const r = restoreSnapshot(file, { dataDir: dst, swarm: 'copy' });
    expect(r.state_sha256).toBe(h.state_sha256);
    const b = res.keep(new Coordinator({ dataDir: dst, durability: 'off' }));
    const copy = b.swarm('copy');
    for (const id of copy.activeMembers()) {
      const cm = copy.machines.get(id)!;
      expect(cm.appliedIndex, id).toBe(h.index);
      expect(liveHash(cm), id).toBe(h.state_sha256);
    }
    await copy.waitForLeader(10_000);
    expect((await memoryRetrieve(copy, { key: 'k/59' })).value).toEqual({ i: 59, pad: 'é'.repeat(2059) });
  }, 60_000);

  it('under a stream of writes, the stepped copy holds one index: no write lands inside it, and writes resume after', async () => {
    const { dir, swarm } = await filled('parts-load');
    const acked: number[] = [];
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing; i++) {
        await memoryStore(swarm, { key: `w/${i}`, value: i });
        acked.push(i);
      }
    })();
    while (acked.length < 5) await new Promise((r) => setTimeout(r, 5));
    const before = acked.length;
    const file = path.join(dir, 'load.snapshot');
    const s = await saveSnapshotFile(swarm, file, { overwrite: false });
    const atSave = acked.length;
    while (acked.length < atSave + 5) await new Promise((r) => setTimeout(r, 5));
    writing = false;
    await writer;
    // The meta part is written last, with the index the machine is at then: equal to the
    // header's only when nothing applied during the copy (readSnapshotFile checks it).
    const snap = readSnapshotFile(file);
    expect(snap.header.parts!.length).toBeGreaterThan(20);
    const m = new CoordinationMachine();
    m.restore(snap.state);
    expect(m.appliedIndex).toBe(s.index);
    for (let i = 0; i < before; i++) expect(m.memory.get('default', `w/${i}`, m.clock)?.value, `w/${i}`).toBe(i);
    expect(liveHash(m)).toBe(s.state_sha256);
  }, 60_000);

  it('a part is encoded in chunks cut between characters: the chunks are its UTF-8 bytes exactly', () => {
    const part = `{"k":"${'a😀é'.repeat(50)}"}`;
    for (const n of [1, 2, 3, 4, 7, 64, 1 << 20]) {
      const chunks = [...utf8Chunks(part, n)];
      expect(Buffer.concat(chunks).equals(Buffer.from(part, 'utf8')), `chunks of ${n}`).toBe(true);
      if (n < part.length) expect(chunks.length, `chunks of ${n}`).toBeGreaterThan(1);
    }
  });

  it('a damaged, truncated or re-counted file is refused naming the file and the check; nothing is restored', async () => {
    const { dir, swarm } = await filled('parts-bad');
    const file = path.join(dir, 'good.snapshot');
    await saveSnapshotFile(swarm, file, { overwrite: false });
    const good = fs.readFileSync(file);
    const ls = lines(good);
    const header = JSON.parse(ls[1]!.toString('utf8')) as SnapshotHeader;
    const parts = ls.slice(2, -1).map((l) => l.subarray(0, l.length - 1));
    expect(parts.length).toBe(header.parts!.length);
    const dst = res.dir('parts-bad-dst');
    const variant = (name: string, bytes: Buffer): string => {
      const f = path.join(dir, name);
      fs.writeFileSync(f, bytes);
      return f;
    };
    const refusedBoth = (f: string, re: RegExp): void => {
      expect(() => readSnapshotFile(f), path.basename(f)).toThrow(re);
      expect(() => restoreSnapshot(f, { dataDir: dst }), path.basename(f)).toThrow(re);
      expect(listTree(path.join(dst, 'swarms'))).toEqual([]);
    };
    const esc = (f: string): string => f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

    // A flipped byte in a middle part: the whole-file hash.
    const at = good.length - ls.at(-1)!.length - ls.at(-2)!.length - Math.floor(ls[ls.length / 2 | 0]!.length / 2);
    const flipped = Buffer.from(good);
    flipped[at] = flipped[at]! ^ 0x01;
    let f = variant('flip.snapshot', flipped);
    refusedBoth(f, new RegExp(`^snapshot ${esc(f)} refused: hash mismatch: .*use another copy of the file, or take a new backup`));

    // The same part changed and the file's hash recomputed (a foreign writer): the part's own hash.
    const k = Math.floor(parts.length / 2);
    const changed = parts.map((p, i) => (i === k ? Buffer.from(p.toString('utf8').replace('"rows":[', '"rows":[ ')) : p));
    f = variant('part-hash.snapshot', rebuilt({ ...header, parts: header.parts!.map((p, i) => (i === k ? { ...p, bytes: p.bytes + 1 } : p)), state_bytes: header.state_bytes + 1 }, changed));
    refusedBoth(f, new RegExp(`^snapshot ${esc(f)} refused: part ${k} of ${parts.length}: hash mismatch`));

    // Truncated: inside the hash line, inside a part, inside the header, inside the format line.
    for (const len of [good.length - 1, good.length - 200, Math.floor(good.length / 2), ls[0]!.length + 30, 10]) {
      f = variant(`trunc-${len}.snapshot`, good.subarray(0, len));
      refusedBoth(f, new RegExp(`^snapshot ${esc(f)} refused: truncated.*nothing was restored or written from it; the copy is incomplete`));
    }
    // Cut inside a part: the message says how much is missing.
    f = variant('trunc-half.snapshot', good.subarray(0, Math.floor(good.length / 2)));
    expect(() => readSnapshotFile(f)).toThrow(new RegExp(`refused: truncated: the file holds ${Math.floor(good.length / 2)} of the ${good.length} bytes its header lists \\(${parts.length} parts\\)`));

    // One part dropped, every hash recomputed: the header's count and the state's disagree.
    const dropped = parts.filter((_, i) => i !== k);
    const droppedInfo = header.parts!.filter((_, i) => i !== k);
    const droppedBytes = droppedInfo.reduce((n, p) => n + p.bytes, 0);
    const dropHeader = { ...header, parts: droppedInfo, state_bytes: droppedBytes, state_sha256: createHash('sha256').update(Buffer.concat(dropped)).digest('hex') };
    f = variant('dropped.snapshot', rebuilt(dropHeader, dropped));
    refusedBoth(f, new RegExp(`^snapshot ${esc(f)} refused: the state cannot be restored: ${parts.length - 1} parts, the snapshot says ${parts.length}; nothing was restored or written from it; its hashes match, so it was written that way .*use the original file, or take a new backup`));

    // The header lists a part the file does not hold (hash line recomputed): the size is wrong.
    f = variant('missing-part.snapshot', rebuilt(header, dropped));
    refusedBoth(f, new RegExp(`^snapshot ${esc(f)} refused: the header lists ${parts.length} parts, ${header.state_bytes} state bytes in all, so the file should be \\d+ bytes; it is \\d+ bytes`));

    // The intact file still restores.
    expect(restoreSnapshot(file, { dataDir: dst }).index).toBe(header.index);
  }, 60_000);

  it('a file written by the format 1 writer (the state as one string) still restores with its state hash', async () => {
    const snap = readSnapshotFile(FIXTURE);
    expect(snap.header.format_version).toBe(1);
    expect(typeof snap.state).toBe('string');
    const dst = res.dir('format1-dst');
    const r = restoreSnapshot(FIXTURE, { dataDir: dst, swarm: 'again' });
    expect(r.state_sha256).toBe(snap.header.state_sha256);
    const c = res.keep(new Coordinator({ dataDir: dst, durability: 'off' }));
    const copy = c.swarm('again');
    for (const id of copy.activeMembers()) {
      const m = copy.machines.get(id)!;
      expect(m.appliedIndex, id).toBe(snap.header.index);
      expect(m.stateHash(), id).toBe(snap.header.state_sha256);
    }
    await copy.waitForLeader(10_000);
    expect((await memoryRetrieve(copy, { key: 'k/7' })).value).toEqual({ i: 7, s: 'v'.repeat(50) });
    // Its hash line is checked as before.
    const bad = Buffer.from(fs.readFileSync(FIXTURE));
    bad[bad.length - 300] = bad[bad.length - 300]! ^ 0x01;
    const f = path.join(dst, 'format1-flipped.snapshot');
    fs.writeFileSync(f, bad);
    expect(() => restoreSnapshot(f, { dataDir: res.dir('format1-bad-dst') })).toThrow(/refused: hash mismatch/);
  }, 60_000);
});
