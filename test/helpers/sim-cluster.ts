import { LocalCluster } from '../../src/host/local-cluster.js';
import type { StateMachine } from '../../src/host/node-host.js';
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
