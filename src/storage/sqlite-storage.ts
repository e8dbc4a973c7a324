// Durable LogStorage on better-sqlite3: one database file per node, WAL journal. Each save()
// and compact() is one transaction, so a crash leaves either all of a Ready's writes or none.
// Semantics (and the invariant checks) are shared with MemoryStorage, the reference model.

import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import type { ConfState, Entry, EntryType, HardState, RestartState, Snapshot, SnapshotMetadata } from '../raft/types.js';
import type { LogStorage, PersistBatch, StorageStats } from './types.js';
import { checkBatch, checkCompact, checkLog, isEmptyBatch } from './memory-storage.js';

const SCHEMA_VERSION = 1;

/**
 * 'full' (default): the WAL is fsynced on every commit, so save() returns only once the batch
 *   survives power loss. Raft needs this: a vote or an acknowledged entry must never be forgotten.
 * 'normal': UNSAFE. Commits are fsynced only at checkpoints; acknowledged writes may be lost on
 *   power failure or OS crash (a process crash alone loses nothing). For benchmarks/tests only.
 * 'off': UNSAFE. Never fsyncs; acknowledged writes may be lost, and the file may be corrupted,
 *   on power failure or OS crash. For benchmarks/tests only.
 */
export type Durability = 'full' | 'normal' | 'off';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hard_state (
  id INTEGER PRIMARY KEY CHECK (id = 1), term INTEGER NOT NULL, vote TEXT, "commit" INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
  idx INTEGER PRIMARY KEY, term INTEGER NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS snapshot (
  id INTEGER PRIMARY KEY CHECK (id = 1), idx INTEGER NOT NULL, term INTEGER NOT NULL,
  conf_state TEXT NOT NULL, data TEXT NOT NULL);
`;

interface EntryRow { idx: number; term: number; type: string; data: string }
interface HardRow { term: number; vote: string | null; commit: number }
interface SnapRow { idx: number; term: number; conf_state: string; data: string }

// bytesWritten counts the values bound into each written row: 8 per integer, UTF-8 length of text.
const INT = 8;
const text = (s: string | null): number => (s === null ? 0 : Buffer.byteLength(s));

export class SqliteStorage implements LogStorage {
  private readonly st: ReturnType<typeof prepare>;
  private readonly saveTx: (b: PersistBatch) => number;
  private readonly compactTx: (s: Snapshot) => number;
  // Cached so validation and entryCount need no query; entryCount = lastIndex - snapIndex
  // because the stored log is contiguous after the snapshot.
  private snapIndex: number;
  private lastIndex: number;
  private bytesWritten = 0;
  private syncs = 0;
  private syncMsTotal = 0;
  private closed = false;
  /** Term and vote last written: a batch that changes neither, and adds no entry or snapshot,
   * carries only the commit index, which Raft may lose (etcd's MustSync), so it skips fsync. */
  private durableTerm = 0;
  private durableVote: string | null = null;
  private readonly durability: Durability = 'full';

  static open(file: string, opts: { durability?: Durability } = {}): SqliteStorage {
    const durability = opts.durability ?? 'full';
    if (!['full', 'normal', 'off'].includes(durability)) throw new Error(`SqliteStorage: unknown durability ${String(durability)}`);
    fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    const db = new Database(file);
    try {
      const mode = db.pragma('journal_mode = WAL', { simple: true });
      if (mode !== 'wal') throw new Error(`SqliteStorage(${file}): could not enable WAL (journal_mode=${String(mode)})`);
      db.pragma(`synchronous = ${durability.toUpperCase()}`);
      // On macOS plain fsync does not flush the drive cache; F_FULLFSYNC does (no-op elsewhere).
      if (durability === 'full') db.pragma('fullfsync = ON');
      db.transaction(() => {
        db.exec(SCHEMA);
        const v = db.prepare(`SELECT value FROM meta WHERE key = 'schema_version'`).pluck().get() as string | undefined;
        if (v === undefined) db.prepare(`INSERT INTO meta (key, value) VALUES ('schema_version', ?)`).run(String(SCHEMA_VERSION));
        else if (Number(v) !== SCHEMA_VERSION) throw new Error(`SqliteStorage(${file}): schema version ${v}, expected ${SCHEMA_VERSION}`);
      })();
      return new SqliteStorage(file, db, durability);
    } catch (e) {
      db.close();
      throw e;
    }
  }

  private constructor(private readonly file: string, private readonly db: Database.Database, durability: Durability = 'full') {
    this.durability = durability;
    const st = (this.st = prepare(db));
    const hs = st.hard.get() as HardRow | undefined;
    this.durableTerm = hs?.term ?? 0;
    this.durableVote = hs?.vote ?? null;
    this.snapIndex = (st.snap.get() as SnapRow | undefined)?.idx ?? 0;
    this.lastIndex = (st.maxIdx.get() as number | null) ?? this.snapIndex;

    this.saveTx = db.transaction((b: PersistBatch): number => {
      let bytes = 0;
      if (b.snapshot) {
        bytes += this.putSnapshot(b.snapshot);
        st.truncateFrom.run(0); // an installed snapshot replaces the whole log
      }
      const first = b.entries[0];
      if (first) {
        st.truncateFrom.run(first.index); // conflicting suffix, if any
        for (const e of b.entries) {
          st.insert.run(e.index, e.term, e.type, e.data);
          bytes += 2 * INT + text(e.type) + text(e.data);
        }
      }
      if (b.hardState) {
        const h: HardState = b.hardState;
        st.putHard.run(h.term, h.vote, h.commit);
        bytes += 3 * INT + text(h.vote);
      }
      return bytes;
    });
    this.compactTx = db.transaction((s: Snapshot): number => {
      const bytes = this.putSnapshot(s);
      st.compactTo.run(s.metadata.index);
      return bytes;
    });
  }

  load(initialConf: ConfState): RestartState {
    const h = this.st.hard.get() as HardRow | undefined;
    const s = this.st.snap.get() as SnapRow | undefined;
    const meta: SnapshotMetadata | null = s
      ? { index: s.idx, term: s.term, confState: JSON.parse(s.conf_state) as ConfState }
      : null;
    const entries: Entry[] = (this.st.all.all() as EntryRow[]).map((r) => ({
      index: r.idx, term: r.term, type: r.type as EntryType, data: r.data,
    }));
    checkLog(meta, entries, `SqliteStorage(${this.file})`);
    const state: RestartState = {
      hardState: h ? { term: h.term, vote: h.vote, commit: h.commit } : { term: 0, vote: null, commit: 0 },
      snapshot: meta,
      entries,
      initialConf,
    };
    if (s) state.snapshotData = s.data;
    return state;
  }

  save(batch: PersistBatch): void {
    if (isEmptyBatch(batch)) return; // nothing to make durable: skip the fsync
    checkBatch(batch, this.snapIndex, this.lastIndex, `SqliteStorage(${this.file})`);
    const hs = batch.hardState;
    const mustSync = batch.snapshot !== null || batch.entries.length > 0 || (hs !== null && (hs.term !== this.durableTerm || hs.vote !== this.durableVote));
    if (mustSync || this.durability !== 'full') {
      this.commit(() => this.saveTx(batch));
    } else {
      // Commit-index-only update: written, but not worth an fsync. (pragma must be exec'd
      // each time: a prepared PRAGMA statement applies at prepare time only.)
      this.db.pragma('synchronous = NORMAL');
      try {
        this.bytesWritten += this.saveTx(batch);
      } finally {
        this.db.pragma('synchronous = FULL');
      }
    }
    if (hs) {
      this.durableTerm = hs.term;
      this.durableVote = hs.vote;
    }
    // Caches move only after the commit succeeded (a failed transaction rolled back).
    if (batch.snapshot) this.snapIndex = this.lastIndex = batch.snapshot.metadata.index;
    const last = batch.entries.at(-1);
    if (last) this.lastIndex = last.index;
  }

  compact(snapshot: Snapshot): void {
    const at = snapshot.metadata.index;
    // Stale (e.g. a leader's snapshot was installed meanwhile): the stored one already covers it.
    if (at <= this.snapIndex) return;
    checkCompact(snapshot.metadata, this.lastIndex, this.st.termAt.get(at) as number | undefined, `SqliteStorage(${this.file})`);
    this.commit(() => this.compactTx(snapshot));
    this.snapIndex = at;
  }

  stats(): StorageStats {
    return {
      bytesWritten: this.bytesWritten,
      syncs: this.syncs,
      syncMsTotal: this.syncMsTotal,
      entryCount: this.lastIndex - this.snapIndex,
      diskBytes: fileSize(this.file) + fileSize(`${this.file}-wal`),
    };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }

  private commit(tx: () => number): void {
    const t0 = performance.now();
    const bytes = tx();
    this.syncMsTotal += performance.now() - t0;
    this.syncs++;
    this.bytesWritten += bytes;
  }

  private putSnapshot(s: Snapshot): number {
    const conf = JSON.stringify(s.metadata.confState);
    this.st.putSnap.run(s.metadata.index, s.metadata.term, conf, s.data);
    return 2 * INT + text(conf) + text(s.data);
  }
}

// Prepared once per connection: save() runs these for every Ready.
function prepare(db: Database.Database) {
  return {
    putHard: db.prepare('INSERT OR REPLACE INTO hard_state (id, term, vote, "commit") VALUES (1, ?, ?, ?)'),
    putSnap: db.prepare('INSERT OR REPLACE INTO snapshot (id, idx, term, conf_state, data) VALUES (1, ?, ?, ?, ?)'),
    insert: db.prepare('INSERT INTO entries (idx, term, type, data) VALUES (?, ?, ?, ?)'),
    truncateFrom: db.prepare('DELETE FROM entries WHERE idx >= ?'),
    compactTo: db.prepare('DELETE FROM entries WHERE idx <= ?'),
    termAt: db.prepare('SELECT term FROM entries WHERE idx = ?').pluck(),
    hard: db.prepare('SELECT term, vote, "commit" FROM hard_state WHERE id = 1'),
    snap: db.prepare('SELECT idx, term, conf_state, data FROM snapshot WHERE id = 1'),
    all: db.prepare('SELECT idx, term, type, data FROM entries ORDER BY idx'),
    maxIdx: db.prepare('SELECT MAX(idx) FROM entries').pluck(),
  };
}

function fileSize(p: string): number {
  try {
    return fs.statSync(p).size;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw e;
  }
}
