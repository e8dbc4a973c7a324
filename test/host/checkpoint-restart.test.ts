// A member restarted from its SQLite file rebuilds the machine from the checkpoint rows
// (incremental snapshot) and replays only the log after them; a follower that falls behind
// the others' checkpoints is sent a snapshot made on demand. Every replica ends with the same
// state hash. Task blocks are 64 tasks here, so the 2,000-task orchestration is 32 block rows
// and checkpoints between its assignments and completions write some of them.

import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import type { Command, Op } from '../../src/machine/types.js';
import { ordStride } from '../../src/machine/task-table.js';
import { createOp, putOp } from '../machine/machine-util.js';
import { sqliteCluster } from '../helpers/sqlite-cluster.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** A 3-member cluster on SQLite files that the test can close and reopen (a process restart). */
function setup() {
  const { dir, clock, cluster, files, open, machines, run } = sqliteCluster({ tag: 'ckpt', seed: 11, machine: { tasksPerBlock: 64 } });
  dirs.push(dir);
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
  /** One raw command (a client session's), committed. */
  const proposeCmd = async (cmd: Omit<Command, 'now'>): Promise<unknown> => {
    const p = c0().propose(JSON.stringify({ ...cmd, now: clock.now() }));
    let done = false;
    void p.then(() => (done = true));
    while (!done) await run(10);
    return (await p).result;
  };
  const c0 = () => {
    const l = cluster.leader();
    expect(l).toBeDefined();
    return l!;
  };
  const write = (from: number, n: number) => proposeAll(Array.from({ length: n }, (_, k) => putOp(`k${(from + k) % 700}`, { j: from + k, pad: 'x'.repeat((from + k) % 40) })));
  const reopen = (id: string) => {
    files.get(id)!.close();
    open(id);
  };
  const close = () => {
    cluster.close();
  };
  return { dir, clock, cluster, machines, run, write, proposeAll, proposeCmd, reopen, close };
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
    expect(c.machines.get(follower)!.memory.size).toBe(700);
    expect(c.machines.get(follower)!.tasks.tasks.size).toBe(2040);
    expect(c.machines.get(follower)!.tasks.assigned.size).toBe(100);
    const snaps = new Set([...c.machines.values()].map((m) => m.snapshot()));
    expect(snaps.size).toBe(1);
    c.close();
  });

  it('large entries are checkpointed before the entry threshold: a checkpoint rewrites a bounded size (CHECKPOINT_MAX_APPLIED_CHARS)', async () => {
    const c = setup();
    c.cluster.startAll();
    await c.run(1000);
    const taken = () => [...c.cluster.hosts.values()].map((h) => h.metrics().checkpointsTaken);
    const before = taken();
    // 40 entries (the entry threshold is 100 and more) of 512 KiB values, one at a time (a
    // checkpoint follows a Ready: entries applied in one Ready make one): 20 MiB applied.
    for (let k = 0; k < 40; k++) await c.proposeAll([putOp(`big${k}`, 'v'.repeat(512 << 10))]);
    await c.run(300);
    const leader = c.cluster.leader()!.id;
    const ids = [...c.cluster.hosts.keys()];
    for (const [i, id] of ids.entries()) {
      // A follower every 4-6 MiB (8-12 on the leader): at least 3 (1) over 20 MiB.
      expect(taken()[i]! - before[i]!, id).toBeGreaterThanOrEqual(id === leader ? 1 : 3);
    }
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
  it('a follower that installed a snapshot keeps none of its own stale rows: deleted, expired and compacted state stays gone after restarts from the snapshot and from rows', async () => {
    const c = setup();
    c.cluster.startAll();
    await c.run(1000);
    // State the follower will hold in its rows, all of which the others then remove.
    await c.proposeAll([
      { t: 'config', patch: { task_retention_orchestrations: 0, task_retention_ms: 3_600_000 } },
      ...Array.from({ length: 40 }, (_, i) => putOp(`gone/${i}`, i)),
      ...Array.from({ length: 10 }, (_, i) => putOp(`ttl/${i}`, i, { ttl_s: 1 })),
      createOp(5),
    ]);
    const reg = (await c.proposeCmd({ op: { t: 'session.register', timeout_ms: 1_000 } })) as { value: { session: string } };
    const session = reg.value.session;
    expect(await c.proposeCmd({ op: putOp('by-session', 1), client: session, seq: 1, ack: 0 })).toMatchObject({ ok: true });
    await c.write(0, 300);
    await c.run(200);
    const leader = c.cluster.leader()!;
    const follower = ['n1', 'n2', 'n3'].find((id) => id !== leader.id)!;
    const fm = c.machines.get(follower)!;
    expect(c.cluster.hosts.get(follower)!.metrics().checkpointsTaken).toBeGreaterThan(0);
    expect(fm.sessions.has(session)).toBe(true);
    const rowsOf = (): { memory: string[]; sessions: string[]; orchs: Array<Array<{ id?: string }>> } => {
      const db = new Database(path.join(c.dir, `${follower}.db`), { readonly: true, fileMustExist: true });
      try {
        const memory = (db.prepare('SELECT json FROM machine_memory').pluck().all() as string[]).map((j) => (JSON.parse(j) as { key: string }).key);
        const sessions = (db.prepare('SELECT json FROM machine_sessions').pluck().all() as string[]).map((j) => (JSON.parse(j) as [string])[0]);
        const orchs = (db.prepare('SELECT json FROM machine_orchs').pluck().all() as string[]).map((j) => JSON.parse(j) as Array<{ id?: string }>);
        return { memory, sessions, orchs };
      } finally {
        db.close();
      }
    };
    const stale = rowsOf();
    expect(stale.memory.filter((k) => k.startsWith('gone/'))).toHaveLength(40);
    expect(stale.sessions).toContain(session);

    // Down while the others delete, expire (TTL, session idle past 1 s), finish and compact,
    // and checkpoint far past its log.
    c.cluster.crash(follower);
    await c.proposeAll(Array.from({ length: 40 }, (_, i) => ({ t: 'mem.del' as const, key: `gone/${i}`, namespace: 'default', if_version: null })));
    const lm = c.machines.get(leader.id)!;
    const orch = [...lm.tasks.orchs.keys()][0]!;
    await c.proposeAll([{ t: 'task.assign', term: 1, lease_ms: 60_000, items: [1, 2, 3, 4, 5].map((q) => ({ task: `${orch}-${q}`, agent: 'a', from_epoch: 0 })) }]);
    await c.proposeAll([{ t: 'task.complete', items: [1, 2, 3, 4, 5].map((q) => ({ task: `${orch}-${q}`, agent: 'a', epoch: 1, ok: true, result: null })) }]);
    await c.run(2_000);
    await c.proposeAll([{ t: 'clock' }]);
    await c.write(300, 1000);
    expect(lm.memory.get('default', 'gone/0', lm.clock)).toBeUndefined();
    expect([...lm.memory.values()].some((r) => r.key.includes('ttl/'))).toBe(false);
    expect(lm.sessions.has(session)).toBe(false);
    expect(lm.tasks.orchs.get(orch)!.compacted?.done_index).not.toBeNull();

    // Back: it is sent a snapshot, and crashes before its next checkpoint.
    c.reopen(follower);
    c.cluster.start(follower);
    await c.run(1000);
    expect(c.cluster.hosts.get(follower)!.metrics().snapshotsInstalled).toBe(1);
    c.cluster.crash(follower);
    c.reopen(follower);
    expect(c.cluster.start(follower).metrics().startState!.from).toBe('snapshot');
    await c.run(300);
    // Then it checkpoints (every table rewritten) and restarts from those rows.
    await c.write(1300, 400);
    await c.run(300);
    c.cluster.crash(follower);
    c.reopen(follower);
    expect(c.cluster.start(follower).metrics().startState!.from).toBe('checkpoint');
    await c.run(300);
    const rows = rowsOf();
    expect(rows.memory.filter((k) => k.startsWith('gone/') || k.startsWith('ttl/'))).toEqual([]);
    expect(rows.sessions).not.toContain(session);
    const orow = rows.orchs.find((r) => r[0]?.id === orch)!;
    expect(orow).toHaveLength(1); // summary only: its task columns are gone
    const f = c.machines.get(follower)!;
    expect(f.memory.get('default', 'gone/1', f.clock)).toBeUndefined();
    expect(f.sessions.has(session)).toBe(false);
    // Its late retry is refused there as everywhere, not applied again.
    expect(await c.proposeCmd({ op: putOp('by-session', 1), client: session, seq: 1, ack: 0 })).toMatchObject({ ok: false, code: 'session_expired' });
    await c.run(300);
    expect(f.stateHash()).toBe(c.machines.get(c.cluster.leader()!.id)!.stateHash());
    c.close();
  });
  it("a deposed leader's pending proposal covered by a snapshot it installs is refused as 'outcome unknown', never resolved, and never applied", async () => {
    const c = setup();
    c.cluster.startAll();
    await c.run(1000);
    await c.write(0, 50);
    const old = c.cluster.leader()!;
    // Cut off: its proposal is appended to its own log only.
    c.cluster.network.isolate(old.id);
    let outcome: { ok?: unknown; err?: Error } | null = null;
    old.propose(JSON.stringify({ op: putOp('orphan', 1), now: c.clock.now() }), 60_000).then(
      (r) => (outcome = { ok: r }),
      (e: Error) => (outcome = { err: e }),
    );
    await c.run(100);
    // The others elect a leader and checkpoint far past the old leader's log.
    let next = c.cluster.leader();
    for (let i = 0; i < 300 && (!next || next.id === old.id); i++) {
      await c.run(10);
      next = c.cluster.leader();
    }
    expect(next && next.id !== old.id).toBe(true);
    await c.write(50, 600);
    expect(outcome).toBeNull();
    c.cluster.network.heal();
    await c.run(1000);
    expect(c.cluster.hosts.get(old.id)!.metrics().snapshotsInstalled).toBe(1);
    // Settled by the install (its proposal timeout is a minute away), not left hanging.
    expect(outcome).not.toBeNull();
    expect(outcome!.ok).toBeUndefined();
    expect(outcome!.err?.message).toMatch(/outcome of index \d+ unknown after snapshot install; retry/);
    for (const m of c.machines.values()) expect(m.memory.get('default', 'orphan', m.clock)).toBeUndefined();
    expect(new Set([...c.machines.values()].map((m) => m.stateHash())).size).toBe(1);
    c.close();
  });
});
