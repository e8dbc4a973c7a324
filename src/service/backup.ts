// Backups of a swarm's replicated state: taken through the leader, at one log index, after a
// ReadIndex round (so the state holds at least everything committed when the save started).

import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { DEFAULT_DISK_RESERVE_BYTES } from '../host/node-host.js';
import { UserError, invalid } from '../util/errors.js';
import { SNAPSHOT_FORMAT_VERSION, countsOf, encodeSnapshotFile, refuseExisting, writeFileAtomic, type SnapshotCounts, type SnapshotHeader } from './snapshot-file.js';
import { diskReserveFromEnv, type Swarm } from '../swarm/swarm.js';

export interface TakenSnapshot {
  header: SnapshotHeader;
  bytes: Buffer;
  sha256: string;
}

/** What a save reports: every figure read from the state it wrote. */
export interface SnapshotSummary extends Record<string, unknown> {
  swarm: string;
  path: string | null;
  sha256: string;
  state_sha256: string;
  index: number;
  term: number;
  bytes: number;
  counts: SnapshotCounts;
  members: { voters: string[]; learners: string[] };
  leader: string;
  created_at: string;
}

/**
 * The leader's state at its applied index, copied synchronously right after a ReadIndex round
 * confirmed it still leads and has applied everything committed before the round began. One
 * JSON string of one replica at one index: nothing is applied while it is copied.
 */
export async function takeSnapshot(swarm: Swarm): Promise<TakenSnapshot> {
  const taken = await swarm.proposer.read((leaderId) => {
    const m = swarm.machines.get(leaderId);
    if (!m) throw new UserError('unavailable', `leader ${leaderId} has no replica in this process`);
    const host = swarm.cluster.host(leaderId);
    const conf = host.core.confState();
    return {
      state: m.snapshot(),
      leader: leaderId,
      leaderTerm: host.core.term,
      index: m.appliedIndex,
      term: m.appliedTerm,
      members: { voters: [...conf.voters].sort(), learners: [...conf.learners].sort() },
      counts: countsOf(m),
    };
  });
  // Hashed once, from the copied string (stateHash() would serialize the state again).
  const header: SnapshotHeader = {
    format_version: SNAPSHOT_FORMAT_VERSION,
    swarm: swarm.name,
    index: taken.index,
    term: taken.term,
    leader: taken.leader,
    leader_term: taken.leaderTerm,
    members: taken.members,
    max_agents: swarm.data.max_agents,
    counts: taken.counts,
    state_sha256: createHash('sha256').update(taken.state).digest('hex'),
    state_bytes: Buffer.byteLength(taken.state, 'utf8'),
    created_at: new Date().toISOString(),
  };
  const { bytes, sha256 } = encodeSnapshotFile(header, taken.state);
  return { header, bytes, sha256 };
}

export function summarize(t: TakenSnapshot, file: string | null): SnapshotSummary {
  const h = t.header;
  return {
    swarm: h.swarm,
    path: file,
    sha256: t.sha256,
    state_sha256: h.state_sha256,
    index: h.index,
    term: h.term,
    bytes: t.bytes.length,
    counts: h.counts,
    members: h.members,
    leader: h.leader,
    created_at: h.created_at,
  };
}

/** Take a snapshot and write it to `file` (whole or not at all). */
export async function saveSnapshotFile(swarm: Swarm, file: string, o: { overwrite: boolean }): Promise<SnapshotSummary> {
  if (!o.overwrite) refuseExisting(file);
  const t = await takeSnapshot(swarm);
  writeFileAtomic(file, t.bytes, o);
  return summarize(t, path.resolve(file));
}

/** Where swarm_snapshot writes: a directory of the data directory, never elsewhere. */
export function backupsDir(dataDir: string): string {
  return path.join(dataDir, 'backups');
}

const BACKUP_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * The file a tool call may write: a plain file name inside `<data dir>/backups` (no directory
 * part, no "..", no absolute path), so a client cannot place or overwrite a file anywhere
 * else. The directory is created owner-only and must not be a symbolic link. Returns the
 * absolute path; `name` undefined picks `<swarm>-<time>.snapshot`.
 */
export function backupTarget(dataDir: string, swarm: string, name: string | undefined): string {
  if (name !== undefined && (!BACKUP_NAME_RE.test(name) || name.includes('..'))) {
    throw invalid('path', name, `a file name (letters, digits, ".", "_", "-"; 1-128 characters; no "/" or "..") inside ${backupsDir(dataDir)}; swarm_snapshot writes only there`);
  }
  const dir = backupsDir(dataDir);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = fs.lstatSync(dir);
  if (!st.isDirectory() || st.isSymbolicLink()) throw new UserError('conflict', `${dir} is not a plain directory (a symbolic link?); swarm_snapshot writes only into a real backups directory`, 'path');
  const file = name ?? `${swarm}-${new Date().toISOString().replace(/[:.]/g, '-')}.snapshot`;
  const full = path.join(dir, file);
  // Belt and braces: the name rules above already keep it inside.
  if (path.dirname(full) !== dir) throw invalid('path', name, `a file name inside ${dir}`);
  return full;
}

/**
 * A backup written by a tool shares the disk of the members' logs: refused (disk_full) when
 * it would leave less than the members' reserve free (CONCORD_DISK_RESERVE_MB, default
 * 64 MiB), so backups cannot stop the swarm's writes.
 */
export function refuseLowSpace(file: string, bytes: number): void {
  const reserve = diskReserveFromEnv() ?? DEFAULT_DISK_RESERVE_BYTES;
  let free: number;
  try {
    const st = fs.statfsSync(path.dirname(file));
    free = Number(st.bavail) * Number(st.bsize);
  } catch {
    return; // unknown: the write itself reports a real failure
  }
  if (free - bytes < reserve) {
    throw new UserError('disk_full', `${file}: ${bytes} bytes would leave ${Math.max(0, free - bytes)} bytes free on its filesystem, under the ${reserve}-byte reserve the swarm's logs need (CONCORD_DISK_RESERVE_MB); free space or remove old backups`, 'path');
  }
}
