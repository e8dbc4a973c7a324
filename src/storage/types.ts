import type { HistogramSnapshot } from '../util/histogram.js';
import type { Entry, HardState, Snapshot, RestartState, ConfState, SnapshotData, SnapshotMetadata } from '../raft/types.js';

/** One Ready's worth of durable writes, applied atomically (one transaction, one fsync). */
export interface PersistBatch {
  /** Installed before entries: replaces the log up to snapshot.metadata.index. */
  snapshot: Snapshot | null;
  /** Contiguous; an entry whose index already exists truncates the stored suffix from there. */
  entries: Entry[];
  hardState: HardState | null;
}

/** Measured I/O counters, reported by agent metrics. Never estimated. */
export interface StorageStats {
  /** Bytes of rows written (entries, hard state, snapshots) as encoded for SQLite. */
  bytesWritten: number;
  /** Durable commits whose fsync really ran, or memory saves. SQLite, fsync 'threadpool': our
   * WAL fdatasyncs (inline or off-thread) that completed. SQLite inline: commits made while
   * the connection's PRAGMA synchronous (read back after the commit) is FULL or EXTRA, under
   * which SQLite fsyncs the WAL inside the commit; so durability 'normal'/'off' count none.
   * Writes that need no fsync (commit-index-only hard state), and the recovery fsyncs of
   * open()/load(), are not counted. */
  syncs: number;
  /** Wall time of durable commits, ms, from the start of the write until it was durable: for
   * an off-thread fsync (saveAsync) until its completion callback ran. 0 for memory storage. */
  syncMsTotal: number;
  /** Time the caller's thread spent in save/saveAsync/compact, ms (transactions and inline
   * fsyncs, not off-thread ones). Absent for memory storage. */
  loopMsTotal?: number;
  /** Durations of the syncs counted in `syncs` (count equals syncs). Absent for memory storage. */
  syncSeconds?: HistogramSnapshot;
  /** Entries currently held (after the snapshot). */
  entryCount: number;
  /** Size of the database files on disk; 0 for memory storage. */
  diskBytes: number;
}

/**
 * Durable home of one Raft member: hard state, log suffix and latest snapshot.
 * `save` returns only once the batch is durable (fsync in SQLite mode).
 */
export interface LogStorage {
  /** The file holding this member's state, when there is one: named in fault reports. */
  readonly file?: string;
  /**
   * Everything needed to rebuild the core after a restart. The state at `snapshot` is either
   * snapshotData (a snapshot installed from a leader, or compact()'s) or `checkpoint`'s rows,
   * whichever is newer.
   */
  load(initialConf: ConfState): LoadedState;
  save(batch: PersistBatch): void;
  /**
   * Optional: save() whose wait for durability (the fsync) runs off the event-loop thread.
   * The batch is written before this returns (load() sees it), but survives power loss only
   * once `done` ran without error. Returns true when the batch is durable already, or needs
   * no fsync: then `done` is never called. Otherwise `done` is called exactly once, always
   * asynchronously. A host must not send, apply or acknowledge anything that depends on the
   * batch before `done`. Stores without it (MemoryStorage) are synchronous: save() only.
   */
  saveAsync?(batch: PersistBatch, done: (err: Error | null) => void): boolean;
  /** Store a snapshot taken locally and drop entries up to its index. */
  compact(snapshot: Snapshot): void;
  /**
   * Optional: write a checkpoint's rows and metadata and drop entries up to its index, in one
   * transaction (a crash leaves the previous checkpoint or this one, never a mix). Its index
   * must be above the stored checkpoint's and the stored snapshot's, or equal to the latter
   * (the state a snapshot installed, now as rows): a snapshot newer than the stored rows is
   * dropped. A table not cleared applies on top of the stored rows: the caller must know they
   * are its previous checkpoint's (after a snapshot install, clear every table). Returns
   * false, storing nothing, for a stale one (the caller's changes were then not stored).
   * With `defer`, a large checkpoint rewriting every table (the first after an install) may
   * be written in steps scheduled with it and committed later: until then a crash, or
   * load(), leaves the previous state and its log; another checkpoint or compact() commits it
   * first. If such a checkpoint cannot be written, later calls return false until one
   * rewrites every table.
   */
  checkpoint?(c: MachineCheckpoint, defer?: (fn: () => void) => void): boolean;
  /**
   * Optional: part i of a multi-part snapshot still arriving from a peer (`parts` fills in as
   * it does; an install of that transfer saves this same array as its data). The part is
   * written to a staging area in bounded steps, each scheduled with `defer`, so the save of
   * the install only commits it (no state-sized write on one event-loop turn). Parts must
   * come in order from 0; part 0 of another array starts a new stage (the old one is dropped).
   * Staged parts belong to no stored state until that save: a crash before it leaves the
   * previous state, and open() drops them.
   */
  stageSnapshotPart?(parts: readonly string[], i: number, defer: (fn: () => void) => void): void;
  /** Optional: the transfer of `parts` is gone; its staged rows are removed, in steps. */
  dropStagedSnapshot?(parts: readonly string[]): void;
  /**
   * Optional: true when nothing staged for `data` is left to write (or nothing is staged for
   * it); otherwise false, and `done` runs once it is written or the stage was dropped. A host
   * waits for it before saving the install, so the last part's write is stepped too.
   */
  stagedSnapshotWritten?(data: SnapshotData, done: () => void): boolean;
  stats(): StorageStats;
  /** Free bytes on the filesystem holding the log, for callers that keep a reserve. */
  freeBytes?(): number | null;
  close(): void;
}

