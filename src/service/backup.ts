// Backups of a swarm's replicated state: taken through the leader, at one log index, after a
// ReadIndex round (so the state holds at least everything committed when the save started).

import fs from 'node:fs';
import path from 'node:path';
import { DEFAULT_DISK_RESERVE_BYTES } from '../host/node-host.js';
import type { CoordinationMachine } from '../machine/coordination-machine.js';
import { snapshotPartChars } from '../machine/snapshot-parts.js';
import type { SnapshotData } from '../raft/types.js';
import { UserError, invalid } from '../util/errors.js';
import { SNAPSHOT_FORMAT_VERSION, countsOf, describePartsSteps, encodeSnapshotFile, fileBytes, type PartsDescription, type SnapshotCounts, type SnapshotHeader } from './snapshot-file.js';
import { refuseExisting, writeSnapshotFile } from './snapshot-write.js';
import { diskReserveFromEnv, type Swarm } from '../swarm/swarm.js';

export interface TakenSnapshot {
  header: SnapshotHeader;
  /** The state: CoordinationMachine.snapshotData() at header.index (a string or its parts). */
  state: SnapshotData;
  /** Size of the file this snapshot makes (computed from the parts' sizes). */
  fileBytes: number;
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
  parts: number;
  counts: SnapshotCounts;
  members: { voters: string[]; learners: string[] };
  leader: string;
  created_at: string;
}

/**
 * Largest part of a backup (CONCORD_SNAPSHOT_PART_CHARS forces smaller). Smaller than a
 * member's 8 Mi: snapshotSteps ends a state that fits in one part with one synchronous
 * snapshot() call, which held the loop 0.5 s for 37 M characters (100,000 tasks).
 */
export const BACKUP_PART_CHARS = 4 << 20;

/** Times a copy is started again when the leader's state changed under it (see takeSnapshot). */
const COPY_ATTEMPTS = 3;

/** Let the event loop run (timers, I/O, the members' messages) between steps of a copy. */
function nextTurn(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

/**
 * The leader's state at its applied index, copied right after a ReadIndex round confirmed it
 * still leads and has applied everything committed before the round began. A state larger
 * than one slice of CoordinationMachine.snapshotSteps is copied over several event-loop turns
 * with the leader's applies held (as a member does for a follower's snapshot), so heartbeats,
 * appends and other calls go on meanwhile; nothing is applied until the copy is done. Then
 * the parts are hashed, a 4 Mi-character chunk per turn (the applies no longer held).
 */
export async function takeSnapshot(swarm: Swarm): Promise<TakenSnapshot> {
  const partChars = Math.min(snapshotPartChars(), BACKUP_PART_CHARS);
  let taken: Awaited<ReturnType<typeof copyState>> | null = null;
  for (let attempt = 1; taken === null; attempt++) {
    taken = await copyState(swarm, partChars, attempt === COPY_ATTEMPTS);
  }
  const steps = describePartsSteps(taken.state);
  let step: IteratorResult<void, PartsDescription>;
  while (!(step = steps.next()).done) await nextTurn();
  const d = step.value;
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
    state_sha256: d.state_sha256,
    state_bytes: d.state_bytes,
    part_chars: partChars,
    parts: d.parts,
    created_at: new Date().toISOString(),
  };
  return { header, state: taken.state, fileBytes: fileBytes(header) };
}

/**
 * One copy of the leader's state at one index, or null when the state changed while a
 * stepped copy ran (its applies were released by someone else: the member's own stepped
 * snapshot for a follower ends by releasing them; a restart or a snapshot install replaced
 * the state): the caller starts again with a new ReadIndex round. `last`: refuse instead.
 */
async function copyState(swarm: Swarm, partChars: number, last: boolean) {
  const r = await swarm.proposer.read((leaderId) => {
    const m = swarm.machines.get(leaderId);
    if (!m) throw new UserError('unavailable', `leader ${leaderId} has no replica in this process`);
    const host = swarm.cluster.host(leaderId);
    const conf = host.core.confState();
    const at = {
      leader: leaderId,
      leaderTerm: host.core.term,
      index: m.appliedIndex,
      term: m.appliedTerm,
      members: { voters: [...conf.voters].sort(), learners: [...conf.learners].sort() },
      counts: countsOf(m),
    };
    const steps = m.snapshotSteps(partChars);
    const first = steps.next();
    // Not done in one slice: hold the applies now, in the same turn as the read's answer.
    const release = first.done ? () => {} : host.core.holdApply();
    return { ...at, m, core: host.core, steps, first, release };
  });
  const base = { leader: r.leader, leaderTerm: r.leaderTerm, index: r.index, term: r.term, members: r.members, counts: r.counts };
  if (r.first.done) return { ...base, state: r.first.value };
  const same = (): boolean => swarm.machines.get(r.leader) === r.m && sameIndex(r.m, r.index, r.term);
  let state: SnapshotData | null = null;
  try {
    for (;;) {
      await nextTurn();
      if (!same()) break;
      const s = r.steps.next();
      if (s.done) {
        state = s.value;
        break;
      }
    }
  } finally {
    r.release();
  }
  if (state !== null && same()) return { ...base, state };
  if (!last) return null;
  throw new UserError('unavailable', `the state of leader ${r.leader} changed while it was being copied (${COPY_ATTEMPTS} attempts: it was at index ${r.index}, now ${r.m.appliedIndex}; a restart or a snapshot install moved it); nothing was written; try again`);
}

function sameIndex(m: CoordinationMachine, index: number, term: number): boolean {
  return m.appliedIndex === index && m.appliedTerm === term;
}

export function summarize(t: TakenSnapshot, file: string | null, written: { sha256: string; bytes: number }): SnapshotSummary {
  const h = t.header;
  return {
    swarm: h.swarm,
    path: file,
    sha256: written.sha256,
    state_sha256: h.state_sha256,
    index: h.index,
    term: h.term,
    bytes: written.bytes,
    parts: h.parts?.length ?? 1,
    counts: h.counts,
    members: h.members,
    leader: h.leader,
    created_at: h.created_at,
  };
}

/** The whole file in memory, for a result returned inline (the caller bounds fileBytes first). */
export function snapshotBytes(t: TakenSnapshot): { bytes: Buffer; sha256: string } {
  return encodeSnapshotFile(t.header, t.state);
}

/** Take a snapshot and write it to `file` part by part (whole or not at all). */
export async function saveSnapshotFile(swarm: Swarm, file: string, o: { overwrite: boolean }): Promise<SnapshotSummary> {
  if (!o.overwrite) refuseExisting(file);
  const t = await takeSnapshot(swarm);
  const written = await writeSnapshotFile(file, t.header, t.state, o);
  return summarize(t, path.resolve(file), written);
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
