import { LocalStateDamage } from '../util/local-damage.js';
import type { CheckpointRow, StoredRows, TableChanges } from '../storage/types.js';
import { collectChanges, DirtyRows } from './dirty-rows.js';
import { MAX_KEY_BYTES, MAX_VALUE_BYTES, type MemoryRecord, type Op } from './types.js';

type PutOp = Extract<Op, { t: 'mem.put' }>;
type DelOp = Extract<Op, { t: 'mem.del' }>;
type Result = { ok: true; value?: unknown } | { ok: false; code: string; message: string };

export const SYSTEM_NAMESPACE = 'default';

/**
 * Keys Concord maintains itself, in SYSTEM_NAMESPACE: read-only views of replicated state.
 * Every other key, `coordination/raft/commit-index` included, belongs to the user and Concord
 * never writes it. election-history is stored by the machine as elections are applied;
 * log-state is computed when read (commit index, term, leader) and never stored.
 */
export const ELECTION_HISTORY_KEY = 'coordination/raft/election-history';
export const LOG_STATE_KEY = 'coordination/raft/log-state';
export const SYSTEM_KEYS: readonly string[] = [ELECTION_HISTORY_KEY, LOG_STATE_KEY];

export function isSystemKey(namespace: string, key: string): boolean {
  return namespace === SYSTEM_NAMESPACE && SYSTEM_KEYS.includes(key);
}

function systemKeyRefusal(key: string): Result {
  return {
    ok: false,
    code: 'system_key',
    message: `key ${key} is maintained by Concord (a read-only view of replicated state; system keys: ${SYSTEM_KEYS.join(', ')}); store your data under another key`,
  };
}

export function memoryId(namespace: string, key: string): string {
  return `${namespace}\u0000${key}`;
}

/**
 * A record's row lookup key (StoredRows.find): FNV-1a over the id's UTF-16 units, 32 bits.
 * Ids may share one: a lookup checks each row it returns against the id.
 */
