import type { TableChanges } from '../storage/types.js';
import { DirtyRows } from './dirty-rows.js';
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
 * Replicated key-value memory. Expiry uses the log's clock (the proposers' timestamps), so
 * every replica expires the same keys at the same log position.
 */
export class MemoryStore {
  records = new Map<string, MemoryRecord>();
  /** Ids of records with a TTL, so expiry scans only those. */
  private withTtl = new Set<string>();
  /**
   * Each record's row key in a checkpoint: a counter at its insertion, so rows read by key
   * come back in `records`' (insertion) order, which snapshot() follows. Overwrites keep it.
   */
  private ords = new Map<string, number>();
  private nextOrd = 0;
  readonly dirty = new DirtyRows();

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
    const prev = this.records.get(id);
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
    if (!prev) this.ords.set(id, ++this.nextOrd);
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
    const prev = this.records.get(id);
    if (!prev) return { ok: true, value: { deleted: false } };
    if (op.if_version !== null && prev.version !== op.if_version) {
      return { ok: false, code: 'version_mismatch', message: `delete of ${op.key}: expected version ${op.if_version}, current ${prev.version}` };
    }
    this.remove(id);
    return { ok: true, value: { deleted: true, version: prev.version } };
  }

  get(namespace: string, key: string, now: number): MemoryRecord | undefined {
    const r = this.records.get(memoryId(namespace, key));
    if (!r || (r.expires_at !== null && r.expires_at <= now)) return undefined;
    return r;
  }

  list(namespace: string, prefix: string, now: number, limit: number): MemoryRecord[] {
    const out: MemoryRecord[] = [];
    for (const r of this.records.values()) {
      if (r.namespace !== namespace || !r.key.startsWith(prefix)) continue;
      if (r.expires_at !== null && r.expires_at <= now) continue;
      out.push(r);
    }
    out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return out.slice(0, limit);
  }

  /** Drop keys whose TTL passed at log time `now`. */
  expire(now: number): number {
    let n = 0;
    for (const id of this.withTtl) {
      const r = this.records.get(id);
      if (r && r.expires_at !== null && r.expires_at <= now) {
        this.remove(id);
        n++;
      }
    }
    return n;
  }

  private remove(id: string): void {
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
      const r = this.records.get(id);
      if (r && r.expires_at !== null && r.expires_at <= now) return true;
    }
    return false;
  }

  toJSON(): MemoryRecord[] {
    return [...this.records.values()];
  }

  /** Restored from a snapshot: rows numbered afresh, all to be written (dirty stays full). */
  static fromJSON(rs: MemoryRecord[]): MemoryStore {
    const m = new MemoryStore();
    for (const r of rs) m.add(r, ++m.nextOrd);
    return m;
  }

  /** Restored from a checkpoint's rows, in ord order: what changes next is tracked by row. */
  static fromRows(rows: Iterable<[number, unknown, Uint8Array?]>, nextOrd: number): MemoryStore {
    const m = new MemoryStore();
    for (const [ord, r] of rows) m.add(r as MemoryRecord, ord);
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
    const row = (id: string): [number, string] | undefined => {
      const r = this.records.get(id);
      return r ? [this.ords.get(id) as number, JSON.stringify(r)] : undefined;
    };
    return this.dirty.take(row, () => [...this.records.keys()].map((id) => row(id) as [number, string]));
  }
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
