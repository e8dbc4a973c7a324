// The CLI reads the file to replicate (the server never does): regular files only, size
// enforced on what is read (kernel files report size 0), a FIFO refused without hanging.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readFileToReplicate } from '../../src/cli/replicate-file.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-replicate-'));

describe('readFileToReplicate (CLI side)', () => {
  it('reads a regular file', () => {
    const f = path.join(dir, 'a.md');
    fs.writeFileSync(f, '# hi\nπ\n');
    expect(readFileToReplicate(f)).toBe('# hi\nπ\n');
    fs.writeFileSync(path.join(dir, 'empty'), '');
    expect(readFileToReplicate(path.join(dir, 'empty'))).toBe('');
  });
  it('refuses directories, missing files and FIFOs (without blocking)', () => {
    expect(() => readFileToReplicate(dir)).toThrow(/is not a regular file/);
    expect(() => readFileToReplicate(path.join(dir, 'missing'))).toThrow(/does not exist or is not readable/);
    const fifo = path.join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    expect(() => readFileToReplicate(fifo)).toThrow(/is not a regular file/);
  });
  it('enforces the size on the bytes read, not on the size stat reports', () => {
    const f = path.join(dir, 'big');
    fs.writeFileSync(f, 'x'.repeat(101));
    expect(() => readFileToReplicate(f, 100)).toThrow(/is over 100 bytes/);
    // /proc files report size 0 whatever they hold.
    const cmdline = '/proc/self/cmdline';
    if (fs.existsSync(cmdline)) {
      expect(fs.statSync(cmdline).size).toBe(0);
      expect(() => readFileToReplicate(cmdline, 4)).toThrow(/is over 4 bytes/);
    }
  });
});
