// `concord help`, `concord help <command>` and `<command> --help`, generated from the table.

import { COMMANDS, flagsOf, VERSION, type CommandSpec, type FlagSpec } from './command-table.js';

function flagLine(name: string, f: FlagSpec): [string, string] {
  const value = f.kind === 'bool' ? '' : f.optionalValue ? ` [${f.value ?? 'VALUE'}]` : ` ${f.value ?? 'VALUE'}`;
  const extra = [f.choices ? `one of ${f.choices.join(', ')}` : '', f.default !== undefined ? `default ${String(f.default)}` : ''].filter(Boolean).join('; ');
  return [`${f.short ? `-${f.short}, ` : ''}--${name}${value}`, `${f.help}${extra ? ` (${extra})` : ''}`];
}

function columns(rows: Array<[string, string]>, indent = '  '): string {
  const w = Math.min(34, Math.max(...rows.map(([a]) => a.length)));
  return rows.map(([a, b]) => (a.length > w ? `${indent}${a}\n${indent}${' '.repeat(w)}  ${b}` : `${indent}${a.padEnd(w)}  ${b}`)).join('\n');
}

/** Help for one command: usage, its own flags, then the shared ones. */
export function commandHelp(spec: CommandSpec): string {
  const own = Object.entries(spec.flags ?? {});
  const shared = Object.entries(flagsOf(spec)).filter(([n]) => !(n in (spec.flags ?? {})));
  const parts = [`concord ${spec.path}${spec.positionals ? ` ${spec.positionals}` : ''}${own.length || shared.length ? ' [flags]' : ''}`, `  ${spec.summary}${spec.tool ? ` (MCP tool ${spec.tool})` : ''}`];
  if (own.length) parts.push('', 'Flags:', columns(own.map(([n, f]) => flagLine(n, f))));
  if (shared.length) parts.push('', spec.tool ? 'Client flags (every swarm command):' : 'Also:', columns(shared.map(([n, f]) => flagLine(n, f))));
  if (spec.tool) parts.push('', 'Output: a table or key: value lines on a terminal; JSON with --json or when stdout is not a terminal.');
  if (spec.more) parts.push('', spec.more);
  return parts.join('\n');
}

/** Commands starting with a word (`concord help agent`). */
export function groupHelp(noun: string): string | undefined {
  const cmds = COMMANDS.filter((c) => c.path.split(' ')[0] === noun);
  if (cmds.length === 0) return undefined;
  return [`concord ${noun} <verb> [flags]`, '', columns(cmds.map((c) => [c.path, c.summary])), '', `Run "concord help ${noun} <verb>" for a command's flags.`].join('\n');
}

/** `concord help`. */
export function mainHelp(): string {
  const servers = COMMANDS.filter((c) => !c.tool);
  const tools = COMMANDS.filter((c) => c.tool);
  return [
    `concord ${VERSION}: an MCP server with real embedded Raft swarms`,
    '',
    'Usage: concord <command> [flags]     (concord help <command> for its flags; --version)',
    '',
    'Servers and processes:',
    columns(servers.map((c) => [c.path + (c.positionals ? ` ${c.positionals}` : ''), c.summary])),
    '',
    "The spec's commands (one MCP tool call each):",
    columns(tools.map((c) => [c.path, c.summary])),
    '',
    'Every swarm command takes --swarm NAME (default "default") and --data-dir DIR (or',
    'CONCORD_DATA_DIR, default ~/.concord). Commands go to the directory\'s daemon',
    '(<DIR>/concord.sock), starting it when none runs; --embedded (or CONCORD_EMBEDDED=1) runs',
    'them in-process instead. With --cluster HOST:PORT,... (or CONCORD_CLUSTER) and --secret-file',
    '(or CONCORD_SECRET_FILE), commands go to a running cluster\'s leader. Output: tables on a',
    'terminal, JSON with --json or when piped.',
    'The http task executor refuses loopback, private and link-local addresses unless the host is',
    'allowed: --allow-http-host HOST[:PORT],... (or CONCORD_HTTP_ALLOW) on the process running tasks.',
    '',
    'Environment: CONCORD_DATA_DIR, CONCORD_LOG_LEVEL (logs on stderr), CONCORD_CLUSTER,',
    '  CONCORD_SECRET_FILE, CONCORD_HTTP_TOKEN or CONCORD_HTTP_TOKEN_FILE (also read by the CLI to',
    '  reach a running serve), CONCORD_HTTP_ALLOWED_HOSTS, CONCORD_HTTP_ALLOWED_ORIGINS,',
    '  CONCORD_HTTP_MAX_SESSIONS, CONCORD_HTTP_SESSION_IDLE_TIMEOUT_S, CONCORD_HTTP_REQUEST_TIMEOUT_S,',
    '  CONCORD_HTTP_MAX_CONNECTIONS, CONCORD_STDIO_MAX_MESSAGE_BYTES, CONCORD_HTTP_ALLOW (http',
    '  executor allow-list), CONCORD_EMBEDDED=1, CONCORD_DAEMON_IDLE_S.',
  ].join('\n');
}
