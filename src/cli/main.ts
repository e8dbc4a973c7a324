#!/usr/bin/env node
import path from 'node:path';
import { envEmbedded } from '../daemon/paths.js';
import type { SocketServer } from '../daemon/socket-server.js';
import type { Coordinator } from '../service/coordinator.js';
import { UserError } from '../service/errors.js';
import { HTTP_ALLOW_ENV, parseAllowList } from '../service/http-policy.js';
import { logger } from '../util/logger.js';
import { formatTable, parseFlags, toCheckedInvocation } from './commands.js';
import { clusterFrom, runNode, runSecret } from './node-command.js';
import type { ToolClient } from './tool-client.js';

// Each command loads only what it runs: a restarted `concord node` rejoins sooner without
// the HTTP server, the CLI's client transports and the demo.
const runStdio: typeof import('../server/stdio.js').runStdio = async (o) => (await import('../server/stdio.js')).runStdio(o);
const runHttp: typeof import('../server/http.js').runHttp = async (o) => (await import('../server/http.js')).runHttp(o);
const runProxy: typeof import('../daemon/proxy.js').runProxy = async (d, max) => (await import('../daemon/proxy.js')).runProxy(d, max);
const runDemo: typeof import('./demo.js').runDemo = async (o) => (await import('./demo.js')).runDemo(o);

const HELP = `concord: an MCP server with real embedded Raft swarms

Usage:
  concord                      MCP server on stdio (when started by an MCP client)
  concord mcp [--max-message-bytes N]
                               MCP server on stdio, attached to the data directory's daemon
                               (started on demand; --embedded runs the swarms in this process;
                               longest message, default 8 MiB)
  concord daemon [start|status|stop|logs]
                               the one process that owns a data directory (daemon help)
  concord serve --http 127.0.0.1:7700 [--token-file FILE] [--allowed-hosts H,...]
        [--max-sessions 256] [--session-idle-timeout-s 1800] [--request-timeout-s 10]
        [--max-connections 1024] [--allowed-origins O,...]
                               MCP over Streamable HTTP (several assistants share swarms);
                               a token (>= 32 characters) is required beyond loopback
  concord demo [--keep]        the spec's eight steps end to end, with a verdict
  concord node --swarm NAME --id ID --peers ID=HOST:PORT,... --data-dir DIR --secret-file FILE
                               one member per process over TCP (cluster mode; node --help)
  concord member list | add --id ID --address HOST:PORT | remove --id ID --cluster ...
                               change a running cluster's members (member --help)
  concord secret client --secret-file FILE
                               print the client key for the cluster secret in FILE (clients
                               hold it: it calls tools but can never act as a member)
  concord mcp --cluster HOST:PORT,... --secret-file FILE
                               MCP on stdio for a running cluster (also serve --cluster);
                               FILE: the client key (or the cluster secret)
  concord <noun> <verb> [--flags]   the spec's commands, e.g.
    swarm init --topology mesh --consensus raft --max-agents 5 [--bootstrap-expect 3]
    swarm status --verbose | swarm list | swarm destroy --swarm NAME --yes
    consensus config --election-timeout-min 150 --election-timeout-max 300 --heartbeat-interval 50
                     --log-compaction-threshold 1000 --quorum-size 3 --max-log-entries 10000 --batch-size 100
    consensus status [--watch [MS]] | leader [--wait-ms MS] | log-status | verify-quorum [--timeout-ms MS] | trigger-election
    consensus step-down [--agent ID] [--successor ID] | election-history --limit 10
    consensus replicate --file PATH [--key KEY] | replicate --hook-stdin (Claude Code hook payload)
    consensus leader --require       exits 2 when no leader (for pre-task hooks)
    agent spawn --type coordinator --name raft-agent-1 --capabilities a,b,c
    agent list --filter active | terminate --agent-id ID [--mode crash|graceful]
    agent restart --agent-id ID | metrics [--agent-id ID] [--metric disk-io]
    task orchestrate --task TEXT --count 1000 --strategy sequential --priority high --max-agents 5 [--wait]
    task status [--orchestration-id ID] [--watch] | results [--orchestration-id ID] --format summary
    task claim --agent-id A [--count N] | complete --task-id T --agent-id A --epoch E [--result JSON]
    memory store --key K --value JSON [--ttl-s N] | retrieve --key K | list [--prefix P] | delete --key K
    network diagnose | partition --isolate ID | partition --groups a,b;c,d,e | heal
  Every command takes --swarm NAME (default "default") and --data-dir DIR (or CONCORD_DATA_DIR,
  default ~/.concord). Commands go to the directory's daemon (<DIR>/concord.sock), starting
  it when none runs; --embedded (or CONCORD_EMBEDDED=1) runs them in-process instead.
  With --cluster HOST:PORT,... (or CONCORD_CLUSTER) and --secret-file (or CONCORD_SECRET_FILE),
  commands go to a running cluster's leader instead.
  The http task executor refuses loopback, private and link-local addresses unless the host is
  allowed: --allow-http-host HOST[:PORT],... (or CONCORD_HTTP_ALLOW) on the process running tasks.
Environment: CONCORD_DATA_DIR, CONCORD_LOG_LEVEL (logs on stderr), CONCORD_CLUSTER,
  CONCORD_SECRET_FILE, CONCORD_HTTP_TOKEN or CONCORD_HTTP_TOKEN_FILE (also read by the CLI to
  reach a running serve), CONCORD_HTTP_ALLOWED_HOSTS, CONCORD_HTTP_ALLOWED_ORIGINS,
  CONCORD_HTTP_MAX_SESSIONS, CONCORD_HTTP_SESSION_IDLE_TIMEOUT_S, CONCORD_HTTP_REQUEST_TIMEOUT_S,
  CONCORD_HTTP_MAX_CONNECTIONS, CONCORD_STDIO_MAX_MESSAGE_BYTES, CONCORD_HTTP_ALLOW (http
  executor allow-list), CONCORD_EMBEDDED=1, CONCORD_DAEMON_IDLE_S.`;

