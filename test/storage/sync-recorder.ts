// A SyncFs that performs (or withholds) real syncs and records each one with the inode of
// the file it was on, so tests can tell a WAL fdatasync from one on the database file.

import fs from 'node:fs';
import type { SyncFs } from '../../src/storage/sync-fs.js';

export interface SyncCall {
  kind: 'fdatasync' | 'fdatasyncSync' | 'fsyncSync';
  ino: number;
  /** Sync variants: true once the sync returned. Async: once the real fdatasync completed. */
  done: boolean;
}

export interface SyncRecorder {
  fs: SyncFs;
  calls: SyncCall[];
  /** Called inside each sync call, before it runs (to look at the files at that moment). */
  onSync?: (c: SyncCall) => void;
}

/** `hangAsync`: the async fdatasync neither syncs nor ever calls back (a sync still queued
 * on the threadpool when the process is killed). */
export function syncRecorder(opts: { hangAsync?: boolean } = {}): SyncRecorder {
  const rec: SyncRecorder = {
    calls: [],
    fs: {
      openSync: (p, flags) => fs.openSync(p, flags),
      closeSync: (fd) => fs.closeSync(fd),
      fdatasyncSync: (fd) => syncNow(rec, 'fdatasyncSync', fd, () => fs.fdatasyncSync(fd)),
      fsyncSync: (fd) => syncNow(rec, 'fsyncSync', fd, () => fs.fsyncSync(fd)),
      fdatasync: (fd, cb) => {
        const c: SyncCall = { kind: 'fdatasync', ino: fs.fstatSync(fd).ino, done: false };
        rec.calls.push(c);
        rec.onSync?.(c);
        if (opts.hangAsync) return;
        fs.fdatasync(fd, (err) => {
          c.done = err === null;
          cb(err);
        });
      },
    },
  };
  return rec;
}

function syncNow(rec: SyncRecorder, kind: SyncCall['kind'], fd: number, run: () => void): void {
  const c: SyncCall = { kind, ino: fs.fstatSync(fd).ino, done: false };
  rec.calls.push(c);
  rec.onSync?.(c);
  run();
  c.done = true;
}

export const ino = (p: string): number => fs.statSync(p).ino;
