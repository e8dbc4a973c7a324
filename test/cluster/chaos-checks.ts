// Pure checks of the chaos test: final values against the recorded memory history, and
// replicas' committed logs against each other.

import type { KvOperation } from '../helpers/linearizability.js';

/** True when the operation changed the key (or may have: its outcome is unknown). */
function mayWrite(o: KvOperation): boolean {
  if (o.input.op === 'get') return false;
  if (o.output === null) return true;
  return 'ok' in o.output && o.output.ok === true;
}

function acknowledgedWrite(o: KvOperation): boolean {
  return o.input.op !== 'get' && o.output !== null && 'ok' in o.output && o.output.ok === true;
}

export interface FinalValueProblem {
  key: string;
  final: KvOperation;
  candidates: KvOperation[];
  message: string;
}

/**
 * No acknowledged write is lost: the final read of each key must show the effect of a write
 * that could have been applied last, i.e. one not known to have finished before some other
 * acknowledged write started (unknown-outcome writes may land any time after their call).
 * In particular, the last acknowledged write of a key that no later or concurrent write
 * touched must be the value read at the end.
 * `finals` are the final reads (one per key, made after the cluster healed and went quiet).
 */
export function checkFinalValues(
  history: readonly KvOperation[],
  finals: readonly KvOperation[],
  /** Filled with, per key, how many writes could have been applied last (1: the final value is pinned down). */
  candidateCounts: Record<string, number> = {},
): FinalValueProblem[] {
  const problems: FinalValueProblem[] = [];
  for (const fin of finals) {
    const key = fin.input.key;
    const out = fin.output;
    if (fin.input.op !== 'get' || out === null || !('found' in out)) {
      problems.push({ key, final: fin, candidates: [], message: `final read of ${key} has no definite result` });
      continue;
    }
    const writes = history.filter((o) => o.input.key === key && o !== fin && mayWrite(o));
    const acked = writes.filter(acknowledgedWrite);
    // X may be the last write applied unless an acknowledged write Y started after X returned
    // (Y = X cannot: X starts before it returns).
    const lastAckedCall = Math.max(-Infinity, ...acked.map((y) => y.call));
    const candidates = writes.filter((x) => x.output === null || !(lastAckedCall > x.ret));
    candidateCounts[key] = candidates.length;
    const matches = (x: KvOperation): boolean => {
      if (x.input.op === 'put') return out.found && JSON.stringify(out.value) === JSON.stringify(x.input.value);
      return !out.found; // a delete (or a delete of an absent key) leaves it absent
    };
    if (candidates.length === 0) {
      if (out.found) problems.push({ key, final: fin, candidates, message: `${key} was never written but the final read found ${JSON.stringify(out.value)}` });
      continue;
    }
    if (!candidates.some(matches)) {
      const lastAck = acked.reduce<KvOperation | null>((a, b) => (a === null || b.call > a.call ? b : a), null);
      problems.push({
        key,
        final: fin,
        candidates,
        message:
          `final read of ${key} = ${JSON.stringify(out)} matches none of the ${candidates.length} writes that could have been applied last ` +
          `(last acknowledged: ${lastAck ? JSON.stringify(lastAck.input) : 'none'})`,
      });
    }
  }
  return problems;
}

export interface LogDigest {
  id: string;
  commit: number;
  first_index: number;
  entries: Array<{ index: number; term: number; hash: string }>;
}

export interface LogComparison {
  /** Indices where two members (or one member at two times) hold different committed entries. */
  mismatches: Array<{ index: number; views: string[] }>;
  /** Per pair "a~b": how many committed indices both were seen to hold. */
  overlap: Record<string, number>;
  /** Indices compared on at least two members. */
  compared: number;
  /** Highest index seen committed anywhere. */
  maxIndex: number;
}

/**
 * Every committed entry must be the same (index, term, hash) wherever and whenever it is
 * seen: digests may come from the same member at several times (committed entries never
 * change) and from different members (they never diverge).
 */
export function compareLogs(digests: readonly LogDigest[]): LogComparison {
  // index -> member -> set of "term:hash" seen
  const byIndex = new Map<number, Map<string, Set<string>>>();
  const held = new Map<string, Set<number>>();
  let maxIndex = 0;
  for (const d of digests) {
    let mine = held.get(d.id);
    if (!mine) held.set(d.id, (mine = new Set()));
    for (const e of d.entries) {
      if (e.index > d.commit) continue;
      mine.add(e.index);
      maxIndex = Math.max(maxIndex, e.index);
      let views = byIndex.get(e.index);
      if (!views) byIndex.set(e.index, (views = new Map()));
      let seen = views.get(d.id);
      if (!seen) views.set(d.id, (seen = new Set()));
      seen.add(`${e.term}:${e.hash}`);
    }
  }
  const mismatches: LogComparison['mismatches'] = [];
  let compared = 0;
  for (const [index, views] of [...byIndex.entries()].sort((a, b) => a[0] - b[0])) {
    const all = new Set<string>();
    for (const seen of views.values()) for (const v of seen) all.add(v);
    if (views.size >= 2) compared++;
    if (all.size > 1) mismatches.push({ index, views: [...views.entries()].map(([id, seen]) => `${id}=${[...seen].join('|')}`) });
  }
  const overlap: Record<string, number> = {};
  const ids = [...held.keys()].sort();
  for (let i = 0; i < ids.length; i++) {
    for (let j = i + 1; j < ids.length; j++) {
      const a = held.get(ids[i]!)!;
      const b = held.get(ids[j]!)!;
      let n = 0;
      for (const x of a) if (b.has(x)) n++;
      overlap[`${ids[i]}~${ids[j]}`] = n;
    }
  }
  return { mismatches, overlap, compared, maxIndex };
}
