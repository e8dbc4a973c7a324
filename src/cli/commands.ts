// The spec's `noun verb --flags` as tool calls, from the command table (command-table.ts).

import { UserError } from '../util/errors.js';
import { findCommand, flagsOf, type TableSpec } from './command-table.js';
import type { CommandContext, Flags } from './context.js';
import { editDistance, toolArgs } from './parse.js';

export type { Flags } from './context.js';
export { formatTable } from './output.js';

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

/**
 * `noun verb` with already-split flags (snake_case) as a tool call, refusing flags the command
 * does not take (a typo such as --fitler was silently ignored) with a "did you mean".
 */
export function toCheckedInvocation(noun: string, verb: string, f: Flags): ToolInvocation {
  const spec = findCommand([noun, verb]);
  if (!spec || !spec.tool) throw new UserError('invalid_argument', `unknown command "${noun} ${verb}". Run "concord help" for the list.`);
  const known = flagsOf(spec);
  for (const k of Object.keys(f)) {
    const flag = k.replace(/_/g, '-');
    if (flag in known) continue;
    const near = Object.keys(known).filter((c) => editDistance(c, flag) <= 2).map((c) => `--${c}`);
    throw new UserError(
      'invalid_argument',
      `--${flag} is not a flag of "${spec.path}"${near.length > 0 ? `; did you mean ${near.join(' or ')}?` : ''} (its flags: ${Object.keys(spec.flags ?? {}).map((c) => `--${c}`).join(', ') || 'none'}; run "concord help ${spec.path}")`,
      k,
    );
  }
  return invocationOf({ spec, flags: f, positionals: [], embedded: false, json: true });
}
