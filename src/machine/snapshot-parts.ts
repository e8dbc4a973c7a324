// Packing of a large snapshot into bounded JSON parts (formats v4 and v5; see CoordinationMachine).
// V8 cannot hold a string past ~512 Mi characters, so a state of 1 GiB is never one string:
// each table's rows are serialized one by one and packed into parts of at most a set size.

/**
 * Largest part, in UTF-16 characters (a single row larger than this gets a part of its own).
 * Each part is handled whole on one event-loop turn at both ends: the sender joins its rows
 * into one string, the receiver decodes and splits it, and a state that fits in one part is
 * serialized by one snapshot() call. At 64 Mi those turns took 0.3-1 s for a 1.05 GiB state
 * (leaders' heartbeats late, 5 elections during one install, 2026-12-02); 8 Mi bounds them
 * to about an eighth.
 */
export const DEFAULT_SNAPSHOT_PART_CHARS = 8 << 20;

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

/**
 * The tables a v4 snapshot sliced into row parts (one JSON record per task: ~380 characters a
 * task), in the order they were written. Read, no longer written.
 */
export const V4_PART_TABLES = ['tasks', 'orchs', 'idem', 'memory', 'sessions'] as const;
/**
 * The tables a v5 snapshot slices into row parts. `taskrows`: the task table as its checkpoint
 * rows (TaskTable.snapshotRows: per orchestration a metadata row, then a row per block of
 * tasks whose column bytes are base64 text), ~24 characters a task.
 */
export const V5_PART_TABLES = ['taskrows', 'memory', 'sessions'] as const;
export type PartTable = (typeof V4_PART_TABLES)[number] | (typeof V5_PART_TABLES)[number];

/** Table kinds a part of each multi-part version may hold. */
export const PART_TABLES_OF: Readonly<Record<number, readonly PartTable[]>> = { 4: V4_PART_TABLES, 5: V5_PART_TABLES };

/**
 * Collects row parts: `{"v":<version>,"k":<table>,"rows":[...]}`, each at most maxChars
 * characters unless one row alone is larger.
 */
export class PartPacker {
  readonly parts: string[] = [];
  /** Characters of all parts so far. */
  chars = 0;
  /** Characters of rows added so far (closed parts and the open one). */
  written = 0;
  /** The same, by table. */
  readonly writtenOf = new Map<PartTable, number>();
  /**
   * The part being filled, as its pieces (head, then each row), joined into one flat string
   * when it closes: a string grown by appending is a rope that its first reader flattens, on
   * whatever turn that is (the snapshot sender's, for 20 parts of a 1.1 GB state: 3.3-4.3 s).
   */
  private cur: string[] = [];
  private curChars = 0;
  private rows = 0;
  private table: PartTable | null = null;

  constructor(
    private readonly maxChars: number,
    private readonly version: number,
  ) {}

  add(table: PartTable, row: unknown): void {
    this.addJson(table, [JSON.stringify(row)]);
  }

  /**
   * A row already serialized, as pieces whose concatenation is its JSON: a task block row's
   * base64 bytes go in as they are, not copied again into one string per row by stringify
   * (about the whole task table's size of garbage per snapshot).
   */
  addJson(table: PartTable, pieces: readonly string[]): void {
    let n = 0;
    for (const x of pieces) n += x.length;
    this.written += n + 1;
    this.writtenOf.set(table, (this.writtenOf.get(table) ?? 0) + n + 1);
    if (this.table !== table || (this.rows > 0 && this.curChars + n + 3 > this.maxChars)) this.flush();
    if (this.rows === 0) {
      this.table = table;
      const head = partHead(this.version, table);
      this.cur.push(head, ...pieces);
      this.curChars = head.length + n;
    } else {
      this.cur.push(',', ...pieces);
      this.curChars += n + 1;
    }
    this.rows++;
  }

  /** Close the current part (if it holds rows). */
  flush(): void {
    if (this.rows > 0) {
      this.cur.push(']}');
      const p = this.cur.join('');
      this.parts.push(p);
      this.chars += p.length;
    }
    this.cur = [];
    this.curChars = 0;
    this.rows = 0;
    this.table = null;
  }
}

/** Head of a part PartPacker writes for `table` in format `version`. */
export function partHead(version: number, table: PartTable): string {
  return `{"v":${version},"k":"${table}","rows":[`;
}

/** What may follow a part's last row: the list's and the object's closing brackets. */
const PART_END = /^[ \t\n\r]*\][ \t\n\r]*\}[ \t\n\r]*$/;

/**
 * A part's rows as their own JSON texts, split without parsing the part whole, for a part that
 * starts with `head` (partHead): a receiver parses and loads one row at a time, instead of
 * holding the part's parsed rows (31 MiB for the 16 MiB task part of a million tasks).
 * Yields null (and stops) where the text cannot be that head, rows and `]}`: the part is not
 * JSON then. Each row text yielded still has to parse; if all do, the part is the JSON they
 * make. The split follows JSON's brackets and strings (a comma or bracket inside a string is
 * text), so it cuts exactly where JSON.parse of the whole would see each element.
 */
export function* partRowTexts(text: string, head: string): Generator<string | null> {
  if (!text.startsWith(head)) return yield null;
  const n = text.length;
  let at = head.length;
  // An empty row list.
  if (PART_END.test(text.slice(at))) return;
  for (;;) {
    const from = at;
    let depth = 0;
    let inString = false;
    for (; at < n; at++) {
      const c = text.charCodeAt(at);
      if (inString) {
        if (c === 92 /* \ */) at++;
        else if (c === 34 /* " */) inString = false;
        continue;
      }
      if (c === 34) inString = true;
      else if (c === 91 /* [ */ || c === 123 /* { */) depth++;
      else if (c === 93 /* ] */ || c === 125 /* } */) {
        if (depth === 0) break;
        depth--;
      } else if (c === 44 /* , */ && depth === 0) break;
    }
    if (at >= n) return yield null;
    yield text.slice(from, at);
    if (text.charCodeAt(at) === 44) {
      at++;
      continue;
    }
    // The row list's closing bracket; the part's object closes after it.
    if (!PART_END.test(text.slice(at))) yield null;
    return;
  }
}

/** Base64 as Buffer writes it (Buffer.from(s, 'base64') skips what is not, so it is checked first). */
export const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * JSON.parse of a row text (from partRowTexts), except that a last element that is base64 text
 * (a task block row's column bytes) comes back as a slice of the row's text (and so of the
 * part, held anyway) rather than a copy: the copies were about the task table's size again
 * in strings per install. The same value as JSON.parse, and it throws where JSON.parse does:
 * with `,"<base64>"]` at the end, the text is JSON exactly when the text before `,` plus `]` is.
 */
export function parseRowText(t: string): unknown {
  const n = t.length;
  if (n > 64 && t.charCodeAt(n - 1) === 93 /* ] */ && t.charCodeAt(n - 2) === 34 /* " */) {
    const q = t.lastIndexOf('"', n - 3);
    if (q > 1 && t.charCodeAt(q - 1) === 44 /* , */) {
      const b64 = t.slice(q + 1, n - 2);
      if (BASE64.test(b64)) {
        const head = JSON.parse(`${t.slice(0, q - 1)}]`) as unknown;
        if (Array.isArray(head)) {
          head.push(b64);
          return head;
        }
      }
    }
  }
  return JSON.parse(t);
}
