// The spec's `noun verb --flags` as tool calls, from the command table (command-table.ts).

import { UserError } from '../util/errors.js';
import { findCommand, flagsOf } from './command-table.js';
import type { Flags } from './context.js';
import { invocationOf, type ToolInvocation } from './invocation.js';
import { editDistance } from './parse.js';

export { invocationOf, type ToolInvocation } from './invocation.js';

export type { Flags } from './context.js';
export { formatTable } from './output.js';

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
