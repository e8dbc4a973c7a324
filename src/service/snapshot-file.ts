// The backup file of a swarm's replicated state (`concord snapshot save`, swarm_snapshot).
// Format 2 holds the state in parts, so a state past V8's string limit (~512 Mi characters)
// is never one string, written and read part by part:
//
//   CONCORD-SNAPSHOT 2\n            format line: magic and format version
//   {header JSON}\n                 swarm, index, term, members, counts, part_chars,
//                                   parts: [{bytes, sha256}] (one per part), state_sha256, ...
//   {part 0}\n                      CoordinationMachine.snapshotData() at `index`, part by part,
//   ...                             byte for byte (JSON: a part holds no raw newline)
//   {part N-1}\n
//   sha256 <64 hex>\n               SHA-256 of every byte above this line
//
// A state that fits in one part is one part holding CoordinationMachine.snapshot().
// Format 1 (still read) is the same with the state as one line and no `parts`.
// The trailing hash is checked before anything in the file is trusted, then every part's own
// hash as it is read, so a flipped byte anywhere or a truncated file is refused, naming the
// file and the check.

import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { configProblem } from '../machine/config-bounds.js';
import { CoordinationMachine } from '../machine/coordination-machine.js';
import { isSystemKey } from '../machine/memory-store.js';
import type { SnapshotData } from '../raft/types.js';
import { UserError } from '../util/errors.js';

export const SNAPSHOT_FORMAT_VERSION = 2;
/** Versions this code reads (1: the state as one string). */
const READ_VERSIONS = [1, 2];
const MAGIC = 'CONCORD-SNAPSHOT';
/** `sha256 ` + 64 hex digits + newline. */
const TRAILER_BYTES = 7 + 64 + 1;
/** A header line past this is no header of ours (a part entry is ~90 bytes). */
const MAX_HEADER_BYTES = 64 << 20;
/** Bytes hashed per read while checking the whole file. */
const READ_CHUNK_BYTES = 16 << 20;
/** Member ids become file names (`<id>.db`) on restore: the agent name rule, nothing else. */
const MEMBER_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** Largest swarm (swarm_init max_agents). */
const MAX_MEMBERS = 15;
const HEX64 = /^[0-9a-f]{64}$/;

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

/** One part of the state as stored: its UTF-8 bytes (without the newline) and their SHA-256. */
export interface SnapshotPartInfo {
  bytes: number;
  sha256: string;
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
  /** SHA-256 of the parts' bytes one after the other: for a one-part state, that of
   * CoordinationMachine.snapshot(), i.e. stateHash() of any replica at `index`. */
  state_sha256: string;
  /** UTF-8 bytes of all parts. */
  state_bytes: number;
  /** Format 2: the part size the state was cut with (snapshotData's maxPartChars; restore
   * serializes the loaded state again with it and must get the same hash). */
  part_chars?: number;
  /** Format 2: each part's size and hash, in file order. */
  parts?: SnapshotPartInfo[];
  created_at: string;
}

