// Durable LogStorage on better-sqlite3: one database file per node, WAL journal. Each save()
// and compact() is one transaction, so a crash leaves either all of a Ready's writes or none.
// Semantics (and the invariant checks) are shared with MemoryStorage, the reference model.

import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import { snapshotParts, type ConfState, type Entry, type EntryType, type HardState, type RestartState, type Snapshot, type SnapshotData, type SnapshotMetadata } from '../raft/types.js';
import { CHECKPOINT_TABLES, type CheckpointReader, type CheckpointRow as TableRow, type CheckpointTable, type LoadedState, type LogStorage, type MachineCheckpoint, type PersistBatch, type StorageStats, type StoredRows } from './types.js';
import { checkBatch, checkCheckpoint, checkCompact, checkLog, isEmptyBatch } from './memory-storage.js';
import { BucketHistogram, DISK_BUCKETS_S } from '../util/histogram.js';
import { fsyncDirectory, fsyncPath, mkdirDurable, nodeSyncFs, type SyncFs } from './sync-fs.js';
import { logger } from '../util/logger.js';
import { WAL_CHECKPOINTER } from './wal-checkpointer.js';

/**
 * WAL frames (pages) after which a 'threadpool' storage asks for a checkpoint: SQLite's own
 * default. Estimated per commit (the row pages plus the B-tree and hard-state pages touched):
 * counting payload bytes alone let small commits grow the WAL a hundred times further.
 */
const CHECKPOINT_FRAMES = 1000;
const PAGE_BYTES = 4096;
/**
 * WAL frames past which the writer copies the tail a worker checkpoint left (checkpointTail),
 * so the WAL restarts during a burst: one journal_size_limit (CHECKPOINT_FRAMES) of slack.
 */
const TAIL_INLINE_FRAMES = 2 * CHECKPOINT_FRAMES;
const FRAMES_PER_COMMIT = 3;

/**
 * 2: the machine_* tables (checkpoints) were added. A version-1 file is upgraded in place (the
 * tables are created empty); a version-1 binary refuses a version-2 file, whose log may start
 * after a checkpoint it cannot read.
 * 3: snapshot.part_rows and snapshot_stage (parts staged as they arrive, stored as pieces: see
 * stageSnapshotPart). Version-1 and -2 files are upgraded in place; a version-2 binary refuses
 * a version-3 file, whose snapshot_part rows may be pieces it would read as parts.
 */
const SCHEMA_VERSION = 3;

/**
 * Characters of a staged part written per step (one INSERT, its own event-loop turn).
 * Measured on the shared 2-core machine (load 0.5, synchronous=NORMAL, one INSERT of one row):
 * 1 MiB 5 ms, 4 MiB 41 ms, 16 MiB 130 ms, 64 MiB 494-555 ms; the heartbeat interval is 50 ms.
 */
const STAGE_PIECE_CHARS = 2 << 20;
/** Stale staged rows (pieces of at most STAGE_PIECE_CHARS) deleted per step. */
const STAGE_DELETE_ROWS = 8;

/**
 * Free pages are released (auto_vacuum=INCREMENTAL) once they are at least VACUUM_MIN_FREE_PAGES
 * and a VACUUM_FREE_FRACTION of the file: compaction deletes log rows and a new snapshot
 * replaces the old blob, leaving free pages that SQLite would otherwise keep forever. Released
 * in steps of VACUUM_STEP_PAGES, one step per timer turn, after the commit that freed them,
 * never inside a save(), so no step delays an acknowledgement. Measured (load 9-10 on the
 * shared 2-core machine): releasing 8,109 pages took 8 steps, 2-6 ms each on average, the
 * longest 3-23 ms; the heartbeat interval is 50 ms.
 */
const VACUUM_MIN_FREE_PAGES = 256;
const VACUUM_FREE_FRACTION = 0.25;
const VACUUM_STEP_PAGES = 1024;

/**
 * The WAL file is truncated back to this size when SQLite restarts it after a checkpoint.
 * Without a limit the -wal file keeps its peak size (a snapshot blob makes it as big as the
 * blob) for the life of the file.
 */
const JOURNAL_SIZE_LIMIT_BYTES = CHECKPOINT_FRAMES * PAGE_BYTES;

/**
 * Page cache per connection, KiB. better-sqlite3 builds SQLite with a 16 MB default, and a
 * process hosts several members (five per embedded swarm, more with many swarms): a
 * 1,000,000-task run filled all five, 80 MB of the process's RSS. The working set is the
 * log's right edge (appends), its left edge (compaction) and the checkpoint blocks being
 * rewritten; older pages come back from the OS's file cache when read.
 */
export const CACHE_KIB = 2048;

/**
 * 'full' (default): every commit that must survive power loss is fsynced (WAL fdatasync) before
 *   save() returns, or before saveAsync() calls back. Raft needs this: a vote or an acknowledged
 *   entry must never be forgotten. (Commit-index-only writes skip the fsync: etcd's MustSync.)
 *   open() and load() return only durable state: they fsync WAL, database and directory first.
 * 'normal': UNSAFE. Commits are fsynced only at checkpoints; acknowledged writes may be lost on
 *   power failure or OS crash (a process crash alone loses nothing). For benchmarks/tests only.
 * 'off': UNSAFE. Never fsyncs; acknowledged writes may be lost, and the file may be corrupted,
 *   on power failure or OS crash. For benchmarks/tests only.
 */
export type Durability = 'full' | 'normal' | 'off';

/**
 * Where durability 'full' waits for its fsyncs. 'inline' (default): SQLite fsyncs inside each
 * commit (synchronous=FULL), on the caller's thread; save() and saveAsync() return durable.
 * 'threadpool': the connection runs synchronous=NORMAL; saveAsync() fsyncs the WAL on the
 * libuv threadpool and calls back, so a process hosting many members keeps its event loop
 * free; for hosts driven by a real event loop (NodeHost on RealClock). Not for virtual-time
 * tests: the callback needs the loop to turn. save() fsyncs inline; compact() does not wait
 * for its fsync (see compact). SQLite's own checkpoints still fsync WAL and database inline.
 * Ignored (inline) on macOS and Windows, and for durability 'normal'/'off'.
 */
export type FsyncMode = 'inline' | 'threadpool';

/**
 * Who runs WAL checkpoints. 'inline' (default): SQLite's automatic checkpoint, inside the commit
 * that crosses 1000 WAL pages, on the caller's thread, with its fsyncs. 'worker' (fsync
 * 'threadpool' only): a worker thread (see wal-checkpointer.ts). Embedded members use 'worker'
 * (it halves a 1 MiB burst's loop stalls: see swarm.ts). Cluster members keep 'inline': one
 * member per process has no neighbours to stall, and rotating A/B at 1 write in flight gave
 * 339 against 345 writes/s (leader fsync 1.06 against 0.77 ms). An older measurement of 50
 * idle swarms with 'worker' saw elections (load 12-19); on 2026-12-02, after followers began
 * answering heartbeats at once, 0 in 3 runs (one under three busy loops), as inline.
 */
export type CheckpointMode = 'inline' | 'worker';

/** Who a member file belongs to: its id and the incarnation it was created for. */
export interface MemberIdentity {
  member: string;
  incarnation: string;
}

/**
 * Parts of a snapshot still arriving, as pieces in order (n = 1, 2, ...). The save of its
 * install renames this table to snapshot_part (see saveTx): staged rows are never copied.
 */
const STAGE_TABLE = 'CREATE TABLE IF NOT EXISTS snapshot_stage (n INTEGER PRIMARY KEY, data TEXT NOT NULL);';

/**
 * Rows of a whole-state checkpoint written in steps (see checkpoint): renamed to machine_<t>
 * when it commits. Tables replaced this way are renamed trash_<n> and emptied in steps.
 */
function rowStageTable(t: CheckpointTable): string {
  return `CREATE TABLE IF NOT EXISTS machine_${t}_stage (ord INTEGER PRIMARY KEY, json TEXT NOT NULL, bin BLOB, find INTEGER, eager INTEGER);`;
}

/**
 * A checkpoint rewriting every table with at least this many characters of rows (the first
 * after a snapshot install: the whole state) is written in steps, not in one transaction.
 * Measured (1.05 GiB cluster install, load 10): one such checkpoint held the loop 22 s.
 */
