// End to end with the Raft core in the loop: three NodeHosts over TcpTransport, one member
// stopped while the others write and compact, so it can only catch up from a snapshot larger
// than maxMessageBytes (small injected limits stand in for the 256 MiB default). Its
// connection is cut mid-transfer; the leader keeps resending the snapshot on its own timer.

import { afterEach, describe, expect, it } from 'vitest';
import { NodeHost, type StateMachine } from '../../src/host/node-host.js';
import type { Entry, NodeId } from '../../src/raft/types.js';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import type { TcpLimits } from '../../src/transport/limits.js';
import { TcpTransport, type PeerAddress } from '../../src/transport/tcp-transport.js';
import { RealClock } from '../../src/util/clock.js';
import { captureLog, FAST, SECRET, waitFor } from './helpers.js';

class ListMachine implements StateMachine {
  items: string[] = [];
  apply(e: Entry): unknown {
    if (e.type === 'normal') this.items.push(e.data);
    return this.items.length;
  }
  snapshot(): string {
    return JSON.stringify(this.items);
  }
  restore(data: string): void {
    this.items = data ? JSON.parse(data) : [];
  }
}

interface Proc {
  host: NodeHost;
  t: TcpTransport;
  machine: ListMachine;
}

const LIMITS: Partial<TcpLimits> = { ...FAST, chunkBytes: 16 << 10, maxMessageBytes: 256 << 10, snapshotWindowChunks: 2 };
const ids: NodeId[] = ['n1', 'n2', 'n3'];
const procs = new Map<NodeId, Proc>();
afterEach(() => {
  for (const p of procs.values()) {
    p.host.stop();
    p.t.close();
  }
  procs.clear();
});

async function startMember(id: NodeId, addrs: Map<NodeId, PeerAddress>, onProgress?: (peer: string, received: number, total: number) => void): Promise<Proc> {
  const t = new TcpTransport({ id, secret: SECRET, port: addrs.get(id)?.port ?? 0, limits: LIMITS, log: captureLog(), onSnapshotProgress: onProgress });
  addrs.set(id, await t.listen());
  const machine = new ListMachine();
  const host = new NodeHost({
    id,
    clock: new RealClock(),
    transport: t,
    storage: new MemoryStorage(),
    machine,
    initialConf: { voters: ids, learners: [] },
    seed: ids.indexOf(id) + 1,
    tickMs: 10,
    compactionThreshold: 20,
  });
  const p = { host, t, machine };
  procs.set(id, p);
  return p;
}

const leaderOf = (): Proc | undefined => [...procs.values()].find((p) => p.host.isRunning && p.host.status().role === 'leader');

describe('a lagging member catches up over TCP from a snapshot larger than maxMessageBytes', () => {
  it('installs it, resuming after its connection is cut mid-transfer', async () => {
    const addrs = new Map<NodeId, PeerAddress>();
    for (const id of ids) await startMember(id, addrs);
    for (const [id, p] of procs) for (const [peer, a] of addrs) if (peer !== id) p.t.setPeer(peer, a);
    for (const p of procs.values()) p.host.start();
    await waitFor(() => leaderOf() !== undefined, 'a leader', 10_000);

    // Stop one follower (a fresh process with empty storage comes back in its place).
    const lagId = [...procs.keys()].find((id) => id !== leaderOf()!.host.id)!;
    const gone = procs.get(lagId)!;
    gone.host.stop('crash');
    gone.t.close();
    procs.delete(lagId);

    // ~1.2 MB of state: over four times maxMessageBytes, some 75 parts of 16 KiB. Compaction (threshold
    // 20) leaves the returning member behind the leader's first log index.
    const leader = leaderOf()!;
    const value = 'v'.repeat(10_000);
    for (let i = 0; i < 120; i++) await leader.host.propose(`${i}:${value}`, 5000);
    const survivors = [...procs.values()];
    await waitFor(() => survivors.every((p) => p.machine.items.length === 120), 'replication to survivors', 10_000);
    expect(leader.host.status().snapshotIndex).toBeGreaterThan(0);

    let cut = false;
    let total = 0;
    const back = await startMember(lagId, addrs, (peer, received, t) => {
      total = t;
      if (!cut && received >= t / 2) {
        cut = true;
        back.t.disconnect(peer, 'test cuts the link mid-snapshot');
      }
    });
    for (const [peer, a] of addrs) if (peer !== lagId) back.t.setPeer(peer, a);
    back.host.start();
    await waitFor(() => back.machine.items.length === 120, 'lagging member catches up', 30_000);
    expect(back.machine.items).toEqual(leader.machine.items);
    expect(cut).toBe(true);
    expect(total).toBeGreaterThan(4 * (256 << 10));
    expect(back.host.metrics().snapshotsInstalled).toBeGreaterThanOrEqual(1);
    const sent = leader.t.stats().peers[lagId]!;
    expect(sent.snapshotResumes).toBeGreaterThanOrEqual(1);
    // Resumed, not restarted: the bytes it accepted stay well under two whole snapshots.
    expect(back.t.stats().peers[leader.host.id]!.snapshotBytesIn).toBeLessThan(1.5 * total);
  });
});
