// Backup and restore: a snapshot saved through the leader while writes and tasks run holds
// every write acknowledged before the save, restores as a new swarm (fresh incarnations) whose
// every member starts at exactly the saved state (same state hash, same index), and finishes
// the saved work with the same task_results as the original. A damaged, truncated or
// foreign file is refused naming the file and the check; nothing is ever half-restored.

import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ToolTable } from '../../src/cluster/tool-table.js';
import { CoordinationMachine } from '../../src/machine/coordination-machine.js';
import { saveSnapshotFile } from '../../src/service/backup.js';
import { configure } from '../../src/service/consensus.js';
import { Coordinator } from '../../src/service/coordinator.js';
import type { NodeHost } from '../../src/host/node-host.js';
import { memoryRetrieve, memoryStore } from '../../src/service/memory.js';
import { SwarmRegistry } from '../../src/swarm/registry.js';
import { restoreSnapshot } from '../../src/service/restore.js';
import { decodeSnapshotFile, readSnapshotFile } from '../../src/service/snapshot-file.js';
import type { Swarm } from '../../src/swarm/swarm.js';
import { orchestrate, taskResults } from '../../src/service/tasks.js';
import { SqliteStorage } from '../../src/storage/sqlite-storage.js';
import { cutOff, swarmWithAgents, testResources, waitUntil } from './service-util.js';

const res = testResources();

/** task_results fields that describe the work itself (not elections or the serving member). */
function work(r: Record<string, unknown>): Record<string, unknown> {
  const { total_tasks, completed, failed, in_progress, duplicates } = r;
  return { total_tasks, completed, failed, in_progress, duplicates };
}

async function finished(swarm: Swarm, orch: string): Promise<Record<string, unknown>> {
  let last: Record<string, unknown> = {};
  await waitUntil(
    async () => {
      last = await taskResults(swarm, orch);
      return last.in_progress === 0;
    },
    60_000,
    `orchestration ${orch} of ${swarm.name} to finish`,
    50,
  );
  return last;
}

/** A small swarm with a saved snapshot (no load), for the refusal tests. */
async function savedSnapshot(tag: string): Promise<{ file: string; coordinator: Coordinator; swarm: Swarm }> {
  const dir = res.dir(tag);
  const { coordinator, swarm } = await swarmWithAgents(dir, { name: 'src', agents: 3 });
  res.keep(coordinator);
  await memoryStore(swarm, { key: 'k', value: { v: 1 } });
  await orchestrate(swarm, { task: 't', count: 20 });
  const file = path.join(dir, 'backup.snapshot');
  await saveSnapshotFile(swarm, file, { overwrite: false });
  return { file, coordinator, swarm };
}

function listTree(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[]).sort();
}

