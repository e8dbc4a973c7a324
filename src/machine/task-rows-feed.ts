// The task table of a v5 snapshot (see snapshot-parts.ts), rebuilt from its task rows one row at
// a time: each row's shape and column bytes are checked, then loaded into the new table's
// columns. A receiver feeds each part's rows as the part arrives, so neither a part's parsed
// rows (about twice the part's size: 31 MiB for a million tasks) nor all parts' rows are
// held until the whole snapshot is in. Nothing here touches the state being replaced.

import { BASE64 } from './snapshot-parts.js';
import { blockShift } from './task-columns.js';
import { MAX_TASKS_PER_ORCHESTRATION, ordStride, TaskTable } from './task-table.js';

export class TaskRowsFeed {
  /** Where rows are being read, for the reason a build fails: the part and the row. */
  private part = 0;
  private row = 'its task rows';
  private orchOrd = -1;
  private orch = '';
  /** Why the table cannot be built (the first row that failed), once one failed. */
  private failed: string | null = null;
  private done = false;

  private constructor(
    private readonly loader: ReturnType<typeof TaskTable.rowLoader>,
    private readonly stride: number,
  ) {}

  /** A feed for the table part 0's tasks summary describes, or why the summary is not one. */
  static of(summary: unknown): TaskRowsFeed | string {
    const t = summary as Record<string, unknown> | null;
    if (typeof t !== 'object' || t === null) return 'part 0 has no tasks summary';
    const { complete_high: high, compacted_refused: refused, agents, block } = t;
    if (!Number.isSafeInteger(high) || !Number.isSafeInteger(refused) || !Array.isArray(agents) || !agents.every((a) => typeof a === 'string') || !Number.isSafeInteger(block)) {
      return 'part 0: its tasks summary is not complete_high, compacted_refused, agents and block';
    }
    let stride: number;
    try {
      stride = ordStride(blockShift(block as number));
    } catch (e) {
      return `part 0: ${(e as Error).message}`;
    }
    return new TaskRowsFeed(TaskTable.rowLoader(agents as string[], high as number, refused as number, block as number), stride);
  }

  /** Rows of part `i` follow (parts in order). */
  startPart(i: number): void {
    this.part = i;
  }

  /** Load one row ([row key, row, column bytes as base64?]); the reason it cannot be, else null. */
  add(x: unknown): string | null {
    if (this.failed !== null) return this.failed;
    try {
      this.load(x);
      return null;
    } catch (e) {
      this.failed = `part ${this.part}, ${this.row}: ${(e as Error).message}`;
      return this.failed;
    }
  }

  /** The table, once every row was added (called once), or why it cannot be built. */
  finish(): TaskTable | string {
    if (this.failed !== null) return this.failed;
    if (this.done) throw new Error('TaskRowsFeed.finish called twice');
    this.done = true;
    try {
      return this.loader.finish();
    } catch (e) {
      return (this.failed = `part ${this.part}, ${this.row}: ${(e as Error).message}`);
    }
  }

  private load(x: unknown): void {
    const ord = Array.isArray(x) ? x[0] : undefined;
    if (!Array.isArray(x) || x.length < 2 || x.length > 3 || !Number.isSafeInteger(ord) || (ord as number) < 0) {
      this.row = `after ${this.orch || 'no orchestration'}`;
      throw new Error(`a task row is not [row key, row, column bytes?]: ${JSON.stringify(x)?.slice(0, 80)}`);
    }
    const k = (ord as number) % this.stride;
    const row = x[1] as unknown;
    if (k === 0) {
      const o = (Array.isArray(row) ? row[0] : undefined) as { id?: unknown; count?: unknown } | undefined;
      if (typeof o !== 'object' || o === null || typeof o.id !== 'string') {
        this.row = `row key ${ord as number}`;
        throw new Error('an orchestration row without its orchestration');
      }
      this.orchOrd = ord as number;
      this.orch = o.id;
      this.row = `${this.orch} (its metadata row)`;
      // Columns are allocated for `count` tasks before any block is read.
      if (!(Number.isInteger(o.count) && (o.count as number) >= 1 && (o.count as number) <= MAX_TASKS_PER_ORCHESTRATION)) throw new Error(`count=${JSON.stringify(o.count)}; accepted: integer 1..${MAX_TASKS_PER_ORCHESTRATION}`);
    } else this.row = (ord as number) - k === this.orchOrd ? `${this.orch} block ${k - 1}` : `block ${k - 1} of row key ${(ord as number) - k}`;
    const b64 = x[2] as unknown;
    if (b64 === undefined) return this.loader.add(ord as number, row);
    if (typeof b64 !== 'string' || b64.length % 4 !== 0 || !BASE64.test(b64)) throw new Error(`its column bytes are not base64 (${typeof b64 === 'string' ? `${b64.length} characters` : typeof b64})`);
    this.loader.add(ord as number, row, Buffer.from(b64, 'base64'));
  }
}
