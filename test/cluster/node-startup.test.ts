// A restarted `concord node` rejoins sooner when it loads only what a member needs: the MCP
// SDK, zod (tool schemas, the request schema) and pino are loaded later (first call, first
// log line, or a second after start), not on the way to answering the leader; nor are the
// http task executor (node:http, node:https) and its address policy (node:dns), loaded with
// the first http task. Checked on the built modules in a child process, recording every
// package module it loads, and on the built CLI itself (the esbuild bundle of `npm run build`).

import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { freePorts, MAIN, ROOT, requireBuild } from './procs.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

const url = (rel: string): string => pathToFileURL(path.join(ROOT, 'dist', rel)).href;

/** A loader hook printing `LOADED <url>` for every ES module (and node: builtin an ES module imports) that matches `filter`. */
function recorder(dir: string, filter: string): string {
  const hooks = path.join(dir, 'hooks.mjs');
  fs.writeFileSync(hooks, `export async function load(u, c, next) { if (${filter}) process.stderr.write('LOADED ' + u + '\\n'); return next(u, c); }\n`);
  const register = path.join(dir, 'register.mjs');
  fs.writeFileSync(register, `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`);
  return pathToFileURL(register).href;
}

describe('concord node start-up', () => {
  it('starts a member and answers status without loading the MCP SDK, zod or pino', () => {
    requireBuild();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-startup-'));
    dirs.push(dir);
    // Every ES module resolved through the loader, and (below) every CommonJS one required.
    const register = recorder(dir, "u.includes('/node_modules/')");
    const script = `
      import { createRequire } from 'node:module';
      await import(${JSON.stringify(url('src/cli/node-command.js'))});
      const { MemberNode } = await import(${JSON.stringify(url('src/cluster/member-node.js'))});
      const node = await MemberNode.start({ swarm: 's', id: 'a', peers: { a: { host: '127.0.0.1', port: 0 } }, dataDir: ${JSON.stringify(path.join(dir, 'data'))}, secret: Buffer.alloc(32, 7), durability: 'full' });
      const st = await node.handle({ kind: 'status' }, 'test');
      // Synchronously after start: before the deferred tool loading can run.
      for (const k of Object.keys(createRequire(import.meta.url).cache)) process.stderr.write('LOADED ' + k + '\\n');
      process.stdout.write(JSON.stringify({ id: st.id, swarm: st.swarm }) + '\\n');
      process.exit(0);
    `;
    const r = spawnSync(process.execPath, ['--import', register, '--input-type=module', '-e', script], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...process.env, CONCORD_LOG_LEVEL: 'warn' },
      timeout: 60_000,
    });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.trim())).toEqual({ id: 'a', swarm: 's' });
    const loaded = r.stderr.split('\n').filter((l) => l.startsWith('LOADED ')).map((l) => l.slice(7));
    // The member did load its own needs (so the recording works).
    expect(loaded.some((u) => u.includes('/node_modules/better-sqlite3/'))).toBe(true);
    const heavy = loaded.filter((u) => /\/node_modules\/(zod|pino|@modelcontextprotocol)\//.test(u));
    expect(heavy).toEqual([]);
  });

  it('the built CLI starts a member to listening without the MCP SDK, zod, pino or the http executor', async () => {
    requireBuild();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-startup-cli-'));
    dirs.push(dir);
    const register = recorder(dir, "u.includes('/node_modules/') || u.startsWith('node:')");
    const secret = path.join(dir, 'secret');
    fs.writeFileSync(secret, `${crypto.randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    // b and c are down at the restart: a restarted member listens before it hears from anyone.
    const [pa, pb, pc] = await freePorts(3);
    const args = ['--import', register, MAIN, 'node', '--swarm', 's', '--id', 'a', '--peers', `a=127.0.0.1:${pa},b=127.0.0.1:${pb},c=127.0.0.1:${pc}`, '--data-dir', path.join(dir, 'data'), '--secret-file', secret];
    const started = async (): Promise<string[]> => {
      const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, CONCORD_LOG_LEVEL: 'warn', CONCORD_STARTUP_TRACE: '1' }, stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      let settling = false;
      try {
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`no 'started' mark within 60 s:\n${err}`)), 60_000);
          child.stderr.on('data', (d: Buffer) => {
            err += d.toString();
            // Everything loaded before the member listens (the mark follows the listener). The
            // hooks run on their own thread, whose writes reach stderr through the main thread's
            // loop: on a busy machine they may come after the mark. So wait until 150 ms pass
            // without one (at most 600 ms after the mark: the deferred loads begin a second
            // after the start).
            if (/^concord startup started at/m.test(err) && !settling) {
              settling = true;
              const markAt = Date.now();
              let lines = -1;
              const quiet = (): void => {
                const n = err.split('\n').length;
                if (n === lines || Date.now() - markAt >= 600) {
                  clearTimeout(timer);
                  resolve();
                  return;
                }
                lines = n;
                setTimeout(quiet, 150);
              };
              quiet();
            }
          });
          child.once('exit', (code) => reject(new Error(`concord node exited (${code}) before listening:\n${err}`)));
        });
      } finally {
        child.kill('SIGKILL');
      }
      return err.split('\n').filter((l) => l.startsWith('LOADED ')).map((l) => l.slice(7));
    };
    // The first start creates the member's file. A member with no state waits until a majority
    // of --peers is fresh (membership.ts checkFreshStart), so b and c run for it, then stop.
    const others = ['b', 'c'].map((id) =>
      spawn(process.execPath, [MAIN, 'node', '--swarm', 's', '--id', id, '--peers', `a=127.0.0.1:${pa},b=127.0.0.1:${pb},c=127.0.0.1:${pc}`, '--data-dir', path.join(dir, `data-${id}`), '--secret-file', secret], { cwd: ROOT, stdio: 'ignore' }),
    );
    try {
      await started();
    } finally {
      for (const o of others) o.kill('SIGKILL');
    }
    const loaded = await started(); // the restart
    expect(loaded.some((u) => u.includes('/node_modules/better-sqlite3/'))).toBe(true);
    expect(loaded).toContain('node:net');
    const unwanted = loaded.filter((u) => /\/node_modules\/(zod|pino|@modelcontextprotocol)\/|^node:(http|https|dns)$/.test(u));
    expect(unwanted).toEqual([]);
  });
});
