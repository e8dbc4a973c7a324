import type { Entry, HardState, Snapshot, RestartState, ConfState } from '../raft/types.js';

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
  /** Durable commits (transactions under synchronous=FULL, or memory saves). */
  syncs: number;
  /** Wall time spent in durable commits, ms (0 for memory storage). */
  syncMsTotal: number;
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
  /** Everything needed to rebuild the core after a restart. */
  load(initialConf: ConfState): RestartState;
  save(batch: PersistBatch): void;
  /** Store a snapshot taken locally and drop entries up to its index. */
  compact(snapshot: Snapshot): void;
  stats(): StorageStats;
  close(): void;
}
