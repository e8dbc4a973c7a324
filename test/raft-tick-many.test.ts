// Raft.tickMany(n) must be exactly n calls of tick(), stopping early only right after a tick
// that changed the role. Two copies of a 3-member cluster of pure cores get the same inputs
// (random tick counts, message loss, proposals, transfers, compactions that force snapshots,
// a learner); one ticks one at a time, the other through tickMany. Every Ready and every
// status must be identical, step by step.

import { describe, expect, it } from 'vitest';
import { Raft } from '../src/raft/raft.js';
import { DEFAULT_CONFIG, type Message, type NodeId, type Ready } from '../src/raft/types.js';
import { Prng } from '../src/util/prng.js';

const IDS: NodeId[] = ['a', 'b', 'c'];
const LEARNER: NodeId = 'l';

class Copy {
  readonly nodes = new Map<NodeId, Raft>();
  readonly inbox: Message[] = [];
  /** Everything each Ready carried, in order: what the two copies must agree on. */
  readonly trace: string[] = [];

  constructor(private readonly batched: boolean) {
    for (const id of [...IDS, LEARNER]) {
      const raft = new Raft(
        { ...DEFAULT_CONFIG, electionTicksMin: 10, electionTicksMax: 20, heartbeatTicks: 3, transferTimeoutTicks: 8, id, seed: id.charCodeAt(0) },
        { hardState: { term: 0, vote: null, commit: 0 }, snapshot: null, entries: [], initialConf: { voters: IDS, learners: [LEARNER] } },
      );
      this.nodes.set(id, raft);
    }
  }

  /** n ticks; returns the role changes seen by the caller of tickMany (one per early stop). */
  tick(id: NodeId, n: number): string[] {
    const r = this.nodes.get(id)!;
    const changes: string[] = [];
    if (!this.batched) {
      for (let i = 0; i < n; i++) {
        const before = r.role;
        r.tick();
        if (r.role !== before) changes.push(`${before}->${r.role}`);
      }
      return changes;
    }
    for (let left = n; left > 0; ) {
      const before = r.role;
      const done = r.tickMany(left);
      expect(done).toBeGreaterThan(0);
      expect(done).toBeLessThanOrEqual(left);
      // An early stop must be right after a role change.
      if (done < left) expect(r.role).not.toBe(before);
      if (r.role !== before) changes.push(`${before}->${r.role}`);
      left -= done;
    }
    return changes;
  }

  drain(): void {
    for (const [id, r] of this.nodes) {
      while (r.hasReady()) {
        const rd: Ready = r.ready();
        this.trace.push(`${id} ${JSON.stringify(rd)}`);
        this.inbox.push(...rd.messages);
        r.advance(rd);
      }
    }
  }
}

function run(seed: number, steps: number): { a: Copy; b: Copy } {
  const prng = new Prng(seed);
  const a = new Copy(false);
  const b = new Copy(true);
  const both = (fn: (c: Copy) => void): void => {
    fn(a);
    fn(b);
  };
  for (let step = 0; step < steps; step++) {
    const roll = prng.next();
    const id = [...IDS, LEARNER][prng.int(0, 4)]!;
    if (roll < 0.45) {
      // Mostly long catch-ups (a coarse tick timer), sometimes single ticks.
      const n = prng.chance(0.3) ? 1 : prng.int(1, 40);
      expect(b.tick(id, n)).toEqual(a.tick(id, n));
    } else if (roll < 0.8) {
      // Deliver what is in flight, losing some (elections, probes, snapshot retries).
      const lossRate = prng.chance(0.5) ? 0 : 0.3;
      const msgs = a.inbox.splice(0);
      expect(b.inbox.splice(0)).toEqual(msgs);
      for (const m of msgs) {
        if (lossRate > 0 && prng.chance(lossRate)) continue;
        both((c) => c.nodes.get(m.to)!.step(structuredClone(m)));
      }
    } else if (roll < 0.9) {
      both((c) => {
        const r = c.nodes.get(id)!;
        if (r.role !== 'leader') return;
        try {
          r.propose(`cmd-${step}`);
        } catch (e) {
          c.trace.push(`${id} refused ${(e as Error).message}`); // a transfer in progress
        }
      });
    } else if (roll < 0.95) {
      const to = IDS[prng.int(0, 3)]!;
      both((c) => {
        const r = c.nodes.get(id)!;
        if (r.role === 'leader') r.transferLeadership(to);
      });
    } else {
      // Compact the applied log: a lagging member then needs a snapshot (snapshot progress).
      both((c) => {
        const r = c.nodes.get(id)!;
        if (r.log.applied > r.log.snapshotIndex) r.compact(`state@${r.log.applied}`);
      });
    }
    both((c) => c.drain());
    for (const nid of [...IDS, LEARNER]) expect(b.nodes.get(nid)!.status(), `seed ${seed} step ${step} ${nid}`).toEqual(a.nodes.get(nid)!.status());
    expect(b.trace.length).toBe(a.trace.length);
  }
  expect(b.trace).toEqual(a.trace);
  return { a, b };
}

describe('Raft.tickMany', () => {
  it('is n single ticks, over random histories with elections, loss, transfers and snapshots', () => {
    let leaders = 0;
    let snapshotsSent = 0;
    for (let seed = 1; seed <= 40; seed++) {
      const { a } = run(seed, 400);
      leaders += a.trace.filter((t) => t.includes('"role":"leader"')).length;
      snapshotsSent += a.trace.filter((t) => t.includes('"type":"MsgSnap"')).length;
    }
    // The histories did exercise what the quiet-span rule must respect.
    expect(leaders).toBeGreaterThan(40);
    expect(snapshotsSent).toBeGreaterThan(0);
  });

  it('counts a long quiet span in one step and stops right after the tick that starts a campaign', () => {
    const r = new Raft(
      { ...DEFAULT_CONFIG, electionTicksMin: 10, electionTicksMax: 11, heartbeatTicks: 3, id: 'a', seed: 1 },
      { hardState: { term: 1, vote: null, commit: 0 }, snapshot: null, entries: [], initialConf: { voters: ['a', 'b', 'c'], learners: [] } },
    );
    // The timeout is 10 ticks: the 10th tick campaigns (pre-vote), and tickMany stops there.
    expect(r.tickMany(100)).toBe(10);
    expect(r.role).toBe('preCandidate');
  });
});
