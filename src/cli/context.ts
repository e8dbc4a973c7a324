// What a command is (its entry in command-table.ts) and what its handler gets when it runs.
// Kept apart from the table so handlers and the table both import it, never each other.

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

export type FlagKind = 'string' | 'int' | 'bool' | 'list';

export interface FlagSpec {
  kind: FlagKind;
  help: string;
  /** Placeholder for the value in help, e.g. N, ID. */
  value?: string;
  /**
   * Shown in help only: a tool argument's default is the server's (so the CLI and MCP clients
   * get the same one), a CLI-only flag's is applied by its handler.
   */
  default?: string | number | boolean;
  /** Tool argument it fills: default the flag name in snake_case; null: the CLI reads it. */
  arg?: string | null;
  /** Accepted values (checked by the CLI before any connection). */
  choices?: readonly string[];
  /** `--watch` alone or `--watch 2000`: the value is optional (digits only). */
  optionalValue?: boolean;
  /** One-letter alias, e.g. h for -h. */
  short?: string;
}

/** How a list-like result prints on a terminal: the rows' field and the columns. */
export interface TableSpec {
  rows: string;
  columns: string[];
}

export interface CommandModule {
  run(ctx: CommandContext): Promise<number>;
}

export interface CommandSpec {
  /** Words after `concord`, e.g. "agent list". */
  path: string;
  summary: string;
  flags?: Record<string, FlagSpec>;
  /** Extra positional words it takes, for help, e.g. "[start|status|stop|logs]". */
  positionals?: string;
  /** Client flags (--swarm, --data-dir, --cluster, ...) apply: default true for tool commands. */
  client?: boolean;
  /** One MCP tool call. */
  tool?: string;
  /** Adjust the tool arguments built from the flags (lists, nested objects, aliases). */
  args?: (a: Record<string, unknown>, ctx: CommandContext) => Record<string, unknown>;
  /** Printed as tables on a terminal (JSON with --json or when piped). */
  tables?: TableSpec[];
  /** Anything else: the module running it, loaded only when the command runs. */
  handler?: () => Promise<CommandModule>;
  /** Longer help text shown under the generated one. */
  more?: string;
  examples?: string[];
}
