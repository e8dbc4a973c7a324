// Restore a backup as a NEW swarm: fresh member files, each with a new random incarnation and
// holding only the snapshot (no log, no vote), in a new swarm directory. Nothing of the old
// members' files or identities is reused. Built in a staging directory and renamed into
// place, so a failure leaves nothing half-restored.

import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { CoordinationMachine } from '../machine/coordination-machine.js';
import { MemberBook } from '../machine/member-book.js';
import { SqliteStorage } from '../storage/sqlite-storage.js';
import { fsyncDirectory, mkdirDurable } from '../storage/sync-fs.js';
import { DataDirLock, resolveDataDir } from './data-dir.js';
import { UserError, invalid } from '../util/errors.js';
import { SwarmRegistry, type MemberEntry } from '../swarm/registry.js';
import { readSnapshotFile, stateSha256 as stateSha256Of, type SnapshotHeader } from './snapshot-file.js';
import type { SnapshotData } from '../raft/types.js';

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export interface RestoreOptions {
  dataDir: string;
  /** Name of the new swarm; default the one in the snapshot. */
  swarm?: string;
  /**
   * Cluster mode: the member this data directory will run (`concord node --id`), and every
   * member of the new cluster (`--peers`). Default: every member in the snapshot, embedded.
   */
  member?: string;
  members?: string[];
  /** Test seam: runs after each member file is written (a failure there must leave nothing). */
  afterMemberFile?: (id: string) => void;
}

export interface RestoreResult extends Record<string, unknown> {
  swarm: string;
  data_dir: string;
  swarm_dir: string;
  from_swarm: string;
  index: number;
  term: number;
  state_sha256: string;
  members: Array<{ agent_id: string; incarnation: string | null; file: string | null }>;
}

export function restoreSnapshot(file: string, o: RestoreOptions): RestoreResult {
  const NAME_RULE = 'letters, digits, ".", "_" or "-", 1-64 characters, starting with a letter or digit';
  // The caller's names first: a typo costs no read of a large file.
  if (o.swarm !== undefined && !NAME_RE.test(o.swarm)) throw invalid('swarm', o.swarm, NAME_RULE);
  for (const id of o.members ?? []) if (!NAME_RE.test(id)) throw invalid('members', id, NAME_RULE);
  const trial = new CoordinationMachine();
  const h = loadFile(file, trial);
  const name = o.swarm ?? h.swarm;
  if (!NAME_RE.test(name)) throw invalid('swarm', name, NAME_RULE);
  const members = [...new Set(o.members ?? [...h.members.voters, ...h.members.learners])].sort();
  if (members.length === 0) throw new UserError('invalid_argument', `snapshot ${file} lists no members; pass the members to restore`, 'members');
  // Each id names a file (<id>.db) in the swarm directory: never a path.
  for (const id of members) if (!NAME_RE.test(id)) throw invalid('members', id, NAME_RULE);
  if (o.member !== undefined && !members.includes(o.member)) throw invalid('id', o.member, `one of the members: ${members.join(', ')}`);
  const local = o.member !== undefined ? [o.member] : members;

  // The state must load back as itself (format 1 holds one string, snapshot(); format 2 parts
  // cut at part_chars, cut alike again here): a crafted file with recomputed hashes is refused.
  const partChars = h.part_chars ?? Infinity;
  let state = trial.snapshotData(partChars);
  let stateSha256 = stateSha256Of(state);
  if (stateSha256 !== h.state_sha256) throw new UserError('invalid_argument', `snapshot ${file} refused: the state does not load back as itself (state hash ${stateSha256}, header ${h.state_sha256}); nothing was restored`, 'file');
  // A restore makes a NEW cluster: the old one's address book (cluster mode only: seeded) (cluster id, addresses, each id
  // bound to an old member's incarnation, tombstones) would make the new members refuse their
  // own fresh identities and dial the old addresses. The new first leader seeds a new book.
  if (trial.book.clusterId !== null) {
    trial.book = new MemberBook();
    state = trial.snapshotData(partChars);
    stateSha256 = stateSha256Of(state);
  }
  const dataDir = resolveDataDir(o.dataDir);
  // The directory's owner (a daemon, a serve, a node) would not see a swarm added behind its back.
  let lock: DataDirLock;
  try {
    lock = DataDirLock.acquire(dataDir);
  } catch (e) {
    if (!(e instanceof UserError) || e.code !== 'locked') throw e;
    throw new UserError('locked', `${e.message.replace(/; stop it, talk to it.*$/, '')}; a restore needs the directory to itself (the process would not see the new swarm): stop it first (concord daemon stop --data-dir ${dataDir}) or restore into another directory`, 'data_dir');
  }
  try {
    const swarmsDir = path.join(dataDir, 'swarms');
    const target = path.join(swarmsDir, name);
    if (fs.existsSync(target)) {
      throw new UserError('conflict', `swarm ${name} already exists in ${dataDir} (${target}); restore under another name (--swarm NAME) or into another data directory`, 'swarm');
    }
    // Outside swarms/: the coordinator never mistakes a staging directory for a swarm.
    const stagingRoot = path.join(dataDir, 'restore-staging');
    mkdirDurable(stagingRoot);
    const staging = path.join(stagingRoot, `${name}.${randomBytes(6).toString('hex')}`);
    fs.mkdirSync(staging, { mode: 0o700 });
    try {
      const entries: Record<string, MemberEntry> = {};
      const out: RestoreResult['members'] = [];
      const reg = new SwarmRegistry(staging, {
        name,
        topology: 'mesh',
        consensus: 'raft',
        max_agents: Math.max(h.max_agents ?? members.length, members.length),
        created_at: new Date().toISOString(),
        members: entries,
      });
      for (const id of members) {
        if (!local.includes(id)) {
          entries[id] = { bootstrap: false, state: 'active' };
          out.push({ agent_id: id, incarnation: null, file: null });
          continue;
        }
        const incarnation = randomUUID();
        writeMemberFile(reg.memberFile(id), id, incarnation, members, h.index, h.term, state, stateSha256);
        entries[id] = { bootstrap: false, state: 'active', incarnation };
        out.push({ agent_id: id, incarnation, file: path.join(target, path.basename(reg.memberFile(id))) });
        o.afterMemberFile?.(id);
      }
      reg.save();
      mkdirDurable(swarmsDir);
      fs.renameSync(staging, target);
      fsyncDirectory(swarmsDir);
      fsyncDirectory(stagingRoot);
      return { swarm: name, data_dir: dataDir, swarm_dir: target, from_swarm: h.swarm, index: h.index, term: h.term, state_sha256: stateSha256, ...(stateSha256 !== h.state_sha256 ? { note: 'the old cluster\'s address book was dropped (a new cluster seeds its own), so the state hash differs from the file\'s' } : {}), members: out };
    } catch (e) {
      fs.rmSync(staging, { recursive: true, force: true });
      throw e;
    } finally {
      try {
        fs.rmdirSync(stagingRoot); // only when empty
      } catch {
        // another restore's leftovers (a killed process): harmless, never read
      }
    }
  } finally {
    lock.release();
  }
}

