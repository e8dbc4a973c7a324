import { LocalCluster } from '../../src/host/local-cluster.js';
import type { NodeHost, StateMachine } from '../../src/host/node-host.js';
import type { Entry, NodeId, RaftConfig } from '../../src/raft/types.js';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import { Prng } from '../../src/util/prng.js';
import { VirtualClock } from '../../src/util/virtual-clock.js';

/** Records every applied normal entry in order; its snapshot is that list. */
export class RecordingMachine implements StateMachine {
  applied: Array<{ index: number; term: number; data: string }> = [];
  apply(e: Entry): unknown {
    if (e.type === 'normal') this.applied.push({ index: e.index, term: e.term, data: e.data });
    return e.data;
  }
  snapshot(): string {
    return JSON.stringify(this.applied);
  }
  restore(data: string): void {
    this.applied = data ? JSON.parse(data) : [];
  }
}

export interface SimClusterOptions {
  n: number;
  seed: number;
  raft?: Partial<Omit<RaftConfig, 'id' | 'seed'>>;
  compactionThreshold?: number;
}

export function simCluster(o: SimClusterOptions) {
  const clock = new VirtualClock();
  const prng = new Prng(o.seed);
  const ids: NodeId[] = Array.from({ length: o.n }, (_, i) => `n${i + 1}`);
  const storages = new Map<NodeId, MemoryStorage>();
  const cluster = new LocalCluster({
    ids,
    clock,
    prng,
    storageFor: (id) => {
      const s = new MemoryStorage();
      storages.set(id, s);
      return s;
    },
    machineFor: () => new RecordingMachine(),
    raft: o.raft,
    compactionThreshold: o.compactionThreshold ?? 1000,
  });
  return { clock, prng, ids, cluster, storages };
}

/**
 * Starts every member and runs virtual time until one leads, then 100 ms more (its first-term
 * no-op commits). Throws when no leader emerges within 3 s of virtual time.
 */
export async function electLeader(clock: VirtualClock, cluster: LocalCluster): Promise<NodeHost> {
  cluster.startAll();
  for (let i = 0; i < 300 && !cluster.leader(); i++) clock.runFor(10);
  const leader = cluster.leader();
  if (!leader) throw new Error('no leader within 3 s of virtual time');
  clock.runFor(100);
  await Promise.resolve();
  return leader;
}
