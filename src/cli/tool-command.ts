// A command that is one MCP tool call: connect (daemon, --embedded, --server or --cluster),
// call, print (table on a terminal, JSON otherwise).

import { UserError } from '../util/errors.js';
import { invocationOf } from './invocation.js';
import type { CommandContext } from './context.js';
import { clusterFrom } from './node-command.js';
import { printResult } from './output.js';
import type { ToolClient } from './tool-client.js';

/** The tools of the data directory's daemon, a `concord serve`, a cluster, or this process. */
export async function connect(ctx: CommandContext): Promise<ToolClient> {
  const cluster = clusterFrom(ctx.flags);
  const tc = await import('./tool-client.js');
  return cluster ? tc.connectCluster(cluster) : tc.connectTools(ctx.dataDir, typeof ctx.flags.server === 'string' ? ctx.flags.server : undefined, { embedded: ctx.embedded });
}

/** Run `fn` with a connection, closed after; timers of the cluster are unref'd, so hold one. */
export async function withTools<T>(ctx: CommandContext, fn: (tools: ToolClient) => Promise<T>): Promise<T> {
  const tools = await connect(ctx);
  const keepAlive = setInterval(() => undefined, 1000);
  try {
    return await fn(tools);
  } finally {
    clearInterval(keepAlive);
    await tools.close();
  }
}

/** The generic tool command. */
export async function runTool(ctx: CommandContext): Promise<number> {
  const inv = invocationOf(ctx);
  if (inv.tool === 'consensus_leader' && ctx.flags.require === true) return runRequireLeader(ctx, inv.args);
  return withTools(ctx, async (tools) => {
    const progress = inv.args.wait === true ? (p: number, t?: number) => process.stderr.write(`\r  ${p}/${t ?? '?'} tasks finished   `) : undefined;
    const r = await tools.call(inv.tool, inv.args, progress);
    if (progress) process.stderr.write('\n');
    if (!r.ok) {
      process.stderr.write(`${r.text}\n`);
      return 1;
    }
    printResult(r.data, ctx.json, inv.tables);
    return 0;
  });
}

/**
 * `consensus leader --require` (pre-task hooks): exit 2 when there is no leader, or no such
 * swarm. It names the swarm explicitly, so a missing one is an error, not created on the spot
 * (a tool call without `swarm` creates `default` on first use).
 */
async function runRequireLeader(ctx: CommandContext, args: Record<string, unknown>): Promise<number> {
  // A cluster serves one swarm, the one its members were started with: no name to give.
  const named = clusterFrom(ctx.flags) ? args : { ...args, swarm: args.swarm ?? 'default' };
  return withTools(ctx, async (tools) => {
    const r = await tools.call('consensus_leader', named);
    if (!r.ok) {
      process.stderr.write(`no leader: ${r.text}\n`);
      return 2;
    }
    printResult(r.data, ctx.json);
    if (!r.data.leader_id) {
      // A non-zero exit tells the caller there is no leader to coordinate.
      process.stderr.write(`no leader: ${String(r.data.detail ?? r.data.heartbeat_status ?? '')}\n`);
      return 2;
    }
    return 0;
  });
}

/** `consensus replicate --file PATH | --hook-stdin`: the CLI (the editor's side) reads the file and sends its content. */
export async function runReplicate(ctx: CommandContext): Promise<number> {
  if (ctx.flags.hook_stdin === true) ctx.flags.file = await fileFromHookStdin();
  const inv = invocationOf(ctx);
  if (typeof inv.args.file === 'string') inv.args.content = (await import('./replicate-file.js')).readFileToReplicate(inv.args.file);
  return runToolCall(ctx, inv.tool, inv.args);
}

async function runToolCall(ctx: CommandContext, tool: string, args: Record<string, unknown>): Promise<number> {
  return withTools(ctx, async (tools) => {
    const r = await tools.call(tool, args);
    if (!r.ok) {
      process.stderr.write(`${r.text}\n`);
      return 1;
    }
    printResult(r.data, ctx.json, ctx.spec.tables);
    return 0;
  });
}

/** Claude Code hooks pass the tool call as JSON on stdin; edits carry tool_input.file_path. */
async function fileFromHookStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  let input: { tool_input?: { file_path?: string; notebook_path?: string } };
  try {
    input = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new UserError('invalid_argument', '--hook-stdin expects the hook JSON on stdin (Claude Code PostToolUse payload)', 'hook_stdin');
  }
  const file = input.tool_input?.file_path ?? input.tool_input?.notebook_path;
  if (!file) throw new UserError('invalid_argument', 'hook payload has no tool_input.file_path; use this hook on Edit/Write/MultiEdit', 'hook_stdin');
  return file;
}
