// A memory record restored from a checkpoint row stays as the row's text until it is read
// (memory-store.ts). When that row is damaged and a committed entry reads it (an overwrite of
// the key), the damage is this member's alone: the others apply the entry. The member must
// fail-stop, naming its file and the record, and never skip the entry (its state would differ
// from the others' from then on) nor take the other members down with it.

import fs from 'node:fs';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import type { Command, Op } from '../../src/machine/types.js';
import { putOp } from '../machine/machine-util.js';
import { sqliteCluster } from '../helpers/sqlite-cluster.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** 3 members on SQLite files the test can close, edit and reopen (a process restart). */
function setup() {
  const { dir, clock, cluster, files, fileOf, open, machines, run } = sqliteCluster({ tag: 'damage', seed: 5 });
  dirs.push(dir);
  const propose = async (ops: Op[]): Promise<unknown[]> => {
    const leader = cluster.leader();
    expect(leader).toBeDefined();
    const all = Promise.all(ops.map((op) => leader!.propose(JSON.stringify({ op, now: clock.now() } satisfies Command))));
    let done = false;
    void all.then(
      () => (done = true),
      () => (done = true),
    );
    while (!done) await run(10);
    return (await all).map((r) => r.result);
  };
  const write = async (from: number, n: number) => {
    for (let i = from; i < from + n; i += 50) await propose(Array.from({ length: Math.min(50, from + n - i) }, (_, k) => putOp(`k${i + k}`, { j: i + k })));
  };
  return { clock, cluster, machines, files, fileOf, open, run, propose, write };
}

/** Garble k5's stored row (its value no longer JSON) with the layout of a row kept as text. */
function damageRow(file: string, key: string): number {
  const db = new Database(file);
  const row = db.prepare(`SELECT ord, json FROM machine_memory WHERE json LIKE ?`).get(`{"key":"${key}","%`) as { ord: number; json: string } | undefined;
  expect(row).toBeDefined();
  db.prepare('UPDATE machine_memory SET json = ? WHERE ord = ?').run(row!.json.replace('"value":{', '"value":{{'), row!.ord);
  db.close();
  return row!.ord;
}

/** Overwrite with garbage the b-tree leaf page that holds `key`'s stored row (disk damage SQLite finds when it reads the page). */
function damagePageOf(file: string, key: string): void {
  const db = new Database(file);
  const row = db.prepare(`SELECT ord FROM machine_memory WHERE json LIKE ?`).get(`{"key":"${key}","%`) as { ord: number } | undefined;
  expect(row).toBeDefined();
  const leaves = db.prepare(`SELECT pageno, path FROM dbstat WHERE name = 'machine_memory' AND pagetype = 'leaf' ORDER BY path`).all() as Array<{ pageno: number }>;
  const pageSize = db.pragma('page_size', { simple: true }) as number;
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  // The leaf whose rowid range holds the row: the first leaf for a key written early.
  expect(leaves.length).toBeGreaterThan(1);
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, Buffer.alloc(pageSize, 0x5a), 0, pageSize, (leaves[0]!.pageno - 1) * pageSize);
  fs.closeSync(fd);
}

/**
 * 300 keys written and checkpointed; then a follower (the victim) restarted on its file after
 * `damage(file)`. Opening does not read the damaged part.
 */
async function restartedOnDamage(damage: (file: string) => void) {
  const c = setup();
  c.cluster.startAll();
  await c.run(1000);
  await c.write(0, 300);
  await c.run(200);
  const leader = c.cluster.leader()!;
  const victim = ['n1', 'n2', 'n3'].find((id) => id !== leader.id)!;
  const other = ['n1', 'n2', 'n3'].find((id) => id !== leader.id && id !== victim)!;
  expect(c.cluster.hosts.get(victim)!.metrics().checkpointsTaken).toBeGreaterThan(0);
  c.cluster.crash(victim);
  c.files.get(victim)!.close();
  damage(c.fileOf(victim));
  c.open(victim);
  const host = c.cluster.start(victim);
  return { c, leader, victim, other, host };
}

/** The two members without the damage go on: later writes commit and their states agree. */
async function othersAgree(c: ReturnType<typeof setup>, leader: string, other: string): Promise<void> {
  await c.write(300, 20);
  await c.run(200);
  const lm = c.machines.get(leader)!;
  const om = c.machines.get(other)!;
  expect(lm.memory.get('default', 'k5', lm.clock)?.value).toBe('new value');
  expect(om.appliedIndex).toBe(lm.appliedIndex);
  expect(om.stateHash()).toBe(lm.stateHash());
  expect(c.cluster.leader()).toBeDefined();
}