/** stdio MCP: a cluster proxy, in-process swarms (--embedded), or a pipe to the daemon. */
async function serveStdio(dataDir: string | undefined, flags: Record<string, string | boolean>, embedded: boolean): Promise<void> {
  const cluster = clusterFrom(flags);
  if (cluster || embedded) await runStdio({ dataDir, cluster, ...(await import('./server-flags.js')).stdioSettings(flags) });
  else await runProxy(dataDir, (await import('./server-flags.js')).stdioSettings(flags).maxMessageBytes);
}

async function main(argv: string[]): Promise<number> {
  // A bare switch, taken out before parsing so it never swallows the next word as its value.
  const isEmbeddedFlag = (a: string) => a === '--embedded' || a.startsWith('--embedded=');
  const embedded = argv.some((a) => isEmbeddedFlag(a) && !/=(0|false)$/.test(a)) || envEmbedded();
  const { positional, flags } = parseFlags(argv.filter((a) => !isEmbeddedFlag(a)));
  allowHttpHosts(flags);
  const cmd = positional[0];
  const dataDir = typeof flags.data_dir === 'string' ? flags.data_dir : undefined;
  if (cmd === undefined) {
    if (process.stdin.isTTY) {
      process.stdout.write(`${HELP}\n`);
      return 0;
    }
    await serveStdio(dataDir, flags, embedded);
    return -1;
  }
  switch (cmd) {
    case 'help':
    case '--help':
      process.stdout.write(`${HELP}\n`);
      return 0;
    case 'version':
      process.stdout.write('0.1.0\n');
      return 0;
    case 'mcp':
      await serveStdio(dataDir, flags, embedded);
      return -1;
    case 'daemon':
      return (await import('./daemon-command.js')).runDaemonCommand(positional[1], flags);
    case 'serve': {
      const { httpSettings } = await import('./server-flags.js');
      const http = httpSettings(flags);
      const { host } = http;
      const srv = await runHttp({ ...http, dataDir, cluster: clusterFrom(flags) });
      // The bound port, not the requested one: --http 127.0.0.1:0 picks a free port.
      const shown = host.includes(':') ? `[${host}]` : host;
      const serving = srv.cluster ? `cluster ${srv.cluster.members.join(',')}` : `data: ${srv.coordinator!.dataDir}`;
      // The swarms are shared with stdio and CLI clients too, as a daemon shares them.
      const sock = srv.coordinator && !embedded ? await shareOverSocket(srv.coordinator) : null;
      process.stderr.write(`concord serving MCP at http://${shown}:${srv.port}/mcp (${serving})${sock ? `, clients also on ${sock.path}` : ''}\n`);
      const stop = () => void (sock?.close() ?? Promise.resolve()).finally(() => void srv.close().finally(() => process.exit(0)));
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
      return -1;
    }
    case 'demo':
      return runDemo({ dataDir, keep: flags.keep === true });
    case 'node':
      return runNode(flags);
    case 'secret':
      return runSecret(positional, flags);
    case 'member':
      return (await import('./member-command.js')).runMember(positional, flags);
    default:
      break;
  }
  const verb = positional[1];
  if (!verb) throw new UserError('invalid_argument', `"${cmd}" needs a verb; run "concord help"`);
  if (cmd === 'consensus' && verb === 'replicate' && flags.hook_stdin === true) flags.file = await fileFromHookStdin();
  const inv = toCheckedInvocation(cmd, verb, flags);
  // The CLI runs on the editor's side: it reads the file and sends the content.
  if (inv.tool === 'consensus_replicate' && typeof inv.args.file === 'string') inv.args.content = (await import('./replicate-file.js')).readFileToReplicate(inv.args.file);
  const cluster = clusterFrom(flags);
  const tc = await import('./tool-client.js');
  const tools = cluster ? await tc.connectCluster(cluster) : await tc.connectTools(dataDir, typeof flags.server === 'string' ? flags.server : undefined, { embedded });
  const keepAlive = setInterval(() => undefined, 1000);
  try {
    const watch = (cmd === 'task' && verb === 'status' && flags.watch !== undefined) || (cmd === 'task' && verb === 'orchestrate' && inv.args.wait === true);
    if (watch && cmd === 'task' && verb === 'status') return await watchTasks(tools, inv.args);
    const r = await tools.call(inv.tool, inv.args, watch ? (p, t) => process.stderr.write(`\r  ${p}/${t ?? '?'} tasks finished   `) : undefined);
    if (!r.ok) {
      process.stderr.write(`${r.text}\n`);
      return 1;
    }
    if (cmd === 'consensus' && verb === 'leader' && flags.require === true && !r.data.leader_id) {
      // For pre-task hooks: a non-zero exit tells the caller there is no leader to coordinate.
      process.stderr.write(`no leader: ${String(r.data.detail ?? '')}\n`);
      process.stdout.write(`${JSON.stringify(r.data, null, 2)}\n`);
      return 2;
    }
    if (inv.table && Array.isArray(r.data.agents) && flags.format !== 'json') {
      process.stdout.write(`${formatTable(r.data.agents as Array<Record<string, unknown>>, inv.table)}\n`);
    } else {
      process.stdout.write(`${JSON.stringify(r.data, null, 2)}\n`);
    }
    return 0;
  } finally {
    clearInterval(keepAlive);
    await tools.close();
  }
}

