/** Nearest-rank percentile (p in [0, 100]) of unsorted samples; NaN when empty. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const s = [...samples].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * s.length);
  return s[Math.min(s.length - 1, Math.max(0, rank - 1))] as number;
}

export function median(samples: readonly number[]): number {
  return percentile(samples, 50);
}

/** Round for JSON output: enough digits for ms/ops figures, no float noise. */
export function round(x: number, digits = 3): number {
  if (!Number.isFinite(x)) return x;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

export function parseNumber(args: Record<string, string>, key: string, dflt: number, check: (n: number) => boolean, accepted: string): number {
  const raw = args[key];
  if (raw === undefined) return dflt;
  const n = Number(raw);
  if (!Number.isFinite(n) || !check(n)) throw new Error(`--${key}=${raw}: expected ${accepted}`);
  return n;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
