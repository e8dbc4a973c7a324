import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { MEMBER_V8_FLAGS, memberV8Flags } from '../../src/util/jit-flags.js';
import { MAIN, writeSecretFile } from '../cluster/procs.js';

describe('member V8 flags', () => {
  it('defaults to the measured interrupt budget', () => {
    expect(memberV8Flags({})).toEqual(MEMBER_V8_FLAGS.split(' '));
    expect(MEMBER_V8_FLAGS).toMatch(/^--interrupt-budget=\d+$/);
  });

  it("takes CONCORD_MEMBER_V8_FLAGS, '' for none", () => {
    expect(memberV8Flags({ CONCORD_MEMBER_V8_FLAGS: '' })).toEqual([]);
    expect(memberV8Flags({ CONCORD_MEMBER_V8_FLAGS: ' --interrupt-budget=2048  --invocation-count-for-turbofan=100 ' })).toEqual(['--interrupt-budget=2048', '--invocation-count-for-turbofan=100']);
  });

  it('refuses anything but numeric tiering flags, naming the variable, the flag and what is accepted', () => {
    for (const bad of ['--allow-natives-syntax', '--interrupt-budget=', '--interrupt-budget=8k', 'interrupt-budget=1', '--jitless']) {
      expect(() => memberV8Flags({ CONCORD_MEMBER_V8_FLAGS: bad })).toThrow(/CONCORD_MEMBER_V8_FLAGS=.*is not accepted; accepted: space-separated --interrupt-budget=N/);
    }
  });

  it('a concord node with a bad value exits with that message before it starts a member', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-v8flags-'));
    try {
      const { secretFile } = writeSecretFile(dir);
      const dataDir = path.join(dir, 'data');
      const r = spawnSync(process.execPath, [MAIN, 'node', '--swarm', 's', '--id', 'a', '--peers', 'a=127.0.0.1:1', '--secret-file', secretFile, '--data-dir', dataDir], {
        env: { ...process.env, CONCORD_MEMBER_V8_FLAGS: '--jitless' },
        encoding: 'utf8',
        timeout: 20_000,
      });
      expect(r.status).not.toBe(0);
      expect(r.stderr).toContain('CONCORD_MEMBER_V8_FLAGS="--jitless": "--jitless" is not accepted');
      expect(fs.existsSync(dataDir)).toBe(false); // refused before the member opened anything
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
