// A restarted `concord node` rejoins sooner when it loads only what a member needs: the MCP
// SDK, zod (tool schemas, the request schema) and pino are loaded later (first call, first
// log line, or a second after start), not on the way to answering the leader. Checked on
// the built modules in a child process, recording every package module it loads.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { ROOT, requireBuild } from './procs.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

const url = (rel: string): string => pathToFileURL(path.join(ROOT, 'dist', rel)).href;

describe('concord node start-up', () => {
  it('starts a member and answers status without loading the MCP SDK, zod or pino', () => {
    requireBuild();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-startup-'));
    dirs.push(dir);
    // Every ES module resolved through the loader, and (below) every CommonJS one required.
    const hooks = path.join(dir, 'hooks.mjs');
    fs.writeFileSync(hooks, "export async function load(u, c, next) { if (u.includes('/node_modules/')) process.stderr.write('LOADED ' + u + '\\n'); return next(u, c); }\n");
    const register = path.join(dir, 'register.mjs');
    fs.writeFileSync(register, `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`);
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
    const r = spawnSync(process.execPath, ['--import', pathToFileURL(register).href, '--input-type=module', '-e', script], {
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
});
