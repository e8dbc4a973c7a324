// Helpers for the daemon tests: CLI processes and stdio clients that go through the data
// directory's daemon (CONCORD_EMBEDDED=0), and a cleanup that leaves no daemon running.
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { processAlive } from '../../src/daemon/client.js';
import { MAIN, Mcp, ROOT, serverEnv, sleep } from '../mcp/helpers.js';

export function daemonEnv(dataDir: string, extra: Record<string, string> = {}): Record<string, string> {
  return serverEnv(dataDir, { CONCORD_EMBEDDED: '0', CONCORD_DAEMON_IDLE_S: '30', CONCORD_LOG_LEVEL: 'info', ...extra });
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  json: () => Record<string, unknown>;
}

/** One CLI command as its own process (as a hook runs it). */
export function cli(dataDir: string, args: string[], extra: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args], { env: daemonEnv(dataDir, extra), cwd: ROOT, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr, json: () => JSON.parse(stdout) as Record<string, unknown> });
    });
  });
}

/** cli() that must succeed. */
export async function cliOk(dataDir: string, args: string[], extra: Record<string, string> = {}): Promise<Record<string, unknown>> {
  const r = await cli(dataDir, args, extra);
  if (r.code !== 0) throw new Error(`concord ${args.join(' ')} exited ${r.code}: ${r.stderr}${r.stdout}`);
  return r.json();
}

/** `concord mcp` (the proxy) as an MCP client's stdio server. */
export async function stdioClient(dataDir: string): Promise<{ mcp: Mcp; client: Client; stderr: () => string; pid: number }> {
  const transport = new StdioClientTransport({ command: process.execPath, args: [MAIN, 'mcp'], env: daemonEnv(dataDir), stderr: 'pipe', cwd: ROOT });
  let err = '';
  transport.stderr?.on('data', (c: Buffer) => {
    err += c.toString('utf8');
  });
  const client = new Client({ name: 'concord-daemon-test', version: '0.0.0' });
  await client.connect(transport);
  await client.listTools();
  return { mcp: new Mcp(client), client, stderr: () => err, pid: transport.pid! };
}

/** Whether the daemon process still runs (zombies do not count). */
export const alive = processAlive;

/** Pids of `concord daemon` processes serving this directory (from ps, not from the daemon). */
export function daemonPids(dataDir: string): number[] {
  const out = execFileSync('ps', ['-eo', 'pid=,stat=,args='], { encoding: 'utf8' });
  return out
    .split('\n')
    .filter((l) => l.includes(`daemon --data-dir ${dataDir}`) && !/^\s*\d+\s+Z/.test(l))
    .map((l) => Number(l.trim().split(/\s+/)[0]));
}

/** Kill whatever daemon still serves `dataDir` (a CI run must never hang on a leftover). */
export async function killDaemons(dataDir: string): Promise<void> {
  for (const pid of daemonPids(dataDir)) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + 5000;
  while (daemonPids(dataDir).length > 0 && Date.now() < deadline) await sleep(50);
  for (const pid of daemonPids(dataDir)) process.kill(pid, 'SIGKILL');
}

export function logText(dataDir: string): string {
  try {
    return fs.readFileSync(path.join(dataDir, 'daemon.log'), 'utf8');
  } catch {
    return '';
  }
}
