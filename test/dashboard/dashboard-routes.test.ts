/**
 * The dashboard's HTTP side without a browser: the snapshot stream reports what the tools
 * report, the fault controls refuse GET, foreign origins, non-JSON bodies and (beyond
 * loopback) requests without the token, and the memory browser pages through keys.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dashboardAddr } from '../../src/daemon/http-listener.js';
import { runHttp } from '../../src/server/http.js';
import { spawnAgent } from '../../src/service/agents.js';
import { leaderInfo } from '../../src/service/consensus.js';
import { memoryStore } from '../../src/service/memory.js';
import type { Swarm } from '../../src/swarm/swarm.js';

const TOKEN = 'a'.repeat(40);
const dirs: string[] = [];

async function startServer(host: string, token?: string): Promise<{ srv: Awaited<ReturnType<typeof runHttp>>; base: string; swarm: Swarm }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-dash-routes-'));
  dirs.push(dir);
  const srv = await runHttp({ host, port: 0, dataDir: dir, token });
  const swarm = srv.coordinator!.init({ name: 'default', max_agents: 3 }).swarm;
  for (let i = 0; i < 3; i++) await spawnAgent(swarm, {});
  return { srv, base: `http://127.0.0.1:${srv.port}`, swarm };
}

const running = (s: Swarm) => s.activeMembers().filter((id) => s.isRunning(id)).length;

/** The first snapshot the stream sends. */
async function firstSnapshot(base: string, headers: Record<string, string> = {}): Promise<{ swarms: Array<{ name: string; leader: { leader_id: string | null; term: number | null }; members: Array<{ id: string; status: string }> }> }> {
  const ctl = new AbortController();
  const res = await fetch(`${base}/dashboard/api/events`, { headers, signal: ctl.signal });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toBe('text/event-stream');
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`stream ended before a snapshot: ${buf}`);
    buf += value;
    const m = /^data: (.*)$/m.exec(buf);
    if (m && buf.includes('\n\n', m.index)) {
      ctl.abort();
      return JSON.parse(m[1]!);
    }
  }
}

type Json = any;
const json = async (r: Response | Promise<Response>): Promise<Json> => (await r).json();

