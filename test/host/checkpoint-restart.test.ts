// A member restarted from its SQLite file rebuilds the machine from the checkpoint rows
// (incremental snapshot) and replays only the log after them; a follower that falls behind
// the others' checkpoints is sent a snapshot made on demand. Every replica ends with the same
// state hash. Task blocks are 64 tasks here, so the 2,000-task orchestration is 32 block rows
// and checkpoints between its assignments and completions write some of them.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalCluster } from '../../src/host/local-cluster.js';
import { CoordinationMachine } from '../../src/machine/coordination-machine.js';
import type { Command, Op } from '../../src/machine/types.js';
import { ordStride } from '../../src/machine/task-table.js';
import { SqliteStorage } from '../../src/storage/sqlite-storage.js';
import type { LogStorage } from '../../src/storage/types.js';
import { VirtualClock } from '../../src/util/virtual-clock.js';
import { Prng } from '../../src/util/prng.js';
import { createOp, putOp } from '../machine/machine-util.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** A 3-member cluster on SQLite files that the test can close and reopen (a process restart). */
function setup() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-ckpt-'));
  dirs.push(dir);
  const clock = new VirtualClock();
  const files = new Map<string, SqliteStorage>();
  const open = (id: string) => files.set(id, SqliteStorage.open(path.join(dir, `${id}.db`), { durability: 'off' }));
  const machines = new Map<string, CoordinationMachine>();
  const cluster = new LocalCluster({
    ids: ['n1', 'n2', 'n3'],
    clock,
    prng: new Prng(11),
    storageFor: (id) => {
      open(id);
      // Forwards to the file currently open for this member.
      return new Proxy({} as LogStorage, {
        get: (_, p) => {
          const t = files.get(id) as unknown as Record<string | symbol, unknown>;
          const v = t[p];
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
        },
      });
    },
    machineFor: (id) => {
      const m = new CoordinationMachine({ tasksPerBlock: 64 });
      machines.set(id, m);
      return m;
    },
    tickMs: 10,
    compactionThreshold: 100,
    requestTimeoutMs: 5000,
  });
  const run = async (ms: number) => {
    for (let t = 0; t < ms; t += 10) {
      clock.runFor(10);
      await new Promise<void>((r) => setImmediate(r));
    }
  };
  const proposeAll = async (ops: Op[]) => {
    for (let i = 0; i < ops.length; i += 50) {
      const leader = cluster.leader();
      expect(leader).toBeDefined();
      const ps = [];
      for (const op of ops.slice(i, i + 50)) {
        const cmd: Command = { op, now: clock.now() };
        ps.push(leader!.propose(JSON.stringify(cmd)));
      }
      const all = Promise.all(ps);
      let done = false;
      void all.then(() => (done = true));
      while (!done) await run(10);
      await all;
    }
  };
  const write = (from: number, n: number) => proposeAll(Array.from({ length: n }, (_, k) => putOp(`k${(from + k) % 700}`, { j: from + k, pad: 'x'.repeat((from + k) % 40) })));
  const reopen = (id: string) => {
    files.get(id)!.close();
    open(id);
  };
  const close = () => {
    cluster.close();
  };
  return { dir, clock, cluster, machines, run, write, proposeAll, reopen, close };
}

