// Writing backup files whole or not at all: a temporary file in the same directory, owner
// only (the state holds every memory value), fsynced, then linked (no overwrite: fails if
// the target exists, atomically) or renamed (overwrite) into place, then the directory fsynced.

import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { SnapshotData } from '../raft/types.js';
import { fsyncDirectory } from '../storage/sync-fs.js';
import { UserError } from '../util/errors.js';
import { fileHead, partsOf, trailerLine, utf8Chunks, type SnapshotHeader } from './snapshot-file.js';

/** Write `bytes` to `file` whole or not at all (see the top of this file). */
export function writeFileAtomic(file: string, bytes: Buffer, o: { overwrite: boolean }): void {
  placeAtomic(file, o, (tmp) => {
    const fd = fs.openSync(tmp, 'wx', 0o600);
    try {
      fs.writeFileSync(fd, bytes);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  });
}

/** Copy the file `from` to `file` whole or not at all (a verified file moved into place). */
export function copyFileAtomic(from: string, file: string, o: { overwrite: boolean }): void {
  placeAtomic(file, o, (tmp) => {
    fs.copyFileSync(from, tmp, fs.constants.COPYFILE_EXCL);
    fs.chmodSync(tmp, 0o600);
    const fd = fs.openSync(tmp, 'r+');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  });
}

/** `fill` writes and fsyncs the temporary file; it is then put in place and the directory fsynced. */
function placeAtomic(file: string, o: { overwrite: boolean }, fill: (tmp: string) => void): void {
  const { target, tmp } = prepare(file, o);
  try {
    fill(tmp);
    publish(tmp, target, file, o);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  fsyncDirectory(path.dirname(target));
}

/**
 * Write a format 2 snapshot file part by part, each part in chunks encoded on their own and
 * written with asynchronous writes (the event loop runs between them; no buffer holds a
 * whole part, let alone the file).
 * `header` must describe `state` (describeParts). Returns the file's hash and size.
 */
export async function writeSnapshotFile(file: string, header: SnapshotHeader, state: SnapshotData, o: { overwrite: boolean }): Promise<{ sha256: string; bytes: number }> {
  const { target, tmp } = prepare(file, o);
  let out: { sha256: string; bytes: number };
  try {
    const fh = await fs.promises.open(tmp, 'wx', 0o600);
    try {
      const whole = createHash('sha256');
      let bytes = 0;
      const write = async (b: Buffer): Promise<void> => {
        bytes += b.length;
        for (let off = 0; off < b.length; ) off += (await fh.write(b, off, b.length - off)).bytesWritten;
      };
      const put = (b: Buffer): Promise<void> => {
        whole.update(b);
        return write(b);
      };
      await put(fileHead(header));
      const nl = Buffer.from('\n');
      // A chunk per write: the loop runs between them, and no buffer holds a whole part.
      for (const p of partsOf(state)) {
        for (const b of utf8Chunks(p)) await put(b);
        await put(nl);
      }
      const sha256 = whole.digest('hex');
      await write(trailerLine(sha256));
      await fh.sync();
      out = { sha256, bytes };
    } finally {
      await fh.close();
    }
    publish(tmp, target, file, o);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  fsyncDirectory(path.dirname(target));
  return out;
}

function prepare(file: string, o: { overwrite: boolean }): { target: string; tmp: string } {
  const target = path.resolve(file);
  const dir = path.dirname(target);
  if (!fs.existsSync(dir)) throw new UserError('not_found', `cannot write ${file}: directory ${dir} does not exist`, 'file');
  if (!o.overwrite) refuseExisting(file);
  return { target, tmp: path.join(dir, `.${path.basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`) };
}

/** The complete, fsynced temporary file becomes `target`. */
function publish(tmp: string, target: string, file: string, o: { overwrite: boolean }): void {
  if (o.overwrite) {
    fs.renameSync(tmp, target);
    return;
  }
  try {
    fs.linkSync(tmp, target);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw existsError(file);
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EXDEV') throw e;
    // A filesystem without hard links: checked above, under the same user's control.
    fs.renameSync(tmp, target);
  }
}

/** Fail early (before a snapshot is taken) when `file` exists and may not be replaced. */
export function refuseExisting(file: string): void {
  let exists = false;
  try {
    fs.lstatSync(file);
    exists = true;
  } catch {
    // absent (or unreadable: the write reports that)
  }
  if (exists) throw existsError(file);
}

function existsError(file: string): UserError {
  return new UserError('conflict', `${file} already exists; choose another file or pass overwrite (--overwrite) to replace it`, 'file');
}
