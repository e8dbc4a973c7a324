// openMemberStorage: a member starts only on the file created for its incarnation.

import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openMemberStorage } from '../../src/swarm/member-storage.js';
import { SqliteStorage } from '../../src/storage/sqlite-storage.js';
import { removeDir, tempDataDir } from './service-util.js';

const dir = tempDataDir('member-storage');
afterAll(() => removeDir(dir));
const durability = 'full' as const;
let n = 0;
const fileOf = (): string => path.join(dir, `m${++n}.db`);

describe('openMemberStorage', () => {
  it('creates a fresh member with the given incarnation and finds it again', () => {
    const f = fileOf();
    const a = openMemberStorage(f, 'a', { incarnation: 'inc-1', fresh: true, durability });
    expect(a.incarnation).toBe('inc-1');
    for (const x of [f, `${f}-wal`]) expect(fs.statSync(x).mode & 0o077).toBe(0);
    a.storage.close();
    const again = openMemberStorage(f, 'a', { incarnation: 'inc-1', fresh: false, durability });
    expect(again.storage.identity()).toEqual({ member: 'a', incarnation: 'inc-1' });
    again.storage.close();
  });

  it('refuses a missing file without creating one', () => {
    const f = fileOf();
    expect(() => openMemberStorage(f, 'a', { incarnation: 'inc-1', fresh: false, durability })).toThrow(/is missing/);
    expect(fs.existsSync(f)).toBe(false);
  });

  it('refuses an empty file for a member that existed', () => {
    const f = fileOf();
    SqliteStorage.open(f).close();
    expect(() => openMemberStorage(f, 'a', { incarnation: 'inc-1', fresh: false, durability })).toThrow(/is empty/);
  });

  it('refuses another incarnation or another member of the same name', () => {
    const f = fileOf();
    openMemberStorage(f, 'a', { incarnation: 'old', fresh: true, durability }).storage.close();
    expect(() => openMemberStorage(f, 'a', { incarnation: 'new', fresh: false, durability })).toThrow(/incarnation old/);
    expect(() => openMemberStorage(f, 'b', { incarnation: undefined, fresh: false, durability })).toThrow(/belongs to a/);
  });

  it('adopts a file written before identities when it holds Raft state', () => {
    const f = fileOf();
    const s = SqliteStorage.open(f);
    s.save({ snapshot: null, entries: [{ index: 1, term: 1, type: 'normal', data: 'x' }], hardState: { term: 1, vote: 'a', commit: 1 } });
    s.close();
    const got = openMemberStorage(f, 'a', { incarnation: undefined, fresh: false, durability });
    expect(got.incarnation).toMatch(/^[0-9a-f-]{36}$/);
    expect(got.storage.identity()).toEqual({ member: 'a', incarnation: got.incarnation });
    got.storage.close();
  });
});
