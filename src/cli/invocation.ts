// A parsed tool command as the tool call it makes. Imports the flag specs, not the command
// table: tool-command.ts (a handler the table loads lazily) uses it.

import { UserError } from '../util/errors.js';
import type { CommandContext, CommandSpec, Flags, TableSpec } from './context.js';
import { flagsOf } from './flag-specs.js';

const snake = (k: string) => k.replace(/-/g, '_');

export interface ToolInvocation {
  tool: string;
  args: Record<string, unknown>;
  /** Printed as tables on a terminal. */
  tables?: TableSpec[];
}

/** The tool call a parsed command makes. */
export function invocationOf(ctx: CommandContext): ToolInvocation {
  const spec = ctx.spec;
  if (!spec.tool) throw new UserError('invalid_argument', `"${spec.path}" is not a tool command`);
  const base = toolArgs(spec, ctx.flags);
  const args = spec.args ? spec.args(base, ctx) : base;
  return { tool: spec.tool, args: Object.fromEntries(Object.entries(args).filter(([, v]) => v !== undefined)), tables: spec.tables };
}

/** The tool arguments a command line gives, typed as the tool takes them. */
export function toolArgs(spec: CommandSpec, flags: Flags): Record<string, unknown> {
  const known = flagsOf(spec);
  const out: Record<string, unknown> = {};
  for (const [name, f] of Object.entries(known)) {
    if (f.arg === null) continue;
    const v = flags[snake(name)];
    if (v === undefined) continue;
    const arg = f.arg ?? snake(name);
    if (out[arg] !== undefined) continue; // the first spelling wins (--orchestration-id over --id)
    if (f.kind === 'int') out[arg] = Number(v);
    else if (f.kind === 'list') out[arg] = String(v).split(',').map((s) => s.trim()).filter(Boolean);
    else out[arg] = v;
  }
  return out;
}
