// Command lines parsed with node:util parseArgs (strict) against the command table: unknown
// flags are errors with a "did you mean", values are checked by type and choices before any
// connection is made.

import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UserError } from '../util/errors.js';
import { COMMANDS, findCommand, flagsOf, type CommandSpec, type FlagSpec } from './command-table.js';
import type { Flags } from './context.js';

export interface ParsedCommand {
  /** undefined: only `--help` / `--version`; `mcp` when no command is named. */
  spec?: CommandSpec;
  /** No command words were given (bare `concord`). */
  implicit?: boolean;
  flags: Flags;
  positionals: string[];
  /** `help <command>` or `--help`: show help instead of running. */
  help: boolean;
  version: boolean;
}

const snake = (k: string) => k.replace(/-/g, '_');
const kebab = (k: string) => k.replace(/_/g, '-');

/** Every flag name of every command, with its kind: finds the command words in pass one. */
function allFlagOptions(): ParseArgsConfig['options'] {
  const opts: NonNullable<ParseArgsConfig['options']> = { version: { type: 'boolean', short: 'V' } };
  for (const c of COMMANDS) for (const [name, f] of Object.entries(flagsOf(c))) opts[name] = { type: f.kind === 'bool' ? 'boolean' : 'string', ...(f.short ? { short: f.short } : {}) };
  return opts;
}

/**
 * Rewrites parseArgs cannot express: `--watch` alone or `--watch 2000` (optional value),
 * `--embedded=1` / `--yes=false` (a switch given a value), and old snake_case spellings.
 */
function normalize(argv: string[], flags: Record<string, FlagSpec>): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      out.push(...argv.slice(i));
      break;
    }
    if (!a.startsWith('--')) {
      out.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = kebab(eq > 0 ? a.slice(2, eq) : a.slice(2));
    const f = flags[name];
    const value = eq > 0 ? a.slice(eq + 1) : undefined;
    if (f?.kind === 'bool' && value !== undefined) {
      if (/^(1|true|yes)$/i.test(value)) out.push(`--${name}`);
      else if (!/^(0|false|no)$/i.test(value)) throw new UserError('invalid_argument', `--${name}=${value}: a switch takes no value (or true/false)`, snake(name));
      continue;
    }
    if (f?.optionalValue && value === undefined) {
      const next = argv[i + 1];
      if (next !== undefined && /^\d+$/.test(next)) {
        out.push(`--${name}=${next}`);
        i++;
      } else out.push(`--${name}=`);
      continue;
    }
    out.push(value === undefined ? `--${name}` : `--${name}=${value}`);
  }
  return out;
}

/** Parse a command line (without `node main.js`). */
export function parseCommandLine(argv: string[]): ParsedCommand {
  // Pass one, lenient: only to find the command words among the flags.
  const first = parseArgs({ args: argv, options: allFlagOptions(), strict: false, allowPositionals: true, tokens: true });
  let words = first.positionals;
  let help = first.values.help === true;
  const version = first.values.version === true;
  let rest = argv;
  if (words[0] === 'help') {
    help = true;
    words = words.slice(1);
    const at = first.tokens!.find((t) => t.kind === 'positional')!.index;
    rest = [...argv.slice(0, at), ...argv.slice(at + 1)];
  }
  if (words.length === 0 && (help || version)) return { flags: {}, positionals: [], help, version };
  // No command: `concord mcp`, as MCP clients start it (main shows help on a terminal).
  const spec = words.length === 0 ? findCommand(['mcp']) : findCommand(words);
  if (!spec && help) return { flags: {}, positionals: words, help, version }; // `help agent`: the group
  if (!spec) throw unknownCommand(words);
  const known = flagsOf(spec);
  const args = normalize(rest, known);
  // Unknown flags first, with a suggestion (parseArgs' own message has none).
  const tokens = parseArgs({ args, options: toOptions(known), strict: false, allowPositionals: true, tokens: true }).tokens ?? [];
  for (const t of tokens) if (t.kind === 'option' && !(t.name in known)) throw unknownFlag(t.name, spec, known, t.rawName);
  let parsed;
  try {
    parsed = parseArgs({ args, options: toOptions(known), strict: true, allowPositionals: true });
  } catch (e) {
    throw new UserError('invalid_argument', `${(e as Error).message.replace(/\n/g, ' ')} (${spec.path}; run "concord help ${spec.path}")`);
  }
  const positionals = parsed.positionals.slice(spec.path.split(' ').length);
  if (positionals.length > 0 && !spec.positionals && !help) {
    throw new UserError('invalid_argument', `"${positionals[0]}" is not an argument of "${spec.path}" (values go after a flag, e.g. --name VALUE; run "concord help ${spec.path}")`);
  }
  const flags: Flags = {};
  for (const [name, v] of Object.entries(parsed.values)) {
    if (v === undefined) continue;
    const f = known[name]!;
    const value = v as string | boolean;
    if (typeof value === 'string') checkValue(name, f, value);
    flags[snake(name)] = value;
  }
  return { spec, flags, positionals, help, version, implicit: words.length === 0 };
}

