// The CLI's one command table: every command, its flags (type, default, help) and what runs it.
// Parsing (parse.ts), help (help.ts), "did you mean" and the spec-walk test all read it.
// Adding a command is one entry here: a `tool` (one MCP tool call, printed as JSON or a table)
// or a `handler` (a module loaded only when that command runs, so `concord node` never loads
// the MCP SDK, zod or the HTTP server).
//
// Keep this file free of heavy imports: main.ts loads it for every command.
//
// A new command, e.g. `concord snapshot save`, is one entry in COMMANDS:
//   { path: 'snapshot save', summary: '...', client: true,
//     flags: { out: str('where to write it', 'FILE', { arg: null }) },
//     handler: () => import('./snapshot-command.js').then((m) => ({ run: m.runSnapshotSave })) }
// or, when it is one MCP tool call: { path: 'member list', summary: '...', tool: 'member_list',
//   flags: {...}, tables: [{ rows: 'members', columns: [...] }] } (no handler needed).
// Its help, flag checks, did-you-mean and output follow from the entry.

import { UserError } from '../util/errors.js';
import type { CommandSpec } from './context.js';
import { BASE_FLAGS, bool, CLIENT_FLAGS, CLUSTER_FLAGS, int, list, str } from './flag-specs.js';

export { BASE_FLAGS, CLIENT_FLAGS, flagsOf } from './flag-specs.js';

// The spec types live in context.ts (which imports nothing from here); re-exported for readers
// of the table.
export type { CommandModule, CommandSpec, FlagKind, FlagSpec, TableSpec } from './context.js';


const waitMs = int('wait up to MS for a leader while an election runs (0..60000; 0 answers at once)', 'MS', { default: '3 x election_timeout_max' });
const orchId = str('one orchestration, e.g. orch-1 (default: the most recent ones)', 'ID');

