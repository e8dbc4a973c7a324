import type { NodeId } from './types.js';

/** Votes needed for a strict majority of n voters. */
export function majority(n: number): number {
  return Math.floor(n / 2) + 1;
}

/**
 * Highest index held by a majority of voters: sort the voters' match indexes in descending
 * order and take the one at position majority-1.
 */
export function committedIndex(voters: readonly NodeId[], match: (id: NodeId) => number): number {
  if (voters.length === 0) return 0;
  const m = voters.map(match).sort((a, b) => b - a);
  return m[majority(voters.length) - 1] as number;
}

export type VoteResult = 'won' | 'lost' | 'pending';

export function voteResult(voters: readonly NodeId[], votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  let granted = 0;
  let rejected = 0;
  for (const id of voters) {
    const v = votes.get(id);
    if (v === true) granted++;
    else if (v === false) rejected++;
  }
  const q = majority(voters.length);
  if (granted >= q) return 'won';
  if (voters.length - rejected < q) return 'lost';
  return 'pending';
}
