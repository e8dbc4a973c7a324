import { it } from 'vitest';
import { Raft } from '../../src/raft/raft.js';
import { committedIndex } from '../../src/raft/quorum.js';
const P = Raft.prototype as any;
if (process.env.MUTANT) P.maybeCommit = function (this: any) {
  const mci = committedIndex([...this.voters], (id: string) => this.prs.get(id)?.match ?? 0);
  if (mci > this.log.committed) { this.log.commitTo(mci); return true; }
  return false;
};
