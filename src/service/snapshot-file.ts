// The backup file of a swarm's replicated state (`concord snapshot save`, swarm_snapshot):
//
//   CONCORD-SNAPSHOT 1\n            format line: magic and format version
//   {header JSON}\n                 swarm, index, term, members, counts, state_sha256, ...
//   {state JSON}\n                  CoordinationMachine.snapshot() at `index`, byte for byte
//   sha256 <64 hex>\n               SHA-256 of every byte above this line
//
// The trailing hash is checked before anything in the file is trusted, so a flipped byte
// anywhere (header or state) or a truncated file is refused, naming the file and the check.

import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { configProblem } from '../machine/config-bounds.js';
import { CoordinationMachine } from '../machine/coordination-machine.js';
import { isSystemKey } from '../machine/memory-store.js';
import { fsyncDirectory } from '../storage/sync-fs.js';
import { UserError } from '../util/errors.js';

export const SNAPSHOT_FORMAT_VERSION = 1;
const MAGIC = 'CONCORD-SNAPSHOT';
/** `sha256 ` + 64 hex digits + newline. */
const TRAILER_BYTES = 7 + 64 + 1;
/** Member ids become file names (`<id>.db`) on restore: the agent name rule, nothing else. */
const MEMBER_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** Largest swarm (swarm_init max_agents). */
const MAX_MEMBERS = 15;

/** Measured from the state at `index` (never estimated). */
export interface SnapshotCounts {
  orchestrations: number;
  tasks: number;
  tasks_pending: number;
  tasks_assigned: number;
  tasks_completed: number;
  tasks_failed: number;
  /** User keys (the system keys Concord maintains are counted apart). */
  memory_keys: number;
  system_keys: number;
  /** Agents registered and not removed. */
  agents: number;
  client_sessions: number;
  elections_recorded: number;
}

export interface SnapshotHeader {
  format_version: number;
  swarm: string;
  /** Log index the state is at (the leader's applied index, at least its commit index when
   * the save started: a ReadIndex round confirmed it before the state was copied). */
  index: number;
  /** Term of the entry at `index`. */
  term: number;
  /** The member that served the save, and its term then. */
  leader: string;
  leader_term: number;
  /** The Raft configuration on that leader. */
  members: { voters: string[]; learners: string[] };
  max_agents: number;
  counts: SnapshotCounts;
  /** SHA-256 of the state JSON: CoordinationMachine.stateHash() of any replica at `index`. */
  state_sha256: string;
  state_bytes: number;
  created_at: string;
}

export interface DecodedSnapshot {
  header: SnapshotHeader;
  /** The state JSON (CoordinationMachine.snapshot()). */
  state: string;
  /** SHA-256 of the whole file but its last line (the recorded and verified hash). */
  sha256: string;
  bytes: number;
}

export function countsOf(m: CoordinationMachine): SnapshotCounts {
  const c = { pending: 0, assigned: 0, completed: 0, failed: 0 };
  for (const t of m.tasks.tasks.values()) c[t.status]++;
  let system = 0;
  for (const r of m.memory.values()) if (isSystemKey(r.namespace, r.key)) system++;
  return {
    orchestrations: m.tasks.orchs.size,
    tasks: m.tasks.tasks.size,
    tasks_pending: c.pending,
    tasks_assigned: c.assigned,
    tasks_completed: c.completed,
    tasks_failed: c.failed,
    memory_keys: m.memory.size - system,
    system_keys: system,
    agents: [...m.agents.values()].filter((a) => a.removed_at === null).length,
    client_sessions: m.sessions.size,
    elections_recorded: m.elections.length,
  };
}

/** The file's bytes for `state` (CoordinationMachine.snapshot()) described by `header`. */
export function encodeSnapshotFile(header: SnapshotHeader, state: string): { bytes: Buffer; sha256: string } {
  const head = Buffer.from(`${MAGIC} ${SNAPSHOT_FORMAT_VERSION}\n${JSON.stringify(header)}\n${state}\n`, 'utf8');
  const sha256 = createHash('sha256').update(head).digest('hex');
  return { bytes: Buffer.concat([head, Buffer.from(`sha256 ${sha256}\n`, 'utf8')]), sha256 };
}

function refused(file: string, what: string): UserError {
  return new UserError('invalid_argument', `snapshot ${file} refused: ${what}; nothing was restored or written from it`, 'file');
}

