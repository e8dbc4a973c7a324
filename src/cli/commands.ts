import { UserError } from '../service/errors.js';

export type Flags = Record<string, string | boolean>;

/** `--max-agents 5 --verbose --name=x` -> { max_agents: '5', verbose: true, name: 'x' }. */
export function parseFlags(argv: string[]): { positional: string[]; flags: Flags } {
  const positional: string[] = [];
  const flags: Flags = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) {
      positional.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const key = (eq > 0 ? a.slice(2, eq) : a.slice(2)).replace(/-/g, '_');
    if (eq > 0) flags[key] = a.slice(eq + 1);
    else if (i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) flags[key] = argv[++i]!;
    else flags[key] = true;
  }
  return { positional, flags };
}

function int(flags: Flags, key: string): number | undefined {
  const v = flags[key];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v === 'boolean' || !Number.isInteger(n)) throw new UserError('invalid_argument', `--${key.replace(/_/g, '-')}=${String(v)} is not an integer`, key);
  return n;
}

function str(flags: Flags, key: string): string | undefined {
  const v = flags[key];
  if (v === undefined) return undefined;
  if (typeof v === 'boolean') throw new UserError('invalid_argument', `--${key.replace(/_/g, '-')} needs a value`, key);
  return v;
}

function bool(flags: Flags, key: string): boolean | undefined {
  const v = flags[key];
  if (v === undefined) return undefined;
  return v === true || v === 'true' || v === '1';
}

