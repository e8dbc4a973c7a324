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