/**
 * Parse and verify a snapshot file's bytes: format line, trailing hash, header, state length,
 * state hash, and that the state is one the machine can restore. Throws a UserError naming
 * `file` and the check that failed.
 */
export function decodeSnapshotFile(bytes: Buffer, file: string): DecodedSnapshot {
  const nl = bytes.indexOf(0x0a);
  const first = bytes.subarray(0, nl < 0 ? Math.min(bytes.length, 64) : Math.min(nl, 64)).toString('utf8');
  if (!first.startsWith(`${MAGIC} `)) {
    if (bytes.length === 0) throw refused(file, 'the file is empty');
    if (nl < 0 && `${MAGIC} ${SNAPSHOT_FORMAT_VERSION}`.startsWith(first)) throw refused(file, `truncated: the file ends inside its format line (${bytes.length} bytes)`);
    throw refused(file, `not a Concord snapshot file (its first line is ${JSON.stringify(first.slice(0, 40))}, expected "${MAGIC} ${SNAPSHOT_FORMAT_VERSION}")`);
  }
  if (nl < 0) throw refused(file, `truncated: the file ends inside its format line (${bytes.length} bytes)`);
  const version = first.slice(MAGIC.length + 1);
  if (version !== String(SNAPSHOT_FORMAT_VERSION)) {
    throw refused(file, `unknown format version ${JSON.stringify(version)} (this Concord reads version ${SNAPSHOT_FORMAT_VERSION})`);
  }
  const trailer = bytes.length >= nl + 1 + TRAILER_BYTES ? bytes.subarray(bytes.length - TRAILER_BYTES).toString('latin1') : '';
  const m = /^sha256 ([0-9a-f]{64})\n$/.exec(trailer);
  if (!m) throw refused(file, `truncated or damaged: it does not end with its "sha256 <hex>" line (${bytes.length} bytes)`);
  const covered = bytes.subarray(0, bytes.length - TRAILER_BYTES);
  const sha256 = createHash('sha256').update(covered).digest('hex');
  if (sha256 !== m[1]) throw refused(file, `hash mismatch: the file records sha256 ${m[1]} but its contents hash to ${sha256} (changed or damaged after it was written)`);
  // From here on the bytes are the ones written; the remaining checks catch a file written
  // by something other than this format's writer.
  const headEnd = covered.indexOf(0x0a, nl + 1);
  if (headEnd < 0) throw refused(file, 'truncated header (no end of header line)');
  let header: SnapshotHeader;
  try {
    header = JSON.parse(covered.subarray(nl + 1, headEnd).toString('utf8')) as SnapshotHeader;
  } catch (e) {
    throw refused(file, `damaged header (${(e as Error).message})`);
  }
  const problem = headerProblem(header);
  if (problem) throw refused(file, `damaged header: ${problem}`);
  const stateBuf = covered.subarray(headEnd + 1, covered.length - 1);
  if (covered[covered.length - 1] !== 0x0a || stateBuf.length !== header.state_bytes) {
    throw refused(file, `truncated state: the header says ${header.state_bytes} bytes, the file holds ${stateBuf.length}`);
  }
  const stateSha = createHash('sha256').update(stateBuf).digest('hex');
  if (stateSha !== header.state_sha256) throw refused(file, `state hash mismatch: header ${header.state_sha256}, state ${stateSha}`);
  const state = stateBuf.toString('utf8');
  const bad = new CoordinationMachine().checkSnapshot(state) ?? stateProblem(state, header);
  if (bad) throw refused(file, `the state cannot be restored: ${bad}`);
  return { header, state, sha256, bytes: bytes.length };
}