describe('backup and restore', () => {
  it('saves under load at one index, restores as a new swarm with the same state hash and task_results', async () => {
    const dirA = res.dir('backup-src');
    const { coordinator: a, swarm } = await swarmWithAgents(dirA, { name: 'src', agents: 3, durability: 'full' });
    res.keep(a);
    // Load: tasks that take a while (two at a time per agent), and a writer that records what
    // was acknowledged.
    await configure(swarm, { batch_size: 2 });
    const orch = (await orchestrate(swarm, { task: 'work', count: 600, executor: { kind: 'sleep', sleep_ms: 30 } })).orchestration_id as string;
    const acked = new Map<string, number>();
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing; i++) {
        await memoryStore(swarm, { key: `w/${i}`, value: i });
        acked.set(`w/${i}`, i);
      }
    })();
    await waitUntil(() => acked.size >= 5, 20_000, 'writes under way');
    await waitUntil(() => (swarm.localMachine()?.machine.tasks.orchs.get(orch)?.counts.completed ?? 0) > 0, 20_000, 'tasks under way');

    const ackedBefore = new Map(acked);
    const committedBefore = swarm.cluster.leader()!.core.log.committed;
    const file = path.join(dirA, 'under-load.snapshot');
    const saved = await saveSnapshotFile(swarm, file, { overwrite: false });
    writing = false;
    await writer;

    // The ReadIndex barrier: at least everything committed (and acknowledged) before the save.
    expect(saved.index).toBeGreaterThanOrEqual(committedBefore);
    const snap = readSnapshotFile(file);
    expect(snap.sha256).toBe(saved.sha256);
    expect(snap.header.index).toBe(saved.index);
    const m = new CoordinationMachine();
    m.restore(snap.state);
    expect(m.appliedIndex).toBe(saved.index);
    for (const [k, v] of ackedBefore) expect(m.memory.get('default', k, m.clock)?.value, k).toBe(v);
    // Taken while the work ran: some done, some not.
    const c = snap.header.counts;
    expect(c.tasks).toBe(600);
    expect(c.tasks_completed).toBeGreaterThan(0);
    expect(c.tasks_pending + c.tasks_assigned).toBeGreaterThan(0);
    expect(c.memory_keys).toBeGreaterThanOrEqual(ackedBefore.size);
    expect(snap.header.members.voters).toEqual(swarm.activeMembers());

    const sourceDone = await finished(swarm, orch);
    const sourceIncarnations = Object.values(swarm.data.members).map((e) => e.incarnation);

    // Restore into a new directory, under a new name.
    const dirB = res.dir('backup-dst');
    const r = restoreSnapshot(file, { dataDir: dirB, swarm: 'copy' });
    expect(r.index).toBe(saved.index);
    expect(r.members.map((x) => x.agent_id)).toEqual(swarm.activeMembers());
    const b = res.keep(new Coordinator({ dataDir: dirB, durability: 'full' }));
    const copy = b.swarm('copy');
    // Right after start, before any new entry applies: every member holds the saved state.
    for (const id of copy.activeMembers()) {
      const cm = copy.machines.get(id)!;
      expect(cm.appliedIndex, id).toBe(saved.index);
      expect(cm.stateHash(), id).toBe(saved.state_sha256);
    }
    // Fresh identities: new incarnations in the registry and in each member's file.
    const restoredIncarnations = Object.values(copy.data.members).map((e) => e.incarnation);
    expect(new Set(restoredIncarnations).size).toBe(3);
    for (const inc of restoredIncarnations) {
      expect(inc).toMatch(/^[0-9a-f-]{36}$/);
      expect(sourceIncarnations).not.toContain(inc);
    }
    for (const id of copy.activeMembers()) {
      const st = SqliteStorage.open(copy.registry.memberFile(id), { durability: 'off' });
      try {
        expect(st.identity()).toEqual({ member: id, incarnation: copy.data.members[id]!.incarnation });
      } finally {
        st.close();
      }
    }

    // The copy elects a leader, serves the saved memory and finishes the saved work.
    await copy.waitForLeader(10_000);
    for (const [k, v] of ackedBefore) expect((await memoryRetrieve(copy, { key: k })).value).toBe(v);
    const copyDone = await finished(copy, orch);
    expect(work(copyDone)).toEqual(work(sourceDone));
    expect(copyDone.duplicates).toBe(0);
    expect(copyDone.completed).toBe(600);
  }, 120_000);

  it('refuses a flipped byte, a truncated file, an unknown version and a foreign file, naming the file', async () => {
    const { file } = await savedSnapshot('backup-corrupt');
    const good = fs.readFileSync(file);
    const variant = (name: string, bytes: Buffer): string => {
      const f = path.join(path.dirname(file), name);
      fs.writeFileSync(f, bytes);
      return f;
    };
    // One byte anywhere: in the state, in the header.
    for (const at of [Math.floor(good.length / 2), good.indexOf('"swarm"') + 3]) {
      const flipped = Buffer.from(good);
      flipped[at] = flipped[at]! ^ 0x01;
      const f = variant(`flip-${at}.snapshot`, flipped);
      expect(() => readSnapshotFile(f)).toThrow(new RegExp(`snapshot ${f} refused: hash mismatch`));
    }
    for (const len of [good.length - 1, Math.floor(good.length / 2), 40, 10]) {
      const f = variant(`trunc-${len}.snapshot`, good.subarray(0, len));
      expect(() => readSnapshotFile(f)).toThrow(new RegExp(`snapshot ${f} refused: truncated`));
    }
    const v3 = variant('v3.snapshot', Buffer.concat([Buffer.from('CONCORD-SNAPSHOT 3'), good.subarray(good.indexOf(0x0a))]));
    expect(() => readSnapshotFile(v3)).toThrow(/refused: unknown format version "3" \(this Concord reads versions 1 and 2\)/);
    const foreign = variant('foreign.snapshot', Buffer.from('{"v":2}\n'));
    expect(() => readSnapshotFile(foreign)).toThrow(/refused: not a Concord snapshot file/);
    expect(() => readSnapshotFile(variant('empty.snapshot', Buffer.alloc(0)))).toThrow(/refused: the file is empty/);
    expect(() => readSnapshotFile(path.join(path.dirname(file), 'absent'))).toThrow(/does not exist/);

    // Restore refuses them too, and creates nothing.
    const dst = res.dir('backup-corrupt-dst');
    const flipped = Buffer.from(good);
    flipped[good.length - 100] = flipped[good.length - 100]! ^ 0x80;
    expect(() => restoreSnapshot(variant('flip-restore.snapshot', flipped), { dataDir: dst })).toThrow(/hash mismatch/);
    expect(() => restoreSnapshot(variant('trunc-restore.snapshot', good.subarray(0, good.length - 5)), { dataDir: dst })).toThrow(/truncated/);
    expect(listTree(path.join(dst, 'swarms'))).toEqual([]);
    // The intact file still verifies.
    expect(readSnapshotFile(file).sha256).toMatch(/^[0-9a-f]{64}$/);
  }, 60_000);

  it('refuses to restore over an existing swarm, and leaves nothing when a restore fails midway', async () => {
    const { file, coordinator } = await savedSnapshot('backup-exists');
    // The source directory is in use (locked) and holds the swarm.
    expect(() => restoreSnapshot(file, { dataDir: coordinator.dataDir, swarm: 'other' })).toThrow(/is in use by pid \d+ .*a restore needs the directory to itself/);
    const dst = res.dir('backup-exists-dst');
    restoreSnapshot(file, { dataDir: dst });
    const before = listTree(dst);
    expect(() => restoreSnapshot(file, { dataDir: dst })).toThrow(/swarm src already exists in/);
    expect(listTree(dst)).toEqual(before);

    // A failure after the first member file: no swarm, no staging directory left.
    let n = 0;
    expect(() =>
      restoreSnapshot(file, {
        dataDir: dst,
        swarm: 'half',
        afterMemberFile: () => {
          if (++n === 2) throw new Error('disk gone');
        },
      }),
    ).toThrow('disk gone');
    expect(listTree(dst)).toEqual(before);

    // Restored twice under two names: distinct incarnations, and both open.
    const again = restoreSnapshot(file, { dataDir: dst, swarm: 'src2' });
    const first = SwarmRegistry.load(path.join(dst, 'swarms', 'src')).data.members;
    for (const m of again.members) expect(m.incarnation).not.toBe(first[m.agent_id]!.incarnation);
    const c = res.keep(new Coordinator({ dataDir: dst, durability: 'off' }));
    expect(c.names()).toEqual(['src', 'src2']);
    await c.swarm('src2').waitForLeader(10_000);
    expect((await memoryRetrieve(c.swarm('src2'), { key: 'k' })).value).toEqual({ v: 1 });
  }, 60_000);

  it('swarm_snapshot writes only inside <data dir>/backups and never replaces a file unasked', async () => {
    const dir = res.dir('backup-tool');
    const { coordinator, swarm } = await swarmWithAgents(dir, { name: 'src', agents: 3 });
    res.keep(coordinator);
    await memoryStore(swarm, { key: 'k', value: 1 });
    const tools = new ToolTable(coordinator);
    const call = async (args: Record<string, unknown>) => {
      const r = await tools.call('swarm_snapshot', { swarm: 'src', ...args });
      const text = (r.content as Array<{ text: string }>).map((c) => c.text).join('');
      return { error: r.isError === true, text, data: r.structuredContent as Record<string, unknown> };
    };
    const backups = path.join(dir, 'backups');

    const d = await call({});
    expect(d.error).toBe(false);
    expect(path.dirname(d.data.path as string)).toBe(backups);
    expect(readSnapshotFile(d.data.path as string).sha256).toBe(d.data.sha256);
    expect(d.data.bytes).toBe(fs.statSync(d.data.path as string).size);
    expect(fs.statSync(backups).mode & 0o777).toBe(0o700);
    expect(fs.statSync(d.data.path as string).mode & 0o777).toBe(0o600);

    const outside = path.join(dir, 'victim.txt');
    fs.writeFileSync(outside, 'keep me');
    for (const p of ['../victim.txt', outside, 'sub/x.snapshot', '..', '.hidden', 'a\u0000b']) {
      const r = await call({ path: p });
      expect(r.error, p).toBe(true);
      expect(r.text, p).toMatch(/path=.*a file name .* inside/);
    }
    expect(fs.readFileSync(outside, 'utf8')).toBe('keep me');

    expect((await call({ path: 'one.snapshot' })).error).toBe(false);
    const again = await call({ path: 'one.snapshot' });
    expect(again.error).toBe(true);
    expect(again.text).toMatch(/one\.snapshot already exists/);
    expect((await call({ path: 'one.snapshot', overwrite: true })).error).toBe(false);

    // A symbolic link planted in backups/: refused, and with overwrite the link is replaced,
    // never the file it points to.
    fs.symlinkSync(outside, path.join(backups, 'link.snapshot'));
    expect((await call({ path: 'link.snapshot' })).error).toBe(true);
    expect((await call({ path: 'link.snapshot', overwrite: true })).error).toBe(false);
    expect(fs.readFileSync(outside, 'utf8')).toBe('keep me');
    expect(fs.lstatSync(path.join(backups, 'link.snapshot')).isSymbolicLink()).toBe(false);

    // backups/ itself a link elsewhere: refused.
    fs.rmSync(backups, { recursive: true });
    fs.symlinkSync(res.dir('backup-elsewhere'), backups);
    const linked = await call({});
    expect(linked.error).toBe(true);
    expect(linked.text).toMatch(/not a plain directory/);

    // A backup must not eat the space the members' logs keep in reserve.
    fs.rmSync(backups);
    const prev = process.env.CONCORD_DISK_RESERVE_MB;
    process.env.CONCORD_DISK_RESERVE_MB = String(1 << 30); // 1 PiB: more than any disk here
    try {
      const full = await call({ path: 'big.snapshot' });
      expect(full.error).toBe(true);
      expect(full.text).toMatch(/^disk_full: .*big\.snapshot: \d+ bytes would leave \d+ bytes free/);
      expect(fs.existsSync(path.join(backups, 'big.snapshot'))).toBe(false);
    } finally {
      if (prev === undefined) delete process.env.CONCORD_DISK_RESERVE_MB;
      else process.env.CONCORD_DISK_RESERVE_MB = prev;
    }

    // inline: the file's bytes in the result, nothing written on the server.
    const inline = await call({ inline: true });
    expect(inline.error).toBe(false);
    const bytes = Buffer.from(inline.data.content_base64 as string, 'base64');
    expect(bytes.length).toBe(inline.data.bytes);
    expect(decodeSnapshotFile(bytes, 'inline').sha256).toBe(inline.data.sha256);
    expect(inline.text).not.toContain(inline.data.content_base64 as string);
  }, 60_000);

  it('a save served by a deposed leader fails or holds the newer write, never the stale state (ReadIndex barrier)', async () => {
    const dir = res.dir('backup-stale');
    const { coordinator, swarm } = await swarmWithAgents(dir, { name: 'src', agents: 5 });
    res.keep(coordinator);
    await memoryStore(swarm, { key: 'k', value: 'old' });
    const old = await swarm.waitForLeader(5_000);
    const oldTerm = old.core.term;
    // It keeps believing it leads while cut off (see stale-leader-read.test.ts).
    old.reconfigure({ checkQuorum: false });
    await cutOff(swarm, old, oldTerm);
    await memoryStore(swarm, { key: 'k', value: 'new' });
    expect(old.core.role).toBe('leader');
    // Routed to the old leader, as a cluster-mode process hosting only that member would be.
    const cluster = swarm.cluster as { leader: () => NodeHost | undefined };
    const real = cluster.leader;
    cluster.leader = () => (old.isRunning && old.core.role === 'leader' ? old : undefined);
    const file = path.join(dir, 'stale.snapshot');
    let outcome: 'refused' | 'saved';
    try {
      await saveSnapshotFile(swarm, file, { overwrite: false });
      outcome = 'saved';
    } catch {
      outcome = 'refused';
    } finally {
      cluster.leader = real;
    }
    if (outcome === 'saved') {
      const m = new CoordinationMachine();
      m.restore(readSnapshotFile(file).state);
      expect(m.memory.get('default', 'k', m.clock)?.value).toBe('new');
    } else {
      expect(fs.existsSync(file)).toBe(false);
    }
  }, 60_000);
});
