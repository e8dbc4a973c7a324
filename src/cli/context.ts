import type { CommandSpec } from './command-table.js';

/** Flags as parsed: snake_case names, string values (or true for a bare switch). */
export type Flags = Record<string, string | boolean>;

/** What a command's handler gets. */
export interface CommandContext {
  spec: CommandSpec;
  /** Every flag given (snake_case), values as typed on the command line. */
  flags: Flags;
  /** Words after the command's path (e.g. the verb of `daemon stop`). */
  positionals: string[];
  /** --embedded or CONCORD_EMBEDDED=1. */
  embedded: boolean;
  dataDir?: string;
  /** Print JSON (--json, --format json, or stdout not a terminal) rather than tables and lines. */
  json: boolean;
}
