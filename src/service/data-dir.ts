import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { UserError } from '../util/errors.js';

export function resolveDataDir(explicit?: string): string {
  return path.resolve(explicit ?? process.env.CONCORD_DATA_DIR ?? path.join(os.homedir(), '.concord'));
}

interface LockInfo {
  pid: number;
  host: string;
  started_at: string;
  /** The subcommand only: flags may carry secrets (e.g. a token) and this file is readable. */
  command: string;
}

const MUTEX_FILE = 'concord.lock.db';
/** Tries while no live holder is described (5, 10, ... ms apart: at most about 0.3 s). */
const LOCK_RACE_ATTEMPTS = 10;
const INFO_FILE = 'concord.lock';
/**
 * Every mutex connection this process holds, until release(): a Database that is garbage
 * collected closes, and its lock goes with it. A caller that dropped its DataDirLock (seen in
 * CI: a test's child process that kept no reference) let a second process take the directory.
 */
const HELD = new Set<Database.Database>();

/**
 * One process owns a data directory at a time: two processes writing the same Raft files
 * would corrupt them. The mutual exclusion is an exclusive SQLite (fcntl) lock on
 * `concord.lock.db`, held for the life of the connection: taking it is atomic, and the kernel
 * releases it when the holder dies, so there is no stale lock to break (breaking one by
 * reading, removing and re-creating a file let several racing processes all "win").
 * `concord.lock` only describes the holder (pid, address) for error messages and clients.
 */
export class DataDirLock {
  private constructor(
    private readonly dir: string,
    private readonly mutex: Database.Database,
  ) {}

  static acquire(dir: string): DataDirLock {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    for (let attempt = 1; ; attempt++) {
      const mutex = new Database(path.join(dir, MUTEX_FILE), { timeout: 0 });
      try {
        mutex.pragma('locking_mode = EXCLUSIVE');
        // The first write transaction takes the EXCLUSIVE lock; locking_mode keeps it after COMMIT.
        mutex.exec('BEGIN EXCLUSIVE; CREATE TABLE IF NOT EXISTS holder (pid INTEGER); COMMIT');
      } catch (e) {
        mutex.close();
        if ((e as { code?: string }).code !== 'SQLITE_BUSY') throw e;
        const holder = readLock(path.join(dir, INFO_FILE));
        // Starters racing each other can all get SQLITE_BUSY (each holding the shared lock the
        // other's exclusive one waits for; seen in CI: six of six refused over a stale holder
        // file). A holder alive on this host refuses at once; otherwise try again briefly, so one
        // of the starters wins and the others then refuse.
        if (attempt < LOCK_RACE_ATTEMPTS && !(holder && holderAlive(holder))) {
          sleepSync(attempt * 5);
          continue;
        }
        const who = holder ? `pid ${holder.pid} (${holder.command}, since ${holder.started_at})` : 'another process';
        throw new UserError(
          'locked',
          `data directory ${dir} is in use by ${who}; stop it, talk to it with --server, or set CONCORD_DATA_DIR to another directory`,
        );
      }
      HELD.add(mutex);
      const lock = new DataDirLock(dir, mutex);
      lock.writeInfo({ pid: process.pid, host: os.hostname(), started_at: new Date().toISOString(), command: `concord ${process.argv[2] ?? ''}`.trim() });
      return lock;
    }
  }

  /** Add fields (e.g. the HTTP address of `concord serve`) so other processes can find us. */
  advertise(extra: Record<string, string>): void {
    const holder = readLock(this.infoFile);
    if (holder?.pid !== process.pid) return;
    this.writeInfo({ ...holder, ...extra });
  }

  release(): void {
    if (!this.mutex.open) return;
    try {
      const holder = readLock(this.infoFile);
      if (holder?.pid === process.pid) fs.rmSync(this.infoFile, { force: true });
    } catch {
      // Best effort at exit: the next holder rewrites the description.
    }
    this.mutex.close();
    HELD.delete(this.mutex);
  }

  private get infoFile(): string {
    return path.join(this.dir, INFO_FILE);
  }

  /** Written whole (temp file + rename), owner-only: readers never see a partial file. */
  private writeInfo(info: LockInfo & Record<string, unknown>): void {
    const tmp = `${this.infoFile}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(info), { mode: 0o600 });
    fs.renameSync(tmp, this.infoFile);
  }
}

function readLock(file: string): LockInfo | null {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as LockInfo;
  } catch {
    return null;
  }
}

/** Whether the described holder runs on this host now (another host's cannot be checked). */
function holderAlive(h: LockInfo): boolean {
  if (h.host !== os.hostname()) return false;
  try {
    process.kill(h.pid, 0);
    return true;
  } catch (e) {
    return (e as { code?: string }).code === 'EPERM';
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