function toOptions(known: Record<string, FlagSpec>): NonNullable<ParseArgsConfig['options']> {
  return Object.fromEntries(Object.entries(known).map(([n, f]) => [n, { type: f.kind === 'bool' ? ('boolean' as const) : ('string' as const), ...(f.short ? { short: f.short } : {}) }]));
}

function checkValue(name: string, f: FlagSpec, v: string): void {
  if (f.optionalValue && v === '') return;
  if (f.kind === 'int' && !/^-?\d+$/.test(v)) throw new UserError('invalid_argument', `--${name}=${v} is not an integer`, snake(name));
  if (f.optionalValue && !/^\d+$/.test(v)) throw new UserError('invalid_argument', `--${name}=${v} must be a number of ms`, snake(name));
  if (f.choices && !f.choices.includes(v)) throw new UserError('invalid_argument', `--${name}=${v}: accepted: ${f.choices.join(', ')}`, snake(name));
}

function unknownCommand(words: string[]): UserError {
  const nouns = [...new Set(COMMANDS.map((c) => c.path.split(' ')[0]!))];
  const same = COMMANDS.filter((c) => c.path.startsWith(`${words[0]} `)).map((c) => c.path.split(' ')[1]!);
  if (same.length > 0) {
    const near = same.filter((v) => words[1] !== undefined && editDistance(v, words[1]) <= 2);
    const what = words[1] === undefined ? `"${words[0]}" needs a verb` : `unknown command "${words.slice(0, 2).join(' ')}"`;
    return new UserError('invalid_argument', `${what}${near.length ? `; did you mean "${words[0]} ${near[0]}"?` : ''} (verbs: ${same.join(', ')}; run "concord help ${words[0]}")`);
  }
  const near = nouns.filter((n) => editDistance(n, words[0]!) <= 2);
  return new UserError('invalid_argument', `unknown command "${words[0]}"${near.length ? `; did you mean "${near[0]}"?` : ''}. Run "concord help" for the list.`);
}

function unknownFlag(name: string, spec: CommandSpec, known: Record<string, FlagSpec>, raw = `--${kebab(name)}`): UserError {
  const cand = Object.keys(known);
  const near = cand.filter((c) => editDistance(c, kebab(name)) <= 2).map((c) => `--${c}`);
  const own = Object.keys(spec.flags ?? {}).map((c) => `--${c}`);
  return new UserError(
    'invalid_argument',
    `${raw} is not a flag of "${spec.path}"${near.length > 0 ? `; did you mean ${near.join(' or ')}?` : ''} (its flags: ${own.join(', ') || 'none'}; run "concord help ${spec.path}")`,
    snake(name),
  );
}

/** Levenshtein distance, for "did you mean". */
export function editDistance(a: string, b: string): number {
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
