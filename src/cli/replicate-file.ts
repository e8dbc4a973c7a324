// `concord consensus replicate --file PATH`: the CLI (the editor's side) reads the file and
// sends its content; the server never opens a path from a tool argument.

import fs from 'node:fs';
import { UserError } from '../util/errors.js';

export const MAX_REPLICATED_FILE_BYTES = 1 << 20;

/**
 * A regular file's content, at most maxBytes. Special files are refused (a /proc file reports
 * size 0 and a FIFO blocks), and the size is enforced on what is read, not on what stat says.
 */
export function readFileToReplicate(file: string, maxBytes = MAX_REPLICATED_FILE_BYTES): string {
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO must not hang the hook; it is refused just below.
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (e) {
    throw new UserError('not_found', `file=${JSON.stringify(file)} does not exist or is not readable (${(e as NodeJS.ErrnoException).code ?? 'error'})`, 'file');
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new UserError('invalid_argument', `file=${JSON.stringify(file)} is not a regular file`, 'file');
    const buf = Buffer.alloc(maxBytes + 1);
    let n = 0;
    for (;;) {
      const got = fs.readSync(fd, buf, n, buf.length - n, null);
      if (got === 0) break;
      n += got;
      if (n > maxBytes) throw new UserError('invalid_argument', `file=${JSON.stringify(file)} is over ${maxBytes} bytes; accepted: <= ${maxBytes} bytes`, 'file');
    }
    return buf.subarray(0, n).toString('utf8');
  } finally {
    fs.closeSync(fd);
  }
}
