// Open event streams are capped below the listener's connection limit: a local process that
// opens streams without end (the daemon's listener takes 256 connections) must not lock out
// /health, /metrics and the page's actions.
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listenRoutes, type HttpListener } from '../../src/daemon/http-listener.js';
import { MAX_STREAMS, dashboardRoutes, type Dashboard } from '../../src/server/dashboard/routes.js';
import { observabilityRoutes } from '../../src/server/observability.js';
import { spawnAgent } from '../../src/service/agents.js';
import { Coordinator } from '../../src/service/coordinator.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-review-cap-'));
let coord: Coordinator;
let dash: Dashboard;
let web: HttpListener;
const open: http.ClientRequest[] = [];

beforeAll(async () => {
  coord = new Coordinator({ dataDir: dir, durability: 'off' });
  const swarm = coord.init({ name: 'default', max_agents: 1, bootstrap_expect: 1 }).swarm;
  await spawnAgent(swarm, {});
  dash = dashboardRoutes(coord, { bindHost: '127.0.0.1' });
  // As the daemon mounts them (src/daemon/daemon.ts), on its listener (256 connections).
  web = await listenRoutes([dash.routes, observabilityRoutes(coord)], { host: '127.0.0.1', port: 0 });
}, 60_000);
afterAll(async () => {
  for (const r of open) r.destroy();
  dash.hub.close();
  await web.close();
  coord.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Open a stream and leave it open; resolves with the status. */
function stream(): Promise<number> {
  return new Promise((resolve, reject) => {
    const agent = new http.Agent({ keepAlive: false });
    const req = http.get(`${web.base}/dashboard/api/events`, { agent }, (res) => {
      resolve(res.statusCode!);
      res.resume();
    });
    req.on('error', reject);
    open.push(req);
  });
}

describe('dashboard event streams', () => {
  it(`are capped at ${MAX_STREAMS}; /health is still served with 300 stream attempts open`, async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 300; i++) statuses.push(await Promise.race([stream(), new Promise<number>((r) => setTimeout(() => r(-1), 2_000))]));
    expect(statuses.filter((s) => s === 200)).toHaveLength(MAX_STREAMS);
    expect(dash.hub.count()).toBe(MAX_STREAMS);
    const health = await Promise.race([fetch(`${web.base}/health`).then((r) => r.status), new Promise<number>((r) => setTimeout(() => r(-1), 5_000))]);
    expect(health).toBe(200);
  }, 120_000);
});
