// A member that led and learns that another member leads tells its transport to abandon the
// snapshot transfers it started (the new leader sends its own; streaming a whole stale state
// to a follower doubles the follower's memory). Not on every step-down: a leader re-elected
// after one continues its transfers.

import { afterEach, describe, expect, it } from 'vitest';
import { InProcNetwork } from '../../src/host/inproc-network.js';
import { NodeHost, type StateMachine } from '../../src/host/node-host.js';
import type { Transport } from '../../src/host/transport.js';
import type { Entry, NodeId } from '../../src/raft/types.js';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import { RealClock } from '../../src/util/clock.js';
import { Prng } from '../../src/util/prng.js';

class ListMachine implements StateMachine {
  items: string[] = [];
  apply(e: Entry): unknown {
    if (e.type === 'normal') this.items.push(e.data);
    return this.items.length;
  }
  snapshot(): string {
    return JSON.stringify(this.items);
  }
  restore(data: string | readonly string[]): void {
    this.items = typeof data === 'string' && data ? JSON.parse(data) : [];
  }
}

const hosts: NodeHost[] = [];
afterEach(() => {
  for (const h of hosts.splice(0)) h.stop();
});

async function waitFor(pred: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('NodeHost abandons its snapshot transfers when another member leads', () => {
  it('the old leader abandons once it learns the new leader; members that never led do not', async () => {
    const clock = new RealClock();
    const net = new InProcNetwork({ clock, prng: new Prng(7) });
    const ids: NodeId[] = ['a', 'b', 'c'];
    const abandoned = new Map<NodeId, number>(ids.map((id) => [id, 0]));
    const byId = new Map<NodeId, NodeHost>();
    for (const [i, id] of ids.entries()) {
      const ep = net.endpoint(id);
      const transport: Transport = {
        send: (m) => ep.send(m),
        onMessage: (h) => ep.onMessage(h),
        close: () => ep.close(),
        abandonSnapshots: () => void abandoned.set(id, abandoned.get(id)! + 1),
      };
      const h = new NodeHost({ id, clock, transport, storage: new MemoryStorage(), machine: new ListMachine(), initialConf: { voters: ids, learners: [] }, seed: i + 1, tickMs: 10 });
      hosts.push(h);
      byId.set(id, h);
    }
    for (const h of hosts) h.start();
    const leader = (): NodeHost | undefined => hosts.find((h) => h.isRunning && h.status().role === 'leader');
    await waitFor(() => leader() !== undefined, 'a leader');
    const first = leader()!;
    await first.propose('x', 5_000);
    expect([...abandoned.values()]).toEqual([0, 0, 0]);
    const next = ids.find((id) => id !== first.id)!;
    first.transferLeadership(next);
    await waitFor(() => leader()?.id === next && first.status().leader === next, `${next} to lead, as ${first.id} knows`);
    await waitFor(() => abandoned.get(first.id) === 1, `${first.id} to abandon its transfers`);
    // The new leader, and the member that never led, abandoned nothing.
    for (const id of ids) if (id !== first.id) expect(abandoned.get(id)).toBe(0);
  });
});
