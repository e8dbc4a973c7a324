import type { ClusterClientOptions } from '../cluster/cluster-client.js';
import { parseMembers } from '../cluster/cluster-client.js';
import { CLIENT_PREFIX, clientKeyFileText, loadClientKey, loadSecret } from '../transport/auth.js';
import { loadTls, TlsConfigError, type TlsMaterial } from '../transport/tls.js';
import { UserError, invalid } from '../util/errors.js';
import type { PeerAddress } from '../transport/tcp-transport.js';
import type { Durability } from '../storage/sqlite-storage.js';
import { startupMark } from '../util/startup-trace.js';
import { applyMemberV8Flags, memberV8Flags } from '../util/jit-flags.js';

type Flags = Record<string, string | boolean>;

export const NODE_HELP = `concord node: run one member of a swarm in this process (cluster mode)

  concord node --swarm NAME --id raft-agent-1 --listen 127.0.0.1:7001 \\
    --peers raft-agent-1=127.0.0.1:7001,raft-agent-2=127.0.0.1:7002,... \\
    --data-dir DIR --secret-file FILE [--durability full|normal|off] [--metrics HOST:PORT] \\
    [--cert member.crt --key member.key --ca ca.crt]

  concord node --swarm NAME --id raft-agent-4 --listen 127.0.0.1:7004 --join 127.0.0.1:7001 \
    --data-dir EMPTY_DIR --secret-file FILE
                  joins a running cluster after \`concord member add --id raft-agent-4
                  --address 127.0.0.1:7004\`: a learner until caught up, then a voter

  --peers lists every member (this one included): they are the voters. Restarting with the same
  --data-dir rejoins with the member's durable state. The secret file (>= 32 bytes, mode 0600,
  e.g. \`openssl rand -hex 32 > FILE && chmod 600 FILE\`) is the cluster secret: only members
  hold it. Clients get a client key that can call tools but never act as a member:
    concord secret client --secret-file FILE > client.key && chmod 600 client.key
    concord mcp --cluster 127.0.0.1:7001,127.0.0.1:7002 --secret-file client.key

  With --cert, --key and --ca (or CONCORD_TLS_CERT, CONCORD_TLS_KEY, CONCORD_TLS_CA) every
  connection is mutual TLS 1.3 and plaintext is refused: the certificate's CN must be this
  member's id, peers' certificates must come from the CA and name the member they claim to be.
  Clients then need a certificate from the same CA with CN=client:<name>: --cert, --tls-key
  (--key is the memory key of \`memory store\`) and --ca, or the same environment variables.
  --metrics HOST:PORT serves /metrics, /health and /readyz for this member, without a token.`;

export function parseAddress(field: string, spec: string): PeerAddress {
  const m = /^(\[[0-9a-fA-F:]+\]|[^:\s]+):(\d{1,5})$/.exec(spec);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 1 || port > 65535) throw invalid(field, spec, 'HOST:PORT with a port 1-65535, e.g. 127.0.0.1:7001');
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

export function parsePeers(spec: string): Record<string, PeerAddress> {
  const peers: Record<string, PeerAddress> = {};
  for (const part of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw invalid('peers', part, 'ID=HOST:PORT entries separated by commas, e.g. raft-agent-1=127.0.0.1:7001,raft-agent-2=127.0.0.1:7002');
    const id = part.slice(0, eq);
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(id)) throw invalid('peers', id, 'member ids of letters, digits, ".", "_" or "-", 1-64 characters');
    if (peers[id]) throw invalid('peers', spec, `each member once (${id} appears twice)`);
    peers[id] = parseAddress('peers', part.slice(eq + 1));
  }
  const n = Object.keys(peers).length;
  if (n < 1 || n > 15) throw invalid('peers', spec, '1 to 15 members');
  return peers;
}

function need(flags: Flags, name: string, example: string): string {
  const v = flags[name];
  if (typeof v !== 'string' || v.length === 0) throw new UserError('invalid_argument', `--${name.replace(/_/g, '-')} is required (e.g. --${name.replace(/_/g, '-')} ${example}); see concord node --help`, name);
  return v;
}

function secretFileFrom(flags: Flags): string {
  const file = typeof flags.secret_file === 'string' ? flags.secret_file : process.env.CONCORD_SECRET_FILE;
  if (!file) throw new UserError('invalid_argument', '--secret-file (or CONCORD_SECRET_FILE) is required: a file with the cluster secret, e.g. `openssl rand -hex 32 > secret && chmod 600 secret`', 'secret_file');
  return file;
}

function secretFrom(flags: Flags): Buffer {
  const file = secretFileFrom(flags);
  try {
    return loadSecret(file);
  } catch (e) {
    throw new UserError('invalid_argument', (e as Error).message, 'secret_file');
  }
}

/** Clients: a client key file, or the cluster secret (only the client key is derived from it). */
function clientKeyFrom(flags: Flags): Buffer {
  const file = secretFileFrom(flags);
  try {
    return loadClientKey(file);
  } catch (e) {
    throw new UserError('invalid_argument', (e as Error).message, 'secret_file');
  }
}

/**
 * --cert, --key and --ca (or CONCORD_TLS_CERT/_KEY/_CA, for clients an MCP client starts):
 * all three or none. `keyFlags` are the flags naming the private key: clients share their
 * flags with `memory store --key`, so there it is --tls-key.
 */
