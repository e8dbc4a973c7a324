/**
 * A fault of this member's own stored state (a damaged checkpoint row, say), not of the entry
 * being applied: the other replicas apply the same entry without it. A state machine raises
 * one (or a subclass) from apply(); NodeHost then fail-stops the member (see applyEntry),
 * because recording the entry as failed would leave this replica's state unlike the others'.
 */
export class LocalStateDamage extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LocalStateDamage';
  }
}

/**
 * SQLite's codes for a file that does not read back as it was written (a damaged page, a
 * file that is not a database, an I/O error): a fault of this replica's disk, never of the
 * entry. Thrown from an apply it was recorded as the entry's error on this replica alone,
 * whose state then differed from the others' (test/host/stored-damage.test.ts).
 */
const LOCAL_SQLITE_CODES = /^SQLITE_(CORRUPT|NOTADB|IOERR)/;

/** `err` as a LocalStateDamage when it is one or a local storage fault (see above), else null. */
export function asLocalDamage(err: unknown): LocalStateDamage | null {
  if (err instanceof LocalStateDamage) return err;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && LOCAL_SQLITE_CODES.test(code)) return new LocalStateDamage(`${(err as Error).message} (${code})`);
  return null;
}
