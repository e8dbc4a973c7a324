// In a real browser (Chromium): a page of another origin (another loopback port) points an
// <img> at the dashboard's event stream and fetches its API in no-cors mode. None of it may
// reach the dashboard: no stream is attached (it would keep the daemon up and cost a snapshot
// per tick for as long as that page stays open).
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listenRoutes, type HttpListener } from '../../src/daemon/http-listener.js';
import { dashboardRoutes, type Dashboard } from '../../src/server/dashboard/routes.js';
import { spawnAgent } from '../../src/service/agents.js';
import { Coordinator } from '../../src/service/coordinator.js';

const CHROMIUM = process.env.CONCORD_CHROMIUM || '/usr/bin/chromium';
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-review-xsite-'));
let coord: Coordinator;
let dash: Dashboard;
let web: HttpListener;
let evil: http.Server;
let evilPort = 0;
let browser: Browser;
const seen: string[] = [];

beforeAll(async () => {
  coord = new Coordinator({ dataDir: dir, durability: 'off' });
  const swarm = coord.init({ name: 'default', max_agents: 1, bootstrap_expect: 1 }).swarm;
  await spawnAgent(swarm, {});
  dash = dashboardRoutes(coord, { bindHost: '127.0.0.1' });
  web = await listenRoutes(
    [
      async (req) => {
        if (req.url?.startsWith('/dashboard/api/')) seen.push(`${req.url} ${req.headers['sec-fetch-site'] ?? '-'}`);
        return false;
      },
      dash.routes,
    ],
    { host: '127.0.0.1', port: 0 },
  );
  const target = web.base;
  evil = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' }).end(`<!doctype html><body>
      <img src="${target}/dashboard/api/events">
      <script>
        fetch('${target}/dashboard/api/events', { mode: 'no-cors' }).catch(() => {});
        fetch('${target}/dashboard/api/memory', { mode: 'no-cors' }).catch(() => {});
      </script></body>`);
  });
  await new Promise<void>((r) => evil.listen(0, '127.0.0.1', () => r()));
  evilPort = (evil.address() as { port: number }).port;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
}, 120_000);
afterAll(async () => {
  await browser?.close();
  evil?.close();
  dash?.hub.close();
  await web?.close();
  coord?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('the dashboard against a page of another origin', () => {
  it('attaches no stream for it and serves it nothing', async () => {
    const page = await browser.newPage();
    await page.goto(`http://localhost:${evilPort}/`);
    // The requests were made (the browser labels them), and refused.
    const t0 = Date.now();
    while (seen.length < 2 && Date.now() - t0 < 20_000) await new Promise((r) => setTimeout(r, 100));
    expect(seen.length).toBeGreaterThanOrEqual(2);
    let most = 0;
    for (let i = 0; i < 20; i++) {
      most = Math.max(most, dash.hub.count());
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(most).toBe(0);
    await page.close();
  }, 60_000);
});