/**
 * Tables a state machine keeps its rows in (see MachineCheckpoint). Each row is keyed by an
 * integer `ord` that also orders it: reading a table by ord rebuilds the machine's maps in
 * the order a replica that applied the log holds them.
 */
export const CHECKPOINT_TABLES = ['memory', 'sessions', 'orchs'] as const;
export type CheckpointTable = (typeof CHECKPOINT_TABLES)[number];

/**
 * One table's changes since the previous checkpoint: rows removed (by ord), rows written (its
 * JSON, and optionally bytes stored beside it: an orchestration's task columns);
 * `clear`: every stored row is removed first (the table is rewritten whole).
 */
export interface TableChanges {
  clear: boolean;
  del: number[];
  put: Array<CheckpointRow>;
}

/**
 * A checkpoint row as written: key, JSON, optional binary part (a BLOB in SQLite), and for
 * tables read on demand (see StoredRows) a lookup key (a hash of the row's id; several rows
 * may share one) and whether the row must be read at restart anyway (`eager`).
 */
export type CheckpointRow = [ord: number, json: string, bin?: Uint8Array, find?: number, eager?: boolean];

/**
 * A table's stored rows read on demand (memory, see MemoryStore.fromStored): a restart reads
 * the rows it must (`eager`) and looks the others up by key when first needed, rather than
 * reading every row. Reads the table as it is when called, later checkpoints included: the
 * caller only looks up rows no checkpoint since the restart has written.
 */
export interface StoredRows {
  /** Rows in the table when the reader was made. */
  readonly count: number;
  /** Rows stored with lookup key `find`, [ord, json], in ord order. */
  find(key: number): Array<[ord: number, json: string]>;
  /** Rows stored with `eager` set, in ord order. */
  eager(each: (ord: number, json: string) => void): void;
  /** Every row, in ord order (as CheckpointReader.jsonRows). */
  all(each: (ord: number, json: string) => void): void;
}

/**
 * The replicated state at one applied index, written as rows (an incremental snapshot): per
 * table the rows changed since the previous checkpoint, or all of them (TableChanges.clear).
 * Stored in one transaction with its metadata, which also drops the log up to its index.
 */
export interface MachineCheckpoint {
  metadata: SnapshotMetadata;
  /** The small rest of the state, rewritten whole each time. */
  meta: string;
  tables: Record<CheckpointTable, TableChanges>;
}

/**
 * A stored checkpoint, read back at restart: meta, then each table's rows in ord order, their
 * JSON parsed (by the storage, which may parse many rows at once: one JSON.parse per row cost
 * more than the rest of a restart).
 */
export interface CheckpointReader {
  meta: string;
  rows(table: CheckpointTable): Iterable<[ord: number, value: unknown, bin?: Uint8Array]>;
  /**
   * A table's rows as stored, JSON unparsed, in ord order, each passed to `each` (for tables
   * that parse their rows themselves, or not all of them: memory, see MemoryStore.fromRows).
   * A callback, not an iterator: no array per row, and the storage may read rows in chunks.
   */
  jsonRows(table: CheckpointTable, each: (ord: number, json: string) => void): void;
  /**
   * The table's rows to be read on demand, or null when some row has no lookup key (written
   * before them: the caller reads every row, and rewrites them with keys). Optional: a
   * storage without it is read whole.
   */
  storedRows?(table: CheckpointTable): StoredRows | null;
}

/** What load() found: the log's restart state, and the checkpoint when it is the newest state. */
export interface LoadedState extends RestartState {
  /** Set when the state at `snapshot` is a checkpoint (snapshotData then absent). */
  checkpoint?: CheckpointReader;
}
