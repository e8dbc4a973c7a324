// The dashboard's Crash button (agent_terminate mode crash) may take a swarm below its
// quorum: the answer must say so, with the measured counts, not "the others notice".
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runHttp } from '../../src/server/http.js';
import { spawnAgent } from '../../src/service/agents.js';
import type { Swarm } from '../../src/swarm/swarm.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-review-crash-'));
let srv: Awaited<ReturnType<typeof runHttp>>;
let swarm: Swarm;
let base = '';
beforeAll(async () => {
  srv = await runHttp({ host: '127.0.0.1', port: 0, dataDir: dir });
  swarm = srv.coordinator!.init({ name: 'default', max_agents: 3 }).swarm;
  for (let i = 0; i < 3; i++) await spawnAgent(swarm, {});
  base = `http://127.0.0.1:${srv.port}`;
}, 60_000);
afterAll(async () => {
  await srv.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;
const crash = async (agent_id: string): Promise<Json> =>
  (await fetch(`${base}/dashboard/api/actions/crash`, { method: 'POST', headers: { 'content-type': 'application/json', origin: base }, body: JSON.stringify({ agent_id }) })).json();

describe('crashing agents from the dashboard', () => {
  it('says when the swarm lost its quorum, and when nothing runs', async () => {
    const [a, b, c] = swarm.activeMembers();
    expect(await crash(a!)).toMatchObject({ status: 'crashed', agents_running: 2, quorum_size: 2, quorum_lost: false });
    const second = await crash(b!);
    expect(second).toMatchObject({ status: 'crashed', agents_running: 1, quorum_size: 2, quorum_lost: true });
    expect(second.note).toContain('lost its quorum (1 of 3 agents running, a majority is 2)');
    const last = await crash(c!);
    expect(last).toMatchObject({ agents_running: 0, quorum_lost: true });
    expect(last.note).toContain('no agent of swarm default is running');
  });
});
