// Helpers for the real-clock service tests: temporary data directories, coordinators with
// spawned agents, waiting on conditions.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnAgent } from '../../src/service/agents.js';
import { Coordinator } from '../../src/service/coordinator.js';
import type { Swarm } from '../../src/service/swarm.js';
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