/** The table. Order is the order of `concord help`. */
export const COMMANDS: CommandSpec[] = [
  // Servers and processes.
  {
    path: 'mcp',
    summary: "MCP server on stdio, attached to the data directory's daemon (started on demand)",
    client: false,
    flags: { ...BASE_FLAGS, ...CLUSTER_FLAGS, 'max-message-bytes': int('longest stdio message (or CONCORD_STDIO_MAX_MESSAGE_BYTES)', 'N', { default: 8 << 20, arg: null }) },
    handler: () => import('./servers-command.js').then((m) => ({ run: m.runMcp })),
    more: 'With no command and stdin not a terminal, `concord` is `concord mcp`. --embedded runs the swarms in this process; --cluster serves a running cluster.',
  },
  {
    path: 'serve',
    summary: 'MCP over Streamable HTTP (several assistants share swarms)',
    client: false,
    flags: {
      ...BASE_FLAGS,
      ...CLUSTER_FLAGS,
      http: str('address to listen on (a token of >= 32 characters is required beyond loopback)', 'HOST:PORT', { default: '127.0.0.1:7700', arg: null }),
      'token-file': str('bearer token file, mode 0600 (or CONCORD_HTTP_TOKEN_FILE, CONCORD_HTTP_TOKEN)', 'FILE', { arg: null }),
      token: str('refused: a token on the command line is visible to every local user; use --token-file', 'TOKEN', { arg: null }),
      'allowed-hosts': str('extra Host header names (or CONCORD_HTTP_ALLOWED_HOSTS)', 'H,...', { arg: null }),
      'allowed-origins': str('browser Origins allowed (or CONCORD_HTTP_ALLOWED_ORIGINS)', 'O,...', { arg: null }),
      'max-sessions': int('MCP sessions at once (or CONCORD_HTTP_MAX_SESSIONS)', 'N', { default: 256, arg: null }),
      'session-idle-timeout-s': int('idle session expiry (or CONCORD_HTTP_SESSION_IDLE_TIMEOUT_S)', 'S', { default: 1800, arg: null }),
      'request-timeout-s': int('headers and body must arrive within (or CONCORD_HTTP_REQUEST_TIMEOUT_S)', 'S', { default: 10, arg: null }),
      'max-connections': int('TCP connections at once (or CONCORD_HTTP_MAX_CONNECTIONS)', 'N', { default: 1024, arg: null }),
    },
    handler: () => import('./servers-command.js').then((m) => ({ run: m.runServe })),
  },
  {
    path: 'daemon',
    summary: 'the one process that owns a data directory',
    positionals: '[run|start|status|stop|logs|help]',
    client: false,
    flags: {
      ...BASE_FLAGS,
      'idle-timeout-s': int('exit after S seconds with no client and no runnable task; 0 = never (or CONCORD_DAEMON_IDLE_S)', 'S', { default: 300, arg: null }),
      lines: int('daemon logs: how many lines', 'N', { default: 50, arg: null }),
    },
    handler: () => import('./servers-command.js').then((m) => ({ run: m.runDaemon })),
    more:
      'run (default): own the data directory, serving its swarms on <DIR>/concord.sock (0600). start: in the background if none runs, then its status. status: pid, socket, uptime, clients, swarms (exit 1 when none runs). stop: graceful. logs: the tail of <DIR>/daemon.log. Clients start it on demand.',
  },
  {
    path: 'node',
    summary: 'one member of a swarm in this process (cluster mode over TCP)',
    client: false,
    flags: {
      ...BASE_FLAGS,
      swarm: str('swarm name', 'NAME', { arg: null }),
      id: str('this member id, one of --peers', 'ID', { arg: null }),
      peers: str('every member (this one included): the voters', 'ID=HOST:PORT,...', { arg: null }),
      listen: str('address to listen on (default: its --peers address)', 'HOST:PORT', { arg: null }),
      join: str('join a running cluster through these members, after `concord member add` (with --listen, on an empty data directory; no --peers)', 'HOST:PORT,...', { arg: null }),
      'secret-file': str('the cluster secret (>= 32 bytes, mode 0600)', 'FILE', { arg: null }),
      durability: str('fsync policy', 'MODE', { default: 'full', arg: null, choices: ['full', 'normal', 'off'] }),
      cert: str('TLS: this member\'s certificate, CN = its --id (or CONCORD_TLS_CERT); with --key and --ca every connection is mutual TLS 1.3', 'FILE', { arg: null }),
      key: str('TLS: its private key, mode 0600 (or CONCORD_TLS_KEY)', 'FILE', { arg: null }),
      ca: str('TLS: the CA every member and client certificate must come from (or CONCORD_TLS_CA)', 'FILE', { arg: null }),
      metrics: str('serve /metrics, /health and /readyz for this member, without a token: bind it where scrapers are', 'HOST:PORT', { arg: null }),
    },
    handler: () => import('./node-command.js').then((m) => ({ run: (ctx) => m.runNode(ctx.flags) })),
    more:
      'Example: concord node --swarm NAME --id raft-agent-1 --listen 127.0.0.1:7001 --peers raft-agent-1=127.0.0.1:7001,raft-agent-2=127.0.0.1:7002,... --data-dir DIR --secret-file FILE. Restarting with the same --data-dir rejoins with the member\'s durable state. Clients hold a client key (concord secret client --secret-file FILE > client.key) and call tools with --cluster HOST:PORT,... --secret-file client.key.',
  },
  {
    path: 'secret client',
    summary: 'print the client key for the cluster secret in FILE (it calls tools, never acts as a member)',
    client: false,
    flags: { ...BASE_FLAGS, 'secret-file': str('the cluster secret', 'FILE', { arg: null }) },
    handler: () => import('./node-command.js').then((m) => ({ run: async (ctx) => m.runSecret(['secret', 'client'], ctx.flags) })),
  },
  {
    path: 'demo',
    summary: "the spec's eight steps end to end on a fresh embedded swarm, with a verdict",
    client: false,
    flags: { ...BASE_FLAGS, keep: bool('keep the temporary data directory', { arg: null }) },
    handler: () => import('./demo.js').then((m) => ({ run: (ctx) => m.runDemo({ dataDir: ctx.dataDir, keep: ctx.flags.keep === true }) })),
  },
  {
    path: 'dashboard',
    summary: "the live dashboard's URL (the daemon is started on demand), opened in a browser where one is available",
    client: false,
    flags: { ...BASE_FLAGS, 'no-open': bool('print the URL only', { arg: null }) },
    handler: () => import('./dashboard-command.js').then((m) => ({ run: (ctx) => m.runDashboardCommand(ctx.flags) })),
    more: 'The daemon listens on 127.0.0.1 on a free port (CONCORD_DASHBOARD_ADDR=HOST:PORT for a fixed loopback address, "off" for none); a running `concord serve --http` serves it too.',
  },
  {
    path: 'snapshot save',
    summary: 'a consistent snapshot through the leader (its applied state at one index, after a ReadIndex round), written to FILE on this machine',
    positionals: 'FILE',
    flags: { ...CLIENT_FLAGS, overwrite: bool('replace an existing FILE', { arg: null }) },
    handler: () => import('./snapshot-command.js').then((m) => ({ run: (ctx) => m.runSnapshotCommand('save', ctx.positionals, ctx.flags, ctx) })),
  },
  {
    path: 'snapshot status',
    summary: "verify a snapshot file's SHA-256 and print its header (swarm, index, term, members, counts)",
    positionals: 'FILE',
    client: false,
    flags: { ...BASE_FLAGS },
    handler: () => import('./snapshot-command.js').then((m) => ({ run: (ctx) => m.runSnapshotCommand('status', ctx.positionals, ctx.flags, ctx) })),
  },
  {
    path: 'snapshot restore',
    summary: 'create a NEW swarm from a snapshot file, with fresh member identities (refused if it exists or DIR is in use)',
    positionals: 'FILE',
    client: false,
    flags: {
      ...BASE_FLAGS,
      swarm: str("the new swarm's name (default: the snapshot's)", 'NAME', { arg: null }),
      id: str('cluster mode: this member (run once per member, each into its own --data-dir)', 'ID', { arg: null }),
      peers: str('cluster mode: every member, as for concord node', 'ID=HOST:PORT,...', { arg: null }),
    },
    handler: () => import('./snapshot-command.js').then((m) => ({ run: (ctx) => m.runSnapshotCommand('restore', ctx.positionals, ctx.flags, ctx) })),
  },
  { path: 'version', summary: 'print the version (also --version)', client: false, flags: {}, handler: async () => ({ run: async () => printVersion() }) },

  // The spec's commands: one tool call each.
  {
    path: 'swarm init',
    summary: 'create a swarm (one Raft group)',
    tool: 'swarm_init',
    flags: {
      name: str('swarm name (the same as --swarm)', 'NAME', { default: 'default' }),
      topology: str('member layout', 'TOPOLOGY', { default: 'mesh', choices: ['mesh'] }),
      consensus: str('protocol', 'PROTOCOL', { default: 'raft', choices: ['raft'] }),
      'max-agents': int('agents at most, 1..15', 'N', { default: 5 }),
      'bootstrap-expect': int('agents to wait for before the first election (Consul bootstrap_expect; needs the tool argument of the same name)', 'N', { default: 'quorum of max-agents' }),
    },
    args: (a) => {
      const { swarm, ...rest } = a;
      return { ...rest, name: a.name ?? swarm };
    },
  },
  { path: 'swarm status', summary: 'status of a swarm', tool: 'swarm_status', flags: { verbose: bool('per-member role, commit and applied index, config') }, tables: [{ rows: 'members', columns: ['agent_id', 'running', 'role', 'term', 'commit', 'applied'] }] },
  { path: 'swarm list', summary: 'every swarm', tool: 'swarm_list', flags: {}, args: ({ swarm: _s, ...a }) => a, tables: [{ rows: 'swarms', columns: ['swarm_id', 'status', 'agents_running', 'max_agents', 'leader_id', 'term'] }] },
  {
    path: 'swarm destroy',
    summary: 'delete a swarm and its files',
    tool: 'swarm_destroy',
    flags: { name: str('swarm to delete (or --swarm)', 'NAME'), yes: bool('confirm', { arg: 'confirm' }) },
    args: ({ name, swarm, confirm }) => {
      const target = name ?? swarm;
      if (!target) throw new UserError('invalid_argument', 'swarm destroy needs --swarm NAME (no default, to avoid accidents)', 'swarm');
      if (confirm !== true) throw new UserError('invalid_argument', `swarm destroy deletes every file of ${String(target)}; add --yes to confirm`, 'yes');
      return { swarm: target, confirm: true };
    },
  },
  {
    path: 'consensus config',
    summary: 'Raft timing and limits, through the log, live on every member',
    tool: 'consensus_config',
    flags: {
      protocol: str('the protocol (only raft)', 'PROTOCOL', { arg: null, choices: ['raft'] }),
      'election-timeout-min': int('ms; raising it alone past the max moves the max to 2 x min (etcd)', 'MS', { default: 150 }),
      'election-timeout-max': int('ms, > min', 'MS', { default: 300 }),
      'heartbeat-interval': int('ms, at most half of election-timeout-min', 'MS', { default: 50 }),
      'log-compaction-threshold': int('applied entries between snapshots', 'N', { default: 1000 }),
      'quorum-size': int('must be the majority of max_agents', 'N'),
      'max-log-entries': int('uncommitted entries before proposals are refused', 'N', { default: 10000 }),
      'batch-size': int('tasks per assignment batch and entries per replication message, >= 64', 'N', { default: 100 }),
    },
  },
  {
    path: 'consensus status',
    summary: 'leader, term, health; --watch prints elections and leader changes as they happen',
    tool: 'consensus_status',
    flags: {
      watch: str('print a line per election / leader change (recent ones first) for MS, or until Ctrl-C on a terminal', 'MS', { arg: null, optionalValue: true, default: 'until Ctrl-C (5000 when piped)' }),
      'wait-ms': waitMs,
    },
    handler: () => import('./watch.js').then((m) => ({ run: m.runConsensusStatus })),
  },
  {
    path: 'consensus leader',
    summary: 'the elected leader, voted_by, timing',
    tool: 'consensus_leader',
    flags: { 'wait-ms': waitMs, require: bool('exit 2 when there is no leader or no such swarm (pre-task hooks); never creates a swarm', { arg: null }) },
  },
  { path: 'consensus log-status', summary: "the leader's view of replication per follower", tool: 'consensus_log_status', flags: {}, tables: [{ rows: 'followers', columns: ['agent_id', 'match_index', 'next_index', 'replication_lag_ms'] }] },
  { path: 'consensus step-down', summary: 'leadership transfer', tool: 'consensus_step_down', flags: { agent: str('expected current leader', 'ID'), successor: str('voter to take over', 'ID') } },
  {
    path: 'consensus trigger-election',
    summary: 'a voter campaigns now; answers at once when the leader is healthy (pre-vote would keep it)',
    tool: 'consensus_trigger_election',
    flags: { agent: str('the voter to campaign', 'ID') },
  },
  { path: 'consensus verify-quorum', summary: 'one ReadIndex round: who answered, round trips', tool: 'consensus_verify_quorum', flags: { 'timeout-ms': int('round timeout', 'MS', { default: 1000 }) }, tables: [{ rows: 'responses', columns: ['agent_id', 'answered', 'rtt_ms'] }] },
  { path: 'consensus election-history', summary: 'each leader change', tool: 'consensus_election_history', flags: { limit: int('most recent N, 1..1000', 'N', { default: 10 }) }, tables: [{ rows: 'elections', columns: ['term', 'old_leader', 'new_leader', 'voted_by', 'election_duration_ms', 'cause', 'tasks_recovered'] }] },
  {
    path: 'consensus replicate',
    summary: "replicate a file's content to every agent (the CLI reads the file)",
    tool: 'consensus_replicate',
    flags: { file: str('file to replicate', 'PATH'), key: str('memory key', 'KEY', { default: 'files/<path>' }), 'hook-stdin': bool('read the file path from a Claude Code hook payload on stdin', { arg: null }) },
    handler: () => import('./tool-command.js').then((m) => ({ run: m.runReplicate })),
  },
  {
    path: 'agent spawn',
    summary: 'add a member',
    tool: 'agent_spawn',
    flags: { type: str('agent type label', 'TYPE'), name: str('agent id', 'ID', { default: 'raft-agent-N' }), capabilities: list('capability labels', 'A,B,C') },
  },
  {
    path: 'agent list',
    summary: 'agents with status and Raft role',
    tool: 'agent_list',
    flags: { filter: str('which agents', 'FILTER', { choices: ['active', 'terminated', 'all'], default: 'all' }) },
    tables: [{ rows: 'agents', columns: ['agent_id', 'type', 'status', 'role', 'capabilities'] }],
  },
  { path: 'agent terminate', summary: 'stop an agent', tool: 'agent_terminate', flags: { 'agent-id': str('agent to stop', 'ID'), mode: str('how', 'MODE', { choices: ['crash', 'graceful'], default: 'crash' }) } },
  { path: 'agent restart', summary: 'a crashed agent comes back from its own file', tool: 'agent_restart', flags: { 'agent-id': str('crashed agent', 'ID') } },
  {
    path: 'agent metrics',
    summary: 'measured per-agent metrics',
    tool: 'agent_metrics',
    flags: { 'agent-id': str('one agent (default all)', 'ID'), metric: str('one group', 'METRIC', { choices: ['disk-io', 'log', 'messages', 'snapshots', 'applied'] }) },
  },
  { path: 'network diagnose', summary: 'per link: delivered, dropped, round trips', tool: 'network_diagnose', flags: {}, tables: [{ rows: 'links', columns: ['from', 'to', 'connected', 'messages_sent', 'messages_delivered', 'dropped', 'loss_rate', 'rtt_ms_last'] }] },
  {
    path: 'network partition',
    summary: 'fault injection: isolate an agent or split into groups',
    tool: 'network_partition',
    flags: { isolate: str('agent to cut off', 'ID'), groups: str('groups, ";" between groups', 'a,b;c,d,e') },
    args: (a) => ({ ...a, groups: typeof a.groups === 'string' ? a.groups.split(';').map((g) => g.split(',').map((s) => s.trim()).filter(Boolean)) : undefined }),
  },
  { path: 'network heal', summary: 'remove every partition', tool: 'network_heal', flags: {} },
  {
    path: 'task orchestrate',
    summary: 'create tasks through the log (agents run them in the background)',
    tool: 'task_orchestrate',
    flags: {
      task: str('what the tasks do', 'TEXT'),
      count: int('number of tasks', 'N', { default: 1 }),
      priority: str('priority', 'P', { choices: ['low', 'medium', 'high', 'critical'], default: 'medium' }),
      strategy: str('assignment', 'S', { choices: ['sequential', 'parallel', 'adaptive'], default: 'parallel' }),
      'max-agents': int('agents to use', 'N', { default: 'swarm max_agents' }),
      executor: str('how agents run each task', 'KIND', { choices: ['noop', 'sleep', 'http', 'external'], default: 'noop', arg: null }),
      'sleep-ms': int('sleep executor: ms per task', 'MS', { arg: null }),
      method: str('http executor: method', 'METHOD', { default: 'POST', arg: null }),
      url: str('http executor: URL', 'URL', { arg: null }),
      body: str('http executor: body', 'TEXT', { arg: null }),
      payload: str('JSON payload given to every task', 'JSON'),
      'idempotency-key': str('repeat-safe submit', 'KEY'),
      wait: bool('wait until done, with progress on stderr'),
      'wait-timeout-ms': int('longest wait', 'MS', { default: 120000 }),
    },
    args: (a, ctx) => {
      const kind = ctx.flags.executor;
      if (typeof kind !== 'string') return a;
      const f = ctx.flags;
      const sleepMs = typeof f.sleep_ms === 'string' ? Number(f.sleep_ms) : undefined;
      const http = kind === 'http' ? dropUndefined({ method: f.method ?? 'POST', url: f.url, body: f.body }) : undefined;
      return { ...a, executor: dropUndefined({ kind, sleep_ms: sleepMs, http }) };
    },
  },
  {
    path: 'task status',
    summary: 'progress; --watch prints progress, elections and leader changes until done',
    tool: 'task_status',
    flags: { 'orchestration-id': orchId, id: str('the same as --orchestration-id', 'ID', { arg: 'orchestration_id' }), watch: str('a line per progress change / election until every orchestration finished (or MS passed)', 'MS', { arg: null, optionalValue: true }) },
    tables: [{ rows: 'orchestrations', columns: ['orchestration_id', 'status', 'total_tasks', 'completed', 'failed', 'progress', 'priority', 'strategy'] }],
    handler: () => import('./watch.js').then((m) => ({ run: m.runTaskStatus })),
  },
  {
    path: 'task results',
    summary: 'exactly-once summary',
    tool: 'task_results',
    flags: {
      'orchestration-id': orchId,
      id: str('the same as --orchestration-id', 'ID', { arg: 'orchestration_id' }),
      format: str('summary: the aggregates; detailed: also per-orchestration and per-task rows (bounded by --limit); json: everything, structured', 'FORMAT', { choices: ['summary', 'detailed', 'json'], default: 'summary' }),
      limit: int('detailed/json: most task rows', 'N', { default: 100 }),
      'include-tasks': int('also the first N task records (with results) of the orchestration', 'N'),
    },
    tables: [{ rows: 'orchestrations', columns: ['orchestration_id', 'total_tasks', 'completed', 'failed', 'duplicates', 'executions_started'] }, { rows: 'tasks', columns: ['id', 'status', 'assignee', 'epoch', 'assignments', 'completions_applied', 'executions_started'] }],
  },
  {
    path: 'task claim',
    summary: 'an external agent claims tasks',
    tool: 'task_claim',
    flags: { 'agent-id': str('your agent id', 'ID'), count: int('most tasks', 'N', { default: 1 }), 'orchestration-id': orchId, 'lease-ms': int('lease', 'MS', { default: 60000 }) },
  },
  {
    path: 'task complete',
    summary: 'report a claimed task',
    tool: 'task_complete',
    flags: { 'task-id': str('task id', 'ID'), 'agent-id': str('your agent id', 'ID'), epoch: int('epoch from task claim', 'E'), result: str('JSON result', 'JSON'), success: bool('false reports a failed attempt', { default: true }) },
  },
  {
    path: 'memory store',
    summary: 'write a JSON value through the log',
    tool: 'memory_store',
    flags: {
      key: str('key', 'KEY'),
      value: str('JSON value (a string that parses as JSON is stored parsed)', 'JSON'),
      namespace: str('namespace', 'NS'),
      'ttl-s': int('expiry', 'S'),
      ttl: int('the same as --ttl-s', 'S', { arg: 'ttl_s' }),
      'if-version': int('compare-and-set: the current version (0 = must not exist)', 'N'),
    },
  },
  {
    path: 'memory retrieve',
    summary: 'read a key (linearizable by default)',
    tool: 'memory_retrieve',
    flags: { key: str('key', 'KEY'), namespace: str('namespace', 'NS'), consistency: str('read mode', 'MODE', { choices: ['linearizable', 'local'], default: 'linearizable' }) },
  },
  {
    path: 'memory list',
    summary: 'keys, system-maintained views marked',
    tool: 'memory_list',
    flags: { prefix: str('key prefix', 'P'), namespace: str('namespace', 'NS'), limit: int('most keys', 'N') },
    tables: [{ rows: 'keys', columns: ['key', 'version', 'updated_at', 'expires_at', 'system'] }],
  },
  {
    path: 'member list',
    summary: 'cluster mode: the members (voters, learners) with their addresses and catch-up, and the removed ids',
    tool: 'member_list',
    tables: [{ rows: 'members', columns: ['id', 'address', 'role', 'match_index', 'caught_up', 'ms_since_heard'] }],
    more: 'Needs --cluster (or CONCORD_CLUSTER): embedded swarms change members with agent spawn / agent terminate.',
  },
  {
    path: 'member add',
    summary: 'cluster mode: add a member as a learner; then start it with concord node --join (promoted once caught up)',
    tool: 'member_add',
    flags: { id: str('new member id (never a removed one)', 'ID'), address: str('the address its peers dial', 'HOST:PORT') },
    examples: ['concord member add --id raft-agent-6 --address 127.0.0.1:7006 --cluster 127.0.0.1:7001 --secret-file client.key'],
  },
  {
    path: 'member remove',
    summary: 'cluster mode: remove a member (a leader hands leadership over first); its id is never reused',
    tool: 'member_remove',
    flags: { id: str('member id', 'ID') },
  },
  { path: 'memory delete', summary: 'delete a key', tool: 'memory_delete', flags: { key: str('key', 'KEY'), namespace: str('namespace', 'NS'), 'if-version': int('compare-and-set', 'N') } },
];

function dropUndefined(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

export const VERSION = '0.1.0';

function printVersion(): number {
  process.stdout.write(`${VERSION}\n`);
  return 0;
}

/** The command a command line names: the longest path its first words match. */
export function findCommand(words: string[]): CommandSpec | undefined {
  let best: CommandSpec | undefined;
  for (const c of COMMANDS) {
    const p = c.path.split(' ');
    if (p.length <= words.length && p.every((w, i) => words[i] === w) && (!best || p.length > best.path.split(' ').length)) best = c;
  }
  return best;
}