const post = (base: string, action: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${base}/dashboard/api/actions/${action}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

describe('dashboard on loopback', () => {
  let s: Awaited<ReturnType<typeof startServer>>;
  beforeAll(async () => {
    s = await startServer('127.0.0.1');
  });
  afterAll(async () => {
    await s.srv.close();
  });

  it('serves the page, its script and uPlot from the package (no CDN)', async () => {
    const html = await (await fetch(`${s.base}/`)).text();
    expect(html).toContain('<script src="/dashboard/app.js">');
    expect(html).not.toMatch(/https?:\/\//);
    for (const f of ['/dashboard/app.js', '/dashboard/app.css', '/dashboard/vendor/uPlot.iife.min.js', '/dashboard/vendor/uPlot.min.css']) {
      const r = await fetch(`${s.base}${f}`);
      expect(r.status, f).toBe(200);
      expect((await r.text()).length, f).toBeGreaterThan(100);
    }
  });

  it('streams a snapshot whose leader is consensus_leader', async () => {
    const snap = await firstSnapshot(s.base);
    const sw = snap.swarms.find((x) => x.name === 'default')!;
    const li = leaderInfo(s.swarm);
    expect(sw.leader.leader_id).toBe(li.leader_id);
    expect(sw.leader.term).toBe(li.term);
    expect(sw.members.map((m) => m.status)).toEqual(['active', 'active', 'active']);
  });

  it('refuses a GET to an action, a foreign origin and a non-JSON body, with nothing crashed', async () => {
    const victim = s.swarm.activeMembers()[0]!;
    const get = await fetch(`${s.base}/dashboard/api/actions/crash?agent_id=${victim}`);
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    const cross = await post(s.base, 'crash', { agent_id: victim }, { origin: 'http://evil.example' });
    expect(cross.status).toBe(403);
    expect((await json(cross)).error).toContain('origin http://evil.example not allowed');
    const form = await fetch(`${s.base}/dashboard/api/actions/crash`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: JSON.stringify({ agent_id: victim }) });
    expect(form.status).toBe(415);
    expect(running(s.swarm)).toBe(3);
  });

  it('acts through the service calls: crash, restart, isolate, heal, step down, orchestrate', async () => {
    const origin = { origin: s.base };
    const victim = s.swarm.activeMembers().find((id) => id !== s.swarm.cluster.leader()?.id)!;
    const crash = await post(s.base, 'crash', { agent_id: victim }, origin);
    expect(crash.status).toBe(200);
    expect(running(s.swarm)).toBe(2);
    expect((await post(s.base, 'crash', { agent_id: victim }, origin)).status).toBe(409);
    expect((await post(s.base, 'restart', { agent_id: victim }, origin)).status).toBe(200);
    expect(running(s.swarm)).toBe(3);
    expect((await post(s.base, 'partition', { agent_id: victim }, origin)).status).toBe(200);
    expect(s.swarm.cluster.network.connected(victim, s.swarm.cluster.leader()!.id)).toBe(false);
    expect((await post(s.base, 'heal', {}, origin)).status).toBe(200);
    expect(s.swarm.cluster.network.connected(victim, s.swarm.cluster.leader()!.id)).toBe(true);
    const before = s.swarm.cluster.leader()!.id;
    const down = await post(s.base, 'step-down', {}, origin);
    expect(down.status).toBe(200);
    expect((await json(down)).old_leader).toBe(before);
    const orch = await post(s.base, 'orchestrate', { count: 10 }, origin);
    expect(orch.status).toBe(200);
    expect((await json(orch)).total_tasks).toBe(10);
    const bad = await post(s.base, 'orchestrate', { count: 0 }, origin);
    expect(bad.status).toBe(400);
    expect((await json(bad)).error).toContain('count=0');
  });

  it('pages through memory keys by prefix and reads one with its version', async () => {
    for (let i = 0; i < 60; i++) await memoryStore(s.swarm, { key: `dash/k${String(i).padStart(3, '0')}`, value: { i } });
    await memoryStore(s.swarm, { key: 'other/x', value: 1 });
    const page = (n: number) => json(fetch(`${s.base}/dashboard/api/memory?prefix=dash/&page=${n}`));
    const p1 = await page(1);
    expect(p1.keys).toHaveLength(50);
    expect(p1.truncated).toBe(true);
    expect(p1.keys[0].key).toBe('dash/k000');
    const p2 = await page(2);
    expect(p2.keys.map((k: { key: string }) => k.key)).toEqual(Array.from({ length: 10 }, (_, i) => `dash/k${String(50 + i).padStart(3, '0')}`));
    expect(p2.truncated).toBe(false);
    const one = await json(fetch(`${s.base}/dashboard/api/memory/key?key=dash/k007`));
    expect(one.value).toEqual({ i: 7 });
    expect(one.version).toBe(1);
    expect((await fetch(`${s.base}/dashboard/api/memory/key?key=missing`)).status).toBe(404);
  });
});

describe('dashboard beyond loopback', () => {
  it('refuses data and actions without the token, and acts with it', async () => {
    const s = await startServer('0.0.0.0', TOKEN);
    try {
      const victim = s.swarm.activeMembers().find((id) => id !== s.swarm.cluster.leader()?.id)!;
      expect((await post(s.base, 'crash', { agent_id: victim })).status).toBe(401);
      expect((await post(s.base, 'crash', { agent_id: victim }, { authorization: `Bearer ${'b'.repeat(40)}` })).status).toBe(401);
      expect((await fetch(`${s.base}/dashboard/api/events`)).status).toBe(401);
      expect((await fetch(`${s.base}/dashboard/api/memory`)).status).toBe(401);
      expect(running(s.swarm)).toBe(3);
      // The page itself is static and public; what it reads and does needs the token.
      expect((await fetch(`${s.base}/`)).status).toBe(200);
      const ok = await post(s.base, 'crash', { agent_id: victim }, { authorization: `Bearer ${TOKEN}` });
      expect(ok.status).toBe(200);
      expect(running(s.swarm)).toBe(2);
      const snap = await firstSnapshot(s.base, { authorization: `Bearer ${TOKEN}` });
      expect(snap.swarms[0]!.members.find((m) => m.id === victim)!.status).toBe('crashed');
    } finally {
      await s.srv.close();
    }
  });

  it('refuses every API call when listening beyond loopback without a token', async () => {
    const s = await startServer('0.0.0.0');
    try {
      const victim = s.swarm.activeMembers()[0]!;
      const r = await post(s.base, 'crash', { agent_id: victim });
      expect(r.status).toBe(403);
      expect((await json(r)).error).toContain('without a bearer token');
      expect((await fetch(`${s.base}/dashboard/api/events`)).status).toBe(403);
      expect(running(s.swarm)).toBe(3);
    } finally {
      await s.srv.close();
    }
  });
});

describe('daemon dashboard address', () => {
  it('defaults to a free loopback port, accepts "off", refuses beyond loopback', () => {
    expect(dashboardAddr(undefined, {})).toEqual({ host: '127.0.0.1', port: 0 });
    expect(dashboardAddr(undefined, { CONCORD_DASHBOARD_ADDR: '[::1]:7801' })).toEqual({ host: '::1', port: 7801 });
    expect(dashboardAddr(undefined, { CONCORD_DASHBOARD_ADDR: 'off' })).toBeNull();
    expect(() => dashboardAddr(undefined, { CONCORD_DASHBOARD_ADDR: '0.0.0.0:7800' })).toThrow(/loopback HOST:PORT/);
    expect(() => dashboardAddr('localhost', {})).toThrow(/not valid/);
  });
});
