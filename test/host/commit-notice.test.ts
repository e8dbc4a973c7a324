// NodeHost commitNoticeDelayMs (cluster mode): a leader holds an append that carries only a new
// commit index, and drops it when the next write's append (which carries the commit too) goes
// first. At one write in flight that removes a message, a follower Ready and an answer per
// follower per write; followers still learn every commit within the delay when writes stop.
// VirtualClock and an in-process network with a fixed hop: runs are deterministic.

import { describe, expect, it } from 'vitest';
import { LocalCluster } from '../../src/host/local-cluster.js';
import type { NodeHost } from '../../src/host/node-host.js';
import type { Message, NodeId } from '../../src/raft/types.js';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import { Prng } from '../../src/util/prng.js';
import { VirtualClock } from '../../src/util/virtual-clock.js';
import { electLeader as elect, RecordingMachine } from '../helpers/sim-cluster.js';
import { commitNoticeDelayFromEnv } from '../../src/swarm/swarm.js';

const HOP_MS = 1;
// Heartbeats every 5 ticks of 10 ms: a follower that learns a commit within 10 ms after the
// last write learned it from the held notice, not from a heartbeat.
const HEARTBEAT_MS = 50;

function setup(commitNoticeDelayMs: number) {
  const clock = new VirtualClock();
  const machines = new Map<NodeId, RecordingMachine>();
  const cluster = new LocalCluster({
    ids: ['a', 'b', 'c'],
    clock,
    prng: new Prng(11),
    storageFor: () => new MemoryStorage(),
    machineFor: (id) => {
      const m = new RecordingMachine();
      machines.set(id, m);
      return m;
    },
    tickMs: 10,
    raft: { heartbeatTicks: HEARTBEAT_MS / 10 },
    serializeMessages: false,
    commitNoticeDelayMs,
  });
  cluster.network.setGlobalFaults({ delayMs: { min: HOP_MS, max: HOP_MS } });
  const sent: Message[] = [];
  const route = cluster.network.route.bind(cluster.network);
  cluster.network.route = (m: Message, senderClosed: boolean) => {
    sent.push(m);
    route(m, senderClosed);
  };
  return { clock, cluster, machines, sent };
}

/** One write at a time, each proposed as soon as the previous one is answered. */
async function writeOneByOne(clock: VirtualClock, leader: NodeHost, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    let done = false;
    void leader.propose(`w${i}`).then(() => (done = true));
    for (let t = 0; t < 200 && !done; t++) {
      clock.runFor(0.25);
      await Promise.resolve();
    }
    expect(done, `write ${i} answered`).toBe(true);
  }
}

const commitOnly = (m: Message): boolean => m.type === 'MsgApp' && m.entries.length === 0;

describe('NodeHost commitNoticeDelayMs', () => {
  it('sent at once (delay 0): every write costs each follower a commit-only append', async () => {
    const { clock, cluster, sent } = setup(0);
    const leader = await elect(clock, cluster);
    sent.length = 0;
    await writeOneByOne(clock, leader, 20);
    const notices = sent.filter((m) => m.from === leader.id && commitOnly(m)).length;
    expect(notices).toBeGreaterThanOrEqual(2 * 20);
    cluster.close();
  });

  it('held (delay 5 ms): the next write carries the commit; followers apply everything within the delay once writes stop', async () => {
    const { clock, cluster, machines, sent } = setup(5);
    const leader = await elect(clock, cluster);
    sent.length = 0;
    await writeOneByOne(clock, leader, 20);
    // The writes' appends carried every commit but the last write's.
    const during = sent.filter((m) => m.from === leader.id && commitOnly(m)).length;
    expect(during).toBeLessThanOrEqual(2);
    const acks = sent.filter((m) => m.type === 'MsgAppResp' && m.to === leader.id).length;
    expect(acks).toBeLessThan(2 * 20 + 4);
    // Writes stop: the held notice leaves after 5 ms, well before the next heartbeat.
    clock.runFor(5 + 3 * HOP_MS);
    await Promise.resolve();
    for (const [id, m] of machines) expect(m.applied.map((a) => a.data).filter((d) => d.startsWith('w')), id).toEqual(Array.from({ length: 20 }, (_, i) => `w${i}`));
    const after = sent.filter((m) => m.from === leader.id && commitOnly(m)).length;
    expect(after).toBe(during + 2);
    cluster.close();
  });
});

describe('CONCORD_COMMIT_NOTICE_DELAY_MS', () => {
  it('defaults to 0 (sent at once) in cluster mode, accepts 0-50, and names the accepted range otherwise', () => {
    expect(commitNoticeDelayFromEnv({})).toBe(0);
    expect(commitNoticeDelayFromEnv({ CONCORD_COMMIT_NOTICE_DELAY_MS: '0' })).toBe(0);
    expect(commitNoticeDelayFromEnv({ CONCORD_COMMIT_NOTICE_DELAY_MS: '5' })).toBe(5);
    for (const bad of ['-1', 'fast', '51']) {
      expect(() => commitNoticeDelayFromEnv({ CONCORD_COMMIT_NOTICE_DELAY_MS: bad })).toThrow(/CONCORD_COMMIT_NOTICE_DELAY_MS=.*accepted: a number of ms from 0 to 50/);
    }
  });
});
