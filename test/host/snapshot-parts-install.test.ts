// Issue 12: a state too large for one string is snapshotted as bounded parts and installed on
// a lagging member part by part. Here, in the embedded swarm's in-process network, with parts
// forced small (CONCORD_SNAPSHOT_PART_CHARS) so ~1.5 MB of state spans dozens of parts: the
// first transfer has one byte corrupted (the receiver's hash check refuses it, nothing is
// restored, the leader sends it again), the second loses frames mid-transfer (it resumes),
// and the member ends with the leader's state. The tasks (20,300, some assigned and completed)
// travel as the task table's block rows (format v5), not as a JSON record each.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalCluster } from '../../src/host/local-cluster.js';
import { CoordinationMachine } from '../../src/machine/coordination-machine.js';
import type { SnapshotData } from '../../src/raft/types.js';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import { SqliteStorage } from '../../src/storage/sqlite-storage.js';
import type { PersistBatch } from '../../src/storage/types.js';
import { decodePart } from '../../src/transport/snapshot-stream.js';
import { Prng } from '../../src/util/prng.js';
import { VirtualClock } from '../../src/util/virtual-clock.js';
import { createOp, putOp } from '../machine/machine-util.js';

const PART_CHARS = 48 << 10;
afterEach(() => {
  delete process.env.CONCORD_SNAPSHOT_PART_CHARS;
});

