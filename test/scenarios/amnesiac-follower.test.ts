// A follower that lost entries it had acknowledged (its disk wiped, restarted under the same
// id) refuses every append at or below the leader's recorded match. The leader cannot repair
// that (match never goes back), and answering each refusal with the same probe made the two
// exchange messages forever, at link speed, every duplicated copy starting another exchange:
// the simulator's seed 5 (amnesiacRejoin, 80 steps) spun on this once snapshots were chunked.

import { describe, expect, it } from 'vitest';
import type { Message } from '../../src/raft/types.js';
import { CoreNet, newCore } from '../helpers/scenario.js';

const THREE = ['s1', 's2', 's3'];

describe('a leader facing a follower that lost acknowledged entries', () => {
  it('probes it once per heartbeat response, not in an endless refusal/resend exchange', () => {
    const cfg = { preVote: false, checkQuorum: false, maxEntriesPerMsg: 64 };
    const net = new CoreNet(THREE.map((id, i) => newCore({ id, voters: THREE, cfg: { ...cfg, seed: i + 1 } })));
    const s1 = net.node('s1');
    s1.campaign();
    net.settle();
    expect(s1.role).toBe('leader');
    s1.propose('a');
    net.settle();
    const match = s1.log.lastIndex();
    const s3Match = (): number | undefined => s1.status().peers.find((p) => p.id === 's3')?.match;
    expect(s3Match()).toBe(match);

    // An append to s3 goes unanswered (its answer is lost), so s1 has one in flight past match.
    net.intercept = (m: Message) => (m.from === 's3' ? null : m);
    s1.propose('b');
    net.settle();
    net.intercept = (m) => m;

    // s3 comes back with an empty log under its old id (term kept, log gone).
    net.nodes.set('s3', newCore({ id: 's3', voters: THREE, term: s1.term, cfg: { ...cfg, seed: 3 } }));
    s1.propose('c');
    // Before the fix settle() threw "did not quiesce": s1 resent the append at `match` for
    // every refusal of it.
    const delivered = net.settle();
    expect(delivered).toBeLessThan(50);
    const refusals = (): number => net.delivered.filter((m) => m.from === 's3' && m.type === 'MsgAppResp' && m.reject).length;
    const before = refusals();
    expect(before).toBeGreaterThan(0);

    // Each heartbeat round probes again, once: bounded traffic, and the others still commit.
    net.tick(20);
    expect(refusals() - before).toBeLessThanOrEqual(20);
    expect(s1.role).toBe('leader');
    expect(s3Match()).toBe(match);
    expect(net.node('s2').log.committed).toBe(s1.log.lastIndex());
  });
});
