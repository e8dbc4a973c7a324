// End to end: three NodeHosts (one per "process") over TcpTransport on loopback. A leader is
// elected, proposals commit everywhere, the cluster survives the leader's crash, the old
// leader rejoins on its old port and catches up (via a snapshot sent as chunks), and a
// client proposes through the member port.

import { afterEach, describe, expect, it } from 'vitest';
import { NodeHost, type StateMachine } from '../../src/host/node-host.js';
import type { Entry, NodeId } from '../../src/raft/types.js';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import { TcpClient } from '../../src/transport/tcp-client.js';
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
  storage: MemoryStorage;
}

const ids: NodeId[] = ['n1', 'n2', 'n3'];
const procs = new Map<NodeId, Proc>();
const cleanup: Array<() => void> = [];
afterEach(() => {
  for (const p of procs.values()) p.host.stop();
  procs.clear();
  for (const f of cleanup.splice(0)) f();
});

/** Start member `id` on `port` with `storage` (a restart reuses both). */
async function startMember(id: NodeId, port: number, storage: MemoryStorage, addrs: Map<NodeId, PeerAddress>): Promise<Proc> {
  // Small chunks so the catch-up snapshot (and large MsgApps) travel as SNAP_CHUNK frames.
  const t = new TcpTransport({ id, secret: SECRET, port, limits: { ...FAST, chunkBytes: 512 }, log: captureLog() });
  const addr = await t.listen();
  addrs.set(id, addr);
  const machine = new ListMachine();
  const host = new NodeHost({
    id,
    clock: new RealClock(),
    transport: t,
    storage,
    machine,
    initialConf: { voters: ids, learners: [] },
    seed: ids.indexOf(id) + 1,
    tickMs: 10,
    compactionThreshold: 50,
  });
  // The member serves clients by proposing their payloads.
  t.onClientRequest(async (req) => (await host.propose(JSON.stringify(req), 2000)).index);
  const p = { host, t, machine, storage };
  procs.set(id, p);
  return p;
}

const leaderOf = (): Proc | undefined => [...procs.values()].find((p) => p.host.isRunning && p.host.status().role === 'leader');

describe('NodeHost cluster over TCP', () => {
  it('elects a leader, commits, survives a leader crash and catches the old leader up', async () => {
    const addrs = new Map<NodeId, PeerAddress>();
    for (const id of ids) await startMember(id, 0, new MemoryStorage(), addrs);
    for (const [id, p] of procs) for (const [peer, a] of addrs) if (peer !== id) p.t.setPeer(peer, a);
    for (const p of procs.values()) p.host.start();

    await waitFor(() => leaderOf() !== undefined, 'a leader', 10_000);
    const l1 = leaderOf()!;
    for (let i = 0; i < 20; i++) await l1.host.propose(`a${i}`);
    await waitFor(() => [...procs.values()].every((p) => p.machine.items.length === 20), 'replication to all');

    // Crash the leader; the other two elect a new one and keep committing.
    const oldId = l1.host.id;
    const oldPort = addrs.get(oldId)!.port;
    l1.host.stop('crash');
    procs.delete(oldId);
    await waitFor(() => leaderOf() !== undefined, 'a new leader', 10_000);
    const l2 = leaderOf()!;
    expect(l2.host.id).not.toBe(oldId);
    // Enough entries for compaction (threshold 50): the returning node needs a snapshot.
    for (let i = 0; i < 80; i++) await l2.host.propose(`b${i}`);
    await waitFor(() => [...procs.values()].every((p) => p.machine.items.length === 100), 'replication to survivors');

    // A client proposes through a member port (any member; followers answer not_leader).
    const client = new TcpClient({ host: '127.0.0.1', port: addrs.get(l2.host.id)!.port, secret: SECRET, name: 'test', limits: FAST, log: captureLog() });
    cleanup.push(() => client.close());
    const index = await client.request({ op: 'from-client' });
    expect(typeof index).toBe('number');

    // The old leader restarts on its port with its storage and catches up.
    const back = await startMember(oldId, oldPort, l1.storage, addrs);
    for (const [peer, a] of addrs) if (peer !== oldId) back.t.setPeer(peer, a);
    back.host.start();
    await waitFor(() => back.machine.items.length === 101, 'restarted member catches up', 10_000);
    expect(back.machine.items).toEqual(l2.machine.items);
    expect(back.machine.items.at(-1)).toBe(JSON.stringify({ op: 'from-client' }));
    expect(back.host.metrics().snapshotsInstalled).toBeGreaterThanOrEqual(1);
    expect(Object.values(back.t.stats().peers).some((s) => s.chunkedIn > 0)).toBe(true);
  });
});
