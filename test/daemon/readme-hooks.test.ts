// The README's hooks block, run as Claude Code runs it: each command through a shell, with the
// hook's JSON on stdin, `concord` found on PATH, while an assistant's `concord mcp` is attached
// to the same data directory. The commands are read from README.md at test time, so the README
// cannot drift from what works.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAIN, ROOT, cleanupTempDirs, requireBuild, tempDataDir } from '../mcp/helpers.js';
import { daemonEnv, daemonPids, killDaemons, stdioClient } from './daemon-helpers.js';

interface HookEntry {
  matcher: string;
  hooks: Array<{ type: string; command: string; timeout?: number }>;
}

/** The JSON block of README.md's "### Hooks" section, parsed. */
function readmeHooks(): Record<string, HookEntry[]> {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const section = /^### Hooks\b[^\n]*\n([\s\S]*?)(?=^#{2,3} )/m.exec(readme)?.[1];
  if (!section) throw new Error('README.md has no "### Hooks" section');
  const block = /```json\n([\s\S]*?)```/.exec(section)?.[1];
  if (!block) throw new Error('the README hooks section has no ```json block');
  return (JSON.parse(block) as { hooks: Record<string, HookEntry[]> }).hooks;
}

/** A command line run by `sh -c`, as Claude Code runs hooks; exit code and output. */
function runHook(command: string, stdin: string, env: Record<string, string>, timeoutS: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn('sh', ['-c', command], { env, cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    p.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutS * 1000);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    p.stdin.end(stdin);
  });
}

const dirs: string[] = [];
beforeAll(() => requireBuild());
afterAll(async () => {
  for (const d of dirs) await killDaemons(d);
  cleanupTempDirs();
});

describe("the README's hooks", () => {
  it('every hook command in README.md runs and exits 0 while concord mcp is attached', async () => {
    const hooks = readmeHooks();
    const dir = tempDataDir('readme-hooks');
    dirs.push(dir);
    // `concord` on PATH, as `npm link` (the README's quick start) puts it there.
    const bin = path.join(dir, 'bin');
    fs.mkdirSync(bin, { recursive: true });
    fs.writeFileSync(path.join(bin, 'concord'), `#!/bin/sh\nexec "${process.execPath}" "${MAIN}" "$@"\n`, { mode: 0o755 });
    const env = { ...daemonEnv(dir), PATH: `${bin}:${process.env.PATH ?? ''}` };
    const edited = path.join(dir, 'edited.txt');
    fs.writeFileSync(edited, 'hello from an edit\n');
    // What Claude Code sends each event on stdin (the fields the hooks read).
    const payloads: Record<string, object> = {
      PreToolUse: { hook_event_name: 'PreToolUse', tool_name: 'Task', tool_input: { description: 'work', prompt: 'do it' } },
      PostToolUse: { hook_event_name: 'PostToolUse', tool_name: 'Edit', tool_input: { file_path: edited, old_string: 'a', new_string: 'b' }, tool_response: {} },
      PostToolUseFailure: { hook_event_name: 'PostToolUseFailure', tool_name: 'Bash', tool_input: { command: 'false' }, error: 'exit 1' },
    };
    expect(Object.keys(hooks).sort()).toEqual(Object.keys(payloads).sort());

    const s = await stdioClient(dir);
    try {
      await s.mcp.ok('swarm_init', { max_agents: 5 });
      for (let i = 1; i <= 5; i++) await s.mcp.ok('agent_spawn', { name: `raft-agent-${i}` });
      const leader = (await s.mcp.ok('consensus_leader')).leader_id;
      expect(typeof leader).toBe('string');
      const before = (await s.mcp.ok('consensus_election_history', { limit: 1 })).total_elections;

      let ran = 0;
      for (const [event, entries] of Object.entries(hooks)) {
        for (const entry of entries) {
          for (const h of entry.hooks) {
            expect(h.type).toBe('command');
            expect(h.command).toMatch(/^concord /);
            const r = await runHook(h.command, JSON.stringify(payloads[event]), env, Math.max(h.timeout ?? 60, 30));
            expect(r.code, `${event}: ${h.command}\n${r.stderr}${r.stdout}`).toBe(0);
            expect(r.stderr).not.toMatch(/in use/);
            ran++;
          }
        }
      }
      expect(ran).toBeGreaterThanOrEqual(3);

      // The edit hook replicated the file under files/<path> (no double slash).
      const stored = await s.mcp.ok('memory_retrieve', { key: `files${edited}` });
      expect(JSON.stringify(stored)).toContain('hello from an edit');
      // A healthy swarm: the hooks were clients of the one daemon, and nothing restarted it.
      expect((await s.mcp.ok('consensus_leader')).leader_id).toBe(leader);
      expect((await s.mcp.ok('consensus_election_history', { limit: 1 })).total_elections).toBe(before);
      expect(daemonPids(dir)).toHaveLength(1);
    } finally {
      await s.client.close();
    }
  });
});
