// A 3-member LocalCluster of CoordinationMachines on SQLite files in a temp directory, on a
// virtual clock, whose files a test can close, edit and reopen between a member's crash and
// restart (what a process restart does). The caller removes `dir` (removeDirs in afterEach).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LocalCluster } from '../../src/host/local-cluster.js';
import { CoordinationMachine, type MachineEvents } from '../../src/machine/coordination-machine.js';
import { SqliteStorage } from '../../src/storage/sqlite-storage.js';
import type { LogStorage } from '../../src/storage/types.js';
import { Prng } from '../../src/util/prng.js';
import { VirtualClock } from '../../src/util/virtual-clock.js';

export function sqliteCluster(o: { tag: string; seed: number; machine?: MachineEvents }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `concord-${o.tag}-`));
  const clock = new VirtualClock();
  const files = new Map<string, SqliteStorage>();
  const fileOf = (id: string) => path.join(dir, `${id}.db`);
  const open = (id: string) => files.set(id, SqliteStorage.open(fileOf(id), { durability: 'off' }));
  const machines = new Map<string, CoordinationMachine>();
  const cluster = new LocalCluster({
    ids: ['n1', 'n2', 'n3'],
    clock,
    prng: new Prng(o.seed),
    storageFor: (id) => {
      open(id);
      // Forwards to the file currently open for this member.
      return new Proxy({} as LogStorage, {
        get: (_, p) => {
          const t = files.get(id) as unknown as Record<string | symbol, unknown>;
          const v = t[p];
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
        },
      });
    },
    machineFor: (id) => {
      const m = new CoordinationMachine(o.machine);
      machines.set(id, m);
      return m;
    },
    tickMs: 10,
    compactionThreshold: 100,
    requestTimeoutMs: 5000,
  });
  /** Virtual time in 10 ms steps, letting promise callbacks run between them. */
  const run = async (ms: number) => {
    for (let t = 0; t < ms; t += 10) {
      clock.runFor(10);
      await new Promise<void>((r) => setImmediate(r));
    }
  };
  return { dir, clock, cluster, files, fileOf, open, machines, run };
}
