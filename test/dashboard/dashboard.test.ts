/**
 * The dashboard in a real browser: Debian's Chromium driven by playwright-core against an
 * in-process `concord serve --http` with a five-agent swarm. The page must show the leader
 * consensus_leader reports, crash it from its own button, then show the new leader and the
 * election in the timeline; no console errors. Saves a screenshot: to test/dashboard/dashboard.png (the README's) when
 * CONCORD_UPDATE_SCREENSHOT=1, else to the temp dir so a test run leaves the tree clean.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runHttp } from '../../src/server/http.js';
import { spawnAgent } from '../../src/service/agents.js';
import { leaderInfo } from '../../src/service/consensus.js';
import { memoryStore } from '../../src/service/memory.js';
import type { Swarm } from '../../src/swarm/swarm.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CHROMIUM = process.env.CONCORD_CHROMIUM || '/usr/bin/chromium';
const SCREENSHOT = process.env.CONCORD_UPDATE_SCREENSHOT === '1' ? path.join(ROOT, 'test/dashboard/dashboard.png') : path.join(os.tmpdir(), `concord-dashboard-${process.pid}.png`);
/** Generous: only catches a page that never updates (the machine may be loaded). */
const UPDATE_BOUND_MS = 20_000;

let srv: Awaited<ReturnType<typeof runHttp>>;
let swarm: Swarm;
let browser: Browser;
let dir: string;

/** Not a skip: the dashboard is untested without a browser, and CI installs one. */
const NO_BROWSER = fs.existsSync(CHROMIUM)
  ? null
  : `no Chromium at ${CHROMIUM}: install Debian's chromium package (sudo apt-get install chromium; .ci/run does it) or set CONCORD_CHROMIUM to a Chromium binary`;

beforeAll(async () => {
  if (NO_BROWSER) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-dash-'));
  srv = await runHttp({ host: '127.0.0.1', port: 0, dataDir: dir });
  swarm = srv.coordinator!.init({ name: 'default', max_agents: 5 }).swarm;
  for (let i = 0; i < 5; i++) await spawnAgent(swarm, {});
  await memoryStore(swarm, { key: 'plan/current-step', value: { step: 3, of: 8, owner: 'raft-agent-2' } });
  await memoryStore(swarm, { key: 'plan/lock', value: 'held', ttl_s: 600 });
  await memoryStore(swarm, { key: 'results/summary', value: { ok: true } });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
});

afterAll(async () => {
  await browser?.close();
  await srv?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** The leader name the page shows. */
const shownLeader = (page: Page) => page.locator('#leader').textContent();

describe('dashboard in Chromium', () => {
  it('shows the live leader, crashes it from the page, and shows the failover', async () => {
    if (NO_BROWSER) throw new Error(NO_BROWSER);
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    await page.goto(`http://127.0.0.1:${srv.port}/`);

    const leader = leaderInfo(swarm).leader_id as string;
    expect(leader).toMatch(/^raft-agent-\d$/);
    await expect.poll(() => shownLeader(page), { timeout: UPDATE_BOUND_MS }).toBe(leader);
    expect(await page.locator('[data-member]').count()).toBe(5);
    const termBefore = leaderInfo(swarm).term as number;

    // Work in flight for the chart and the progress bars.
    await page.fill('#orch-count', '20000');
    await page.click('button[data-action="orchestrate"]');
    await page.locator('#orchs .orch').first().waitFor({ timeout: UPDATE_BOUND_MS });

    await page.click(`[data-member="${leader}"] button[data-action="crash"]`);
    await expect.poll(() => shownLeader(page), { timeout: UPDATE_BOUND_MS }).toMatch(new RegExp(`^(?!${leader}$)raft-agent-\\d$`));
    // consensus_leader may be between leaders for a moment on a loaded machine: wait for one.
    await expect.poll(() => typeof leaderInfo(swarm).term === 'number' && typeof leaderInfo(swarm).leader_id === 'string', { timeout: UPDATE_BOUND_MS }).toBe(true);
    const after = leaderInfo(swarm);
    expect(after.leader_id).not.toBe(leader);
    expect(after.term as number).toBeGreaterThan(termBefore);
    // The page agrees with consensus_leader (one more push at most behind).
    await expect.poll(() => shownLeader(page), { timeout: UPDATE_BOUND_MS }).toBe(after.leader_id);
    expect(await page.locator(`[data-member="${leader}"] .badge.crashed`).count()).toBe(1);

    // The election of the new term is in the timeline, caused by the crash, naming both leaders.
    const row = page.locator(`#elections tr[data-term="${after.term}"]`);
    await row.waitFor({ timeout: UPDATE_BOUND_MS });
    const text = (await row.textContent()) ?? '';
    expect(text).toContain('leader crash');
    expect(text).toContain(`${leader} → ${after.leader_id}`);

    // The memory browser: search by prefix, then read one key's value, version and TTL.
    await page.fill('#mem-prefix', 'plan/');
    await page.click('#mem-form button:not([type])');
    await expect.poll(() => page.locator('#mem-keys li[data-key]').allTextContents(), { timeout: UPDATE_BOUND_MS }).toEqual(['plan/current-step v1', 'plan/lock v1 · TTL']);
    await page.click('#mem-keys li[data-key="plan/lock"]');
    await expect.poll(() => page.locator('#mem-value').textContent(), { timeout: UPDATE_BOUND_MS }).toMatch(/^plan\/lock\nversion 1 · TTL \d+ s left/);

    // A few throughput points before the picture.
    await page.locator('#throughput canvas').waitFor({ timeout: UPDATE_BOUND_MS });
    await page.waitForTimeout(3_000);
    fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    expect(await shownLeader(page)).toBe(leaderInfo(swarm).leader_id);
    expect(problems).toEqual([]);
    await page.close();
  });

  it('works beyond loopback with the token given in the URL fragment', async () => {
    if (NO_BROWSER) throw new Error(NO_BROWSER);
    const token = 't'.repeat(48);
    const wideDir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-dash-wide-'));
    const wide = await runHttp({ host: '0.0.0.0', port: 0, dataDir: wideDir, token });
    try {
      const sw = wide.coordinator!.init({ name: 'guarded', max_agents: 3 }).swarm;
      for (let i = 0; i < 3; i++) await spawnAgent(sw, {});
      const page = await browser.newPage();
      const problems: string[] = [];
      page.on('pageerror', (e) => problems.push(e.message));
      await page.goto(`http://127.0.0.1:${wide.port}/#token=${token}`);
      await expect.poll(() => shownLeader(page), { timeout: UPDATE_BOUND_MS }).toBe(leaderInfo(sw).leader_id);
      // The fragment is dropped from the address bar once read.
      expect(page.url()).toBe(`http://127.0.0.1:${wide.port}/`);
      // Without it the same page gets nothing.
      const bare = await browser.newPage();
      await bare.goto(`http://127.0.0.1:${wide.port}/`);
      await expect.poll(() => bare.locator('#conn').textContent(), { timeout: UPDATE_BOUND_MS }).toContain('401');
      expect(problems).toEqual([]);
      await bare.close();
      await page.close();
    } finally {
      await wide.close();
      fs.rmSync(wideDir, { recursive: true, force: true });
    }
  });
});
