// Stored XSS through the dashboard: text any MCP client can write (memory keys and values, an
// orchestration's task text) is rendered by src/server/dashboard/web/app.js. It must show as text and
// never run. Drives Debian's Chromium as test/dashboard/dashboard.test.ts does.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runHttp } from '../../src/server/http.js';
import { spawnAgent } from '../../src/service/agents.js';
import { memoryStore } from '../../src/service/memory.js';
import { orchestrate } from '../../src/service/tasks.js';

const CHROMIUM = process.env.CONCORD_CHROMIUM || '/usr/bin/chromium';
const PAYLOAD = `<img src=x onerror="window.__xss=(window.__xss||0)+1">"'&`;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-review-xss-'));
let srv: Awaited<ReturnType<typeof runHttp>>;
let browser: Browser;

beforeAll(async () => {
  srv = await runHttp({ host: '127.0.0.1', port: 0, dataDir: dir });
  const swarm = srv.coordinator!.init({ name: 'default', max_agents: 3 }).swarm;
  for (let i = 0; i < 3; i++) await spawnAgent(swarm, {});
  await memoryStore(swarm, { key: `k${PAYLOAD}`, value: { v: PAYLOAD } });
  await orchestrate(swarm, { task: `t${PAYLOAD}`, count: 3 });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
}, 120_000);
afterAll(async () => {
  await browser?.close();
  await srv.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('dashboard rendering of client-written text', () => {
  it('shows memory keys, values and task text as text, running none of it', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`http://127.0.0.1:${srv.port}/`);
    // String expressions: they run in the page (this file is compiled without the DOM types).
    const shows = (sel: string, text: string) => page.waitForFunction(`(document.querySelector(${JSON.stringify(sel)})?.textContent ?? '').includes(${JSON.stringify(text)})`, null, { timeout: 30_000 });
    await shows('#orchs', `t${PAYLOAD}`);
    await shows('#mem-keys', `k${PAYLOAD}`);
    await page.locator('#mem-keys li[data-key]', { hasText: `k${PAYLOAD}` }).click();
    // Wait for the value itself: the placeholder ("Select a key to read its value, version and
    // TTL.") already contains the word 'version'.
    await shows('#mem-value', PAYLOAD.replace(/"/g, '\\"'));
    expect(await page.textContent('#mem-value')).toContain(PAYLOAD.replace(/"/g, '\\"'));
    // Give an injected onerror the chance to fire.
    await page.waitForTimeout(500);
    expect(await page.evaluate('window.__xss')).toBeUndefined();
    expect(await page.locator('img[src="x"]').count()).toBe(0);
    expect(errors).toEqual([]);
  }, 120_000);
});
