/** Raw `--key value` options as given on the command line. */
export type BenchArgs = Record<string, string>;

export interface BenchOption {
  description: string;
  default: string;
}

/** What test/bench/cli.ts needs from a bench module. */
export interface BenchModule {
  description: string;
  /** Every accepted option; anything else is rejected by the CLI with this list. */
  options: Record<string, BenchOption>;
  /** Runs the bench; `log` goes to stderr. The result is printed as one JSON line. */
  run(args: BenchArgs, log: (msg: string) => void): Promise<Record<string, unknown>>;
}
