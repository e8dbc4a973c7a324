import { createRequire } from 'node:module';
import type pinoModule from 'pino';

type Pino = ReturnType<typeof pinoModule>;

/** pino's levels; a call below the configured one returns before anything is loaded. */
const LEVELS = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 } as const;
type LevelName = keyof typeof LEVELS;

const level = process.env.CONCORD_LOG_LEVEL ?? 'warn';
const threshold = level === 'silent' ? Infinity : (LEVELS as Record<string, number>)[level];

/** All logs go to stderr: stdout belongs to JSON-RPC in MCP mode. */
function createRoot(): Pino {
  // pino is CommonJS: required synchronously, the first time a line is actually written.
  const pino = createRequire(import.meta.url)('pino') as typeof pinoModule;
  return pino({ level, base: { app: 'concord' } }, pino.destination({ fd: 2, sync: true }));
}

interface LogFn {
  (obj: object, msg?: string, ...args: unknown[]): void;
  (msg: string, ...args: unknown[]): void;
}

/**
 * pino behind a facade that loads it on the first line written. At the default level (warn)
 * a process that logs nothing never loads it: loading pino was ~20 ms of a restarted
 * member's start-up (100+ ms on a loaded machine).
 */
class LazyLogger {
  private real: Pino | null = null;

  constructor(
    private readonly parent: LazyLogger | null,
    private readonly bindings: Record<string, unknown> | null,
  ) {}

  readonly trace: LogFn = this.at('trace');
  readonly debug: LogFn = this.at('debug');
  readonly info: LogFn = this.at('info');
  readonly warn: LogFn = this.at('warn');
  readonly error: LogFn = this.at('error');
  readonly fatal: LogFn = this.at('fatal');

  child(bindings: Record<string, unknown>): LazyLogger {
    return new LazyLogger(this, bindings);
  }

  private pino(): Pino {
    if (!this.real) this.real = this.parent ? this.parent.pino().child(this.bindings ?? {}) : createRoot();
    return this.real;
  }

  private at(name: LevelName): LogFn {
    const n = LEVELS[name];
    return ((...args: unknown[]) => {
      if (n < (threshold as number)) return;
      (this.pino()[name] as (...a: unknown[]) => void)(...args);
    }) as LogFn;
  }
}

// An unknown level name fails at start, as pino itself would.
if (threshold === undefined) createRoot();

export const logger = new LazyLogger(null, null);

export type Logger = LazyLogger;
