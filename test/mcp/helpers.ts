/**
 * Shared helpers for the MCP end-to-end tests: they run the built CLI (dist/src/cli/main.js)
 * as a real child process, exactly as an MCP client would, and talk to it with the SDK.
 * Nothing here builds: CI runs `npm run build` before `npm test`.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { CallToolResult, Progress } from '@modelcontextprotocol/sdk/types.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const MAIN = path.join(ROOT, 'dist/src/cli/main.js');

/** The 30 tools the first issue lists (its "29" is a miscount of its own list), and swarm_snapshot (issue 11). */
export const EXPECTED_TOOLS = [
  'swarm_init',
  'swarm_status',
  'swarm_list',
  'swarm_destroy',
  'swarm_snapshot',
  'consensus_config',
  'agent_spawn',
  'agent_list',
  'agent_terminate',
  'agent_restart',
  'agent_metrics',
  'consensus_status',
  'consensus_leader',
  'consensus_log_status',
  'consensus_step_down',
  'consensus_trigger_election',
  'consensus_verify_quorum',
  'consensus_election_history',
  'consensus_replicate',
  'network_diagnose',
  'network_partition',
  'network_heal',
  'task_orchestrate',
  'task_status',
  'task_results',
  'task_claim',
  'task_complete',
  'memory_store',
  'memory_retrieve',
  'memory_list',
  'memory_delete',
] as const;

/**
 * Fail loudly (not with a spawn error) when the build is missing, and warn when a source is
 * newer than its build output (the tests would exercise old code). Call from beforeAll.
 */
export function requireBuild(): void {
  if (!fs.existsSync(MAIN)) {
    throw new Error(`${path.relative(ROOT, MAIN)} is missing: the MCP tests run the built server. Run "npm run build" first (npm run build && npx vitest run test/mcp).`);
  }
  const stale: string[] = [];
  for (const dir of ['src', 'tools']) {
    for (const rel of fs.readdirSync(path.join(ROOT, dir), { recursive: true }) as string[]) {
      if (!rel.endsWith('.ts')) continue;
      const src = path.join(ROOT, dir, rel);
      const out = path.join(ROOT, 'dist', dir, rel.replace(/\.ts$/, '.js'));
      if (!fs.existsSync(out) || fs.statSync(out).mtimeMs < fs.statSync(src).mtimeMs) stale.push(path.join(dir, rel));
    }
  }
  if (stale.length > 0) {
    console.warn(`[test/mcp] dist is older than ${stale.length} source file(s) (${stale.slice(0, 5).join(', ')}${stale.length > 5 ? ', ...' : ''}): run "npm run build" so the tests exercise the current code.`);
  }
}

const tempDirs: string[] = [];

/** A fresh data directory; removed by cleanupTempDirs(). */
export function tempDataDir(tag: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `concord-mcp-${tag}-`));
  tempDirs.push(dir);
  return dir;
}

export function cleanupTempDirs(): void {
  for (const d of tempDirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
}

export function serverEnv(dataDir: string, extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('CONCORD_')) env[k] = v;
  // In-process (no daemon): these tests own their server process and its exit; the daemon
  // tests in test/daemon opt out with CONCORD_EMBEDDED: '0'.
  return { ...env, CONCORD_DATA_DIR: dataDir, CONCORD_LOG_LEVEL: 'warn', CONCORD_EMBEDDED: '1', ...extra };
}

export interface ToolOutcome {
  isError: boolean;
  text: string;
  data: Record<string, unknown>;
  raw: CallToolResult;
}

/** An SDK Client with helpers that check outcomes and record which tools were called. */
export class Mcp {
  readonly called = new Set<string>();

  constructor(readonly client: Client) {}

  async call(name: string, args: Record<string, unknown> = {}, onprogress?: (p: Progress) => void): Promise<ToolOutcome> {
    this.called.add(name);
    const raw = (await this.client.callTool({ name, arguments: args }, undefined, onprogress ? { onprogress, timeout: 60_000 } : { timeout: 60_000 })) as CallToolResult;
    const text = raw.content.map((c) => (c.type === 'text' ? c.text : '')).join('\n');
    return { isError: raw.isError === true, text, data: (raw.structuredContent ?? {}) as Record<string, unknown>, raw };
  }

