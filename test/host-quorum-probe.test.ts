// NodeHost.probeQuorum (consensus_verify_quorum) and heartbeat round trips, on a VirtualClock:
// link delays are exact virtual milliseconds, so the measured round trips are known values.

import { describe, expect, it } from 'vitest';
import type { NodeHost } from '../src/host/node-host.js';
import type { QuorumProbeResult } from '../src/host/quorum-probe.js';
import { simCluster } from './helpers/sim-cluster.js';

function started(n: number, seed: number) {
  const sc = simCluster({ n, seed });
  sc.cluster.startAll();
  sc.clock.runFor(1000);
  const leader = sc.cluster.leader();
  if (!leader) throw new Error('no leader elected');
  return { ...sc, leader, followers: sc.ids.filter((id) => id !== leader.id) };
}

/** Run the virtual clock until the probe settles. */
async function probe(clock: { runFor(ms: number): number }, leader: NodeHost, timeoutMs: number): Promise<QuorumProbeResult> {
  let out: QuorumProbeResult | Error | undefined;
  leader.probeQuorum(timeoutMs).then(
    (r) => (out = r),
    (e: Error) => (out = e),
  );
  for (let i = 0; i < 100 && out === undefined; i++) {
    clock.runFor(timeoutMs / 10);
    await Promise.resolve();
  }
  if (out === undefined) throw new Error('probe never settled');
  if (out instanceof Error) throw out;
  return out;
}

describe('quorum probe: a ReadIndex round from the leader', () => {
  it('every voter answers with its measured round trip; the round ends when all answered', async () => {
    const { clock, cluster, leader, followers } = started(3, 11);
    const [slow, fast] = followers as [string, string];
    // One way only: the answer travels back undelayed, so the round trip is the delay.
    cluster.network.setLinkFaults(leader.id, slow, { delayMs: { min: 40, max: 40 } });
    clock.runFor(500);
    const r = await probe(clock, leader, 1000);
    expect(r.quorumConfirmed).toBe(true);
    expect(r.answered.get(leader.id)).toBe(0);
    expect(r.answered.get(fast)).toBe(0);
    expect(r.answered.get(slow)).toBe(40);
    expect(r.elapsedMs).toBeLessThan(1000);
  });

  it('a voter whose messages are lost (the fault table still says connected) does not answer', async () => {
    const { clock, cluster, leader, followers } = started(3, 12);
    const [victim, other] = followers as [string, string];
    cluster.network.setLinkFaults(leader.id, victim, { lossRate: 1 });
    expect(cluster.network.connected(leader.id, victim)).toBe(true);
    const r = await probe(clock, leader, 300);
    expect(r.answered.has(victim)).toBe(false);
    expect(r.answered.get(other)).toBeGreaterThanOrEqual(0);
    expect(r.quorumConfirmed).toBe(true);
    expect(r.elapsedMs).toBe(300);
  });

  it('a partitioned voter does not answer; without a majority the round is not confirmed', async () => {
    const { clock, cluster, leader, followers } = started(5, 13);
    const [a, b, c, d] = followers as [string, string, string, string];
    cluster.network.isolate(a);
    let r = await probe(clock, leader, 200);
    expect([...r.answered.keys()].sort()).toEqual([leader.id, b, c, d].sort());
    expect(r.quorumConfirmed).toBe(true);
    // Three of five silent: drop the leader's traffic to them (check-quorum steps it down
    // after an election timeout; the round is shorter than that).
    for (const v of [b, c]) cluster.network.setLinkFaults(leader.id, v, { lossRate: 1 });
    r = await probe(clock, leader, 100);
    expect([...r.answered.keys()].sort()).toEqual([leader.id, d].sort());
    expect(r.quorumConfirmed).toBe(false);
  });

  it('a single voter confirms its own round', async () => {
    const { clock, leader } = started(1, 14);
    const r = await probe(clock, leader, 100);
    expect(r.quorumConfirmed).toBe(true);
    expect([...r.answered]).toEqual([[leader.id, 0]]);
  });
});

describe('heartbeat round trips are matched to the heartbeat answered', () => {
  it('a round trip longer than the heartbeat interval is measured in full', () => {
    const { clock, cluster, leader, followers } = started(3, 21);
    const [slow] = followers as [string];
    // Heartbeats go every 50 ms (5 ticks of 10 ms); this link takes 120 ms one way. Matched
    // against the latest heartbeat sent, the answer would read ~20 ms.
    cluster.network.setLinkFaults(leader.id, slow, { delayMs: { min: 120, max: 120 } });
    clock.runFor(2000);
    expect(cluster.leader()).toBe(leader);
    const rtt = leader.roundTrips().get(slow);
    expect(rtt).toBeDefined();
    expect(rtt!.samples).toBeGreaterThan(10);
    expect(rtt!.lastMs).toBe(120);
    // Samples from before the delay was set are shorter; none may be shorter than reality
    // once it applies, and the most recent ones are exact.
    expect(rtt!.maxMs).toBe(120);
  });
});
