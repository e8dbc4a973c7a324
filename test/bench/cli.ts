// Benchmark runner: `npm run bench -- <name> [--option value ...]`.
// Each bench is a module under test/bench/ exporting a `BenchModule`; it is loaded lazily so a
// bench's dependencies (SQLite, a cluster) are only paid for when it runs. Progress goes to
// stderr; the result is ONE JSON line on stdout, so runs can be appended to a file and diffed.

import type { BenchArgs, BenchModule } from './types.js';

/** name -> loader. Add a bench by writing test/bench/<name>.ts and listing it here. */
const BENCHES: Record<string, { summary: string; load: () => Promise<BenchModule> }> = {
  raft: {
    summary: '5-node LocalCluster on SQLite: first leader, commit throughput/latency, leader failover',
    load: async () => (await import('./raft.js')).bench,
  },
  tasks: {
    summary: 'noop tasks through the service layer (5 agents): tasks/s, latency, exactly-once under a leader crash',
    load: async () => (await import('./tasks.js')).bench,
  },
  idle: {
    summary: 'many idle swarms in one process (default 50 x 5 agents): CPU % of a core over 30 s, RSS, timers, heartbeats/s',
    load: async () => (await import('./idle-swarms.js')).bench,
  },
  scale: {
    summary: 'tasks at 1k/10k/100k (cost per task, RSS, retention), 100 x 1 MiB memory_store burst (elections, loop delay), 50 idle swarms (CPU, RSS)',
    load: async () => (await import('./scale.js')).bench,
  },
  wal: {
    summary: 'one member storage taking log writes back to back: WAL size during and after (checkpoints on the worker or inline)',
    load: async () => (await import('./wal-growth.js')).bench,
  },
  'etcd-compare': {
    summary: 'Concord cluster (5 `concord node` processes) vs etcd 3.4 (5 members): writes/s, p50/p99, kill -9 leader failover',
    load: async () => (await import('./etcd-compare.js')).bench,
  },
};

function usage(): string {
  const lines = ['usage: npm run bench -- <bench> [--option value ...] [--help]', '', 'available benches:'];
  for (const [name, b] of Object.entries(BENCHES)) lines.push(`  ${name.padEnd(10)} ${b.summary}`);
  return lines.join('\n');
}

/** `--key value`, `--key=value` and bare `--flag` (= 'true'). Positionals are rejected. */
export function parseArgs(argv: string[]): { name: string | undefined; args: BenchArgs; help: boolean } {
  const args: BenchArgs = {};
  let name: string | undefined;
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--help' || a === '-h') {
      help = true;
    } else if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      if (eq > 0) {
        args[a.slice(2, eq)] = a.slice(eq + 1);
      } else {
        const next = argv[i + 1];
        if (next !== undefined && !next.startsWith('--')) {
          args[a.slice(2)] = next;
          i++;
        } else {
          args[a.slice(2)] = 'true';
        }
      }
    } else if (name === undefined) {
      name = a;
    } else {
      throw new Error(`unexpected argument ${JSON.stringify(a)} (options take the form --name value)`);
    }
  }
  return { name, args, help };
}

function optionHelp(name: string, mod: BenchModule): string {
  const lines = [`usage: npm run bench -- ${name} [options]`, '', mod.description, '', 'options:'];
  for (const [k, o] of Object.entries(mod.options)) lines.push(`  --${k.padEnd(12)} ${o.description} (default ${o.default})`);
  return lines.join('\n');
}

async function main(): Promise<number> {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n${usage()}\n`);
    return 2;
  }
  const { name, args, help } = parsed;
  if (name === undefined) {
    process.stderr.write(`${help ? '' : 'no bench named\n'}${usage()}\n`);
    return help ? 0 : 2;
  }
  const entry = BENCHES[name];
  if (!entry) {
    process.stderr.write(`unknown bench ${JSON.stringify(name)}; available: ${Object.keys(BENCHES).join(', ')}\n${usage()}\n`);
    return 2;
  }
  const mod = await entry.load();
  if (help) {
    process.stdout.write(`${optionHelp(name, mod)}\n`);
    return 0;
  }
  const unknown = Object.keys(args).filter((k) => !(k in mod.options));
  if (unknown.length > 0) {
    process.stderr.write(`unknown option(s) for ${name}: ${unknown.map((k) => `--${k}`).join(', ')}\n${optionHelp(name, mod)}\n`);
    return 2;
  }
  const log = (msg: string): void => {
    process.stderr.write(`[bench ${name}] ${msg}\n`);
  };
  const result = await mod.run(args, log);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  return 0;
}

/**
 * Exit with `code` once the event loop is empty; if something still holds it (a timer or
 * handle a failed run never released) after EXIT_GRACE_MS, name what and exit anyway: a
 * failed bench must fail, not hang. The timer is unref'd, so it never delays a clean exit.
 */
const EXIT_GRACE_MS = 15_000;
function finish(code: number): void {
  process.exitCode = code;
  setTimeout(() => {
    const held = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap');
    process.stderr.write(`bench: process still held ${EXIT_GRACE_MS} ms after the run ${code === 0 ? 'finished' : 'failed'} (${held.join(', ') || 'nothing named'}); exiting\n`);
    process.exit(code);
  }, EXIT_GRACE_MS).unref();
}

main().then(
  (code) => finish(code),
  (e: unknown) => {
    process.stderr.write(`bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    finish(1);
  },
);
