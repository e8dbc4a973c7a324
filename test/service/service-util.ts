// Helpers for the real-clock service tests: temporary data directories, coordinators with
// spawned agents, waiting on conditions.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach } from 'vitest';
import { spawnAgent } from '../../src/service/agents.js';
import type { ClusterBackend } from '../../src/host/cluster-backend.js';
import { RequestTimeoutError, type NodeHost } from '../../src/host/node-host.js';
import { Coordinator } from '../../src/service/coordinator.js';
import { networkPartition } from '../../src/service/network.js';
import type { Swarm } from '../../src/swarm/swarm.js';
import type { Durability } from '../../src/storage/sqlite-storage.js';

export function tempDataDir(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `concord-${tag}-`));
}

export function removeDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

export async function swarmWithAgents(
  dataDir: string,
  o: { name?: string; agents: number; maxAgents?: number; durability?: Durability },
): Promise<{ coordinator: Coordinator; swarm: Swarm }> {
  const coordinator = new Coordinator({ dataDir, durability: o.durability ?? 'off' });
  const { swarm } = coordinator.init({ name: o.name ?? 'test', max_agents: o.maxAgents ?? o.agents });
  for (let i = 0; i < o.agents; i++) await spawnAgent(swarm, {});
  await swarm.waitForLeader(5_000);
  return { coordinator, swarm };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Poll `pred` (which may be async) until it holds; fail naming `what` after `timeoutMs`. */
export async function waitUntil(pred: () => boolean | Promise<boolean>, timeoutMs: number, what: string, everyMs = 10): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    if (await pred()) return performance.now() - t0;
    if (performance.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/**
 * A test file's temporary data directories and coordinators: coordinators are closed after
 * each test (closing twice is harmless), directories removed after the file.
 */
export function testResources(): { dir: (tag: string) => string; keep: (c: Coordinator) => Coordinator; coordinatorOn: (dataDir: string) => Coordinator } {
  const dirs: string[] = [];
  const open: Coordinator[] = [];
  afterEach(() => {
    for (const c of open.splice(0)) c.close();
  });
  afterAll(() => {
    for (const d of dirs) removeDir(d);
  });
  const keep = (c: Coordinator): Coordinator => {
    open.push(c);
    return c;
  };
  return {
    dir: (tag) => {
      const d = tempDataDir(tag);
      dirs.push(d);
      return d;
    },
    keep,
    coordinatorOn: (dataDir) => keep(new Coordinator({ dataDir, durability: 'full' })),
  };
}

/** Election timeouts well above any event-loop stall of a loaded test machine (consensus_config patch). */
export const CALM = { election_timeout_min: 1_000, election_timeout_max: 2_000, heartbeat_interval: 100 };

/**
 * The swarm's cluster, except that when `lose` is set the next proposal is committed and
 * applied but its answer is lost (the caller sees a timeout), after `whileLost` ran.
 */
export function lossy(inner: ClusterBackend, whileLost: () => Promise<void>): { backend: ClusterBackend; lose: { next: boolean } } {
  const lose = { next: false };
  const bind = <T extends object>(t: T, p: string | symbol): unknown => {
    const v = Reflect.get(t, p) as unknown;
    return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
  };
  const wrapHost = (h: NodeHost): NodeHost =>
    new Proxy(h, {
      get(t, p) {
        if (p !== 'propose') return bind(t, p);
        return (data: string, ms: number) => {
          const committed = t.propose(data, ms);
          if (!lose.next) return committed;
          lose.next = false;
          return committed.then(async () => {
            await whileLost();
            throw new RequestTimeoutError('proposal', ms);
          });
        };
      },
    });
  const backend = new Proxy(inner, {
    get(t, p) {
      if (p !== 'leader') return bind(t, p);
      return () => {
        const l = t.leader();
        return l ? wrapHost(l) : undefined;
      };
    },
  });
  return { backend, lose };
}

/** Leave `old` with one follower (a minority of 2 of 5) and wait for the majority to elect. */
export async function cutOff(swarm: Swarm, old: NodeHost, oldTerm: number): Promise<void> {
  const others = swarm.activeMembers().filter((id) => id !== old.id);
  await networkPartition(swarm, { groups: [[old.id, others[0]!], others.slice(1)] });
  await waitUntil(() => {
    const l = swarm.cluster.leader();
    return !!l && others.slice(1).includes(l.id) && l.core.term > oldTerm;
  }, 5_000, 'a new leader in the majority');
}