/**
 * Read and verify `file`, then load its state into `trial` (a trial load, before anything is
 * written; the check's parse of a large state is reused). Only the header is returned: the
 * file's copy of the state is garbage once loaded.
 */
function loadFile(file: string, trial: CoordinationMachine): SnapshotHeader {
  const snap = readSnapshotFile(file, { checker: trial });
  try {
    trial.restore(snap.state);
  } catch (e) {
    throw new UserError('invalid_argument', `snapshot ${file} refused: the state cannot be loaded (${(e as Error).message}); nothing was restored`, 'file');
  }
  return snap.header;
}

/**
 * One member's new database: its identity, then the snapshot as its whole log (every member a
 * voter, no vote cast, commit at the snapshot), read back and checked against the state hash.
 */
function writeMemberFile(file: string, id: string, incarnation: string, voters: string[], index: number, term: number, state: SnapshotData, stateSha: string): void {
  const storage = SqliteStorage.open(file, { durability: 'full' });
  try {
    storage.setIdentity({ member: id, incarnation });
    storage.save({
      snapshot: { metadata: { index, term, confState: { voters, learners: [] } }, data: state },
      entries: [],
      hardState: { term, vote: null, commit: index },
    });
    // The stored parts hashed as they were written: the trial load showed these load back as
    // themselves, so equal bytes are an equal state (loading and serializing them again per
    // member took ~10 s of a 600 M-character restore).
    const back = storage.load({ voters: [], learners: [] });
    const got = stateSha256Of(back.snapshotData ?? '');
    if (back.snapshot?.index !== index || got !== stateSha) {
      throw new Error(`restore: ${file} read back does not match the snapshot (index ${back.snapshot?.index}, state ${got})`);
    }
  } finally {
    storage.close();
  }
  for (const f of [file, `${file}-wal`, `${file}-shm`]) if (fs.existsSync(f)) fs.chmodSync(f, 0o600);
}
