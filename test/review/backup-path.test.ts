// swarm_snapshot's path: a plain file name inside <data dir>/backups, nothing else.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { backupTarget } from '../../src/service/backup.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-review-bpath-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe('backupTarget against hostile names (held)', () => {
  it('refuses traversal, absolute, NUL, newline, over-long, hidden and unicode names; refuses a symlinked backups dir', () => {
    const data = path.join(root, 'data');
    fs.mkdirSync(data, { recursive: true });
    const bad = ['../x', '..', 'a/../b', '/etc/passwd', 'a/b', 'a\\b', 'x\0y', 'x\ny', 'x\n', '.hidden', '-x', 'a..b', 'x'.repeat(129), 'ｘ.snapshot', ' x', 'x '];
    for (const name of bad) expect(() => backupTarget(data, 's', name), JSON.stringify(name)).toThrow(/path=/);
    expect(backupTarget(data, 's', 'ok_1.snapshot')).toBe(path.join(data, 'backups', 'ok_1.snapshot'));
    const data2 = path.join(root, 'data2');
    fs.mkdirSync(data2);
    fs.mkdirSync(path.join(root, 'elsewhere'));
    fs.symlinkSync(path.join(root, 'elsewhere'), path.join(data2, 'backups'));
    expect(() => backupTarget(data2, 's', 'ok.snapshot')).toThrow(/not a plain directory/);
  });
});