export function memoryRowKey(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/**
 * A stored record that no longer reads back as the record it was written as (its checkpoint
 * row's JSON is not a record, or names another key): the member's file is damaged. Raised
 * when the record is first read, never served as a value. Only this member's file holds it:
 * its host fail-stops when an apply meets it (LocalStateDamage).
 */
export class StoredRecordDamage extends LocalStateDamage {
  constructor(
    readonly id: string,
    readonly ord: number,
    why: string,
  ) {
    super(`memory record ${JSON.stringify(id.replace('\u0000', '/'))} (checkpoint row ${ord}) is damaged: ${why}; restore this member from a healthy one (remove its file, it rejoins from the leader)`);
    this.name = 'StoredRecordDamage';
  }
}

// A checkpoint row is JSON.stringify(record), fields in MemoryRecord's order (see write()):
// {"key":"...","namespace":"...","value":...,"version":N,"created_at":N,"updated_at":N,"expires_at":N|null}
const ROW_HEAD = '{"key":"';
const ROW_NAMESPACE = '","namespace":"';
const ROW_VALUE = '","value":';
const ROW_NO_TTL_TAIL = ',"expires_at":null}';

/**
 * Replicated key-value memory. Expiry uses the log's clock (the proposers' timestamps), so
 * every replica expires the same keys at the same log position.
 */
export class MemoryStore {
  /**
   * By id, in insertion order (snapshot() follows it). A string is a record restored from a
   * checkpoint row and not read since: the row's JSON, exactly JSON.stringify of the record
   * (takeChanges wrote it), parsed on first use (see at()). A restart then reads each row's
   * key, not its value: parsing every row was most of a restart's rebuild.
   */
  private records = new Map<string, MemoryRecord | string>();
  /** Ids of records with a TTL, so expiry scans only those. */
  private withTtl = new Set<string>();
  /**
   * Each record's row key in a checkpoint: a counter at its insertion, so rows read by key
   * come back in `records`' (insertion) order, which snapshot() follows. Overwrites keep it.
   */
  private ords = new Map<string, number>();
  private nextOrd = 0;
  readonly dirty = new DirtyRows();
  /**
   * Restarted from stored rows read on demand (fromStored): the rows not read yet. `records`
   * then holds only the records read or written since (and every TTL record); a record not
   * there and not `gone` is looked up in `base`. Null once every row is in `records`
   * (loadAll: whatever needs every record, in order).
   */
  private base: StoredRows | null = null;
  /** With `base`: the last ord it holds (a larger one is this life's), its records still held, ids of it removed since. */
  private baseLastOrd = 0;
  private baseLive = 0;
  private readonly gone = new Set<string>();
  /** With `base`: records held with an ord past baseLastOrd. */
  private fresh = 0;

  /** A client's write; refused (a recorded no-op) on a system key. */
  put(op: PutOp, now: number): Result {
    if (isSystemKey(op.namespace, op.key)) return systemKeyRefusal(op.key);
    return this.write(op, now);
  }

  private write(op: PutOp, now: number): Result {
    const keyBytes = Buffer.byteLength(op.key, 'utf8');
    if (keyBytes === 0 || keyBytes > MAX_KEY_BYTES) {
      return { ok: false, code: 'invalid', message: `key is ${keyBytes} bytes; accepted: 1..${MAX_KEY_BYTES} bytes` };
    }
    const valueBytes = jsonBytesOver(op.value, MAX_VALUE_BYTES);
    if (valueBytes !== null) {
      return { ok: false, code: 'invalid', message: `value is ${valueBytes} bytes; accepted: <= ${MAX_VALUE_BYTES} bytes` };
    }
    const id = memoryId(op.namespace, op.key);
    const prev = this.at(id);
    if (op.if_version !== null && (prev?.version ?? 0) !== op.if_version) {
      return {
        ok: false,
        code: 'version_mismatch',
        message: `compare-and-set failed for ${op.key}: expected version ${op.if_version}, current ${prev?.version ?? 0}`,
      };
    }
    const rec: MemoryRecord = {
      key: op.key,
      namespace: op.namespace,
      value: op.value,
      version: (prev?.version ?? 0) + 1,
      created_at: prev?.created_at ?? now,
      updated_at: now,
      expires_at: op.ttl_s !== null ? now + op.ttl_s * 1000 : null,
    };
    this.records.set(id, rec);
    if (!prev) {
      this.ords.set(id, ++this.nextOrd);
      if (this.base !== null) this.fresh++;
    }
    this.dirty.touch(id);
    if (rec.expires_at !== null) this.withTtl.add(id);
    else this.withTtl.delete(id);
    return { ok: true, value: { key: rec.key, namespace: rec.namespace, version: rec.version, expires_at: rec.expires_at } };
  }

  /** Written by the machine itself (election history), not by a client. */
  putSystem(key: string, value: unknown, now: number): void {
    this.write({ t: 'mem.put', key, namespace: SYSTEM_NAMESPACE, value, ttl_s: null, if_version: null }, now);
  }

  del(op: DelOp): Result {
    if (isSystemKey(op.namespace, op.key)) return systemKeyRefusal(op.key);
    const id = memoryId(op.namespace, op.key);
    const prev = this.at(id);
    if (!prev) return { ok: true, value: { deleted: false } };
    if (op.if_version !== null && prev.version !== op.if_version) {
      return { ok: false, code: 'version_mismatch', message: `delete of ${op.key}: expected version ${op.if_version}, current ${prev.version}` };
    }
    this.remove(id);
    return { ok: true, value: { deleted: true, version: prev.version } };
  }

  get(namespace: string, key: string, now: number): MemoryRecord | undefined {
    const r = this.at(memoryId(namespace, key));
    if (!r || (r.expires_at !== null && r.expires_at <= now)) return undefined;
    return r;
  }

  list(namespace: string, prefix: string, now: number, limit: number): MemoryRecord[] {
    this.loadAll();
    const out: MemoryRecord[] = [];
    const idPrefix = memoryId(namespace, prefix);
    for (const [id, v] of this.records) {
      // The id is namespace NUL key: records of other namespaces and keys are skipped without
      // parsing a stored row. (A necessary condition only: a namespace may hold a NUL.)
      if (!id.startsWith(idPrefix)) continue;
      const r = typeof v === 'string' ? this.parseStored(id, v) : v;
      if (r.namespace !== namespace || !r.key.startsWith(prefix)) continue;
      if (r.expires_at !== null && r.expires_at <= now) continue;
      out.push(r);
    }
    out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return out.slice(0, limit);
  }

  /** Number of records held (expired ones not yet dropped included). */
  get size(): number {
    return this.base === null ? this.records.size : this.baseLive + this.fresh;
  }

  has(namespace: string, key: string): boolean {
    return this.held(memoryId(namespace, key)) !== undefined;
  }

  /** Simulator mutation check (a lossy restore must be caught): forget the first record. */
  dropFirstForTest(): void {
    this.loadAll();
    const first = this.records.keys().next();
    if (!first.done) this.remove(first.value);
  }

  /** Every record held, in insertion order (stored rows are parsed as they are reached). */
  *values(): IterableIterator<MemoryRecord> {
    this.loadAll();
    for (const [id, v] of this.records) yield typeof v === 'string' ? this.parseStored(id, v) : v;
  }

  /** The record with this id, its stored row parsed (once) if it was not read yet. */
  private at(id: string): MemoryRecord | undefined {
    const v = this.held(id);
    return typeof v === 'string' ? this.parseStored(id, v) : v;
  }

  /** The record with this id as held (a stored row not parsed yet is its text), read from `base` if it is there. */
  private held(id: string): MemoryRecord | string | undefined {
    const v = this.records.get(id);
    if (v !== undefined || this.base === null || this.gone.has(id)) return v;
    for (const [ord, json] of this.base.find(memoryRowKey(id))) {
      // Rows past baseLastOrd are this life's, written from `records`, which has them all.
      if (ord > this.baseLastOrd || storedId(ord, json) !== id) continue;
      this.records.set(id, json);
      this.ords.set(id, ord);
      return json;
    }
    return undefined;
  }

  /**
   * Every stored row read into `records`, in ord order (the insertion order a replica that
   * applied the log holds), merged with what changed since the restart. A row the lookups
   * should have found but did not (its key damaged) is found here, and the store stops.
   */
  private loadAll(): void {
    const base = this.base;
    if (base === null) return;
    const records = new Map<string, MemoryRecord | string>();
    const ords = new Map<string, number>();
    base.all((ord, json) => {
      if (ord > this.baseLastOrd) return; // this life's: in `records`, added below
      const id = storedId(ord, json);
      const cur = this.records.get(id);
      if (cur !== undefined && this.ords.get(id) === ord) {
        records.set(id, cur);
        ords.set(id, ord);
      } else if (!this.gone.has(id)) {
        if (cur !== undefined) throw new StoredRecordDamage(id, ord, 'its row was not found by its lookup key (the key is damaged), so the record was written anew');
        if (!json.endsWith(ROW_NO_TTL_TAIL) && (JSON.parse(json) as MemoryRecord).expires_at !== null) {
          throw new StoredRecordDamage(id, ord, 'it has a TTL but was not stored as a row read at restart, so expiry missed it');
        }
        records.set(id, json);
        ords.set(id, ord);
      }
    });
    if (records.size !== this.baseLive) {
      throw new StoredRecordDamage('(several)', this.baseLastOrd, `${this.baseLive} stored records expected, ${records.size} found: rows are missing`);
    }
    const fresh = [...this.ords].filter(([, ord]) => ord > this.baseLastOrd).sort((a, b) => a[1] - b[1]);
    for (const [id, ord] of fresh) {
      records.set(id, this.records.get(id) as MemoryRecord | string);
      ords.set(id, ord);
    }
    this.records = records;
    this.ords = ords;
    this.base = null;
    this.gone.clear();
    this.baseLive = this.fresh = 0;
  }

  /**
   * A stored row as its record, which replaces the row in `records` (same place: Map.set on
   * a present key keeps the order). Checked, so a damaged row is reported, never served.
   */
  private parseStored(id: string, json: string): MemoryRecord {
    const ord = this.ords.get(id) as number;
    let r: unknown;
    try {
      r = JSON.parse(json);
    } catch (e) {
      throw new StoredRecordDamage(id, ord, `not JSON (${(e as Error).message})`);
    }
    const why = recordProblem(r, id);
    if (why) throw new StoredRecordDamage(id, ord, why);
    this.records.set(id, r as MemoryRecord);
    return r as MemoryRecord;
  }

  /** Drop keys whose TTL passed at log time `now`. */
  expire(now: number): number {
    let n = 0;
    for (const id of this.withTtl) {
      const r = this.at(id);
      if (r && r.expires_at !== null && r.expires_at <= now) {
        this.remove(id);
        n++;
      }
    }
    return n;
  }

  private remove(id: string): void {
    if (this.base !== null) {
      if ((this.ords.get(id) as number) <= this.baseLastOrd) {
        this.baseLive--;
        this.gone.add(id);
      } else this.fresh--;
    }
    this.records.delete(id);
    this.withTtl.delete(id);
    const ord = this.ords.get(id);
    if (ord !== undefined) this.dirty.drop(ord);
    this.ords.delete(id);
  }

  hasTtlKeys(): boolean {
    return this.withTtl.size > 0;
  }

  /** Whether some key's TTL has passed by `now` (a wall time, say) though not yet in log time. */
  hasDueKeys(now: number): boolean {
    for (const id of this.withTtl) {
      const r = this.at(id);
      if (r && r.expires_at !== null && r.expires_at <= now) return true;
    }
    return false;
  }

  toJSON(): MemoryRecord[] {
    return [...this.values()];
  }

  /** Restored from a snapshot: rows numbered afresh, all to be written (dirty stays full). */
  static fromJSON(rs: MemoryRecord[]): MemoryStore {
    const m = new MemoryStore();
    for (const r of rs) m.add(r, ++m.nextOrd);
    return m;
  }

  /**
   * Restored from a checkpoint's rows (their JSON text, in ord order): what changes next is
   * tracked by row. A row without a TTL whose key and namespace need no unescaping (the usual
   * one) is kept as its text, its id read off the text; the others are parsed now.
   */
  static fromRows(read: (each: (ord: number, json: string) => void) => void, nextOrd: number, rewrite = false): MemoryStore {
    const m = new MemoryStore();
    read((ord, json) => {
      const id = storedRowId(json);
      if (id !== null) {
        m.records.set(id, json);
        m.ords.set(id, ord);
        return;
      }
      m.add(parseRow(ord, json), ord);
    });
    m.nextOrd = nextOrd;
    // `rewrite`: the rows lack lookup keys (an older file); the next checkpoint writes them all.
    m.dirty.full = rewrite;
    return m;
  }

  /**
   * Restored from a checkpoint's rows read on demand: only the TTL records now (expiry scans
   * them), any other when first used (see held), all of them when something needs every
   * record (loadAll). A restart then reads a few rows, not every row: with 50,000 records
   * reading them all was most of a member's restart.
   */
  static fromStored(base: StoredRows, nextOrd: number): MemoryStore {
    const m = new MemoryStore();
    base.eager((ord, json) => m.add(parseRow(ord, json), ord));
    m.base = base;
    m.baseLastOrd = nextOrd;
    m.baseLive = base.count;
    m.nextOrd = nextOrd;
    m.dirty.full = false;
    return m;
  }

  private add(r: MemoryRecord, ord: number): void {
    const id = memoryId(r.namespace, r.key);
    this.records.set(id, r);
    this.ords.set(id, ord);
    if (r.expires_at !== null) this.withTtl.add(id);
  }

  /** Last row key handed out (kept with the checkpoint so keys are never reused). */
  get lastOrd(): number {
    return this.nextOrd;
  }

  /** Rows changed since the last call (all of them after a restore from a snapshot). */
  takeChanges(): TableChanges {
    return collectChanges(this.takeChangeRows());
  }

  /**
   * takeChanges() a row at a time (each built, a record stringified, when it is reached): see
   * DirtyRows.takeRows. The records must not change until it returns.
   */
  *takeChangeRows(): Generator<CheckpointRow, Omit<TableChanges, 'put'>> {
    // A row never parsed is unchanged since it was stored: its text is what stringify gives.
    // With its lookup key, and read at restart when it has a TTL (expiry must see it).
    const row = (id: string): CheckpointRow | undefined => {
      const r = this.records.get(id);
      if (r === undefined) return undefined;
      const ord = this.ords.get(id) as number;
      return typeof r === 'string' ? [ord, r, undefined, memoryRowKey(id), false] : [ord, JSON.stringify(r), undefined, memoryRowKey(id), r.expires_at !== null];
    };
    if (this.dirty.full) this.loadAll();
    const records = this.records;
    return yield* this.dirty.takeRows(row, function* () {
      for (const id of records.keys()) yield row(id) as CheckpointRow;
    });
  }
}

/**
 * The id of a checkpoint row read off its text without parsing it, when that is exact: the row
 * has the layout stringify gives a record, no TTL (expiry must see TTL records), and its key
 * and namespace contain no backslash (no escape: the text between the quotes is the string).
 * Null otherwise (the caller parses the row). The value is checked when the row is parsed.
 */
function storedRowId(json: string): string | null {
  if (!json.startsWith(ROW_HEAD) || !json.endsWith(ROW_NO_TTL_TAIL)) return null;
  const keyEnd = json.indexOf('"', ROW_HEAD.length);
  if (keyEnd < 0 || !json.startsWith(ROW_NAMESPACE, keyEnd)) return null;
  const key = json.slice(ROW_HEAD.length, keyEnd);
  const nsStart = keyEnd + ROW_NAMESPACE.length;
  const nsEnd = json.indexOf('"', nsStart);
  if (nsEnd < 0 || !json.startsWith(ROW_VALUE, nsEnd)) return null;
  const namespace = json.slice(nsStart, nsEnd);
  // An escaped quote would end the slice early: its backslash is then in the slice.
  if (key.includes('\\') || namespace.includes('\\')) return null;
  return memoryId(namespace, key);
}

/** A checkpoint row parsed and checked (its id, when the text does not give it exactly). */
function parseRow(ord: number, json: string): MemoryRecord {
  let r: unknown;
  try {
    r = JSON.parse(json);
  } catch (e) {
    throw new Error(`memory checkpoint row ${ord} is damaged: not JSON (${(e as Error).message})`);
  }
  const why = recordProblem(r, null);
  if (why) throw new Error(`memory checkpoint row ${ord} is damaged: ${why}`);
  return r as MemoryRecord;
}

/** The id of a stored row read after the restart: read off its text when exact, else parsed. */
function storedId(ord: number, json: string): string {
  const id = storedRowId(json);
  if (id !== null) return id;
  let r: MemoryRecord;
  try {
    r = parseRow(ord, json);
  } catch (e) {
    throw new StoredRecordDamage('(unknown)', ord, (e as Error).message);
  }
  return memoryId(r.namespace, r.key);
}

/**
 * Why `r` is not a stored memory record (with id `id`, when given), or null. Only what the
 * store relies on: any record write() made passes (a value may even be absent: a put whose
 * value was undefined is stored without one), so no file restored before is refused now.
 */
function recordProblem(r: unknown, id: string | null): string | null {
  if (typeof r !== 'object' || r === null || Array.isArray(r)) return 'not a JSON object';
  const o = r as Record<string, unknown>;
  if (typeof o.key !== 'string' || typeof o.namespace !== 'string') return 'no string key and namespace';
  if (id !== null && memoryId(o.namespace, o.key) !== id) return `it holds key ${JSON.stringify(o.key)} of namespace ${JSON.stringify(o.namespace)}`;
  // A row kept as text had no TTL (expiry never looks at it): it must not have one now.
  if (id !== null && o.expires_at !== null) return 'a TTL its stored text did not have';
  return null;
}

/**
 * The value's JSON size when it exceeds `max`, else null. A string's JSON takes at most six
 * bytes per UTF-8 byte (\\uXXXX) plus quotes: a short one is under the limit without
 * serializing it, which every replica did on every put.
 */
const NEEDS_JSON_ESCAPE = /[\u0000-\u001f"\\\ud800-\udfff]/;

function jsonBytesOver(value: unknown, max: number): number | null {
  if (typeof value === 'string') {
    // At most 3 UTF-8 bytes per UTF-16 unit, 6 JSON bytes per UTF-8 byte: a short string is
    // under the limit without reading it.
    if (value.length * 18 + 2 <= max) return null;
    const n = stringJsonBytes(value);
    return n > max ? n : null;
  }
  const n = Buffer.byteLength(JSON.stringify(value) ?? '', 'utf8');
  return n > max ? n : null;
}

/**
 * The members of one process check the same large string one after another (one parsed
 * entry, see parse-shared.ts): the last answer is kept, a pure function of the string. The
 * scan and count below cost ~3 ms per 1 MiB value (CPU profile of the burst), five times per
 * write before.
 */
let lastString: string | null = null;
let lastStringJsonBytes = 0;
export const stringJsonBytesStats = { scans: 0 };

/** UTF-8 bytes of JSON.stringify(s). */
function stringJsonBytes(s: string): number {
  if (s === lastString) return lastStringJsonBytes;
  stringJsonBytesStats.scans++;
  // Nothing JSON escapes (quotes, backslashes, control characters, surrogates): its JSON is
  // the text in quotes, counted without making that copy of a large value.
  const n = NEEDS_JSON_ESCAPE.test(s) ? Buffer.byteLength(JSON.stringify(s), 'utf8') : Buffer.byteLength(s, 'utf8') + 2;
  lastString = s;
  lastStringJsonBytes = n;
  return n;
}
