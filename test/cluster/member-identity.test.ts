// Cluster mode: a `concord node` whose database was lost or truncated while its data directory
// shows it ran before must refuse to start (exit 2, naming the file), not rejoin as an empty
// voter that grants any vote.

import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePorts, MAIN, requireBuild } from './procs.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-node-identity-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function waitFor(pred: () => boolean, ms: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('concord node on a lost database', () => {
  it('refuses to start when its file was truncated after a previous run', async () => {
    requireBuild();
    const secretFile = path.join(tmp, 'secret');
    fs.writeFileSync(secretFile, randomBytes(32).toString('hex'), { mode: 0o600 });
    const [port] = await freePorts(1);
    const dataDir = path.join(tmp, 'data');
    const args = [MAIN, 'node', '--swarm', 'ids', '--id', 'm1', '--peers', `m1=127.0.0.1:${port}`, '--data-dir', dataDir, '--secret-file', secretFile];
    const db = path.join(dataDir, 'swarms', 'ids', 'm1.db');
    const first = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    first.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    try {
      await waitFor(() => err.includes('listening on'), 20_000, `the first run to listen (stderr: ${err})`);
    } finally {
      first.kill('SIGKILL');
      await new Promise((r) => first.once('exit', r));
    }
    // The disk loses the member's data; its directory (and registry) survive.
    fs.truncateSync(db, 0);
    for (const f of [`${db}-wal`, `${db}-shm`]) fs.rmSync(f, { force: true });
    fs.rmSync(path.join(dataDir, 'concord.lock'), { force: true });

    const again = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 20_000 });
    expect(again.status, `stderr: ${again.stderr}`).toBe(2);
    expect(again.stderr).toContain('refuses to start');
    expect(again.stderr).toContain(db);
  });
});
