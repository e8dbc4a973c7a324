// Cluster mode's backend over real TCP on loopback: when the leader's process goes away (its
// sockets close, its port refuses connections) its followers redial at once, are refused, and
// end the leader's lease (Raft.leaderUnreachable): the new leader is elected within the
// random spread of the election timeout instead of after its minimum.

import { afterEach, describe, expect, it } from 'vitest';
import { MemberCluster } from '../../src/cluster/member-cluster.js';
import type { StateMachine } from '../../src/host/node-host.js';
import type { Entry, NodeId } from '../../src/raft/types.js';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import type { PeerAddress } from '../../src/transport/tcp-transport.js';
import { RealClock } from '../../src/util/clock.js';
import { freePorts } from './procs.js';

class CountMachine implements StateMachine {
  n = 0;
  apply(_e: Entry): unknown {
    return ++this.n;
  }
  snapshot(): string {
    return String(this.n);
  }
  restore(data: string): void {
    this.n = Number(data || 0);
  }
}

const SECRET = Buffer.from('leader-gone-test-secret-0123456789');
const TICK_MS = 2;
// A 2 s minimum election timeout with a 100 ms random spread: without the refusal no follower
// may campaign until 2 s after it last heard the leader, so the bound below (on the winner's
// detection time) has teeth and still leaves more than a second for a loaded machine.
const RAFT = { electionTicksMin: 1000, electionTicksMax: 1050, heartbeatTicks: 25 };
const BOUND_MS = 1500;

const open: MemberCluster[] = [];
afterEach(() => {
  for (const c of open.splice(0)) c.close();
});

async function startCluster(ids: NodeId[]): Promise<Map<NodeId, MemberCluster>> {
  const ports = await freePorts(ids.length);
  const peers: Record<NodeId, PeerAddress> = Object.fromEntries(ids.map((id, i) => [id, { host: '127.0.0.1', port: ports[i] as number }]));
  const out = new Map<NodeId, MemberCluster>();
  for (const [i, id] of ids.entries()) {
    const c = new MemberCluster({
      id,
      peers: { ...peers },
      bootstrapVoters: ids,
      secret: SECRET,
      storage: new MemoryStorage(),
      machineFor: () => new CountMachine(),
      clock: new RealClock(),
      seed: i + 1,
      tickMs: TICK_MS,
      tickTimerMs: 10,
      raft: RAFT,
      compactionThreshold: 1000,
      compactionLogToSnapshotRatio: 1,
    });
    open.push(c);
    await c.listen();
    out.set(id, c);
  }
  for (const [id, c] of out) c.start(id);
  return out;
}

async function waitFor<T>(f: () => T | null | undefined, what: string, timeoutMs: number): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = f();
    if (v !== null && v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

describe('leader gone over TCP', () => {
  it("a crashed leader's refused port ends its followers' lease: a new leader well before the minimum election timeout", async () => {
    const ids = ['a', 'b', 'c'];
    const cs = await startCluster(ids);
    const leaderOf = (among: NodeId[]): NodeId | null => {
      const l = among.find((id) => cs.get(id)!.leader() !== undefined) ?? null;
      // Agreed: every other member follows it.
      return l !== null && among.every((id) => id === l || cs.get(id)!.remoteLeader() === l) ? l : null;
    };
    const old = await waitFor(() => leaderOf(ids), 'the first leader', 20_000);
    const oldTerm = cs.get(old)!.local()!.core.term;
    // Let it commit its term's first entry and heartbeat a little.
    await new Promise((r) => setTimeout(r, 200));

    cs.get(old)!.close(); // its sockets close and its port refuses: what a killed process leaves
    const rest = ids.filter((id) => id !== old);
    const next = await waitFor(() => leaderOf(rest), 'a new leader', 20_000);
    expect(next).not.toBe(old);
    expect(cs.get(next)!.local()!.core.term).toBeGreaterThan(oldTerm);
    // The winner's own clock, from the last message it had from the old leader to the start of
    // its campaign: without the refusal at least the 2 s minimum election timeout.
    const detectionMs = cs.get(next)!.local()!.leadership()?.detectionMs;
    expect(detectionMs).not.toBeNull();
    expect(detectionMs).toBeLessThan(BOUND_MS);
  }, 60_000);
});