function clean(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

export interface ToolInvocation {
  tool: string;
  args: Record<string, unknown>;
  /** Print as a table (the spec shows `agent list` as one). */
  table?: string[];
}

/** Map the spec's `noun verb --flags` onto a tool call. */
export function toInvocation(noun: string, verb: string, f: Flags): ToolInvocation {
  const swarm = str(f, 'swarm');
  const key = `${noun} ${verb}`;
  switch (key) {
    case 'swarm init':
      return { tool: 'swarm_init', args: clean({ name: str(f, 'name') ?? swarm, topology: str(f, 'topology'), consensus: str(f, 'consensus'), max_agents: int(f, 'max_agents') }) };
    case 'swarm status':
      return { tool: 'swarm_status', args: clean({ swarm, verbose: bool(f, 'verbose') }) };
    case 'swarm list':
      return { tool: 'swarm_list', args: {} };
    case 'swarm destroy': {
      const name = str(f, 'name') ?? swarm;
      if (!name) throw new UserError('invalid_argument', 'swarm destroy needs --swarm NAME (no default, to avoid accidents)', 'swarm');
      if (!bool(f, 'yes')) throw new UserError('invalid_argument', `swarm destroy deletes every file of ${name}; add --yes to confirm`, 'yes');
      return { tool: 'swarm_destroy', args: { swarm: name, confirm: true } };
    }
    case 'consensus config': {
      // The spec passes --protocol raft: the only protocol there is, so anything else is a mistake.
      const protocol = str(f, 'protocol');
      if (protocol !== undefined && protocol !== 'raft') throw new UserError('invalid_argument', `--protocol=${protocol}: accepted: raft (the only protocol Concord implements)`, 'protocol');
      return {
        tool: 'consensus_config',
        args: clean({
          swarm,
          election_timeout_min: int(f, 'election_timeout_min'),
          election_timeout_max: int(f, 'election_timeout_max'),
          heartbeat_interval: int(f, 'heartbeat_interval'),
          log_compaction_threshold: int(f, 'log_compaction_threshold'),
          quorum_size: int(f, 'quorum_size'),
          max_log_entries: int(f, 'max_log_entries'),
          batch_size: int(f, 'batch_size'),
        }),
      };
    }
    case 'consensus status': {
      const watch = f.watch !== undefined ? (int(f, 'watch_ms') ?? (typeof f.watch === 'string' ? Number(f.watch) : 5000)) : int(f, 'watch_ms');
      return { tool: 'consensus_status', args: clean({ swarm, watch_ms: watch, wait_ms: int(f, 'wait_ms') }) };
    }
    case 'consensus leader':
      return { tool: 'consensus_leader', args: clean({ swarm, wait_ms: int(f, 'wait_ms') }) };
    case 'consensus log-status':
      return { tool: 'consensus_log_status', args: clean({ swarm }) };
    case 'consensus step-down':
      return { tool: 'consensus_step_down', args: clean({ swarm, agent: str(f, 'agent'), successor: str(f, 'successor') }) };
    case 'consensus trigger-election':
      return { tool: 'consensus_trigger_election', args: clean({ swarm, agent: str(f, 'agent') }) };
    case 'consensus verify-quorum':
      return { tool: 'consensus_verify_quorum', args: clean({ swarm, timeout_ms: int(f, 'timeout_ms') }) };
    case 'consensus election-history':
      return { tool: 'consensus_election_history', args: clean({ swarm, limit: int(f, 'limit') }) };
    case 'consensus replicate':
      return { tool: 'consensus_replicate', args: clean({ swarm, file: str(f, 'file'), key: str(f, 'key') }) };
    case 'agent spawn':
      return {
        tool: 'agent_spawn',
        args: clean({ swarm, type: str(f, 'type'), name: str(f, 'name'), capabilities: str(f, 'capabilities')?.split(',').map((s) => s.trim()).filter(Boolean) }),
      };
    case 'agent list':
      return { tool: 'agent_list', args: clean({ swarm, filter: str(f, 'filter') }), table: ['agent_id', 'type', 'status', 'role', 'capabilities'] };
    case 'agent terminate':
      return { tool: 'agent_terminate', args: clean({ swarm, agent_id: str(f, 'agent_id'), mode: str(f, 'mode') }) };
    case 'agent restart':
      return { tool: 'agent_restart', args: clean({ swarm, agent_id: str(f, 'agent_id') }) };
    case 'agent metrics':
      return { tool: 'agent_metrics', args: clean({ swarm, agent_id: str(f, 'agent_id'), metric: str(f, 'metric') }) };
    case 'network diagnose':
      return { tool: 'network_diagnose', args: clean({ swarm }) };
    case 'network partition':
      return {
        tool: 'network_partition',
        args: clean({ swarm, isolate: str(f, 'isolate'), groups: str(f, 'groups')?.split(';').map((g) => g.split(',').map((s) => s.trim())) }),
      };
    case 'network heal':
      return { tool: 'network_heal', args: clean({ swarm }) };
    case 'task orchestrate': {
      const kind = str(f, 'executor');
      const executor = kind
        ? clean({
            kind,
            sleep_ms: int(f, 'sleep_ms'),
            http: kind === 'http' ? clean({ method: str(f, 'method') ?? 'POST', url: str(f, 'url'), body: str(f, 'body') }) : undefined,
          })
        : undefined;
      return {
        tool: 'task_orchestrate',
        args: clean({
          swarm,
          task: str(f, 'task'),
          count: int(f, 'count'),
          priority: str(f, 'priority'),
          strategy: str(f, 'strategy'),
          max_agents: int(f, 'max_agents'),
          executor,
          payload: str(f, 'payload'),
          idempotency_key: str(f, 'idempotency_key'),
          wait: bool(f, 'wait'),
        }),
      };
    }
    case 'task status':
      return { tool: 'task_status', args: clean({ swarm, orchestration_id: str(f, 'orchestration_id') ?? str(f, 'id') }) };
    case 'task results':
      return { tool: 'task_results', args: clean({ swarm, orchestration_id: str(f, 'orchestration_id') ?? str(f, 'id') }) };
    case 'task claim':
      return { tool: 'task_claim', args: clean({ swarm, agent_id: str(f, 'agent_id'), count: int(f, 'count'), orchestration_id: str(f, 'orchestration_id'), lease_ms: int(f, 'lease_ms') }) };
    case 'task complete':
      return {
        tool: 'task_complete',
        args: clean({ swarm, task_id: str(f, 'task_id'), agent_id: str(f, 'agent_id'), epoch: int(f, 'epoch'), result: str(f, 'result'), success: bool(f, 'success') }),
      };
    case 'memory store':
      return { tool: 'memory_store', args: clean({ swarm, key: str(f, 'key'), value: str(f, 'value'), namespace: str(f, 'namespace'), ttl_s: int(f, 'ttl_s') ?? int(f, 'ttl'), if_version: int(f, 'if_version') }) };
    case 'memory retrieve':
      return { tool: 'memory_retrieve', args: clean({ swarm, key: str(f, 'key'), namespace: str(f, 'namespace'), consistency: str(f, 'consistency') }) };
    case 'memory list':
      return { tool: 'memory_list', args: clean({ swarm, prefix: str(f, 'prefix'), namespace: str(f, 'namespace'), limit: int(f, 'limit') }) };
    case 'memory delete':
      return { tool: 'memory_delete', args: clean({ swarm, key: str(f, 'key'), namespace: str(f, 'namespace'), if_version: int(f, 'if_version') }) };
    default:
      throw new UserError('invalid_argument', `unknown command "${key}". Run "concord help" for the list.`);
  }
}

/** Fixed-width table, as the spec prints `agent list`. */
export function formatTable(rows: Array<Record<string, unknown>>, cols: string[]): string {
  const cell = (v: unknown) => (Array.isArray(v) ? v.join(',') : v === null || v === undefined ? '' : String(v));
  const header = cols.map((c) => (c === 'agent_id' ? 'Agent ID' : c.charAt(0).toUpperCase() + c.slice(1)));
  const widths = cols.map((c, i) => Math.max(header[i]!.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]) => vals.map((v, i) => (i === vals.length - 1 ? v : v.padEnd(widths[i]!))).join(' | ');
  return [line(header), ...rows.map((r) => line(cols.map((c) => cell(r[c]))))].join('\n');
}

/** Flags every `noun verb` command takes, besides its own. */
const COMMON_FLAGS = ['swarm', 'data_dir', 'server', 'cluster', 'secret_file', 'cert', 'tls_key', 'ca', 'timeout_ms', 'allow_http_host', 'format', 'watch', 'require', 'hook_stdin', 'wait_ms'];

/**
 * toInvocation, refusing flags the command does not take (a typo such as --fitler was silently
 * ignored): the command's own flags are the ones its mapping reads.
 */
export function toCheckedInvocation(noun: string, verb: string, f: Flags): ToolInvocation {
  const read = new Set<string>();
  const tracked = new Proxy(f, {
    get(target, key, receiver) {
      if (typeof key === 'string') read.add(key);
      return Reflect.get(target, key, receiver);
    },
  });
  const inv = toInvocation(noun, verb, tracked);
  const known = [...new Set([...read, ...COMMON_FLAGS])];
  for (const k of Object.keys(f)) {
    if (known.includes(k)) continue;
    const near = known.filter((c) => editDistance(c, k) <= 2).map((c) => `--${c.replace(/_/g, '-')}`);
    const flag = `--${k.replace(/_/g, '-')}`;
    throw new UserError(
      'invalid_argument',
      `${flag} is not a flag of "${noun} ${verb}"${near.length > 0 ? `; did you mean ${near.join(' or ')}?` : ''} (its flags: ${[...read].filter((c) => c !== 'swarm').map((c) => `--${c.replace(/_/g, '-')}`).join(', ') || 'none'}; run "concord help")`,
      k,
    );
  }
  return inv;
}

/** Levenshtein distance, for "did you mean". */
function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}