  /** Call and require success; returns structuredContent (checked to mirror the text content). */
  async ok(name: string, args: Record<string, unknown> = {}, onprogress?: (p: Progress) => void): Promise<Record<string, unknown>> {
    const r = await this.call(name, args, onprogress);
    if (r.isError) throw new Error(`${name}(${JSON.stringify(args)}) failed: ${r.text}`);
    if (JSON.stringify(JSON.parse(r.text)) !== JSON.stringify(r.data)) throw new Error(`${name}: text content does not mirror structuredContent`);
    return r.data;
  }

  /** Call and require an isError result; returns its message. */
  async err(name: string, args: Record<string, unknown> = {}): Promise<string> {
    const r = await this.call(name, args);
    if (!r.isError) throw new Error(`${name}(${JSON.stringify(args)}) should have failed but returned ${r.text}`);
    return r.text;
  }
}

export interface StdioServer {
  mcp: Mcp;
  client: Client;
  transport: StdioClientTransport;
  dataDir: string;
  pid: number;
  stderr(): string;
  close(): Promise<void>;
}

/** `node dist/src/cli/main.js mcp` on a data directory, connected with the SDK Client. */
export async function startStdio(dataDir: string): Promise<StdioServer> {
  const transport = new StdioClientTransport({ command: process.execPath, args: [MAIN, 'mcp'], env: serverEnv(dataDir), stderr: 'pipe', cwd: ROOT });
  let err = '';
  transport.stderr?.on('data', (c: Buffer) => {
    err += c.toString('utf8');
  });
  const client = new Client({ name: 'concord-mcp-test', version: '0.0.0' });
  await client.connect(transport);
  const pid = transport.pid;
  if (pid === null) throw new Error('server process did not start');
  // Cache tool metadata: the Client then validates every structuredContent against its outputSchema.
  await client.listTools();
  return {
    mcp: new Mcp(client),
    client,
    transport,
    dataDir,
    pid,
    stderr: () => err,
    close: async () => {
      await client.close().catch(() => undefined);
    },
  };
}

/** Poll `fn` until it returns a truthy value; fail with the last value seen after timeoutMs. */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | null | false>, timeoutMs = 15_000, everyMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`);
    await sleep(everyMs);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Resolves with the exit code/signal and the time it took once `child` exits. */
export function exited(child: ChildProcessWithoutNullStreams | import('node:child_process').ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

/** A server child process we drive by hand with newline-delimited JSON-RPC. */
export interface RawServer {
  child: ChildProcessWithoutNullStreams;
  /** Every line written on stdout so far. */
  lines: string[];
  stderr(): string;
  send(msg: unknown): void;
  /** The response to request `id` (waits for it). */
  response(id: number | string, timeoutMs?: number): Promise<Record<string, unknown>>;
}

export function startRaw(dataDir: string, opts: { args?: string[]; env?: Record<string, string> } = {}): RawServer {
  const child = spawn(process.execPath, [MAIN, ...(opts.args ?? ['mcp'])], { env: serverEnv(dataDir, opts.env), cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let buf = '';
  let err = '';
  const waiters: Array<() => void> = [];
  child.stdout.on('data', (c: Buffer) => {
    buf += c.toString('utf8');
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
    for (const w of waiters.splice(0)) w();
  });
  child.stderr.on('data', (c: Buffer) => {
    err += c.toString('utf8');
  });
  const find = (id: number | string) => {
    for (const l of lines) {
      try {
        const m = JSON.parse(l) as Record<string, unknown>;
        if (m.id === id && ('result' in m || 'error' in m)) return m;
      } catch {
        // Not JSON: the protocol test reports it.
      }
    }
    return undefined;
  };
  return {
    child,
    lines,
    stderr: () => err,
    send: (msg) => child.stdin.write(`${JSON.stringify(msg)}\n`),
    response: (id, timeoutMs = 20_000) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no response to request ${id} within ${timeoutMs} ms; stdout: ${lines.join('\n').slice(-2000)}; stderr: ${err.slice(-2000)}`)), timeoutMs);
        const check = () => {
          const m = find(id);
          if (m) {
            clearTimeout(timer);
            resolve(m);
          } else if (child.exitCode !== null) {
            clearTimeout(timer);
            reject(new Error(`server exited (${child.exitCode}) before answering ${id}; stderr: ${err.slice(-2000)}`));
          } else waiters.push(check);
        };
        check();
      }),
  };
}

export const INITIALIZE = {
  jsonrpc: '2.0',
  id: 0,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw-test', version: '0.0.0' } },
} as const;
