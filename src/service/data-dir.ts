import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UserError } from './errors.js';

export function resolveDataDir(explicit?: string): string {
  return path.resolve(explicit ?? process.env.CONCORD_DATA_DIR ?? path.join(os.homedir(), '.concord'));
}

interface LockInfo {
  pid: number;
  host: string;
  started_at: string;
  command: string;
}

/**
 * One process owns a data directory at a time: two processes writing the same Raft files
 * would corrupt them. The lock file names its holder; a lock left by a dead process is taken over.
 */
export class DataDirLock {
  private constructor(private readonly file: string) {}

  static acquire(dir: string): DataDirLock {
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, 'concord.lock');
    const me: LockInfo = { pid: process.pid, host: os.hostname(), started_at: new Date().toISOString(), command: process.argv.slice(1).join(' ') };
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        fs.writeFileSync(file, JSON.stringify(me), { flag: 'wx' });
        return new DataDirLock(file);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const holder = readLock(file);
      if (holder && holder.host === os.hostname() && holder.pid !== process.pid && isAlive(holder.pid)) {
        throw new UserError(
          'locked',
          `data directory ${dir} is in use by pid ${holder.pid} (${holder.command}, since ${holder.started_at}); stop it, talk to it with --server, or set CONCORD_DATA_DIR to another directory`,
        );
      }
      fs.rmSync(file, { force: true });
    }
    throw new UserError('locked', `could not lock data directory ${dir}`);
  }

  /** Add fields (e.g. the HTTP address of `concord serve`) so other processes can find us. */
  advertise(extra: Record<string, string>): void {
    const holder = readLock(this.file);
    if (holder?.pid !== process.pid) return;
    fs.writeFileSync(this.file, JSON.stringify({ ...holder, ...extra }));
  }

  release(): void {
    try {
      const holder = readLock(this.file);
      if (holder?.pid === process.pid) fs.rmSync(this.file, { force: true });
    } catch {
      // Best effort at exit: a stale lock is detected and taken over next time.
    }
  }
}

function readLock(file: string): LockInfo | null {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as LockInfo;
  } catch {
    return null;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
