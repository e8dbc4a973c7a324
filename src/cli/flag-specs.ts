// Flag specs shared by the command table and by the code that turns a parsed command into a tool
// call. Kept apart from command-table.ts, which lazily loads the command handlers: a handler
// that needs a command's flags imports this module, never the table (no import cycle).

import type { CommandSpec, FlagSpec } from './context.js';

export const str = (help: string, value = 'VALUE', extra: Partial<FlagSpec> = {}): FlagSpec => ({ kind: 'string', help, value, ...extra });
export const int = (help: string, value = 'N', extra: Partial<FlagSpec> = {}): FlagSpec => ({ kind: 'int', help, value, ...extra });
export const bool = (help: string, extra: Partial<FlagSpec> = {}): FlagSpec => ({ kind: 'bool', help, ...extra });
export const list = (help: string, value = 'A,B', extra: Partial<FlagSpec> = {}): FlagSpec => ({ kind: 'list', help, value, ...extra });

/** Flags of every command that talks to swarms (tool commands), read by the CLI. */
export const CLIENT_FLAGS: Record<string, FlagSpec> = {
  swarm: str('swarm (Raft group) name', 'NAME', { default: 'default' }),
  'data-dir': str('data directory (or CONCORD_DATA_DIR)', 'DIR', { default: '~/.concord', arg: null }),
  embedded: bool('run in this process instead of through the daemon (or CONCORD_EMBEDDED=1)', { arg: null }),
  server: str('a running `concord serve` to call instead (http://HOST:PORT/mcp)', 'URL', { arg: null }),
  cluster: str('members of a running cluster (or CONCORD_CLUSTER)', 'HOST:PORT,...', { arg: null }),
  'secret-file': str('client key or cluster secret for --cluster (or CONCORD_SECRET_FILE)', 'FILE', { arg: null }),
  'timeout-ms': int('how long a cluster call may take (100..3600000)', 'MS', { arg: null }),
  cert: str('TLS: this client\'s certificate, CN=client:<name> (or CONCORD_TLS_CERT)', 'FILE', { arg: null }),
  'tls-key': str('TLS: its private key, mode 0600 (or CONCORD_TLS_KEY)', 'FILE', { arg: null }),
  ca: str('TLS: the CA that issued the members\' certificates (or CONCORD_TLS_CA)', 'FILE', { arg: null }),
  'allow-http-host': str('hosts the http task executor may reach at private addresses (or CONCORD_HTTP_ALLOW)', 'HOST[:PORT],...', { arg: null }),
  json: bool('print JSON (the default when stdout is not a terminal)', { arg: null }),
  format: str('output: table on a terminal, json otherwise', 'FORMAT', { arg: null, choices: ['table', 'json'] }),
  help: bool('this help', { arg: null, short: 'h' }),
};

/** Flags every command takes (servers too). */
export const BASE_FLAGS: Record<string, FlagSpec> = {
  'data-dir': CLIENT_FLAGS['data-dir']!,
  embedded: CLIENT_FLAGS.embedded!,
  'allow-http-host': CLIENT_FLAGS['allow-http-host']!,
  help: CLIENT_FLAGS.help!,
};

export const CLUSTER_FLAGS: Record<string, FlagSpec> = {
  cluster: CLIENT_FLAGS.cluster!,
  'secret-file': CLIENT_FLAGS['secret-file']!,
  'timeout-ms': CLIENT_FLAGS['timeout-ms']!,
  cert: CLIENT_FLAGS.cert!,
  'tls-key': CLIENT_FLAGS['tls-key']!,
  ca: CLIENT_FLAGS.ca!,
};

/** A command's flags: its own over the client (or base) flags. */
export function flagsOf(spec: CommandSpec): Record<string, FlagSpec> {
  const client = spec.client ?? spec.tool !== undefined;
  return { ...(client ? CLIENT_FLAGS : BASE_FLAGS), ...(spec.flags ?? {}) };
}
