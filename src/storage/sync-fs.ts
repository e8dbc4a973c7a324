// The file-system calls through which storage makes data durable. Injectable so tests can
// observe every real sync (which descriptor, in which order); node:fs is the default.

import fs from 'node:fs';
import path from 'node:path';

/** The subset of node:fs used for durability; node:fs itself satisfies it. */
export interface SyncFs {
  openSync(path: string, flags: string): number;
  closeSync(fd: number): void;
  /** Off-thread (libuv threadpool) fdatasync. */
  fdatasync(fd: number, callback: (err: NodeJS.ErrnoException | null) => void): void;
  fdatasyncSync(fd: number): void;
  fsyncSync(fd: number): void;
}

export const nodeSyncFs: SyncFs = fs;

/** Windows cannot open a directory as a file; NTFS metadata is journaled, so there is no need. */
const DIR_FSYNC = process.platform !== 'win32';

/**
 * fsync a file or directory by path (open, fsync, close), so its data and metadata are durable.
 * Files are opened read-write: Windows flushes only a handle with write access.
 */
export function fsyncPath(p: string, sfs: SyncFs = nodeSyncFs, flags: 'r' | 'r+' = 'r+'): void {
  const fd = sfs.openSync(p, flags);
  try {
    sfs.fsyncSync(fd);
  } finally {
    sfs.closeSync(fd);
  }
}

/**
 * fsync a directory: makes a file created, renamed or deleted in it durable (the entry lives
 * in the directory, not in the file). No-op on Windows.
 */
export function fsyncDirectory(dir: string, sfs: SyncFs = nodeSyncFs): void {
  if (DIR_FSYNC) fsyncPath(dir, sfs, 'r');
}

/** mkdir -p whose new directories survive power loss: each created level's parent is fsynced. */
export function mkdirDurable(dir: string, sfs: SyncFs = nodeSyncFs): void {
  const target = path.resolve(dir);
  const first = fs.mkdirSync(target, { recursive: true });
  if (first === undefined) return; // existed already
  // New levels run from `first` down to `target`; fsync each one's parent, deepest first.
  const parents: string[] = [];
  for (let d = target; ; d = path.dirname(d)) {
    parents.push(path.dirname(d));
    if (d === path.resolve(first) || path.dirname(d) === d) break;
  }
  for (const p of parents) fsyncDirectory(p, sfs);
}
