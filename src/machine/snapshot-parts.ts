// Packing of a large snapshot into bounded JSON parts (format v4; see CoordinationMachine).
// V8 cannot hold a string past ~512 Mi characters, so a state of 1 GiB is never one string:
// each table's rows are serialized one by one and packed into parts of at most a set size.

/** Largest part, in UTF-16 characters (a single row larger than this gets a part of its own). */
export const DEFAULT_SNAPSHOT_PART_CHARS = 64 << 20;

/**
 * Part size in force: CONCORD_SNAPSHOT_PART_CHARS (tests force small parts, so a few MiB of
 * state spans many parts, in member processes too), else the default. Read at each snapshot.
 */
export function snapshotPartChars(): number {
  const v = Number(process.env.CONCORD_SNAPSHOT_PART_CHARS);
  return Number.isSafeInteger(v) && v >= 1024 ? v : DEFAULT_SNAPSHOT_PART_CHARS;
}

/** JSON characters a stepped snapshot writes per step (see CoordinationMachine.snapshotSteps). */
export const DEFAULT_SNAPSHOT_SLICE_CHARS = 1 << 20;

/** Step size in force: CONCORD_SNAPSHOT_SLICE_CHARS (the simulator forces small steps), else the default. */
export function snapshotSliceChars(): number {
  const v = Number(process.env.CONCORD_SNAPSHOT_SLICE_CHARS);
  return Number.isSafeInteger(v) && v >= 1 ? v : DEFAULT_SNAPSHOT_SLICE_CHARS;
}

/** The tables a v4 snapshot slices into row parts, in the order they are written. */
export const PART_TABLES = ['tasks', 'orchs', 'idem', 'memory', 'sessions'] as const;
export type PartTable = (typeof PART_TABLES)[number];

/**
 * Collects row parts: `{"v":4,"k":<table>,"rows":[...]}`, each at most maxChars characters
 * unless one row alone is larger.
 */
export class PartPacker {
  readonly parts: string[] = [];
  /** Characters of all parts so far. */
  chars = 0;
  /** Characters of rows added so far (closed parts and the open one). */
  written = 0;
  /** The part being filled (a rope: appending copies nothing), without its closing `]}`. */
  private cur = '';
  private rows = 0;
  private table: PartTable | null = null;

  constructor(private readonly maxChars: number) {}

  add(table: PartTable, row: unknown): void {
    const j = JSON.stringify(row);
    this.written += j.length + 1;
    if (this.table !== table || (this.rows > 0 && this.cur.length + j.length + 3 > this.maxChars)) this.flush();
    if (this.rows === 0) {
      this.table = table;
      this.cur = `{"v":4,"k":"${table}","rows":[${j}`;
    } else this.cur += `,${j}`;
    this.rows++;
  }

  /** Close the current part (if it holds rows). */
  flush(): void {
    if (this.rows > 0) {
      const p = `${this.cur}]}`;
      this.parts.push(p);
      this.chars += p.length;
    }
    this.cur = '';
    this.rows = 0;
    this.table = null;
  }
}