function headerProblem(h: SnapshotHeader): string | null {
  if (typeof h !== 'object' || h === null || Array.isArray(h)) return 'not a JSON object';
  if (h.format_version !== SNAPSHOT_FORMAT_VERSION) return `format_version=${JSON.stringify(h.format_version)}, expected ${SNAPSHOT_FORMAT_VERSION}`;
  const posInt = (v: unknown) => Number.isInteger(v) && (v as number) >= 0;
  if (typeof h.swarm !== 'string' || h.swarm.length === 0) return 'swarm missing';
  if (!posInt(h.index) || !posInt(h.term) || !posInt(h.state_bytes)) return 'index, term or state_bytes not a non-negative integer';
  if (typeof h.state_sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(h.state_sha256)) return 'state_sha256 missing';
  const ids = (x: unknown) => Array.isArray(x) && x.every((v) => typeof v === 'string');
  if (typeof h.members !== 'object' || h.members === null || !ids(h.members.voters) || !ids(h.members.learners)) return 'members missing';
  // The hash is no authentication (anyone can recompute it): member ids name files on restore.
  const all = [...h.members.voters, ...h.members.learners];
  const badId = all.find((id) => !MEMBER_ID_RE.test(id));
  if (badId !== undefined) return `member id ${JSON.stringify(badId.slice(0, 80))} is not valid (accepted: letters, digits, ".", "_" or "-", 1-64 characters, starting with a letter or digit)`;
  if (new Set(all).size !== all.length) return 'a member is listed twice';
  if (all.length > MAX_MEMBERS) return `${all.length} members (accepted: at most ${MAX_MEMBERS})`;
  if (!Number.isInteger(h.max_agents) || h.max_agents < 1 || h.max_agents > MAX_MEMBERS) return `max_agents=${JSON.stringify(h.max_agents)} (accepted: an integer 1..${MAX_MEMBERS})`;
  return null;
}

/**
 * What restore would load as is, checked: the swarm config must be one consensus_config could
 * have committed, the log clock a time, and the state at the header's index and term.
 */
function stateProblem(state: string, h: SnapshotHeader): string | null {
  const s = JSON.parse(state) as { config: Record<string, unknown>; clock: unknown; appliedIndex: unknown; appliedTerm: unknown };
  if (typeof s.clock !== 'number' || !Number.isFinite(s.clock) || s.clock < 0) return `clock=${JSON.stringify(s.clock)} (accepted: a time in ms)`;
  if (s.appliedIndex !== h.index || s.appliedTerm !== h.term) {
    return `the state is at index ${JSON.stringify(s.appliedIndex)} term ${JSON.stringify(s.appliedTerm)}, the header says index ${h.index} term ${h.term}`;
  }
  const config = s.config;
  const base = new CoordinationMachine().config;
  const missing = Object.keys(base).find((k) => !(k in config));
  if (missing !== undefined) return `config.${missing} missing`;
  const p = configProblem(base, config);
  return p ? `config.${p.field}=${JSON.stringify(p.value)} (accepted: ${p.accepted})` : null;
}

/** Read and verify a snapshot file. */
export function readSnapshotFile(file: string): DecodedSnapshot {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UserError('not_found', `snapshot file ${file} does not exist`, 'file');
    if (code === 'EISDIR') throw new UserError('invalid_argument', `snapshot file ${file} is a directory`, 'file');
    throw new UserError('invalid_argument', `snapshot file ${file} cannot be read: ${(e as Error).message}`, 'file');
  }
  return decodeSnapshotFile(bytes, file);
}

/**
 * Write `bytes` to `file` whole or not at all: a temporary file in the same directory, owner
 * only (the state holds every memory value), fsynced, then linked (no overwrite: fails if
 * `file` exists, atomically) or renamed (overwrite) into place, then the directory fsynced.
 */
export function writeFileAtomic(file: string, bytes: Buffer, o: { overwrite: boolean }): void {
  const target = path.resolve(file);
  const dir = path.dirname(target);
  if (!fs.existsSync(dir)) throw new UserError('not_found', `cannot write ${file}: directory ${dir} does not exist`, 'file');
  if (!o.overwrite) refuseExisting(file);
  const tmp = path.join(dir, `.${path.basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = fs.openSync(tmp, 'wx', 0o600);
  try {
    try {
      fs.writeFileSync(fd, bytes);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    if (o.overwrite) fs.renameSync(tmp, target);
    else {
      try {
        fs.linkSync(tmp, target);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EEXIST') throw existsError(file);
        if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EXDEV') throw e;
        // A filesystem without hard links: checked above, under the same user's control.
        fs.renameSync(tmp, target);
      }
    }
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  fsyncDirectory(dir);
}

/** Fail early (before a snapshot is taken) when `file` exists and may not be replaced. */
export function refuseExisting(file: string): void {
  let exists = false;
  try {
    fs.lstatSync(file);
    exists = true;
  } catch {
    // absent (or unreadable: the write reports that)
  }
  if (exists) throw existsError(file);
}

function existsError(file: string): UserError {
  return new UserError('conflict', `${file} already exists; choose another file or pass overwrite (--overwrite) to replace it`, 'file');
}
