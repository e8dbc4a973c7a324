import type { CheckpointRow, TableChanges } from '../storage/types.js';

/**
 * Rows past which a tracker gives up on single rows and asks for a full rewrite: bounds the
 * tracking's memory when nobody takes checkpoints (a machine without a storage that keeps
 * rows), and a rewrite then costs about what that many single rows would.
 */
export const MAX_TRACKED_ROWS = 262_144;

/**
 * What changed in one kind of row since the last checkpoint: ids whose row must be written
 * (its current value, read when the checkpoint is taken) and row keys (ords) that no longer
 * hold a live row. `full`: everything must be rewritten (nothing stored yet, or the state was
 * replaced); tracking single rows is then pointless and skipped.
 */
export class DirtyRows<K = string> {
  full = true;
  readonly ids = new Set<K>();
  dead: number[] = [];
  /** The last id touched: a run of touches of one row (an orchestration, per task of a
   * batch) costs a comparison each, not a Set lookup. */
  private last: K | undefined = undefined;

  touch(id: K): void {
    if (this.full || id === this.last) return;
    this.last = id;
    this.ids.add(id);
    if (this.ids.size > MAX_TRACKED_ROWS) this.setFull();
  }

  drop(ord: number): void {
    if (this.full) return;
    this.dead.push(ord);
    if (this.dead.length > MAX_TRACKED_ROWS) this.setFull();
  }

  setFull(): void {
    this.full = true;
    this.ids.clear();
    this.dead = [];
    this.last = undefined;
  }

  /** Rows a checkpoint would write now (`live` when full). */
  count(live: number): number {
    return this.full ? live : this.ids.size + this.dead.length;
  }

  /**
   * The changes to write, built from the current rows (`row(id)`: [ord, json], or undefined
   * when the id has no row any more), then tracking restarts from a clean state.
   */
  take(row: (id: K) => CheckpointRow | undefined, all: () => Iterable<CheckpointRow>): TableChanges {
    const put: CheckpointRow[] = [];
    const g = this.takeRows(row, all);
    for (;;) {
      const r = g.next();
      if (r.done) return { ...r.value, put };
      put.push(r.value);
    }
  }

  /**
   * take() a row at a time (a large rewrite is built over several turns): yields each row to
   * write, returns what to clear and delete. Tracking restarts only once the last row is read,
   * so the rows must not change meanwhile (the host holds applies).
   */
  *takeRows(row: (id: K) => CheckpointRow | undefined, all: () => Iterable<CheckpointRow>): Generator<CheckpointRow, Omit<TableChanges, 'put'>> {
    const clear = this.full;
    const del = this.full ? [] : this.dead;
    if (this.full) {
      yield* all();
    } else {
      for (const id of this.ids) {
        const r = row(id);
        if (r) yield r;
      }
    }
    this.reset();
    return { clear, del };
  }

  /** Tracking restarts from a clean state (the caller wrote the changes itself). */
  reset(): void {
    this.full = false;
    this.ids.clear();
    this.dead = [];
    this.last = undefined;
  }
}

/** Runs a table's takeChangeRows() to the end: its rows in one TableChanges. */
export function collectChanges(g: Generator<CheckpointRow, Omit<TableChanges, 'put'>>): TableChanges {
  const put: CheckpointRow[] = [];
  for (;;) {
    const r = g.next();
    if (r.done) return { ...r.value, put };
    put.push(r.value);
  }
}
