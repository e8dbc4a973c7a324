// The dashboard shows an agent waiting for bootstrap_expect as waiting, not crashed: it never
// started (agent_list says waiting_for_bootstrap), and "Restart" on it is refused.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { allSwarmViews } from '../../src/server/dashboard/snapshot.js';
import { listAgents, spawnAgent } from '../../src/service/agents.js';
import { Coordinator } from '../../src/service/coordinator.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-review-wait-'));
let c: Coordinator | null = null;
afterAll(() => {
  c?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('dashboard view of a swarm waiting for bootstrap', () => {
  it('reports the waiting agent as waiting, as agent_list does', async () => {
    c = new Coordinator({ dataDir: dir, durability: 'off' });
    const s = c.init({ name: 'w', max_agents: 5, bootstrap_expect: 3 }).swarm;
    await spawnAgent(s, { name: 'a' });
    expect(listAgents(s).map((x) => x.status)).toEqual(['waiting_for_bootstrap']);
    const view = allSwarmViews(c).find((v) => v.name === 'w')!;
    expect('members' in view && view.members.map((m) => [m.id, m.status])).toEqual([['a', 'waiting']]);
  });
});