describe('restart from checkpoint rows', () => {
  it('a follower restarted after 1,500 writes rebuilds from its rows and replays only the tail; all hashes agree', async () => {
    const c = setup();
    c.cluster.startAll();
    await c.run(1000);
    await c.write(0, 500);
    // Tasks too: one orchestration in typed-array columns, one small; some assigned, some done.
    await c.proposeAll([createOp(2000), createOp(40, { priority: 'high' })]);
    await c.write(500, 400);
    const pick = (n: number) => c.machines.get(c.cluster.leader()!.id)!.tasks.pickPending(n, new Set());
    await c.proposeAll([{ t: 'task.assign', term: 1, lease_ms: 60_000, items: pick(300).map((t, i) => ({ task: t.id, agent: `a${i % 3}`, from_epoch: t.epoch })) }]);
    await c.write(900, 300);
    const held = [...c.machines.get(c.cluster.leader()!.id)!.tasks.tasks.values()].filter((t) => t.status === 'assigned').slice(0, 200);
    await c.proposeAll([{ t: 'task.complete', items: held.map((t, i) => ({ task: t.id, agent: t.assignee as string, epoch: t.epoch, ok: i % 5 !== 0, result: i % 2 ? { i } : null })) }]);
    await c.write(1200, 300);
    await c.run(200);
    const leader = c.cluster.leader()!;
    const follower = ['n1', 'n2', 'n3'].find((id) => id !== leader.id)!;
    const before = c.cluster.hosts.get(follower)!.metrics();
    expect(before.checkpointsTaken).toBeGreaterThan(5);
    // The follower's file holds the orchestrations as rows: metadata, then its task blocks.
    const db = new Database(path.join(c.dir, `${follower}.db`), { readonly: true });
    const ords = (db.prepare('SELECT ord FROM machine_orchs ORDER BY ord').all() as Array<{ ord: number }>).map((r) => r.ord);
    db.close();
    const stride = ordStride(6);
    const big = c.machines.get(leader.id)!.tasks.orchs.get(`orch-${ords[0]! / stride}`)!;
    expect(big.count).toBe(2000);
    const at = big.created_index * stride;
    expect(ords).toEqual([at, ...Array.from({ length: 32 }, (_, b) => at + 1 + b), at + stride, at + stride + 1]);
    // No JSON snapshot was serialized: nobody needed one.
    expect(before.snapshotsForFollowers).toBe(0);
    c.cluster.crash(follower);
    c.reopen(follower);
    const host = c.cluster.start(follower);
    const s = host.metrics().startState!;
    expect(s.from).toBe('checkpoint');
    // Checkpoints come every 100-150 entries on a follower: the replay is at most that tail.
    const applied = c.machines.get(leader.id)!.appliedIndex;
    expect(s.index).toBeGreaterThan(applied - 160);
    expect(s.logEntries).toBeLessThan(160);
    expect(s.logEntries).toBe(applied - s.index);
    await c.run(300);
    const hashes = new Set([...c.machines.values()].map((m) => m.stateHash()));
    expect([...c.machines.values()].map((m) => m.appliedIndex)).toEqual([applied, applied, applied]);
    expect(hashes.size).toBe(1);
    expect(c.machines.get(follower)!.memory.records.size).toBe(700);
    expect(c.machines.get(follower)!.tasks.tasks.size).toBe(2040);
    expect(c.machines.get(follower)!.tasks.assigned.size).toBe(100);
    const snaps = new Set([...c.machines.values()].map((m) => m.snapshot()));
    expect(snaps.size).toBe(1);
    c.close();
  });

  it('a follower a little behind (fewer entries than the threshold) catches up from the log, though the others checkpointed meanwhile', async () => {
    const c = setup();
    c.cluster.startAll();
    await c.run(1000);
    await c.write(0, 400);
    const leader = c.cluster.leader()!;
    const follower = ['n1', 'n2', 'n3'].find((id) => id !== leader.id)!;
    const other = ['n1', 'n2', 'n3'].find((id) => id !== leader.id && id !== follower)!;
    // The leader checkpoints every 200-300 entries (threshold 100, jitter, leader x2). Crash
    // the follower once the leader's log since its checkpoint holds 200: the leader's next
    // checkpoint then comes within 100 entries, which it keeps in memory.
    let n = 400;
    while (leader.metrics().storage.entryCount < 200) {
      await c.write(n, 5);
      n += 5;
    }
    c.cluster.crash(follower);
    const followerLast = c.machines.get(follower)!.appliedIndex;
    const taken = leader.metrics().checkpointsTaken;
    while (leader.metrics().checkpointsTaken === taken) {
      await c.write(n, 5);
      n += 5;
    }
    // The leader's stored state is past the follower's log: only its memory has the entries.
    const leaderStored = c.machines.get(leader.id)!.appliedIndex - leader.metrics().storage.entryCount;
    expect(leaderStored).toBeGreaterThan(followerLast);
    expect(leaderStored - followerLast).toBeLessThanOrEqual(100);
    expect(other).toBeDefined();
    c.reopen(follower);
    c.cluster.start(follower);
    await c.run(500);
    // The others kept the last 100 entries in memory: no snapshot was made or sent.
    expect(leader.metrics().snapshotsForFollowers).toBe(0);
    expect(c.cluster.hosts.get(follower)!.metrics().snapshotsInstalled).toBe(0);
    expect(c.machines.get(follower)!.stateHash()).toBe(c.machines.get(leader.id)!.stateHash());
    c.close();
  });

  it('a follower down while the others checkpoint past its log gets a snapshot made on demand, then checkpoints it as rows', async () => {
    const c = setup();
    c.cluster.startAll();
    await c.run(1000);
    await c.write(0, 200);
    const leader = c.cluster.leader()!;
    const follower = ['n1', 'n2', 'n3'].find((id) => id !== leader.id)!;
    c.cluster.crash(follower);
    await c.write(200, 1000);
    await c.run(100);
    c.reopen(follower);
    c.cluster.start(follower);
    await c.run(1000);
    expect(leader.metrics().snapshotsForFollowers).toBeGreaterThanOrEqual(1);
    const host = c.cluster.hosts.get(follower)!;
    expect(host.metrics().snapshotsInstalled).toBe(1);
    await c.write(1200, 400);
    await c.run(300);
    const applied = c.machines.get(leader.id)!.appliedIndex;
    expect(c.machines.get(follower)!.appliedIndex).toBe(applied);
    expect(new Set([...c.machines.values()].map((m) => m.stateHash())).size).toBe(1);
    // Restarted again: from rows written after the install (every table rewritten).
    c.cluster.crash(follower);
    c.reopen(follower);
    const again = c.cluster.start(follower);
    expect(again.metrics().startState!.from).toBe('checkpoint');
    await c.run(300);
    expect(c.machines.get(follower)!.stateHash()).toBe(c.machines.get(leader.id)!.stateHash());
    c.close();
  });
});