/**
 * --allow-http-host HOST[:PORT],... joins CONCORD_HTTP_ALLOW: hosts the http executor may reach
 * even at loopback, private or link-local addresses (it refuses those otherwise). Checked now
 * so a typo fails at start, not in every task.
 */
function allowHttpHosts(flags: Record<string, string | boolean>): void {
  const v = flags.allow_http_host;
  if (v === true) throw new UserError('invalid_argument', '--allow-http-host needs HOST[:PORT] entries, e.g. --allow-http-host 127.0.0.1:9000', 'allow_http_host');
  if (typeof v === 'string') process.env[HTTP_ALLOW_ENV] = [process.env[HTTP_ALLOW_ENV], v].filter(Boolean).join(',');
  try {
    parseAllowList(process.env[HTTP_ALLOW_ENV]);
  } catch (e) {
    throw new UserError('invalid_argument', (e as Error).message, 'allow_http_host');
  }
}

/** `concord serve` shares its swarms on the daemon socket; a failure there only costs that. */
async function shareOverSocket(coord: Coordinator): Promise<SocketServer | null> {
  const { serveSocket } = await import('../daemon/socket-server.js');
  try {
    return await serveSocket(coord, { role: 'serve', stop: () => process.kill(process.pid, 'SIGTERM') });
  } catch (e) {
    logger.warn({ err: (e as Error).message }, 'not sharing the swarms over the daemon socket');
    return null;
  }
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

/** `task status --watch`: poll until every orchestration asked about has finished. */
async function watchTasks(tools: ToolClient, args: Record<string, unknown>): Promise<number> {
  for (;;) {
    const r = await tools.call('task_status', args);
    if (!r.ok) {
      process.stderr.write(`${r.text}\n`);
      return 1;
    }
    const list = (r.data.orchestrations as Array<Record<string, unknown>> | undefined) ?? [r.data];
    process.stderr.write(`\r  ${list.map((o) => `${o.orchestration_id}: ${o.completed}/${o.total_tasks}`).join('  ')}   `);
    if (list.every((o) => o.status === 'finished')) {
      process.stderr.write('\n');
      process.stdout.write(`${JSON.stringify(r.data, null, 2)}\n`);
      return 0;
    }
    await new Promise((res) => setTimeout(res, 200));
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    // -1: a server keeps running until stdin closes or a signal arrives.
    if (code >= 0) process.exit(code);
  },
  (e: unknown) => {
    if (e instanceof UserError) process.stderr.write(`error: ${e.message}\n`);
    else {
      logger.error({ err: (e as Error).stack }, 'fatal');
      process.stderr.write(`fatal: ${(e as Error).message}\n`);
    }
    process.exit(e instanceof UserError ? 2 : 1);
  },
);