const STEPPED_CHECKPOINT_CHARS = 8 << 20;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hard_state (
  id INTEGER PRIMARY KEY CHECK (id = 1), term INTEGER NOT NULL, vote TEXT, "commit" INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
  idx INTEGER PRIMARY KEY, term INTEGER NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS snapshot (
  id INTEGER PRIMARY KEY CHECK (id = 1), idx INTEGER NOT NULL, term INTEGER NOT NULL,
  conf_state TEXT NOT NULL, data TEXT NOT NULL, part_rows TEXT);
CREATE TABLE IF NOT EXISTS snapshot_part (n INTEGER PRIMARY KEY, data TEXT NOT NULL);
${STAGE_TABLE}
CREATE TABLE IF NOT EXISTS machine_checkpoint (
  id INTEGER PRIMARY KEY CHECK (id = 1), idx INTEGER NOT NULL, term INTEGER NOT NULL,
  conf_state TEXT NOT NULL, meta TEXT NOT NULL);
${CHECKPOINT_TABLES.map((t) => `CREATE TABLE IF NOT EXISTS machine_${t} (ord INTEGER PRIMARY KEY, json TEXT NOT NULL, bin BLOB, find INTEGER, eager INTEGER);`).join('\n')}
${CHECKPOINT_TABLES.map(rowStageTable).join('\n')}
`;

/**
 * Checkpoint tables whose rows are read on demand (CheckpointReader.storedRows): indexed by
 * lookup key, and by ord for the rows a restart reads anyway. Created after addRowColumns.
 */
const ON_DEMAND_TABLES: readonly CheckpointTable[] = ['memory'];

/**
 * The lookup and restart-row indexes of an on-demand table (machine_<t> or its stage), made
 * if missing. Found by what they index, not by name: a stage table renamed in keeps its
 * indexes and their names (see trashTable), so names carry a counter to stay unique.
 */
function ensureOnDemandIndexes(db: Database.Database, table: string): void {
  const have = { find: false, eager: false };
  for (const ix of db.prepare(`PRAGMA index_list(${table})`).all() as Array<{ name: string; partial: number }>) {
    const cols = (db.prepare(`PRAGMA index_info(${JSON.stringify(ix.name)})`).all() as Array<{ name: string }>).map((c) => c.name);
    if (cols[0] === 'find') have.find = true;
    if (ix.partial === 1 && cols[0] === 'ord') have.eager = true;
  }
  if (have.find && have.eager) return;
  const n = (db.prepare(`SELECT count(*) FROM sqlite_master WHERE type = 'index'`).pluck().get() as number) + 1;
  const name = (what: string): string => {
    for (let i = n; ; i++) {
      const cand = `${table}_${what}_${i}`;
      if (db.prepare(`SELECT 1 FROM sqlite_master WHERE name = ?`).get(cand) === undefined) return cand;
    }
  };
  if (!have.find) db.exec(`CREATE INDEX ${name('find')} ON ${table} (find)`);
  if (!have.eager) db.exec(`CREATE INDEX ${name('eager')} ON ${table} (ord) WHERE eager = 1`);
}

function ensureAllOnDemandIndexes(db: Database.Database): void {
  for (const t of ON_DEMAND_TABLES) for (const table of [`machine_${t}`, `machine_${t}_stage`]) ensureOnDemandIndexes(db, table);
}

/**
 * Files written before lookup keys have no `find`/`eager` columns: added (no rows change; an
 * ADD COLUMN rewrites nothing). Their rows have no key: the table is then read whole at
 * restart, and rewritten with keys by the next checkpoint (see MemoryStore.fromRows).
 */
function addRowColumns(db: Database.Database): void {
  for (const t of CHECKPOINT_TABLES) {
    for (const table of [`machine_${t}`, `machine_${t}_stage`]) {
      const cols = new Set((db.prepare(`PRAGMA table_info(${table})`).all() as Array<{ name: string }>).map((c) => c.name));
      for (const c of ['find', 'eager']) if (!cols.has(c)) db.exec(`ALTER TABLE ${table} ADD COLUMN ${c} INTEGER`);
    }
  }
}

interface EntryRow { idx: number; term: number; type: string; data: string }
interface HardRow { term: number; vote: string | null; commit: number }
/** part_rows: JSON, the snapshot_part rows (pieces) of each part, in order; the row's data is
 * then unused (''). Null: data is part 0 and each snapshot_part row one further part. */
interface SnapRow { idx: number; term: number; conf_state: string; data: string; part_rows: string | null }

/** A whole-state checkpoint being written in steps: the next row to write. */
interface PendingCheckpoint {
  c: MachineCheckpoint;
  table: number;
  row: number;
  defer: (fn: () => void) => void;
  scheduled: boolean;
}

/** Characters of a checkpoint's rows (JSON and binary parts). */
function rowChars(c: MachineCheckpoint): number {
  let n = 0;
  for (const t of CHECKPOINT_TABLES) for (const [, json, bin] of c.tables[t].put) n += json.length + (bin?.byteLength ?? 0);
  return n;
}

/** A snapshot transfer being staged (see stageSnapshotPart). */
interface Stage {
  /** The transfer's parts array (the install's data will be this same array). */
  parts: readonly string[];
  /** Its first row in snapshot_stage: rows below belong to abandoned transfers. */
  firstRow: number;
  /** Rows written so far for each part handed in (its last may still grow). */
  rowsPerPart: number[];
  /** Parts handed in and not fully written yet, in order; `at`: chars of the first written. */
  queue: number[];
  at: number;
  defer: (fn: () => void) => void;
  stepScheduled: boolean;
  /** Waiting for the queue to empty (stagedSnapshotWritten). */
  waiters: Array<() => void>;
}
interface CheckpointRow { idx: number; term: number; conf_state: string; meta: string }

// bytesWritten counts the values bound into each written row: 8 per integer, UTF-8 length of text.
const INT = 8;
const text = (s: string | null): number => (s === null ? 0 : Buffer.byteLength(s));

/** Rows per multi-row INSERT statement (4 bound values each; SQLite allows 32766). */
const INSERT_ROWS = 64;

/**
 * Off-thread fsync needs fdatasync to be a full flush: on macOS it is not (SQLite's fullfsync
 * uses F_FULLFSYNC there), and on Windows the WAL file must not be held open by us (SQLite
 * deletes it at close). There the connection keeps synchronous=FULL and fsyncs inline.
 */
const ASYNC_FSYNC_PLATFORM = process.platform !== 'darwin' && process.platform !== 'win32';

export class SqliteStorage implements LogStorage {
  private readonly st: ReturnType<typeof prepare>;
  private readonly saveTx: (b: PersistBatch, staged: Stage | null) => number;
  private readonly compactTx: (s: Snapshot) => number;
  private readonly checkpointTx: (c: MachineCheckpoint) => number;
  /** Index of the stored checkpoint (machine_* rows); 0 when none. */
  private rowsIndex: number;
  /** Index of the stored snapshot row; the log starts after the newer of the two. */
  private jsonIndex: number;
  // Cached so validation and entryCount need no query; entryCount = lastIndex - snapIndex
  // because the stored log is contiguous after the snapshot.
  private snapIndex: number;
  private lastIndex: number;
  private bytesWritten = 0;
  private syncs = 0;
  private syncMsTotal = 0;
  /** Each counted sync's duration (the same observations as syncs / syncMsTotal). */
  private readonly syncHistogram = new BucketHistogram(DISK_BUCKETS_S);
  private loopMsTotal = 0;
  private closed = false;
  private freeAt = -Infinity;
  private freeCache: number | null = null;
  /** Injectable for tests (a "full" disk without filling one). */
  statfs: (dir: string) => { bavail: number | bigint; bsize: number | bigint } = (dir) => fs.statfsSync(dir);
  /**
   * durability 'full' with the fsync off the event-loop thread: the connection runs with
   * synchronous=NORMAL (SQLite itself then fsyncs the WAL only at checkpoints, and syncs the WAL
   * header when it restarts the WAL), and every commit that must be durable is followed by an
   * fdatasync of the WAL file: inline in save(), on the libuv threadpool in saveAsync().
   */
  private readonly walSync: boolean = false;
  /** Our own descriptor on `<file>-wal` (opened at first use) and fdatasyncs running on it. */
  private walFdCache: number | null = null;
  private syncsInFlight = 0;
  /** A failed fsync: the file's state is unknown, so every later write fails with it too. */
  private syncError: Error | null = null;
  /** Prepared multi-row INSERTs by row count (1..INSERT_ROWS), created on first use. */
  private readonly inserts = new Map<number, Database.Statement>();
  private readonly insertArgs: unknown[] = [];
  /** Prepared multi-row checkpoint row INSERTs, by table and row count. */
  private readonly rowInserts = new Map<string, Database.Statement>();
  /** Term and vote last written: a batch that changes neither, and adds no entry or snapshot,
   * carries only the commit index, which Raft may lose (etcd's MustSync), so it skips fsync. */
  private durableTerm = 0;
  private durableVote: string | null = null;
  private readonly durability: Durability = 'full';
  /** A commit since the last recoverySync(): load() must make it durable before returning it. */
  private writtenSinceRecoverySync = false;
  private readonly sfs: SyncFs;
  /** walSync only: estimated WAL frames since the last checkpoint request, and one in flight. */
  private walFramesSinceCheckpoint = 0;
  private checkpointInFlight = false;
  /** Checkpoints run by the worker thread and inline (worker unavailable or failed). */
  private checkpoints = { worker: 0, inline: 0, failed: 0, tails: 0, tailMaxMs: 0, passesMax: 0 };
  /** The pending free-page release step, if any (see releaseFreePages). */
  private vacuumTimer: NodeJS.Timeout | null = null;
  private vacuum = { steps: 0, pages: 0, checkpoints: 0, ms: 0, maxStepMs: 0, maxCheckpointMs: 0 };
  private vacuumActive = false;
  /** The transfer being staged, next row number, and rows below which are abandoned ones. */
  private stage: Stage | null = null;
  private stageNextRow = 1;
  private stageStaleBelow = 1;
  /** Rows below stageStaleBelow may be left (deleted in steps, see scheduleStaleDrop). */
  private staleRowsLeft = false;
  /** A whole-state checkpoint being written in steps (see startSteppedCheckpoint). */
  private pendingCheckpoint: PendingCheckpoint | null = null;
  /** Tables renamed away to be emptied in steps, oldest first; names trash_<seq>. */
  private readonly trash: string[] = [];
  private trashSeq = 0;
  /** STAGE_PIECE_CHARS, smaller in tests (open's stagePieceChars). */
  private stagePieceChars = STAGE_PIECE_CHARS;
  private staleDropScheduled = false;
  private staleDefer: (fn: () => void) => void = (fn) => void setImmediate(fn).unref();

  /**
   * Opens (creating if needed) the member's database. With durability 'full' it returns only
   * once everything in the files is durable (see recoverySync): a previous process killed with
   * fsyncs pending left written but unsynced WAL frames, which this process reads from the page
   * cache and will treat as durable. `syncFs` (default node:fs) carries every fsync we issue.
   */
  static open(file: string, opts: { durability?: Durability; fsync?: FsyncMode; syncFs?: SyncFs; checkpoint?: CheckpointMode; stagePieceChars?: number } = {}): SqliteStorage {
    const durability = opts.durability ?? 'full';
    if (!['full', 'normal', 'off'].includes(durability)) throw new Error(`SqliteStorage: unknown durability ${String(durability)}`);
    const sfs = opts.syncFs ?? nodeSyncFs;
    mkdirDurable(path.dirname(path.resolve(file)), sfs);
    const db = new Database(file);
    let storage: SqliteStorage | null = null;
    try {
      const mode = db.pragma('journal_mode = WAL', { simple: true });
      if (mode !== 'wal') throw new Error(`SqliteStorage(${file}): could not enable WAL (journal_mode=${String(mode)})`);
      const walSync = durability === 'full' && opts.fsync === 'threadpool' && ASYNC_FSYNC_PLATFORM;
      db.pragma(`synchronous = ${walSync ? 'NORMAL' : durability.toUpperCase()}`);
      // Checkpoints (and their fsyncs) off the event loop too: see wal-checkpointer.ts.
      const workerCheckpoints = walSync && opts.checkpoint === 'worker';
      if (workerCheckpoints) db.pragma('wal_autocheckpoint = 0');
      // On macOS plain fsync does not flush the drive cache; F_FULLFSYNC does (no-op elsewhere).
      if (durability === 'full') db.pragma('fullfsync = ON');
      db.pragma(`journal_size_limit = ${JOURNAL_SIZE_LIMIT_BYTES}`);
      db.pragma(`cache_size = ${-CACHE_KIB}`);
      // Takes effect only in a file with no table yet (new files); older files are converted
      // below, once.
      db.pragma('auto_vacuum = INCREMENTAL');
      db.transaction(() => {
        db.exec(SCHEMA);
        addRowColumns(db);
        ensureAllOnDemandIndexes(db);
        const v = db.prepare(`SELECT value FROM meta WHERE key = 'schema_version'`).pluck().get() as string | undefined;
        if (v === undefined || Number(v) === 1 || Number(v) === 2) {
          const cols = db.prepare('SELECT name FROM pragma_table_info(?)').pluck().all('snapshot') as string[];
          if (!cols.includes('part_rows')) db.exec('ALTER TABLE snapshot ADD COLUMN part_rows TEXT');
          db.prepare(`INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)`).run(String(SCHEMA_VERSION));
        } else if (Number(v) !== SCHEMA_VERSION) throw new Error(`SqliteStorage(${file}): schema version ${v}, expected ${SCHEMA_VERSION}`);
        // Parts staged by a process that stopped before installing them belong to no state,
        // nor do rows of a checkpoint it was writing in steps, nor tables it was emptying.
        let staged = db.prepare('DELETE FROM snapshot_stage').run().changes;
        for (const t of CHECKPOINT_TABLES) staged += db.prepare(`DELETE FROM machine_${t}_stage`).run().changes;
        const trash = db.prepare(`SELECT name FROM sqlite_schema WHERE type = 'table' AND name LIKE 'trash\\_%' ESCAPE '\\'`).pluck().all() as string[];
        for (const name of trash) db.exec(`DROP TABLE "${name}"`);
        if (staged > 0 || trash.length > 0) logger.info({ file, rows: staged, tables: trash.length }, 'dropped rows staged before a restart');
      })();
      convertToIncrementalVacuum(db, file);
      storage = new SqliteStorage(file, db, durability, walSync, sfs, workerCheckpoints);
      if (opts.stagePieceChars !== undefined) {
        if (!Number.isSafeInteger(opts.stagePieceChars) || opts.stagePieceChars < 2) throw new Error(`SqliteStorage: stagePieceChars ${opts.stagePieceChars} is not an integer >= 2`);
        storage.stagePieceChars = opts.stagePieceChars;
      }
      // Before the recovery fsync: a conversion's commit is made durable with the rest.
      if (durability === 'full') storage.recoverySync();
      // Free pages left by an earlier process (it may have stopped mid-release).
      storage.scheduleVacuum();
      return storage;
    } catch (e) {
      if (storage) storage.close();
      else db.close();
      throw e;
    }
  }

  private constructor(
    readonly file: string,
    private readonly db: Database.Database,
    durability: Durability,
    walSync: boolean,
    sfs: SyncFs,
    private readonly workerCheckpoints = false,
  ) {
    this.durability = durability;
    this.walSync = walSync;
    this.sfs = sfs;
    const st = (this.st = prepare(db));
    const hs = st.hard.get() as HardRow | undefined;
    this.durableTerm = hs?.term ?? 0;
    this.durableVote = hs?.vote ?? null;
    this.jsonIndex = (st.snapIdx.get() as number | undefined) ?? 0;
    this.rowsIndex = (st.checkpointIdx.get() as number | undefined) ?? 0;
    this.snapIndex = Math.max(this.jsonIndex, this.rowsIndex);
    this.lastIndex = (st.maxIdx.get() as number | null) ?? this.snapIndex;

    this.saveTx = db.transaction((b: PersistBatch, staged: Stage | null): number => {
      let bytes = 0;
      if (b.snapshot) {
        bytes += staged ? this.commitStaged(b.snapshot, staged) : this.putSnapshot(b.snapshot);
        st.truncateFrom.run(0); // an installed snapshot replaces the whole log
      }
      const first = b.entries[0];
      if (first) {
        st.truncateFrom.run(first.index); // conflicting suffix, if any
        bytes += this.insertEntries(b.entries);
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
    const rowSt = new Map(
      CHECKPOINT_TABLES.map((t) => [
        t,
        {
          clear: db.prepare(`DELETE FROM machine_${t}`),
          del: db.prepare(`DELETE FROM machine_${t} WHERE ord = ?`),
        },
      ]),
    );
    this.checkpointTx = db.transaction((c: MachineCheckpoint): number => {
      let bytes = 0;
      for (const t of CHECKPOINT_TABLES) {
        const ch = c.tables[t];
        const q = rowSt.get(t) as { clear: Database.Statement; del: Database.Statement };
        if (ch.clear) q.clear.run();
        for (const ord of ch.del) q.del.run(ord);
        bytes += this.putRows(t, ch.put);
      }
      const conf = JSON.stringify(c.metadata.confState);
      st.putCheckpoint.run(c.metadata.index, c.metadata.term, conf, c.meta);
      bytes += 2 * INT + text(conf) + text(c.meta);
      // The rows are the newest state: an older snapshot (an install's) would only take space.
      st.dropSnapTo.run(c.metadata.index);
      st.dropOrphanParts.run();
      st.compactTo.run(c.metadata.index);
      return bytes;
    });
  }

  /**
   * Returns the stored state, all of it durable (durability 'full'): writes made through this
   * object whose fsync may not have completed (a host restarted in-process while a saveAsync
   * fdatasync was in flight) are fsynced first, as open() does for an earlier process's.
   */
  load(initialConf: ConfState): LoadedState {
    if (this.durability === 'full' && this.writtenSinceRecoverySync) {
      if (this.syncError) throw this.syncError;
      try {
        this.recoverySync();
      } catch (e) {
        this.syncError ??= e as Error;
        throw e;
      }
    }
    const h = this.st.hard.get() as HardRow | undefined;
    const s = this.st.snap.get() as SnapRow | undefined;
    const c = this.st.checkpoint.get() as CheckpointRow | undefined;
    // The newer of the two is the state the log starts after (equal: the rows, written last).
    const fromRows = c !== undefined && c.idx >= (s?.idx ?? 0);
    const at = fromRows ? c : s;
    const meta: SnapshotMetadata | null = at
      ? { index: at.idx, term: at.term, confState: JSON.parse(at.conf_state) as ConfState }
      : null;
    const entries: Entry[] = (this.st.all.all() as EntryRow[]).map((r) => ({
      index: r.idx, term: r.term, type: r.type as EntryType, data: r.data,
    }));
    checkLog(meta, entries, `SqliteStorage(${this.file})`);
    const state: LoadedState = {
      hardState: h ? { term: h.term, vote: h.vote, commit: h.commit } : { term: 0, vote: null, commit: 0 },
      snapshot: meta,
      entries,
      initialConf,
    };
    if (fromRows) state.checkpoint = this.checkpointReader(c.meta);
    else if (s) state.snapshotData = s.part_rows === null ? this.legacyParts(s.data) : this.pieceParts(s.part_rows);
    // A host restarted on this storage: a transfer it was staging is gone with it, and so is
    // a checkpoint it was writing (the state is rebuilt from what is stored).
    if (this.stage) this.abandonStage();
    if (this.pendingCheckpoint) this.abandonCheckpoint();
    return state;
  }

  /** part 0 in the snapshot row, each snapshot_part row one further part (see putSnapshot). */
  private legacyParts(first: string): SnapshotData {
    const rest = this.st.snapParts.all() as string[];
    return rest.length === 0 ? first : [first, ...rest];
  }

  /** Parts stored as pieces (a staged install): part_rows gives each part's row count. */
  private pieceParts(partRows: string): SnapshotData {
    const damaged = (why: string): Error => new Error(`SqliteStorage(${this.file}): snapshot parts cannot be read: ${why}`);
    let counts: unknown;
    try {
      counts = JSON.parse(partRows);
    } catch {
      throw damaged('part_rows is not JSON');
    }
    if (!Array.isArray(counts) || counts.length === 0 || !counts.every((c) => Number.isSafeInteger(c) && (c as number) >= 0)) throw damaged(`part_rows ${partRows.slice(0, 80)}`);
    const parts: string[] = [];
    let pieces: string[] = [];
    let p = 0;
    const close = (): void => {
      while (p < counts.length && pieces.length === (counts[p] as number)) {
        parts.push(pieces.join(''));
        pieces = [];
        p++;
      }
    };
    close();
    for (const data of this.st.snapParts.iterate() as Iterable<string>) {
      if (p >= counts.length) throw damaged(`more rows than part_rows ${partRows.slice(0, 80)} counts`);
      pieces.push(data);
      close();
    }
    if (p < counts.length) throw damaged(`fewer rows than part_rows ${partRows.slice(0, 80)} counts`);
    return parts;
  }

  /**
   * The stored rows, each table read in ord order as the caller iterates (not all at once),
   * each row's JSON parsed. Measured (39,000 rows of ~330 bytes, CPU time): stepping the
   * statement 34 ms plus parsing 39 ms; SQLite joining each 4,096 rows into one JSON array
   * (one parse per chunk) cost more (80 + 40 ms).
   */
  private checkpointReader(meta: string): CheckpointReader {
    const db = this.db;
    return {
      meta,
      rows: function* (t: CheckpointTable): Iterable<[number, unknown, Uint8Array?]> {
        for (const [ord, json, bin] of db.prepare(`SELECT ord, json, bin FROM machine_${t} ORDER BY ord`).raw().iterate() as Iterable<[number, string, Buffer | null]>) {
          yield bin === null ? [ord, JSON.parse(json) as unknown] : [ord, JSON.parse(json) as unknown, bin];
        }
      },
      jsonRows: (t, each) => readJsonRows(db, t, each, this.file),
      storedRows: (t) => storedRows(db, t, this.file),
    };
  }

  save(batch: PersistBatch): void {
    if (isEmptyBatch(batch)) return; // nothing to make durable: skip the fsync
    if (this.syncError) throw this.syncError;
    const t0 = performance.now();
    const mustSync = this.write(batch);
    if (mustSync && this.walSync) {
      try {
        this.sfs.fdatasyncSync(this.walFd());
      } catch (e) {
        this.syncError ??= e as Error;
        throw e;
      }
    }
    const ms = performance.now() - t0;
    this.loopMsTotal += ms;
    // walSync: our fdatasync above ran. Otherwise SQLite fsynced inside the commit only if the
    // connection runs synchronous=FULL or EXTRA (never with durability 'normal'/'off').
    if (mustSync && (this.walSync || this.sqliteSyncsCommits())) this.noteSync(ms);
  }

  /**
   * save() with the fsync on the libuv threadpool (fsync 'threadpool', see FsyncMode);
   * otherwise it is save() and returns true. The batch is written
   * (committed to the WAL) before this returns, so load() and later batches see it; it
   * survives power loss once `done` ran without error. `done` is always called
   * asynchronously, exactly once, unless this returns true (durable already, or nothing that
   * must be: a commit-index-only batch).
   */
  saveAsync(batch: PersistBatch, done: (err: Error | null) => void): boolean {
    if (!this.walSync) {
      this.save(batch);
      return true;
    }
    if (isEmptyBatch(batch)) return true;
    if (this.syncError) throw this.syncError;
    const t0 = performance.now();
    const mustSync = this.write(batch);
    this.loopMsTotal += performance.now() - t0;
    // Nothing new to flush, and no earlier write still waiting for its fsync.
    if (!mustSync && this.syncsInFlight === 0) return true;
    this.syncWal(t0, mustSync, done);
    return false;
  }

  /** fdatasync the WAL on the threadpool; counts it (if `counted`) once it succeeded. */
  private syncWal(t0: number, counted: boolean, done: (err: Error | null) => void): void {
    const fd = this.walFd();
    this.syncsInFlight++;
    this.sfs.fdatasync(fd, (err) => {
      this.syncsInFlight--;
      if (this.closed && this.syncsInFlight === 0) this.closeWalFd();
      if (err) this.syncError ??= err;
      // Wall time until durable, as the waiting host sees it: threadpool queueing included.
      else if (counted) this.noteSync(performance.now() - t0);
      done(err);
    });
  }

  /** Validate and write one batch in one transaction; true when it must be fsynced (MustSync). */
  private write(batch: PersistBatch): boolean {
    checkBatch(batch, this.snapIndex, this.lastIndex, `SqliteStorage(${this.file})`);
    const hs = batch.hardState;
    const mustSync = batch.snapshot !== null || batch.entries.length > 0 || (hs !== null && (hs.term !== this.durableTerm || hs.vote !== this.durableVote));
    this.writtenSinceRecoverySync = true;
    const staged = this.stagedFor(batch.snapshot);
    // An installed snapshot replaces the state a checkpoint being written in steps is of.
    if (batch.snapshot && this.pendingCheckpoint) this.abandonCheckpoint();
    if (mustSync || this.durability !== 'full' || this.walSync) {
      // With walSync the connection never fsyncs a commit itself; the caller does if needed.
      let bytes: number;
      const t0 = performance.now();
      try {
        bytes = this.saveTx(batch, staged);
      } catch (e) {
        // Rolled back: what the stage counted is unknown now; its rows are dropped.
        if (staged) this.abandonStage();
        throw e;
      }
      this.bytesWritten += bytes;
      if (this.workerCheckpoints || this.stepCheckpointsOffLoop) this.maybeCheckpoint(bytes);
      // The steps are over: SQLite's own checkpoint again (see stageStep).
      if (this.stepCheckpointsOffLoop && !this.stage && !this.pendingCheckpoint) this.autoCheckpointAgain();
      if (staged) {
        const rows = staged.rowsPerPart.reduce((a, b) => a + b, 0);
        logger.info({ file: this.file, index: batch.snapshot!.metadata.index, parts: staged.parts.length, rows, commit_ms: Math.round(performance.now() - t0), stage_step_max_ms: Math.round(this.stageStepMaxMs) }, 'snapshot install committed from staged parts');
      }
    } else {
      // Commit-index-only update: written, but not worth an fsync. (pragma must be exec'd
      // each time: a prepared PRAGMA statement applies at prepare time only.)
      this.db.pragma('synchronous = NORMAL');
      try {
        this.bytesWritten += this.saveTx(batch, null);
      } finally {
        this.db.pragma('synchronous = FULL');
      }
    }
    if (staged) this.stageCommitted(staged);
    if (hs) {
      this.durableTerm = hs.term;
      this.durableVote = hs.vote;
    }
    // Caches move only after the commit succeeded (a failed transaction rolled back).
    if (batch.snapshot) {
      this.snapIndex = this.lastIndex = this.jsonIndex = batch.snapshot.metadata.index;
      this.scheduleVacuum(); // the installed snapshot replaced the old one and the whole log
    }
    const last = batch.entries.at(-1);
    if (last) this.lastIndex = last.index;
    return mustSync;
  }

  compact(snapshot: Snapshot): void {
    if (this.pendingCheckpoint) this.finishCheckpoint(this.pendingCheckpoint);
    const at = snapshot.metadata.index;
    // Stale (e.g. a leader's snapshot was installed meanwhile): the stored one already covers it.
    if (at <= this.snapIndex) return;
    checkCompact(snapshot.metadata, this.lastIndex, this.st.termAt.get(at) as number | undefined, `SqliteStorage(${this.file})`);
    if (this.syncError) throw this.syncError;
    const t0 = performance.now();
    this.writtenSinceRecoverySync = true;
    this.bytesWritten += this.compactTx(snapshot);
    this.snapIndex = this.jsonIndex = at;
    this.afterCompaction(t0);
  }

  /**
   * Write checkpoint `c` (the machine's changed rows) and drop the log up to its index, in one
   * transaction. Durability as compact(): nothing waits for its fsync (see there).
   */
  checkpoint(c: MachineCheckpoint, defer?: (fn: () => void) => void): boolean {
    // Checkpoints apply in order: one still being written in steps commits first.
    if (this.pendingCheckpoint) this.finishCheckpoint(this.pendingCheckpoint);
    const at = c.metadata.index;
    const where = `SqliteStorage(${this.file})`;
    if (!checkCheckpoint(c, this.snapIndex, this.rowsIndex, this.lastIndex, (i) => this.st.termAt.get(i) as number | undefined, where)) return false;
    if (this.syncError) throw this.syncError;
    const whole = CHECKPOINT_TABLES.every((t) => c.tables[t].clear);
    if (this.checkpointLost && !whole) return false;
    this.checkpointLost = false;
    if (defer && CHECKPOINT_TABLES.every((t) => c.tables[t].clear) && rowChars(c) >= STEPPED_CHECKPOINT_CHARS) {
      this.startSteppedCheckpoint(c, defer);
      return true;
    }
    const t0 = performance.now();
    this.writtenSinceRecoverySync = true;
    this.bytesWritten += this.checkpointTx(c);
    this.snapIndex = this.rowsIndex = at;
    if (this.jsonIndex <= at) this.jsonIndex = 0;
    this.afterCompaction(t0);
    return true;
  }

  /**
   * A whole-state checkpoint written a few MiB per step into machine_<t>_stage, then
   * committed in one small transaction (renames; see finishCheckpoint). Until then the stored
   * state is the previous one with its log (a crash leaves that), and load() drops it. Row
   * JSON is immutable; binary parts are copied now (the machine may change its buffers).
   */
  private startSteppedCheckpoint(c: MachineCheckpoint, defer: (fn: () => void) => void): void {
    const tables = Object.fromEntries(
      CHECKPOINT_TABLES.map((t) => [t, { clear: true, del: [], put: c.tables[t].put.map(([ord, json, bin, find, eager]): TableRow => [ord, json, bin === undefined ? undefined : Buffer.from(bin), find, eager]) }]),
    ) as unknown as MachineCheckpoint['tables'];
    const p: PendingCheckpoint = { c: { ...c, tables }, table: 0, row: 0, defer, scheduled: false };
    this.pendingCheckpoint = p;
    this.staleDefer = defer;
    this.scheduleCheckpointStep(p);
  }

  private scheduleCheckpointStep(p: PendingCheckpoint): void {
    if (p.scheduled) return;
    p.scheduled = true;
    p.defer(() => {
      p.scheduled = false;
      if (this.pendingCheckpoint !== p || this.closed || this.syncError || !this.db.open) return;
      try {
        if (this.writeCheckpointRows(p, STAGE_PIECE_CHARS)) this.finishCheckpoint(p);
        else this.scheduleCheckpointStep(p);
      } catch (e) {
        // Logged and lost (see failCheckpoint): a timer callback must not end the process.
        logger.warn({ file: this.file, err: (e as Error).message }, 'whole-state checkpoint not written');
      }
    });
  }

  /**
   * Rows of `p` up to about `budget` characters, one transaction; true when all are written.
   * Throws if the write failed: `p` is then dropped (see failCheckpoint).
   */
  private writeCheckpointRows(p: PendingCheckpoint, budget: number): boolean {
    const ok = this.stageStep(() => {
      let bytes = 0;
      let chars = 0;
      while (p.table < CHECKPOINT_TABLES.length && chars < budget) {
        const t = CHECKPOINT_TABLES[p.table]!;
        const rows = p.c.tables[t].put;
        if (p.row >= rows.length) {
          p.table++;
          p.row = 0;
          continue;
        }
        let end = p.row;
        while (end < rows.length && (end === p.row || chars < budget)) {
          const [, json, bin] = rows[end]!;
          chars += json.length + (bin?.byteLength ?? 0);
          end++;
        }
        bytes += this.putRows(t, rows.slice(p.row, end), `machine_${t}_stage`);
        p.row = end;
      }
      return bytes;
    }, 'writing checkpoint rows');
    if (!ok) {
      this.failCheckpoint(p);
      throw new Error(`SqliteStorage(${this.file}): checkpoint at ${p.c.metadata.index} not written (its rows could not be staged)`);
    }
    return p.table >= CHECKPOINT_TABLES.length;
  }

  /**
   * A stepped checkpoint that could not be written: its staged rows go, and the stored rows
   * are the previous checkpoint's, which the machine believes it replaced: until a checkpoint
   * rewrites every table, checkpoint() stores nothing and returns false (the host then marks
   * the checkpoint lost, and the next one rewrites everything).
   */
  private failCheckpoint(p: PendingCheckpoint): void {
    if (this.pendingCheckpoint === p) this.pendingCheckpoint = null;
    this.checkpointLost = true;
    try {
      this.db.transaction(() => {
        for (const t of CHECKPOINT_TABLES) this.trashTable(`machine_${t}_stage`, null, rowStageTable(t));
      })();
    } catch (e) {
      // Left for open() to clear; no later stepped checkpoint starts on rows it cannot clear.
      this.syncError ??= e as Error;
    }
  }

  /** A stepped checkpoint was lost: only a whole rewrite may be stored next. */
  private checkpointLost = false;

  /** Write what is left of `p` and commit it: stage tables renamed in, old ones to trash. */
  private finishCheckpoint(p: PendingCheckpoint): void {
    if (this.pendingCheckpoint !== p) return;
    const t0 = performance.now();
    this.writeCheckpointRows(p, Infinity);
    const c = p.c;
    const at = c.metadata.index;
    if (this.syncError) throw this.syncError;
    this.writtenSinceRecoverySync = true;
    let bytes: number;
    try {
      bytes = this.db.transaction((): number => {
      for (const t of CHECKPOINT_TABLES) this.trashTable(`machine_${t}`, `machine_${t}_stage`, rowStageTable(t));
      const conf = JSON.stringify(c.metadata.confState);
      this.st.putCheckpoint.run(at, c.metadata.term, conf, c.meta);
      this.st.dropSnapTo.run(at);
      // The installed snapshot's parts, if the rows replace it: to the trash, not deleted now.
      if (this.st.snapIdx.get() === undefined) this.trashTable('snapshot_part', null, 'CREATE TABLE snapshot_part (n INTEGER PRIMARY KEY, data TEXT NOT NULL);');
      this.st.compactTo.run(at);
      return 2 * INT + text(conf) + text(c.meta);
    })();
    } catch (e) {
      this.failCheckpoint(p);
      throw e;
    }
    this.pendingCheckpoint = null;
    this.bytesWritten += bytes;
    this.snapIndex = Math.max(this.snapIndex, at);
    this.rowsIndex = at;
    if (this.jsonIndex <= at) this.jsonIndex = 0;
    this.steppedCheckpoints++;
    logger.info({ file: this.file, index: at, commit_ms: Math.round(performance.now() - t0), stage_step_max_ms: Math.round(this.stageStepMaxMs) }, 'whole-state checkpoint committed from rows written in steps');
    this.afterCompaction(t0);
  }

  /** Checkpoints written in steps and committed (see startSteppedCheckpoint). */
  steppedCheckpoints = 0;

  /** True while a checkpoint is being written in steps. */
  checkpointPending(): boolean {
    return this.pendingCheckpoint !== null;
  }

  /** The stepped checkpoint is dropped (a restart on this storage, or a snapshot installed). */
  private abandonCheckpoint(): void {
    if (!this.pendingCheckpoint) return;
    this.pendingCheckpoint = null;
    this.db.transaction(() => {
      for (const t of CHECKPOINT_TABLES) this.trashTable(`machine_${t}_stage`, null, rowStageTable(t));
    })();
  }

  /**
   * In the caller's transaction: `name` becomes a trash table (emptied in steps), `from` (if
   * given) takes its name, and `create` makes the table that is now missing.
   */
  private trashTable(name: string, from: string | null, create: string): void {
    const trash = `trash_${++this.trashSeq}`;
    this.db.exec(`ALTER TABLE ${name} RENAME TO ${trash}`);
    if (from) this.db.exec(`ALTER TABLE ${from} RENAME TO ${name}`);
    this.db.exec(create);
    // The table made afresh has no index yet (a renamed one kept its own).
    ensureAllOnDemandIndexes(this.db);
    this.trash.push(trash);
    this.scheduleStaleDrop();
  }

  private afterCompaction(t0: number): void {
    const ms = performance.now() - t0;
    this.loopMsTotal += ms;
    this.scheduleVacuum();
    if (!this.walSync) {
      if (this.sqliteSyncsCommits()) this.noteSync(ms); // fsynced inside the commit
      return;
    }
    // fsync 'threadpool': no waiting. Nothing depends on a compaction being durable: it only
    // drops entries that are durable already (applied <= stable), in one transaction with the
    // snapshot that covers them, so a power failure before this fsync (or before the next
    // save's, which covers it too: the WAL is flushed as a whole) leaves the previous snapshot
    // plus the complete log. Measured: the inline fsync was ~10% of the loop in the raft bench.
    this.syncWal(t0, true, () => undefined);
  }

  /**
   * The member this file belongs to, written once when the member is created: lets a host
   * tell its own file from a lost, replaced or foreign one. Null for a file that has none yet.
   */
  identity(): MemberIdentity | null {
    const member = this.st.getMeta.get('member_id') as string | undefined;
    const incarnation = this.st.getMeta.get('incarnation') as string | undefined;
    return member !== undefined && incarnation !== undefined ? { member, incarnation } : null;
  }

  /** Record the member's identity durably (fsynced before this returns, whatever the mode). */
  setIdentity(id: MemberIdentity): void {
    if (this.syncError) throw this.syncError;
    this.db.transaction(() => {
      this.st.putMeta.run('member_id', id.member);
      this.st.putMeta.run('incarnation', id.incarnation);
    })();
    if (this.walSync) this.sfs.fdatasyncSync(this.walFd());
  }

  /** Free bytes for an unprivileged writer on the file's filesystem (statfs, cached 100 ms). */
  freeBytes(): number | null {
    const now = performance.now();
    if (now - this.freeAt < 100) return this.freeCache;
    this.freeAt = now;
    try {
      const st = this.statfs(path.dirname(this.file));
      this.freeCache = Number(st.bavail) * Number(st.bsize);
    } catch {
      this.freeCache = null;
    }
    return this.freeCache;
  }

  /** SQLite's quick integrity check: 'ok', or the problems it found (pages, indexes). */
  quickCheck(): string {
    const rows = this.db.pragma('quick_check(5)', { simple: false }) as Array<{ quick_check: string }>;
    return rows.map((r) => r.quick_check).join('; ');
  }

  /** True when the file holds no Raft state at all (never written, or just created). */
  isEmpty(): boolean {
    return this.st.hard.get() === undefined && this.snapIndex === 0 && this.lastIndex === 0;
  }

  stats(): StorageStats {
    return {
      bytesWritten: this.bytesWritten,
      syncs: this.syncs,
      syncMsTotal: this.syncMsTotal,
      loopMsTotal: this.loopMsTotal,
      syncSeconds: this.syncHistogram.snapshot(),
      entryCount: this.lastIndex - this.snapIndex,
      diskBytes: fileSize(this.file) + fileSize(`${this.file}-wal`),
    };
  }

  /**
   * Closes the database at once. An fdatasync still running keeps our WAL descriptor until it
   * finishes (its `done` still runs, with its result); the database file itself is closed.
   */
  /** Ask the worker for a PASSIVE checkpoint once the WAL grew enough; inline if it cannot. */
  private maybeCheckpoint(bytes: number): void {
    this.walFramesSinceCheckpoint += FRAMES_PER_COMMIT + Math.ceil(bytes / PAGE_BYTES);
    if (this.walFramesSinceCheckpoint < CHECKPOINT_FRAMES || this.checkpointInFlight) return;
    this.walFramesSinceCheckpoint = 0;
    this.checkpointInFlight = true;
    const sent = WAL_CHECKPOINTER.request(this.file, (err, r) => {
      this.checkpointInFlight = false;
      if (this.closed) return;
      if (!err) {
        this.checkpoints.worker++;
        if (r) this.checkpoints.passesMax = Math.max(this.checkpoints.passesMax, r.passes);
        if (r && r.log >= TAIL_INLINE_FRAMES) this.checkpointTail();
        return;
      }
      logger.debug({ file: this.file, err: err.message }, 'worker checkpoint failed; checkpointing inline');
      this.checkpointInline();
    });
    if (!sent) {
      this.checkpointInFlight = false;
      this.checkpointInline();
    }
  }

  /**
   * Never throws: a checkpoint only moves committed pages from the WAL into the database, and
   * one that fails (the disk is full, a reader holds the pages) leaves them in the WAL, still
   * durable and readable, for a later one. SQLite's automatic checkpoint ignores such failures
   * the same way. Thrown from a worker's answer it was an uncaught exception that ended the
   * process (SQLITE_FULL in test/service/disk-full.test.ts); thrown after a commit, the caller
   * would have taken the committed batch for a failed one.
   */
  private checkpointInline(kind: 'inline' | 'tails' = 'inline'): void {
    try {
      this.db.pragma('wal_checkpoint(PASSIVE)');
      this.checkpoints[kind]++;
    } catch (e) {
      this.checkpoints.failed++;
      logger.warn({ file: this.file, err: (e as Error).message }, 'WAL checkpoint failed; its pages stay in the WAL until a later one');
    }
  }

  /**
   * Copies what the writer appended during the worker's passes, here between two commits, so
   * the whole WAL is copied and the next commit restarts it from its start: without this the
   * WAL grew with a burst (6,000 back-to-back writes: 145 MiB). Short by construction (the
   * worker copied the rest), but it fsyncs the WAL and the database on the event loop: timed.
   */
  private checkpointTail(): void {
    const t0 = performance.now();
    this.checkpointInline('tails');
    this.checkpoints.tailMaxMs = Math.max(this.checkpoints.tailMaxMs, Math.round((performance.now() - t0) * 10) / 10);
  }

  /** WAL checkpoints run on the worker thread and inline so far, inline ones that failed
   * (checkpoint 'worker', or steps under way), and tails the writer copied after the worker
   * (checkpointTail) with the longest one's milliseconds, and the most passes one worker request
   * ran (see wal-checkpointer.ts). */
  checkpointCounts(): { worker: number; inline: number; failed: number; tails: number; tailMaxMs: number; passesMax: number } {
    return { ...this.checkpoints };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.vacuumTimer) clearTimeout(this.vacuumTimer);
    this.vacuumTimer = null;
    if (this.syncsInFlight === 0) this.closeWalFd();
    this.db.close();
    // Nothing of this member's may touch its files once closed (they may be removed next).
    if (this.checkpointInFlight && !WAL_CHECKPOINTER.waitIdle(this.file, 2000)) logger.warn({ file: this.file }, 'a WAL checkpoint on the worker thread still had the file open after 2 s');
  }

  /** Pages in the database file, free pages among them, and the auto_vacuum mode (2: incremental). */
  pageStats(): { pageCount: number; freelistCount: number; autoVacuum: number } {
    return {
      pageCount: this.db.pragma('page_count', { simple: true }) as number,
      freelistCount: this.db.pragma('freelist_count', { simple: true }) as number,
      autoVacuum: this.db.pragma('auto_vacuum', { simple: true }) as number,
    };
  }

  /**
   * Free-page release so far: steps run, pages released, inline checkpoints that followed, and
   * the time they held the event loop (total, the longest step, the longest checkpoint).
   */
  vacuumCounts(): { steps: number; pages: number; checkpoints: number; ms: number; maxStepMs: number; maxCheckpointMs: number } {
    return { ...this.vacuum };
  }

  /** True while free pages are waiting to be released (a step is scheduled). */
  vacuumPending(): boolean {
    return this.vacuumTimer !== null;
  }

  /**
   * Release free pages if they are many (see VACUUM_MIN_FREE_PAGES): one bounded step on a
   * later timer turn, and further steps until none are left. Unref'd: never keeps a process up.
   */
  private scheduleVacuum(): void {
    if (this.vacuumTimer || this.closed) return;
    const t = setTimeout(() => this.releaseFreePages(), 0);
    t.unref();
    this.vacuumTimer = t;
  }

  /**
   * One step of at most VACUUM_STEP_PAGES pages (PRAGMA incremental_vacuum), its own
   * transaction. Not fsynced (synchronous=NORMAL for the step): it holds no Raft state of its
   * own, moves only pages whose content is unchanged, and a power failure before the next
   * fsync (of a later commit, which flushes the whole WAL, or of a checkpoint) just rolls the
   * file back to before the step. Not counted in stats().syncs or bytesWritten.
   */
  releaseFreePages(): void {
    this.vacuumTimer = null;
    // A handle closed under us (a crash simulated by closing the database) is not an error.
    if (this.closed || this.syncError || !this.db.open) return;
    const { pageCount, freelistCount, autoVacuum } = this.pageStats();
    // 2 = INCREMENTAL. A file whose conversion failed at open keeps its pages (see open).
    if (autoVacuum !== 2) return;
    // Start only when free pages are many; once started, release them all (hysteresis).
    if (!this.vacuumActive && (freelistCount < VACUUM_MIN_FREE_PAGES || freelistCount < pageCount * VACUUM_FREE_FRACTION)) return;
    if (freelistCount === 0) {
      this.vacuumActive = false;
      return;
    }
    this.vacuumActive = true;
    const t0 = performance.now();
    const fullSync = this.durability === 'full' && !this.walSync;
    if (fullSync) this.db.pragma('synchronous = NORMAL');
    try {
      this.db.exec(`PRAGMA incremental_vacuum(${VACUUM_STEP_PAGES})`);
    } catch (e) {
      this.vacuumActive = false;
      logger.warn({ file: this.file, err: (e as Error).message }, 'releasing free pages failed');
      return;
    } finally {
      if (fullSync) this.db.pragma('synchronous = FULL');
    }
    const ms = performance.now() - t0;
    const left = this.db.pragma('freelist_count', { simple: true }) as number;
    const released = Math.max(0, freelistCount - left);
    this.vacuum.steps++;
    this.vacuum.pages += released;
    this.vacuum.ms += ms;
    this.vacuum.maxStepMs = Math.max(this.vacuum.maxStepMs, ms);
    this.loopMsTotal += ms;
    this.writtenSinceRecoverySync = true;
    if (this.workerCheckpoints) this.maybeCheckpoint(released * PAGE_BYTES);
    if (left > 0 && released > 0) {
      this.scheduleVacuum();
      return;
    }
    this.vacuumActive = false;
    // In WAL mode the file itself shrinks only when a checkpoint copies the last step: ask for
    // one now rather than at the next 1,000 WAL frames, which an idle member may never reach.
    const t = setTimeout(() => this.checkpointAfterVacuum(), 0);
    t.unref();
    this.vacuumTimer = t;
  }

  /**
   * After the last step: a checkpoint copies the released state into the file, which SQLite
   * then truncates, and TRUNCATE empties the WAL, which otherwise keeps its size until the next
   * commit (journal_size_limit applies there) and an idle member may not commit for a long time.
   * With checkpoint 'worker' the worker copies first, so the inline TRUNCATE finds nothing left
   * to copy. Never waits for a reader (busy_timeout 0): if one holds the WAL, this does less.
   */
  private checkpointAfterVacuum(): void {
    this.vacuumTimer = null;
    if (this.closed || this.syncError || !this.db.open) return;
    if (!this.workerCheckpoints) {
      this.truncateWal();
      return;
    }
    if (this.checkpointInFlight) {
      // That one may have started before the last step: ask again once it is done.
      const t = setTimeout(() => this.checkpointAfterVacuum(), 20);
      t.unref();
      this.vacuumTimer = t;
      return;
    }
    this.checkpointInFlight = true;
    const sent = WAL_CHECKPOINTER.request(this.file, (err) => {
      this.checkpointInFlight = false;
      if (this.closed) return;
      if (!err) this.checkpoints.worker++;
      this.truncateWal();
    });
    if (!sent) {
      this.checkpointInFlight = false;
      this.truncateWal();
    }
  }

  private truncateWal(): void {
    if (this.closed || this.syncError) return;
    const t0 = performance.now();
    const busy = this.db.pragma('busy_timeout', { simple: true }) as number;
    this.db.pragma('busy_timeout = 0');
    try {
      // A reader or another checkpointer makes it do less (busy=1 in its result), or fail.
      this.db.pragma('wal_checkpoint(TRUNCATE)');
    } catch (e) {
      logger.debug({ file: this.file, err: (e as Error).message }, 'checkpoint after releasing free pages failed');
    } finally {
      this.db.pragma(`busy_timeout = ${busy}`);
    }
    const ms = performance.now() - t0;
    this.vacuum.checkpoints++;
    this.vacuum.ms += ms;
    this.vacuum.maxCheckpointMs = Math.max(this.vacuum.maxCheckpointMs, ms);
    this.loopMsTotal += ms;
  }

  /**
   * PRAGMA synchronous of the live connection: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA. Expected:
   * 2 for durability 'full' inline; 1 for 'full' with fsync 'threadpool' (our own WAL
   * fdatasync; 2 on macOS/Windows), 1 for 'normal', 0 for 'off'.
   */
  sqliteSynchronous(): number {
    return this.db.pragma('synchronous', { simple: true }) as number;
  }

  /** In WAL mode SQLite fsyncs the WAL at each commit iff synchronous is FULL or EXTRA. */
  private sqliteSyncsCommits(): boolean {
    return this.sqliteSynchronous() >= 2;
  }

  /**
   * Makes everything in the files durable before any of it is treated as such (PostgreSQL
   * fsyncs its data directory at crash recovery for the same reason): fsync of the WAL (frames
   * a killed process wrote but had not fsynced yet, readable from the page cache), of the
   * database file (pages a checkpoint wrote), and of the directory (the -wal file, created by
   * this connection if absent, and the database file itself must be reachable after power loss).
   * Not counted in stats().syncs (those count durable commits).
   */
  private recoverySync(): void {
    const wal = `${this.file}-wal`;
    if (this.walSync) this.sfs.fsyncSync(this.walFd());
    else fsyncPath(wal, this.sfs);
    fsyncPath(this.file, this.sfs);
    fsyncDirectory(path.dirname(path.resolve(this.file)), this.sfs);
    this.writtenSinceRecoverySync = false;
  }

  private noteSync(ms: number): void {
    this.syncs++;
    this.syncMsTotal += ms;
    this.syncHistogram.observe(ms / 1000);
  }

  /** The WAL exists once open()'s schema transaction ran (journal_mode=WAL; a fresh database
   * creates it at its first write) and SQLite deletes it only at close, so this descriptor
   * stays on the live WAL (a checkpoint restarts the WAL in place, it does not recreate it). */
  private walFd(): number {
    if (this.walFdCache === null) this.walFdCache = this.sfs.openSync(`${this.file}-wal`, 'r+');
    return this.walFdCache;
  }

  private closeWalFd(): void {
    if (this.walFdCache === null) return;
    this.sfs.closeSync(this.walFdCache);
    this.walFdCache = null;
  }

  /** Multi-row INSERTs of up to INSERT_ROWS rows: one statement run per chunk, not per entry. */
  private insertEntries(es: readonly Entry[]): number {
    let bytes = 0;
    const args = this.insertArgs;
    for (let i = 0; i < es.length; i += INSERT_ROWS) {
      const n = Math.min(INSERT_ROWS, es.length - i);
      args.length = 4 * n;
      for (let j = 0; j < n; j++) {
        const e = es[i + j] as Entry;
        args[4 * j] = e.index;
        args[4 * j + 1] = e.term;
        args[4 * j + 2] = e.type;
        args[4 * j + 3] = e.data;
        bytes += 2 * INT + text(e.type) + text(e.data);
      }
      let stmt = this.inserts.get(n);
      if (!stmt) {
        stmt = this.db.prepare(`INSERT INTO entries (idx, term, type, data) VALUES ${new Array(n).fill('(?, ?, ?, ?)').join(', ')}`);
        this.inserts.set(n, stmt);
      }
      stmt.run(args);
    }
    return bytes;
  }

  /** Checkpoint rows in multi-row INSERTs of up to INSERT_ROWS rows (as insertEntries). */
  private putRows(t: CheckpointTable, rows: ReadonlyArray<TableRow>, table = `machine_${t}`): number {
    let bytes = 0;
    const args = this.insertArgs;
    for (let i = 0; i < rows.length; i += INSERT_ROWS) {
      const n = Math.min(INSERT_ROWS, rows.length - i);
      args.length = 5 * n;
      for (let j = 0; j < n; j++) {
        const [ord, json, bin, find, eager] = rows[i + j] as TableRow;
        args[5 * j] = ord;
        args[5 * j + 1] = json;
        // better-sqlite3 binds Buffers as BLOBs (a bare Uint8Array is refused).
        args[5 * j + 2] = bin === undefined ? null : Buffer.isBuffer(bin) ? bin : Buffer.from(bin.buffer, bin.byteOffset, bin.byteLength);
        args[5 * j + 3] = find ?? null;
        args[5 * j + 4] = eager === undefined ? null : eager ? 1 : 0;
        bytes += INT + text(json) + (bin?.byteLength ?? 0) + (find === undefined ? 0 : INT) + (eager === undefined ? 0 : INT);
      }
      const key = `${table}:${n}`;
      let stmt = this.rowInserts.get(key);
      if (!stmt) {
        stmt = this.db.prepare(`INSERT OR REPLACE INTO ${table} (ord, json, bin, find, eager) VALUES ${new Array(n).fill('(?, ?, ?, ?, ?)').join(', ')}`);
        this.rowInserts.set(key, stmt);
      }
      stmt.run(args);
    }
    return bytes;
  }

  /**
   * An install whose parts were staged as they arrived: the pieces not written yet are
   * written now (none when the host waited, see stagedSnapshotWritten), rows of abandoned
   * transfers go, and the staging table becomes snapshot_part by a rename, in the caller's
   * transaction: the commit writes metadata, not the state. The old parts (an earlier
   * install's) go to a trash table, emptied in steps (dropping 512 MiB at once: 213 ms).
   */
  private commitStaged(s: Snapshot, stage: Stage): number {
    let bytes = 0;
    while (stage.queue.length > 0) bytes += this.writePiece(stage);
    this.st.dropStageBelow.run(stage.firstRow);
    const conf = JSON.stringify(s.metadata.confState);
    const partRows = JSON.stringify(stage.rowsPerPart);
    this.st.putSnap.run(s.metadata.index, s.metadata.term, conf, '', partRows);
    this.trashTable('snapshot_part', 'snapshot_stage', STAGE_TABLE);
    return bytes + 2 * INT + text(conf) + text(partRows);
  }

  /**
   * The stage `snap` can be committed from (all of its parts handed in, same array), or null:
   * then the snapshot is written whole (putSnapshot), as before staging existed.
   */
  private stagedFor(snap: Snapshot | null): Stage | null {
    const st = this.stage;
    if (!snap || !st || st.parts !== snap.data) return null;
    return st.rowsPerPart.length === st.parts.length ? st : null;
  }

  stageSnapshotPart(parts: readonly string[], i: number, defer: (fn: () => void) => void): void {
    if (this.closed || this.syncError) return;
    let st = this.stage;
    if (st?.parts !== parts) {
      // Only a transfer seen from its first part is staged; another one's middle is not (its
      // install, if any, is written whole at its save).
      if (i !== 0) return;
      if (st) this.abandonStage();
      st = this.stage = { parts, firstRow: this.stageNextRow, rowsPerPart: [], queue: [], at: 0, defer, stepScheduled: false, waiters: [] };
    }
    if (i !== st.rowsPerPart.length) {
      // Out of order (a bug upstream): never commit a stage that may miss a part.
      this.abandonStage();
      return;
    }
    st.rowsPerPart.push(0);
    st.queue.push(i);
    st.defer = defer;
    this.scheduleStageStep(st);
  }

  dropStagedSnapshot(parts: readonly string[]): void {
    if (this.stage?.parts === parts) this.abandonStage();
  }

  stagedSnapshotWritten(data: SnapshotData, done: () => void): boolean {
    const st = this.stage;
    if (!st || st.parts !== data || st.queue.length === 0) return true;
    st.waiters.push(done);
    this.scheduleStageStep(st);
    return false;
  }

  /** Staged rows (pieces) of snapshot_stage, abandoned rows included: tests, status. */
  stagedRows(): number {
    return this.db.prepare('SELECT COUNT(*) FROM snapshot_stage').pluck().get() as number;
  }

  private scheduleStageStep(st: Stage): void {
    if (st.stepScheduled) return;
    st.stepScheduled = true;
    st.defer(() => {
      st.stepScheduled = false;
      if (this.stage !== st || this.closed || this.syncError || !this.db.open) return;
      // A failed step: the install is written whole at its save.
      if (st.queue.length > 0 && !this.stageStep(() => this.writePiece(st), 'staging snapshot parts')) this.abandonStage();
      if (st.queue.length > 0) this.scheduleStageStep(st);
      else this.wakeStageWaiters(st);
      if (this.staleRowsLeft) this.scheduleStaleDrop();
    });
  }

  /**
   * One piece of the first queued part (STAGE_PIECE_CHARS characters, never splitting a
   * surrogate pair: each piece is stored as UTF-8 on its own). Returns the bytes written.
   */
  private writePiece(st: Stage): number {
    const i = st.queue[0]!;
    const part = st.parts[i]!;
    const from = st.at;
    let to = Math.min(part.length, from + this.stagePieceChars);
    if (to < part.length && to - from > 1 && isHighSurrogate(part.charCodeAt(to - 1))) to--;
    let bytes = 0;
    if (to > from) {
      const piece = part.slice(from, to);
      this.st.putStage.run(this.stageNextRow++, piece);
      st.rowsPerPart[i]!++;
      bytes = INT + text(piece);
    }
    if (to >= part.length) {
      st.queue.shift();
      st.at = 0;
    } else st.at = to;
    return bytes;
  }

  /**
   * One write step outside save(): its own transaction, not fsynced (synchronous=NORMAL under
   * durability full inline): staged rows belong to no stored state until the commit of the
   * install, whose fsync flushes the whole WAL, these frames included.
   */
  private stageStep(write: () => number, what: string): boolean {
    const t0 = performance.now();
    // Steps write megabytes each: SQLite's automatic checkpoint would copy them into the file
    // and fsync it inside a step, on this thread (a 1.05 GiB install: one step of 752 ms). While
    // steps go on, the worker thread checkpoints instead (as with checkpoint 'worker').
    if (this.walSync && !this.workerCheckpoints && !this.stepCheckpointsOffLoop) {
      this.db.pragma('wal_autocheckpoint = 0');
      this.stepCheckpointsOffLoop = true;
    }
    const fullSync = this.durability === 'full' && !this.walSync;
    if (fullSync) this.db.pragma('synchronous = NORMAL');
    let bytes = 0;
    let ok = true;
    try {
      bytes = this.db.transaction(write)();
    } catch (e) {
      // Rolled back (e.g. disk full): the caller gives up what it was writing.
      logger.warn({ file: this.file, err: (e as Error).message }, `${what} failed`);
      ok = false;
    } finally {
      if (fullSync) this.db.pragma('synchronous = FULL');
    }
    this.bytesWritten += bytes;
    this.loopMsTotal += performance.now() - t0;
    this.stageStepMaxMs = Math.max(this.stageStepMaxMs, performance.now() - t0);
    this.writtenSinceRecoverySync = true;
    if (this.workerCheckpoints || this.stepCheckpointsOffLoop) this.maybeCheckpoint(bytes);
    return ok;
  }

  /** Inline-checkpoint storage in a run of steps: its WAL is checkpointed by the worker meanwhile. */
  private stepCheckpointsOffLoop = false;

  private autoCheckpointAgain(): void {
    this.stepCheckpointsOffLoop = false;
    this.db.pragma(`wal_autocheckpoint = ${CHECKPOINT_FRAMES}`);
  }

  /** The longest staging step so far, ms (a write of one piece, or a delete of stale rows). */
  stageStepMaxMs = 0;

  private wakeStageWaiters(st: Stage): void {
    const w = st.waiters;
    st.waiters = [];
    for (const done of w) done();
  }

  /** The stage is gone (superseded, refused, rolled back): its rows are deleted in steps. */
  private abandonStage(): void {
    const st = this.stage;
    if (!st) return;
    this.stage = null;
    this.stageStaleBelow = this.stageNextRow;
    this.staleRowsLeft = true;
    this.staleDefer = st.defer;
    this.wakeStageWaiters(st);
    this.scheduleStaleDrop();
  }

  private stageCommitted(st: Stage): void {
    if (this.stage === st) this.stage = null;
    // The staging table is a new, empty one (see commitStaged).
    this.stageNextRow = 1;
    this.stageStaleBelow = 1;
    this.staleRowsLeft = false;
    this.wakeStageWaiters(st);
  }

  /** Deletes abandoned staged rows, then trash tables' rows, STAGE_DELETE_ROWS per step. */
  private scheduleStaleDrop(): void {
    if (this.staleDropScheduled || this.closed) return;
    this.staleDropScheduled = true;
    this.staleDefer(() => {
      this.staleDropScheduled = false;
      if (this.closed || this.syncError || !this.db.open) return;
      if (this.staleRowsLeft) {
        // Rows of the stage being written (if any) are at or above stageStaleBelow.
        let left = false;
        const ok = this.stageStep(() => {
          this.st.dropStageStep.run(this.stageStaleBelow, STAGE_DELETE_ROWS);
          left = (this.st.stageRowsBelow.get(this.stageStaleBelow) as number) > 0;
          return 0;
        }, 'deleting abandoned staged rows');
        // A failed step is not retried: open() clears what is left.
        this.staleRowsLeft = ok && left;
      } else if (this.trash.length > 0) {
        const t = this.trash[0]!;
        let dropped = false;
        const ok = this.stageStep(() => {
          const n = this.db.prepare(`DELETE FROM ${t} WHERE rowid IN (SELECT rowid FROM ${t} LIMIT ${STAGE_DELETE_ROWS})`).run().changes;
          if (n === 0) {
            this.db.exec(`DROP TABLE ${t}`);
            dropped = true;
          }
          return 0;
        }, 'emptying a replaced table');
        // Failed (e.g. a rename rolled back with its transaction, so no such table): open()
        // drops whatever trash is left.
        if (dropped || !ok) this.trash.shift();
      }
      if (this.staleRowsLeft || this.trash.length > 0) this.scheduleStaleDrop();
    });
  }

  /** Trash tables still being emptied (tests). */
  trashTables(): number {
    return this.trash.length;
  }

  /**
   * The state's first (or only) part in the snapshot row, the others one row each in
   * snapshot_part (n = 1, 2, ...): no value holds more than a part of a large state.
   */
  private putSnapshot(s: Snapshot): number {
    const conf = JSON.stringify(s.metadata.confState);
    const parts = snapshotParts(s.data);
    this.st.putSnap.run(s.metadata.index, s.metadata.term, conf, parts[0] ?? '', null);
    this.st.clearParts.run();
    let bytes = 2 * INT + text(conf) + text(parts[0] ?? '');
    for (let i = 1; i < parts.length; i++) {
      this.st.putPart.run(i, parts[i]!);
      bytes += INT + text(parts[i]!);
    }
    return bytes;
  }
}

/**
 * Rows per chunk of readJsonRows, and the longest row JSON (bytes) joined into a chunk: longer
 * rows (large values, up to ~1 MiB) are read on their own, so a chunk's string stays below
 * ROW_CHUNK_ROWS x ROW_JOIN_MAX_BYTES (64 MiB; V8 strings hold at most ~512 Mi characters).
 */
const ROW_CHUNK_ROWS = 4096;
const ROW_JOIN_MAX_BYTES = 16_384;

/**
 * A table's rows in ord order, unparsed, read in chunks: SQLite joins each chunk's rows into
 * one string ("ord json" lines; JSON text holds no raw newline), cut here into slices of it.
 * A string per row, kept by the caller, was copied twice by the garbage collector (young
 * generation, then old); a chunk's string is allocated once, large. Measured on a member
 * file of 45,000 rows (~400 bytes each; CPU time, loaded 2-core machine): rows read one by
 * one and kept 180-200 ms, chunks 125-140 ms. The chunk's rows come in the subquery's order
 * (checked: a row out of order stops the read). Each chunk is its own statement run, so no
 * statement stays open on the connection between them.
 */
function readJsonRows(db: Database.Database, t: CheckpointTable, each: (ord: number, json: string) => void, file: string): void {
  const chunk = db
    .prepare(
      `SELECT count(*), max(ord), group_concat(CASE WHEN octet_length(json) <= ${ROW_JOIN_MAX_BYTES} THEN ord || ' ' || json ELSE ord || ' ' END, char(10))
       FROM (SELECT ord, json FROM machine_${t} WHERE ord > ? ORDER BY ord LIMIT ${ROW_CHUNK_ROWS})`,
    )
    .raw();
  const one = db.prepare(`SELECT json FROM machine_${t} WHERE ord = ?`).pluck();
  const damaged = (after: number, why: string): Error => new Error(`SqliteStorage(${file}): machine_${t} rows after ord ${after} cannot be read: ${why}`);
  let after = -Infinity;
  for (;;) {
    const [count, last, text] = chunk.get(after) as [number, number | null, string | null];
    if (count === 0 || last === null || text === null) return;
    let prev = after;
    let at = 0;
    for (let n = 0; n < count; n++) {
      // "ord json": the ord's digits (a positive integer), a space, the JSON (empty: too long
      // to join, read alone).
      let ord = 0;
      let i = at;
      for (let c = text.charCodeAt(i); c !== 32; c = text.charCodeAt(++i)) {
        if (!(c >= 48 && c <= 57) || i - at > 15) throw damaged(after, 'a row holds a raw newline');
        ord = ord * 10 + (c - 48);
      }
      if (!(ord > prev)) throw damaged(after, `rows came out of ord order (${ord} after ${prev})`);
      let end = text.indexOf('\n', i + 1);
      if (end < 0) end = text.length;
      if (n === count - 1 && (end !== text.length || ord !== last)) throw damaged(after, 'a row holds a raw newline');
      each(ord, end === i + 1 ? (one.get(ord) as string) : text.slice(i + 1, end));
      prev = ord;
      at = end + 1;
    }
    after = last;
  }
}

/**
 * A table's rows read on demand (see StoredRows), or null when it is not kept for that or some
 * row has no lookup key (an older file's: read it whole). Both checks use the find index.
 */
function storedRows(db: Database.Database, t: CheckpointTable, file: string): StoredRows | null {
  if (!ON_DEMAND_TABLES.includes(t)) return null;
  if (db.prepare(`SELECT EXISTS (SELECT 1 FROM machine_${t} WHERE find IS NULL)`).pluck().get() === 1) return null;
  const count = db.prepare(`SELECT count(*) FROM machine_${t}`).pluck().get() as number;
  const find = db.prepare(`SELECT ord, json FROM machine_${t} WHERE find = ? ORDER BY ord`).raw();
  const eager = db.prepare(`SELECT ord, json FROM machine_${t} WHERE eager = 1 ORDER BY ord`).raw();
  return {
    count,
    find: (key) => find.all(key) as Array<[number, string]>,
    eager: (each) => {
      for (const [ord, json] of eager.all() as Array<[number, string]>) each(ord, json);
    },
    all: (each) => readJsonRows(db, t, each, file),
  };
}

/**
 * A file created before auto_vacuum was set (mode NONE) is converted once, with VACUUM, which
 * rewrites it to its live pages: it holds the event loop for a time proportional to the live
 * data (measured: see README, Scale), once per file, at open, before the member runs.
 */
function convertToIncrementalVacuum(db: Database.Database, file: string): void {
  if ((db.pragma('auto_vacuum', { simple: true }) as number) !== 0) return;
  const t0 = performance.now();
  const before = fileSize(file);
  try {
    db.pragma('auto_vacuum = INCREMENTAL');
    db.exec('VACUUM');
    // VACUUM wrote the new file into the WAL; only a checkpoint shrinks the file itself.
    // TRUNCATE also empties the WAL (nothing else has the file open yet). Both fsync, inline.
    db.pragma('wal_checkpoint(TRUNCATE)');
  } catch (e) {
    // VACUUM needs free space for a copy: without it the member still opens, unconverted.
    logger.warn({ file, err: (e as Error).message }, 'member database not converted to incremental vacuum; it keeps its free pages');
    return;
  }
  const mode = db.pragma('auto_vacuum', { simple: true }) as number;
  logger.info({ file, ms: Math.round(performance.now() - t0), bytes_before: before, bytes_after: fileSize(file), auto_vacuum: mode }, 'member database converted to incremental vacuum');
}

// Prepared once per connection: save() runs these for every Ready.
function prepare(db: Database.Database) {
  return {
    putHard: db.prepare('INSERT OR REPLACE INTO hard_state (id, term, vote, "commit") VALUES (1, ?, ?, ?)'),
    putSnap: db.prepare('INSERT OR REPLACE INTO snapshot (id, idx, term, conf_state, data, part_rows) VALUES (1, ?, ?, ?, ?, ?)'),
    putStage: db.prepare('INSERT INTO snapshot_stage (n, data) VALUES (?, ?)'),
    dropStageBelow: db.prepare('DELETE FROM snapshot_stage WHERE n < ?'),
    dropStageStep: db.prepare('DELETE FROM snapshot_stage WHERE n IN (SELECT n FROM snapshot_stage WHERE n < ? ORDER BY n LIMIT ?)'),
    stageRowsBelow: db.prepare('SELECT COUNT(*) FROM (SELECT 1 FROM snapshot_stage WHERE n < ? LIMIT 1)').pluck(),
    truncateFrom: db.prepare('DELETE FROM entries WHERE idx >= ?'),
    compactTo: db.prepare('DELETE FROM entries WHERE idx <= ?'),
    termAt: db.prepare('SELECT term FROM entries WHERE idx = ?').pluck(),
    hard: db.prepare('SELECT term, vote, "commit" FROM hard_state WHERE id = 1'),
    snap: db.prepare('SELECT idx, term, conf_state, data, part_rows FROM snapshot WHERE id = 1'),
    snapIdx: db.prepare('SELECT idx FROM snapshot WHERE id = 1').pluck(),
    dropSnapTo: db.prepare('DELETE FROM snapshot WHERE idx <= ?'),
    dropOrphanParts: db.prepare('DELETE FROM snapshot_part WHERE NOT EXISTS (SELECT 1 FROM snapshot)'),
    clearParts: db.prepare('DELETE FROM snapshot_part'),
    putPart: db.prepare('INSERT INTO snapshot_part (n, data) VALUES (?, ?)'),
    snapParts: db.prepare('SELECT data FROM snapshot_part ORDER BY n').pluck(),
    checkpoint: db.prepare('SELECT idx, term, conf_state, meta FROM machine_checkpoint WHERE id = 1'),
    checkpointIdx: db.prepare('SELECT idx FROM machine_checkpoint WHERE id = 1').pluck(),
    putCheckpoint: db.prepare('INSERT OR REPLACE INTO machine_checkpoint (id, idx, term, conf_state, meta) VALUES (1, ?, ?, ?, ?)'),
    all: db.prepare('SELECT idx, term, type, data FROM entries ORDER BY idx'),
    maxIdx: db.prepare('SELECT MAX(idx) FROM entries').pluck(),
    getMeta: db.prepare('SELECT value FROM meta WHERE key = ?').pluck(),
    putMeta: db.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)'),
  };
}

const isHighSurrogate = (c: number): boolean => c >= 0xd800 && c <= 0xdbff;

function fileSize(p: string): number {
  try {
    return fs.statSync(p).size;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw e;
  }
}