function tlsFrom(flags: Flags, keyFlags: string[]): TlsMaterial | undefined {
  const pick = (names: string[], env: string): string | undefined => {
    for (const n of names) {
      const v = flags[n];
      if (v === true) throw new UserError('invalid_argument', `--${n.replace(/_/g, '-')} needs a file path`, n);
      if (typeof v === 'string') return v;
    }
    return process.env[env] || undefined;
  };
  try {
    return loadTls({ cert: pick(['cert'], 'CONCORD_TLS_CERT'), key: pick(keyFlags, 'CONCORD_TLS_KEY'), ca: pick(['ca'], 'CONCORD_TLS_CA') });
  } catch (e) {
    if (!(e instanceof TlsConfigError)) throw e;
    const field = e.field === 'key' ? keyFlags[0]! : e.field;
    throw new UserError('invalid_argument', keyFlags[0] === 'key' ? e.message : e.message.replace(/--key\b/g, `--${field.replace(/_/g, '-')}`), field);
  }
}

/** `concord secret client --secret-file FILE`: print the client key derived from the cluster secret. */
export function runSecret(positional: string[], flags: Flags): number {
  if (positional[1] !== 'client') throw invalid('secret', positional[1] ?? '(none)', '"client": concord secret client --secret-file FILE > client.key');
  process.stdout.write(clientKeyFileText(secretFrom(flags)));
  return 0;
}

/** `--cluster HOST:PORT,...` or CONCORD_CLUSTER: talk to running members instead of a data directory. */
export function clusterFrom(flags: Flags): ClusterClientOptions | undefined {
  const spec = typeof flags.cluster === 'string' ? flags.cluster : process.env.CONCORD_CLUSTER;
  if (flags.cluster === true) throw new UserError('invalid_argument', '--cluster needs member addresses, e.g. --cluster 127.0.0.1:7001,127.0.0.1:7002', 'cluster');
  if (!spec) return undefined;
  let members: string[];
  try {
    members = parseMembers(spec);
  } catch (e) {
    throw new UserError('invalid_argument', (e as Error).message, 'cluster');
  }
  const timeout = typeof flags.timeout_ms === 'string' ? Number(flags.timeout_ms) : undefined;
  if (timeout !== undefined && !(Number.isInteger(timeout) && timeout >= 100 && timeout <= 3_600_000)) throw invalid('timeout_ms', flags.timeout_ms, 'an integer 100..3600000');
  const tls = tlsFrom(flags, ['tls_key']);
  if (tls && !tls.name.startsWith(CLIENT_PREFIX)) throw invalid('cert', `CN=${tls.name}`, `a client certificate, CN=${CLIENT_PREFIX}<name> (members refuse a client presenting another)`);
  return { members, clientKey: clientKeyFrom(flags), name: 'cli', timeoutMs: timeout, tls };
}

/** Run a member until SIGTERM/SIGINT. */
export async function runNode(flags: Flags): Promise<number> {
  startupMark('cli-loaded');
  if (flags.help === true) {
    process.stdout.write(`${NODE_HELP}\n`);
    return 0;
  }
  const swarm = need(flags, 'swarm', 'default');
  const id = need(flags, 'id', 'raft-agent-1');
  // --join HOST:PORT,...: a member added at runtime (concord member add) joins through these.
  const join = typeof flags.join === 'string' ? flags.join.split(',').map((s) => s.trim()).filter(Boolean) : undefined;
  if (flags.join === true || (join && join.length === 0)) throw invalid('join', flags.join, 'HOST:PORT of running members, e.g. --join 127.0.0.1:7001,127.0.0.1:7002');
  for (const j of join ?? []) parseAddress('join', j);
  if (join && typeof flags.listen !== 'string') throw new UserError('invalid_argument', '--join needs --listen HOST:PORT (the address given to concord member add)', 'listen');
  const peers = join && typeof flags.peers !== 'string' ? {} : parsePeers(need(flags, 'peers', 'raft-agent-1=127.0.0.1:7001,raft-agent-2=127.0.0.1:7002,raft-agent-3=127.0.0.1:7003'));
  const listen = typeof flags.listen === 'string' ? parseAddress('listen', flags.listen) : undefined;
  if (join && listen) peers[id] ??= listen;
  if (!peers[id]) throw invalid('id', id, `one of the members in --peers: ${Object.keys(peers).join(', ')}`);
  const secret = secretFrom(flags);
  const tls = tlsFrom(flags, ['key', 'tls_key']);
  const durability = (typeof flags.durability === 'string' ? flags.durability : 'full') as Durability;
  if (!['full', 'normal', 'off'].includes(durability)) throw invalid('durability', durability, 'full (fsync every commit), normal or off');
  const dataDir = typeof flags.data_dir === 'string' ? flags.data_dir : undefined;
  // Checked now (a bad value stops before anything is opened), set once the member runs.
  const v8Flags = memberV8Flags();
  const { MemberNode } = await import('../cluster/member-node.js');
  // /metrics, /health and /readyz of this member, without a token: bind it where scrapers are.
  const metrics = flags.metrics !== undefined ? parseAddress('metrics', String(flags.metrics)) : undefined;
  startupMark('member-node-imported');
  const fatal = (message: string): void => {
    process.stderr.write(`concord node ${id}: ${message}\n`);
    process.exit(3);
  };
  const node = await MemberNode.start({ swarm, id, peers, listen, dataDir, secret, tls, durability, metrics, join, onFatal: fatal });
  // After the start-up code, which runs once and gains nothing from optimizing sooner (a
  // restart measured 20-30 ms slower with the flags set before it).
  applyMemberV8Flags(v8Flags);
  const at = node.cluster.transport.address;
  startupMark('started');
  process.stderr.write(`concord node ${id} listening on ${at?.host}:${at?.port}${tls ? ' (mutual TLS)' : ''} (swarm ${swarm}, data: ${node.coord.dataDir})\n`);
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    void node.close().finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  return -1;
}
