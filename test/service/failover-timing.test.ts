// The failover figures add up: detection (the winner's last message from the crashed leader to
// its campaign) + election (campaign to win) <= failover (last message to the first entry of
// the new term applied), all measured on the new leader's clock; the replicated election
// record carries all three (failover_ms added by the leader once it is measured).

import { describe, expect, it } from 'vitest';
import { terminateAgent } from '../../src/service/agents.js';
import { electionHistory, leaderInfo } from '../../src/service/consensus.js';
import { swarmWithAgents, testResources, waitUntil } from './service-util.js';

const res = testResources();

describe('failover timing', () => {
  it('detection_ms + election_duration_ms <= failover_ms after a leader crash', async () => {
    const { coordinator, swarm } = await swarmWithAgents(res.dir('failover-timing'), { agents: 3 });
    res.keep(coordinator);
    const first = leaderInfo(swarm);
    expect(first.detection_ms).toBeNull(); // the first election had no previous leader
    expect(first.failover_ms).toBeNull();
    expect(first.timing_note).toMatch(/not measurable/); // null, with the reason
    const old = first.leader_id as string;
    await terminateAgent(swarm, old, 'crash');
    await waitUntil(() => {
      const l = swarm.cluster.leader();
      return !!l && l.id !== old && l.leadership()?.failoverMs !== null;
    }, 10_000, 'a new leader that applied an entry of its term');
    const info = leaderInfo(swarm);
    const detection = info.detection_ms as number;
    const election = info.election_duration_ms as number;
    const failover = info.failover_ms as number;
    expect(info.timing_note).toBeUndefined();
    // Detection is an election timeout (150-300 ms by default) after the last heartbeat.
    expect(detection).toBeGreaterThanOrEqual(100);
    expect(election).toBeGreaterThanOrEqual(0);
    expect(failover).toBeGreaterThanOrEqual(detection + election - 2); // rounding of three figures
    // The record is written at the win; the leader adds failover_ms once it is measured.
    const latest = () => (electionHistory(swarm, 1).elections as Array<Record<string, unknown>>)[0];
    await waitUntil(() => latest()?.term === info.term && typeof latest()?.failover_ms === 'number', 5_000, 'the election record with failover_ms');
    const rec = latest()!;
    expect(rec.detection_ms).toBe(detection);
    expect(rec.failover_ms).toBe(failover);
    expect(rec.timing_note).toBeUndefined();
    expect(rec.cause).toBe('leader crash');
    // The same figures on every replica (it went through the log), in the system key too.
    for (const id of swarm.activeMembers().filter((a) => a !== old)) {
      await waitUntil(() => swarm.machines.get(id)!.elections.at(-1)?.failover_ms === failover, 5_000, `${id} applied the timing`);
    }
    const firstRec = (electionHistory(swarm, 10).elections as Array<Record<string, unknown>>).at(-1)!;
    expect(firstRec).toMatchObject({ detection_ms: null, failover_ms: null });
    expect(firstRec.timing_note).toMatch(/not measurable/);
  });
});
