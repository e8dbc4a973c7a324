// The data-directory lock under a start-up race: many processes try at the same instant, over
// a stale description left by a dead holder; exactly one may win. And what the lock leaves on
// disk is owner-only and holds no secret from the command line.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DataDirLock } from '../../src/service/data-dir.js';
import { MAIN } from '../cluster/procs.js';
import { removeDir, tempDataDir } from './service-util.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) removeDir(d);
});
const LOCK_JS = path.join(path.dirname(MAIN), '..', 'service', 'data-dir.js');

/**
 * Start `n` processes; once every one has loaded and said `ready`, let them all try to lock
 * `dir` at once. Each holds what it got until all have answered, so a slow starter on a loaded
 * machine cannot take a lock a faster one has already let go of.
 */
async function race(dir: string, n: number): Promise<string[]> {
  const go = path.join(dir, 'go');
  const done = path.join(dir, 'done');
  const script = `
    import fs from 'node:fs';
    import { DataDirLock } from ${JSON.stringify(LOCK_JS)};
    const wait = async (f) => { while (!fs.existsSync(f)) await new Promise((r) => setTimeout(r, 1)); };
    console.log('ready');
    await wait(${JSON.stringify(go)});
    try { DataDirLock.acquire(${JSON.stringify(dir)}); console.log('got'); }
    catch (e) { console.log(e.code === 'locked' ? 'busy' : 'error ' + e.message); }
    await wait(${JSON.stringify(done)});
    process.exit(0);
  `;
  let ready = 0;
  let answered = 0;
  let allReady!: () => void;
  let allAnswered!: () => void;
  const readyP = new Promise<void>((r) => (allReady = r));
  const answeredP = new Promise<void>((r) => (allAnswered = r));
  const outs = Array.from({ length: n }, () => {
    const c = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    let seen = 0; // complete lines counted so far
    c.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      const lines = out.split('\n').length - 1;
      for (; seen < lines; seen++) {
        if (seen === 0 && ++ready === n) allReady();
        if (seen === 1 && ++answered === n) allAnswered();
      }
    });
    return new Promise<string>((resolve) => c.once('exit', () => resolve(out.split('\n')[1] ?? `no answer: ${out}`)));
  });
  await readyP;
  fs.writeFileSync(go, '');
  await answeredP;
  fs.writeFileSync(done, '');
  return Promise.all(outs);
}

describe('data-dir lock', () => {
  it('lets exactly one of six processes starting at once hold it, over a stale holder file', { timeout: 60_000 }, async () => {
    if (!fs.existsSync(LOCK_JS)) throw new Error(`${LOCK_JS} not found: run npm run build first`);
    for (let trial = 0; trial < 4; trial++) {
      const dir = tempDataDir('lock-race');
      dirs.push(dir);
      // A holder that died without releasing (pid far above any live one).
      fs.writeFileSync(path.join(dir, 'concord.lock'), JSON.stringify({ pid: 4_000_000, host: 'x', started_at: 'then', command: 'concord mcp' }));
      const results = await race(dir, 6);
      expect(results.filter((r) => r === 'got'), `trial ${trial}: ${results.join(', ')}`).toHaveLength(1);
      expect(results.filter((r) => r === 'busy')).toHaveLength(5);
    }
  });

  it('creates the directory owner-only and writes no command-line flag into the holder file', () => {
    const dir = path.join(tempDataDir('lock-perms'), 'data');
    dirs.push(path.dirname(dir));
    const argv = process.argv;
    process.argv = [argv[0]!, 'concord', 'serve', '--token', 'secret-token-value-that-must-not-leak'];
    let lock: DataDirLock;
    try {
      lock = DataDirLock.acquire(dir);
    } finally {
      process.argv = argv;
    }
    try {
      expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
      const info = path.join(dir, 'concord.lock');
      expect(fs.statSync(info).mode & 0o077).toBe(0);
      const text = fs.readFileSync(info, 'utf8');
      expect(text).not.toContain('secret-token-value');
      expect(JSON.parse(text)).toMatchObject({ pid: process.pid, command: 'concord serve' });
      // A second acquire in this process is refused too (the lock is not per process only).
      expect(() => DataDirLock.acquire(dir)).toThrow(/in use by pid/);
    } finally {
      lock.release();
    }
    expect(fs.existsSync(path.join(dir, 'concord.lock'))).toBe(false);
    DataDirLock.acquire(dir).release(); // free again after release
  });
});

describe('data-dir lock held by a process that kept no reference to it', () => {
  it('stays held through garbage collection until release() or exit', async () => {
    if (!fs.existsSync(LOCK_JS)) throw new Error(`${LOCK_JS} not found: run npm run build first`);
    const dir = tempDataDir('lock-gc');
    dirs.push(dir);
    const held = path.join(dir, 'held');
    const done = path.join(dir, 'done');
    // The child drops the DataDirLock at once and collects garbage. Before: the mutex
    // connection was collected and closed, and its lock with it (CI: two of six racing
    // starters "got" the directory, the first one's lock gone by then).
    const script = `
      import fs from 'node:fs';
      import { DataDirLock } from ${JSON.stringify(LOCK_JS)};
      DataDirLock.acquire(${JSON.stringify(dir)});
      for (let i = 0; i < 3; i++) { global.gc(); await new Promise((r) => setTimeout(r, 20)); }
      fs.writeFileSync(${JSON.stringify(held)}, '');
      while (!fs.existsSync(${JSON.stringify(done)})) await new Promise((r) => setTimeout(r, 5));
    `;
    const child = spawn(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { stdio: 'inherit' });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    try {
      const t0 = Date.now();
      while (!fs.existsSync(held)) {
        if (Date.now() - t0 > 30_000) throw new Error('the child did not take the lock within 30 s');
        await new Promise((r) => setTimeout(r, 10));
      }
      expect(() => DataDirLock.acquire(dir)).toThrow(/in use by pid/);
    } finally {
      fs.writeFileSync(done, '');
      await exited;
    }
    DataDirLock.acquire(dir).release(); // free once the holder exited
  }, 60_000);
});

describe('data-dir lock, a starter that meets another mid-start', () => {
  it('tries again while no live holder is described, instead of refusing at once', async () => {
    // Another starter holds the mutex file's shared lock for 40 ms (as one does while it opens
    // the file): an exclusive lock cannot be had meanwhile. Before: refused at once, which let
    // six racing starters all refuse (CI, 2026-12-02). The holder file describes a dead pid.
    const { Worker } = await import('node:worker_threads');
    const dir = tempDataDir('lock-midstart');
    dirs.push(dir);
    fs.writeFileSync(path.join(dir, 'concord.lock'), JSON.stringify({ pid: 4_000_000, host: os.hostname(), started_at: 'then', command: 'concord mcp' }));
    DataDirLock.acquire(dir).release(); // creates the mutex file
    const sqlite = createRequire(import.meta.url).resolve('better-sqlite3');
    const w = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       const db = new (require(workerData.sqlite))(workerData.file);
       db.exec('BEGIN'); db.prepare('SELECT count(*) FROM holder').get();
       parentPort.postMessage('held');
       Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 40);
       db.exec('COMMIT'); db.close(); parentPort.postMessage('released');`,
      { eval: true, workerData: { sqlite, file: path.join(dir, 'concord.lock.db') } },
    );
    await new Promise<void>((resolve) => w.once('message', () => resolve()));
    const lock = DataDirLock.acquire(dir);
    lock.release();
    await w.terminate();
  });
});