describe('multi-part snapshot install (embedded swarm)', () => {
  it('refuses a corrupted part, resumes after lost frames, and installs the state whole', async () => {
    process.env.CONCORD_SNAPSHOT_PART_CHARS = String(PART_CHARS);
    const clock = new VirtualClock();
    const restores = new Map<string, SnapshotData[]>();
    const cluster = new LocalCluster({
      ids: ['n1', 'n2', 'n3'],
      clock,
      prng: new Prng(11),
      storageFor: () => new MemoryStorage(),
      machineFor: (id) => {
        const m = new CoordinationMachine();
        const restore = m.restore.bind(m);
        m.restore = (d: SnapshotData) => {
          if (!restores.has(id)) restores.set(id, []);
          restores.get(id)!.push(d);
          restore(d);
        };
        return m;
      },
      compactionThreshold: 20,
      snapshotChunkChars: 16 << 10,
    });
    cluster.startAll();
    clock.runFor(1000);
    const leader = cluster.leader()!;
    expect(leader).toBeDefined();
    const behind = cluster.ids.find((id) => id !== leader.id)!;
    cluster.crash(behind);

    const big = (i: number): string => `${i}:`.padEnd(20_000, 'abcdefghij');
    const cmd = (op: unknown, now: number): string => JSON.stringify({ op, now });
    const writes: Array<Promise<unknown>> = [];
    for (let i = 0; i < 70; i++) writes.push(leader.propose(cmd(putOp(`big/${i}`, big(i)), 2000 + i)));
    writes.push(leader.propose(cmd(createOp(300), 3000)));
    for (let i = 0; i < 30; i++) writes.push(leader.propose(cmd(putOp(`small/${i}`, { i }), 3100 + i)));
    writes.push(leader.propose(cmd(createOp(20_000), 3200)));
    clock.runFor(3000);
    await Promise.all(writes);
    const lm = cluster.machine(leader.id) as CoordinationMachine;
    const bigOrch = [...lm.tasks.orchs.values()].find((o) => o.count === 20_000)!.id;
    const seqs = Array.from({ length: 5000 }, (_, k) => 1 + k * 3);
    const work = [
      leader.propose(cmd({ t: 'task.assign', term: 1, lease_ms: 60_000, groups: [{ orch: bigOrch, agent: 'w1', seqs, from: seqs.map(() => 0) }] }, 3300)),
      leader.propose(cmd({ t: 'task.complete', items: [], groups: [{ orch: bigOrch, agent: 'w1', seqs: seqs.slice(0, 3000), epochs: seqs.slice(0, 3000).map(() => 1), ok: true }] }, 3400)),
    ];
    for (let i = 0; i < 30; i++) work.push(leader.propose(cmd(putOp(`later/${i}`, i), 3500 + i)));
    clock.runFor(3000);
    await Promise.all(work);
    expect(leader.core.log.snapshotIndex).toBeGreaterThan(50);

    // Watch (and spoil) the parts on their way to the restarted member.
    let transfers = 0;
    let frames = 0;
    let corrupted = 0;
    let dropped = 0;
    let maxEnds = 0;
    cluster.network.partFault = (from, to, part) => {
      if (to !== behind) return part;
      const { h } = decodePart(part);
      maxEnds = Math.max(maxEnds, h.ends?.length ?? 1);
      if (h.offset === 0) transfers++;
      frames++;
      if (transfers === 1 && h.offset > 0 && corrupted === 0) {
        const bad = Buffer.from(part);
        bad[bad.length - 1] = bad[bad.length - 1]! ^ 1; // last data byte of this frame
        corrupted++;
        return bad;
      }
      if (transfers === 2 && h.offset > h.total / 2 && dropped < 5) {
        dropped++;
        return null;
      }
      return part;
    };
    cluster.start(behind);
    clock.runFor(20_000);

    expect(corrupted).toBe(1);
    expect(dropped).toBe(5);
    // Two transfers: the corrupted one, then one that resumed past its lost frames.
    expect(transfers).toBe(2);
    // The state travelled as many parts of at most about PART_CHARS each.
    expect(maxEnds).toBeGreaterThan(20);
    // Only whole, verified snapshots were restored: the corrupted transfer was not.
    const got = restores.get(behind) ?? [];
    expect(got.length).toBe(1);
    const parts = got[0] as readonly string[];
    expect(Array.isArray(parts)).toBe(true);
    // Each part at most PART_CHARS, or one row alone (a block row of 16,384 tasks is larger).
    for (const p of parts) if (p.length > PART_CHARS) expect((JSON.parse(p) as { rows: unknown[] }).rows).toHaveLength(1);
    expect(parts.filter((p) => p.length > PART_CHARS).length).toBeLessThanOrEqual(2);
    // Format v5: the tasks as block rows (two blocks of the big orchestration, ~24 characters
    // a task as base64 bytes, where v4 spent ~380 on a JSON record each).
    expect(JSON.parse(parts[0]!).v).toBe(5);
    const taskParts = parts.filter((p) => p.startsWith('{"v":5,"k":"taskrows"'));
    expect(taskParts.length).toBeGreaterThan(0);
    expect(taskParts.join('').length).toBeLessThan(20_300 * 30);
    expect(parts.join('')).not.toContain(`"${bigOrch}-1"`);
    expect(cluster.host(behind).metrics().snapshotsInstalled).toBe(1);

    const a = cluster.machine(leader.id) as CoordinationMachine;
    const b = cluster.machine(behind) as CoordinationMachine;
    expect(b.appliedIndex).toBe(a.appliedIndex);
    expect(b.memory.size).toBe(130);
    expect(b.tasks.tasks.size).toBe(20_300);
    expect(b.tasks.tasks.get(`${bigOrch}-4`)).toMatchObject({ status: 'completed', completed_by: 'w1' });
    expect(b.snapshot()).toBe(a.snapshot());
    // And it keeps up with writes after the install.
    const after = leader.propose(cmd(putOp('after', 1), 9000));
    clock.runFor(2000);
    await after;
    expect(b.memory.get('default', 'after', 1e12)?.value).toBe(1);
    cluster.close();
  });

  it('on SQLite, stages parts as they arrive and the install only commits them (embedded)', async () => {
    process.env.CONCORD_SNAPSHOT_PART_CHARS = String(PART_CHARS);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-stage-install-'));
    const clock = new VirtualClock();
    const files = new Map<string, SqliteStorage>();
    // At the install's save: staged rows, and bytes the save itself wrote.
    const installs: Array<{ stagedRows: number; bytes: number }> = [];
    const cluster = new LocalCluster({
      ids: ['n1', 'n2', 'n3'],
      clock,
      prng: new Prng(12),
      storageFor: (id) => {
        // Pieces far smaller than a part: the last part takes steps after the whole arrived.
        const s = SqliteStorage.open(path.join(dir, `${id}.db`), { durability: 'off', stagePieceChars: 4096 });
        files.set(id, s);
        const save = s.save.bind(s);
        s.save = (b: PersistBatch) => {
          if (!b.snapshot) return save(b);
          const stagedRows = s.stagedRows();
          const before = s.stats().bytesWritten;
          save(b);
          installs.push({ stagedRows, bytes: s.stats().bytesWritten - before });
        };
        return s;
      },
      machineFor: () => new CoordinationMachine(),
      compactionThreshold: 20,
      snapshotChunkChars: 16 << 10,
    });
    try {
      cluster.startAll();
      clock.runFor(1000);
      const leader = cluster.leader()!;
      const behind = cluster.ids.find((id) => id !== leader.id)!;
      cluster.crash(behind);
      const big = (i: number): string => `${i}:`.padEnd(20_000, 'abcdefghij');
      const cmd = (op: unknown, now: number): string => JSON.stringify({ op, now });
      const writes: Array<Promise<unknown>> = [];
      for (let i = 0; i < 70; i++) writes.push(leader.propose(cmd(putOp(`big/${i}`, big(i)), 2000 + i)));
      for (let i = 0; i < 30; i++) writes.push(leader.propose(cmd(putOp(`small/${i}`, { i }), 3100 + i)));
      clock.runFor(3000);
      await Promise.all(writes);
      expect(leader.core.log.snapshotIndex).toBeGreaterThan(50);

      // The first transfer is corrupted (refused at its hash check: its staged rows must go).
      let transfers = 0;
      let corrupted = 0;
      cluster.network.partFault = (_from, to, part) => {
        if (to !== behind) return part;
        const { h } = decodePart(part);
        if (h.offset === 0) transfers++;
        if (transfers === 1 && h.offset > h.total / 2 && corrupted === 0) {
          const bad = Buffer.from(part);
          bad[bad.length - 1] = bad[bad.length - 1]! ^ 1;
          corrupted++;
          return bad;
        }
        return part;
      };
      const installsBefore = installs.length;
      cluster.start(behind);
      clock.runFor(20_000);
      expect(corrupted).toBe(1);
      expect(transfers).toBe(2);
      const mine = installs.slice(installsBefore);
      expect(mine).toHaveLength(1);
      // The parts (about 1.4 MB) were staged before the save, which wrote metadata only: it
      // waited for the last part's pieces.
      expect(mine[0]!.stagedRows).toBeGreaterThan(300);
      expect(mine[0]!.bytes).toBeLessThan(10_000);
      expect(files.get(behind)!.stagedRows()).toBe(0);
      const a = cluster.machine(leader.id) as CoordinationMachine;
      const b = cluster.machine(behind) as CoordinationMachine;
      expect(b.snapshot()).toBe(a.snapshot());
      // What the file holds restores the same state.
      cluster.crash(behind);
      cluster.start(behind);
      clock.runFor(2000);
      expect(cluster.host(behind).metrics().snapshotsInstalled).toBe(0);
      expect((cluster.machine(behind) as CoordinationMachine).snapshot()).toBe(a.snapshot());
      cluster.close();
    } finally {
      for (const f of files.values()) f.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