/** The victim leads and serializes a snapshot for a lagging member from its damaged records. */
async function damagedSnapshotSource(): Promise<void> {
  const c = setup();
  c.cluster.startAll();
  await c.run(1000);
  await c.write(0, 300);
  await c.run(200);
  const first = c.cluster.leader()!;
  const victim = ['n1', 'n2', 'n3'].find((id) => id !== first.id)!;
  const lagger = ['n1', 'n2', 'n3'].find((id) => id !== first.id && id !== victim)!;
  c.cluster.crash(victim);
  c.files.get(victim)!.close();
  const ord = damageRow(c.fileOf(victim), 'k5');
  c.open(victim);
  const host = c.cluster.start(victim);
  await c.run(300);
  first.transferLeadership(victim);
  await c.run(500);
  expect(c.cluster.leader()?.id).toBe(victim);
  // The lagger misses more than the others keep as log: it needs a snapshot, which the
  // victim (leading) serializes from its records, k5's damaged row among them.
  c.cluster.crash(lagger);
  await c.write(300, 600);
  await c.run(300);
  c.files.get(lagger)!.close();
  c.open(lagger);
  c.cluster.start(lagger);
  await c.run(3000);
  expect(host.isRunning).toBe(false);
  expect(host.fault).toContain(`${victim} stopped while serializing a snapshot`);
  expect(host.fault).toContain(`its stored state in ${c.fileOf(victim)} is damaged`);
  expect(host.fault).toContain(`"default/k5" (checkpoint row ${ord}) is damaged`);
  // The two others elect a leader, which sends the lagger its snapshot.
  const leader = c.cluster.leader()!;
  expect(leader.id).not.toBe(victim);
  const lm = c.machines.get(leader.id)!;
  const gm = c.machines.get(lagger)!;
  expect(gm.appliedIndex).toBe(lm.appliedIndex);
  expect(gm.stateHash()).toBe(lm.stateHash());
  expect(gm.memory.get('default', 'k5', gm.clock)?.value).toEqual({ j: 5 });
  c.cluster.close();
}

describe('a damaged stored record found while applying', () => {
  it('fail-stops that member, naming its file and the record; the others apply the entry and keep serving', async () => {
    // The follower restarts on a file whose k5 row is damaged.
    let ord = 0;
    const { c, leader, victim, other, host } = await restartedOnDamage((file) => (ord = damageRow(file, 'k5')));
    expect(host.metrics().startState!.from).toBe('checkpoint');
    await c.run(300);
    expect(host.isRunning).toBe(true);
    const before = c.machines.get(victim)!.appliedIndex;

    // An overwrite of k5 reads the damaged record on the victim only.
    const [result] = await c.propose([putOp('k5', 'new value')]);
    expect(result).toMatchObject({ ok: true, value: { version: 2 } });
    await c.run(300);
    expect(host.isRunning).toBe(false);
    const fault = host.fault!;
    expect(fault).toContain(c.fileOf(victim));
    expect(fault).toContain(`"default/k5" (checkpoint row ${ord}) is damaged`);
    expect(fault).toMatch(/remove/);
    // It applied nothing past the damage (the host never advanced past the entry).
    expect(host.core.log.applied).toBeLessThan(c.machines.get(leader.id)!.appliedIndex);
    expect(host.core.log.applied).toBeGreaterThanOrEqual(before);

    // The other two go on: the write is there, later writes commit, their states agree.
    await othersAgree(c, leader.id, other);

    // Restarted on the same file it stops again at the same entry: nothing was stored past it.
    c.files.get(victim)!.close();
    c.open(victim);
    const again = c.cluster.start(victim);
    await c.run(300);
    expect(again.isRunning).toBe(false);
    expect(again.fault).toContain(`(checkpoint row ${ord}) is damaged`);
    c.cluster.close();
  });

  it('a page of the stored rows damaged on disk (SQLite reports SQLITE_CORRUPT when an apply reads it): the member fail-stops, never records the entry as failed', async () => {
    const { c, leader, victim, other, host } = await restartedOnDamage((file) => damagePageOf(file, 'k5'));
    await c.run(300);
    expect(host.isRunning).toBe(true);
    const [result] = await c.propose([putOp('k5', 'new value')]);
    expect(result).toMatchObject({ ok: true, value: { version: 2 } });
    await c.run(300);
    // Recording the entry as failed on this replica alone would leave its state unlike the others..
    expect(host.isRunning).toBe(false);
    expect(host.fault).toContain(c.fileOf(victim));
    expect(host.fault).toMatch(/malformed|corrupt/i);
    expect(host.core.log.applied).toBeLessThan(c.machines.get(leader.id)!.appliedIndex);
    await othersAgree(c, leader.id, other);
    c.cluster.close();
  });

  it('a leader that meets the damage serializing a snapshot for a lagging follower fail-stops; the others elect a leader that sends it', async () => {
    await damagedSnapshotSource();
  });

  it('the same when the damage is met in a later slice of a stepped snapshot (a timer callback, not handleReady)', async () => {
    // One row per slice and tiny parts: every record but the first is read from a timer.
    process.env.CONCORD_SNAPSHOT_SLICE_CHARS = '1';
    process.env.CONCORD_SNAPSHOT_PART_CHARS = '1024';
    try {
      await damagedSnapshotSource();
    } finally {
      delete process.env.CONCORD_SNAPSHOT_SLICE_CHARS;
      delete process.env.CONCORD_SNAPSHOT_PART_CHARS;
    }
  });
});