export interface DecodedSnapshot {
  header: SnapshotHeader;
  /** The state: one string (CoordinationMachine.snapshot()) or its parts (snapshotData()). */
  state: SnapshotData;
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

/** The state's parts (one for a single string). */
export function partsOf(d: SnapshotData): readonly string[] {
  return typeof d === 'string' ? [d] : d;
}

/** The parts as SnapshotData: a single part is the string itself. */
function dataOf(parts: string[]): SnapshotData {
  return parts.length === 1 ? parts[0]! : parts;
}

/** SHA-256 of the parts one after the other (a one-part state: stateHash()). */
export function stateSha256(d: SnapshotData): string {
  const h = createHash('sha256');
  for (const p of partsOf(d)) h.update(p);
  return h.digest('hex');
}

/** The header's fields describing `parts`: each part's bytes and hash, the state's. */
export interface PartsDescription {
  parts: SnapshotPartInfo[];
  state_sha256: string;
  state_bytes: number;
}

/** Characters encoded per step when a part is hashed or written (a part is up to 64 Mi). */
export const ENCODE_CHUNK_CHARS = 4 << 20;

/**
 * A part's UTF-8 bytes in chunks of about `chunkChars` characters, cut between characters
 * (never inside a surrogate pair, whose halves would each encode as U+FFFD): the chunks'
 * bytes one after the other are Buffer.from(part) exactly.
 */
export function* utf8Chunks(part: string, chunkChars = ENCODE_CHUNK_CHARS): Generator<Buffer> {
  for (let at = 0; at < part.length; ) {
    let end = Math.min(part.length, at + chunkChars);
    const c = part.charCodeAt(end - 1);
    // A pair's high half last: end before it, or after the pair when it is the only character.
    if (end < part.length && c >= 0xd800 && c <= 0xdbff) end += end - 1 > at ? -1 : 1;
    yield Buffer.from(part.slice(at, end), 'utf8');
    at = end;
  }
}

/**
 * describeParts a chunk per call (ENCODE_CHUNK_CHARS characters encoded and hashed), so a
 * caller can yield between chunks: a 64 Mi-character part at once held the loop ~1 s.
 */
export function* describePartsSteps(d: SnapshotData): Generator<void, PartsDescription> {
  const all = createHash('sha256');
  const parts: SnapshotPartInfo[] = [];
  let bytes = 0;
  for (const p of partsOf(d)) {
    const one = createHash('sha256');
    let n = 0;
    for (const b of utf8Chunks(p)) {
      all.update(b);
      one.update(b);
      n += b.length;
      yield;
    }
    parts.push({ bytes: n, sha256: one.digest('hex') });
    bytes += n;
  }
  return { parts, state_sha256: all.digest('hex'), state_bytes: bytes };
}

export function describeParts(d: SnapshotData): PartsDescription {
  const steps = describePartsSteps(d);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/** The format line and the header line. */
export function fileHead(header: SnapshotHeader): Buffer {
  return Buffer.from(`${MAGIC} ${header.format_version}\n${JSON.stringify(header)}\n`, 'utf8');
}

/** Size of the file for `header` (format 2), computed from its part sizes. */
export function fileBytes(header: SnapshotHeader): number {
  let n = fileHead(header).length + TRAILER_BYTES;
  for (const p of header.parts ?? []) n += p.bytes + 1;
  return n;
}

/** The trailing line for the SHA-256 of everything before it. */
export function trailerLine(sha256: string): Buffer {
  return Buffer.from(`sha256 ${sha256}\n`, 'utf8');
}

/**
 * The whole file in memory (format 2, or 1 when header.format_version is 1): for results
 * returned inline (bounded by the caller) and tests. Files are written part by part
 * (writeSnapshotFile).
 */
export function encodeSnapshotFile(header: SnapshotHeader, state: SnapshotData): { bytes: Buffer; sha256: string } {
  const chunks: Buffer[] = [fileHead(header)];
  for (const p of partsOf(state)) chunks.push(Buffer.from(`${p}\n`, 'utf8'));
  const body = Buffer.concat(chunks);
  const sha256 = createHash('sha256').update(body).digest('hex');
  return { bytes: Buffer.concat([body, trailerLine(sha256)]), sha256 };
}

/** What a file's bytes are read through: a file descriptor or a buffer, at offsets. */
interface ByteSource {
  size: number;
  /** Up to `len` bytes at `pos` (fewer only at the end of the source). */
  read(pos: number, len: number): Buffer;
}

function bufferSource(b: Buffer): ByteSource {
  return { size: b.length, read: (pos, len) => b.subarray(pos, Math.min(b.length, pos + len)) };
}

function fdSource(fd: number, size: number): ByteSource {
  return {
    size,
    read(pos, len) {
      const n = Math.max(0, Math.min(len, size - pos));
      const b = Buffer.allocUnsafe(n);
      let got = 0;
      while (got < n) {
        const r = fs.readSync(fd, b, got, n - got, pos + got);
        if (r === 0) break; // the file shrank under us: the checks below see the short read
        got += r;
      }
      return got === n ? b : b.subarray(0, got);
    },
  };
}

const FIX_DAMAGED = 'use another copy of the file, or take a new backup (concord snapshot save)';
/** Every hash matched, so the bytes are the ones written: by something else, or edited with the hashes recomputed. */
const FIX_FOREIGN = 'its hashes match, so it was written that way (edited, or not by concord snapshot save / swarm_snapshot): use the original file, or take a new backup';
const FIX_TRUNCATED = 'the copy is incomplete (an interrupted copy or transfer, or a full disk): copy it again from the original, or take a new backup (concord snapshot save)';

function refused(file: string, what: string, fix?: string): UserError {
  return new UserError('invalid_argument', `snapshot ${file} refused: ${what}; nothing was restored or written from it${fix ? `; ${fix}` : ''}`, 'file');
}

export interface DecodeOptions {
  /** Check the state's content too (what restore loads); default true. False: only that the
   * bytes are the ones written (every hash and the layout), and a format 2 state is not kept
   * (DecodedSnapshot.state is []). */
  content?: boolean;
  /** The machine that checks the state (checkSnapshot): restore() of the same parts on it
   * then takes the parse the check made instead of parsing a large state again. */
  checker?: CoordinationMachine;
}

/**
 * Parse and verify a snapshot file's bytes (format 1 or 2): format line, trailing hash,
 * header, each part's hash, the state hash, and that the state is one the machine can
 * restore. Throws a UserError naming `file` and the check that failed.
 */
export function decodeSnapshotFile(bytes: Buffer, file: string, o: DecodeOptions = {}): DecodedSnapshot {
  return decode(bufferSource(bytes), file, o);
}

/** Read and verify a snapshot file, part by part (no whole-file buffer for format 2). */
export function readSnapshotFile(file: string, o: DecodeOptions = {}): DecodedSnapshot {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    throw unreadable(file, e);
  }
  try {
    const st = fs.fstatSync(fd);
    if (st.isDirectory()) throw new UserError('invalid_argument', `snapshot file ${file} is a directory`, 'file');
    return decode(fdSource(fd, st.size), file, o);
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw unreadable(file, e);
  } finally {
    fs.closeSync(fd);
  }
}

function unreadable(file: string, e: unknown): UserError {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return new UserError('not_found', `snapshot file ${file} does not exist`, 'file');
  if (code === 'EISDIR') return new UserError('invalid_argument', `snapshot file ${file} is a directory`, 'file');
  return new UserError('invalid_argument', `snapshot file ${file} cannot be read: ${(e as Error).message}`, 'file');
}

function decode(src: ByteSource, file: string, o: DecodeOptions): DecodedSnapshot {
  const size = src.size;
  const start = src.read(0, Math.min(size, 64));
  const nl = start.indexOf(0x0a);
  const first = start.subarray(0, nl < 0 ? start.length : nl).toString('utf8');
  const expected = `${MAGIC} ${SNAPSHOT_FORMAT_VERSION}`;
  if (!first.startsWith(`${MAGIC} `)) {
    if (size === 0) throw refused(file, 'the file is empty', FIX_TRUNCATED);
    if (nl < 0 && expected.startsWith(first)) throw refused(file, `truncated: the file ends inside its format line (${size} bytes)`, FIX_TRUNCATED);
    throw refused(file, `not a Concord snapshot file (its first line is ${JSON.stringify(first.slice(0, 40))}, expected "${expected}")`);
  }
  if (nl < 0) throw refused(file, `truncated: the file ends inside its format line (${size} bytes)`, FIX_TRUNCATED);
  const version = first.slice(MAGIC.length + 1);
  if (!READ_VERSIONS.map(String).includes(version)) {
    throw refused(file, `unknown format version ${JSON.stringify(version)} (this Concord reads versions ${READ_VERSIONS.join(' and ')})`, 'restore it with the Concord version that wrote it');
  }
  if (version === '1') {
    // Format 1 was written from one string: its file fits in one buffer.
    return decodeV1(src.read(0, size), nl, file, o);
  }

  // 1. The whole file against its last line, before any of it is trusted.
  const trailer = size >= nl + 1 + TRAILER_BYTES ? src.read(size - TRAILER_BYTES, TRAILER_BYTES).toString('latin1') : '';
  const m = /^sha256 ([0-9a-f]{64})\n$/.exec(trailer);
  if (!m) throw refused(file, truncatedWhat(src, nl), FIX_TRUNCATED);
  const whole = createHash('sha256');
  for (let pos = 0; pos < size - TRAILER_BYTES; pos += READ_CHUNK_BYTES) {
    const b = src.read(pos, Math.min(READ_CHUNK_BYTES, size - TRAILER_BYTES - pos));
    if (b.length === 0) throw refused(file, `truncated: the file shrank to ${pos} bytes while it was read`, FIX_TRUNCATED);
    whole.update(b);
  }
  const sha256 = whole.digest('hex');
  const recorded = m[1]!;
  if (sha256 !== recorded) throw refused(file, `hash mismatch: the file records sha256 ${recorded} but its contents hash to ${sha256} (changed or damaged after it was written)`, FIX_DAMAGED);

  // 2. From here on the bytes are the ones written; the checks below catch a file written by
  // something other than this format's writer (and a file changed while it is read).
  const h = readHeader(src, nl, file);
  const problem = headerProblem(h.header, 2);
  if (problem) throw refused(file, `damaged header: ${problem}`, FIX_FOREIGN);
  const header = h.header;
  const infos = header.parts!;
  const want = fileBytes(header);
  if (want !== size) {
    throw refused(file, `the header lists ${infos.length} parts, ${header.state_bytes} state bytes in all, so the file should be ${want} bytes; it is ${size} bytes`, FIX_FOREIGN);
  }
  const state = createHash('sha256');
  const parts: string[] = [];
  let pos = h.end;
  for (let i = 0; i < infos.length; i++) {
    const info = infos[i]!;
    const b = src.read(pos, info.bytes + 1);
    if (b.length !== info.bytes + 1) throw refused(file, `truncated: part ${i} of ${infos.length} ends at byte ${pos + b.length}, the header says ${pos + info.bytes + 1}`, FIX_TRUNCATED);
    if (b[info.bytes] !== 0x0a) throw refused(file, `part ${i} of ${infos.length} does not end where the header says (byte ${pos + info.bytes})`, FIX_FOREIGN);
    const body = b.subarray(0, info.bytes);
    const got = createHash('sha256').update(body).digest('hex');
    if (got !== info.sha256) throw refused(file, `part ${i} of ${infos.length}: hash mismatch (header ${info.sha256}, part ${got})`, FIX_FOREIGN);
    state.update(body);
    if (o.content !== false) parts.push(body.toString('utf8'));
    pos += info.bytes + 1;
  }
  const stateSha = state.digest('hex');
  if (stateSha !== header.state_sha256) throw refused(file, `state hash mismatch: header ${header.state_sha256}, parts ${stateSha}`, FIX_FOREIGN);
  const data = dataOf(parts);
  if (o.content !== false) checkContent(data, header, file, o.checker);
  return { header, state: data, sha256, bytes: size };
}

/** Why a format 2 file without its hash line is refused: cut short (and by how much) or not ours. */
function truncatedWhat(src: ByteSource, nl: number): string {
  const generic = `truncated or damaged: it does not end with its "sha256 <hex>" line (${src.size} bytes)`;
  let header: SnapshotHeader;
  try {
    header = readHeader(src, nl, '').header;
  } catch {
    return generic;
  }
  if (headerProblem(header, 2) !== null) return generic;
  const want = fileBytes(header);
  return want > src.size ? `truncated: the file holds ${src.size} of the ${want} bytes its header lists (${header.parts!.length} parts)` : generic;
}

function readHeader(src: ByteSource, nl: number, file: string): { header: SnapshotHeader; end: number } {
  const from = nl + 1;
  const chunks: Buffer[] = [];
  let end = -1;
  for (let pos = from; end < 0 && pos < src.size && pos - from < MAX_HEADER_BYTES; ) {
    const b = src.read(pos, Math.min(1 << 20, src.size - pos));
    if (b.length === 0) break;
    const i = b.indexOf(0x0a);
    chunks.push(i < 0 ? b : b.subarray(0, i));
    if (i >= 0) end = pos + i + 1;
    pos += b.length;
  }
  if (end < 0) throw refused(file, 'truncated header (no end of header line)', FIX_TRUNCATED);
  try {
    return { header: JSON.parse(Buffer.concat(chunks).toString('utf8')) as SnapshotHeader, end };
  } catch (e) {
    throw refused(file, `damaged header (${(e as Error).message})`);
  }
}

/** Format 1: format line, header, the state as one line, hash line; `bytes` is the whole file. */
function decodeV1(bytes: Buffer, nl: number, file: string, o: DecodeOptions): DecodedSnapshot {
  const trailer = bytes.length >= nl + 1 + TRAILER_BYTES ? bytes.subarray(bytes.length - TRAILER_BYTES).toString('latin1') : '';
  const m = /^sha256 ([0-9a-f]{64})\n$/.exec(trailer);
  if (!m) throw refused(file, `truncated or damaged: it does not end with its "sha256 <hex>" line (${bytes.length} bytes)`, FIX_TRUNCATED);
  const covered = bytes.subarray(0, bytes.length - TRAILER_BYTES);
  const sha256 = createHash('sha256').update(covered).digest('hex');
  if (sha256 !== m[1]) throw refused(file, `hash mismatch: the file records sha256 ${m[1]} but its contents hash to ${sha256} (changed or damaged after it was written)`, FIX_DAMAGED);
  const headEnd = covered.indexOf(0x0a, nl + 1);
  if (headEnd < 0) throw refused(file, 'truncated header (no end of header line)', FIX_TRUNCATED);
  let header: SnapshotHeader;
  try {
    header = JSON.parse(covered.subarray(nl + 1, headEnd).toString('utf8')) as SnapshotHeader;
  } catch (e) {
    throw refused(file, `damaged header (${(e as Error).message})`);
  }
  const problem = headerProblem(header, 1);
  if (problem) throw refused(file, `damaged header: ${problem}`);
  const stateBuf = covered.subarray(headEnd + 1, covered.length - 1);
  if (covered[covered.length - 1] !== 0x0a || stateBuf.length !== header.state_bytes) {
    throw refused(file, `truncated state: the header says ${header.state_bytes} bytes, the file holds ${stateBuf.length}`, FIX_TRUNCATED);
  }
  const stateSha = createHash('sha256').update(stateBuf).digest('hex');
  if (stateSha !== header.state_sha256) throw refused(file, `state hash mismatch: header ${header.state_sha256}, state ${stateSha}`, FIX_DAMAGED);
  const state = stateBuf.toString('utf8');
  if (o.content !== false) checkContent(state, header, file, o.checker);
  return { header, state, sha256, bytes: bytes.length };
}

function checkContent(state: SnapshotData, header: SnapshotHeader, file: string, checker = new CoordinationMachine()): void {
  const bad = checker.checkSnapshot(state) ?? stateProblem(state, header);
  if (bad) throw refused(file, `the state cannot be restored: ${bad}`, FIX_FOREIGN);
}

function headerProblem(h: SnapshotHeader, version: number): string | null {
  if (typeof h !== 'object' || h === null || Array.isArray(h)) return 'not a JSON object';
  if (h.format_version !== version) return `format_version=${JSON.stringify(h.format_version)}, expected ${version} (the format line's)`;
  const posInt = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
  if (typeof h.swarm !== 'string' || h.swarm.length === 0) return 'swarm missing';
  if (!posInt(h.index) || !posInt(h.term) || !posInt(h.state_bytes)) return 'index, term or state_bytes not a non-negative integer';
  if (typeof h.state_sha256 !== 'string' || !HEX64.test(h.state_sha256)) return 'state_sha256 missing';
  const ids = (x: unknown) => Array.isArray(x) && x.every((v) => typeof v === 'string');
  if (typeof h.members !== 'object' || h.members === null || !ids(h.members.voters) || !ids(h.members.learners)) return 'members missing';
  // The hash is no authentication (anyone can recompute it): member ids name files on restore.
  const all = [...h.members.voters, ...h.members.learners];
  const badId = all.find((id) => !MEMBER_ID_RE.test(id));
  if (badId !== undefined) return `member id ${JSON.stringify(badId.slice(0, 80))} is not valid (accepted: letters, digits, ".", "_" or "-", 1-64 characters, starting with a letter or digit)`;
  if (new Set(all).size !== all.length) return 'a member is listed twice';
  if (all.length > MAX_MEMBERS) return `${all.length} members (accepted: at most ${MAX_MEMBERS})`;
  if (!Number.isInteger(h.max_agents) || h.max_agents < 1 || h.max_agents > MAX_MEMBERS) return `max_agents=${JSON.stringify(h.max_agents)} (accepted: an integer 1..${MAX_MEMBERS})`;
  if (version >= 2) {
    if (!posInt(h.part_chars) || (h.part_chars as number) < 1) return `part_chars=${JSON.stringify(h.part_chars)} (accepted: a positive integer)`;
    const ps = h.parts;
    if (!Array.isArray(ps) || ps.length === 0) return 'parts missing (accepted: a list of {bytes, sha256}, one per part)';
    let sum = 0;
    for (let i = 0; i < ps.length; i++) {
      const p = ps[i] as SnapshotPartInfo | null;
      if (typeof p !== 'object' || p === null || !posInt(p.bytes) || typeof p.sha256 !== 'string' || !HEX64.test(p.sha256)) return `parts[${i}] is not {bytes, sha256}`;
      sum += p.bytes;
    }
    if (sum !== h.state_bytes) return `the parts hold ${sum} bytes, state_bytes says ${h.state_bytes}`;
  }
  return null;
}

/**
 * What restore would load as is, checked: the swarm config must be one consensus_config could
 * have committed, the log clock a time, and the state at the header's index and term. These
 * fields are in a one-part state, or in part 0 (the meta part) of a larger one.
 */
function stateProblem(state: SnapshotData, h: SnapshotHeader): string | null {
  const s = JSON.parse(partsOf(state)[0]!) as { config: Record<string, unknown>; clock: unknown; appliedIndex: unknown; appliedTerm: unknown };
  if (typeof s.clock !== 'number' || !Number.isFinite(s.clock) || s.clock < 0) return `clock=${JSON.stringify(s.clock)} (accepted: a time in ms)`;
  if (s.appliedIndex !== h.index || s.appliedTerm !== h.term) {
    return `the state is at index ${JSON.stringify(s.appliedIndex)} term ${JSON.stringify(s.appliedTerm)}, the header says index ${h.index} term ${h.term}`;
  }
  const config = s.config;
  if (typeof config !== 'object' || config === null) return 'config missing';
  const base = new CoordinationMachine().config;
  const missing = Object.keys(base).find((k) => !(k in config));
  if (missing !== undefined) return `config.${missing} missing`;
  const p = configProblem(base, config);
  return p ? `config.${p.field}=${JSON.stringify(p.value)} (accepted: ${p.accepted})` : null;
}
