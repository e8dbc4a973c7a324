// Cross-site requests against the dashboard's fault controls: every request a foreign page
// can make without a CORS preflight (form posts: urlencoded, multipart, text/plain; with or
// without an Origin header) is refused and crashes nothing, and the preflight a JSON post
// needs is never granted (no Access-Control-Allow-Origin), so a browser never sends one.
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runHttp } from '../../src/server/http.js';
import { spawnAgent } from '../../src/service/agents.js';
import type { Swarm } from '../../src/swarm/swarm.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-review-csrf-'));
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

/** A raw request (node:http lets the test set Host, unlike fetch). */
function raw(method: string, p: string, headers: Record<string, string>, body = ''): Promise<{ status: number; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: srv.port, method, path: p, headers: { ...headers, 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('dashboard actions against cross-site requests', () => {
  it('refuses every form-shaped post, with or without Origin, and crashes nothing', async () => {
    const victim = swarm.activeMembers()[0]!;
    const host = `127.0.0.1:${srv.port}`;
    const bodies: Array<[string, string]> = [
      ['application/x-www-form-urlencoded', `agent_id=${victim}`],
      ['multipart/form-data; boundary=x', `--x\r\ncontent-disposition: form-data; name="agent_id"\r\n\r\n${victim}\r\n--x--\r\n`],
      ['text/plain', JSON.stringify({ agent_id: victim })],
      ['text/plain;charset=UTF-8', JSON.stringify({ agent_id: victim })],
    ];
    for (const [type, body] of bodies) {
      for (const origin of [undefined, 'http://evil.example', 'null', 'http://127.0.0.1:1']) {
        const r = await raw('POST', '/dashboard/api/actions/crash', { host, 'content-type': type, ...(origin ? { origin } : {}) }, body);
        expect([403, 415], `${type} from ${origin}`).toContain(r.status);
      }
    }
    // A rebound name: refused before any route.
    expect((await raw('POST', '/dashboard/api/actions/crash', { host: 'evil.example', 'content-type': 'application/json' }, JSON.stringify({ agent_id: victim }))).status).toBe(403);
    expect((await raw('GET', '/dashboard/api/events', { host: `evil.example:${srv.port}` })).status).toBe(403);
    expect(swarm.activeMembers().every((id) => swarm.isRunning(id))).toBe(true);
  });

  it('never grants the CORS preflight a cross-origin JSON post needs', async () => {
    for (const origin of ['http://evil.example', 'http://127.0.0.1:1', 'http://localhost:8080']) {
      const r = await raw('OPTIONS', '/dashboard/api/actions/crash', { host: `127.0.0.1:${srv.port}`, origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' });
      expect(r.headers['access-control-allow-origin'], origin).toBeUndefined();
      expect(r.status).not.toBe(200);
      expect(r.status).not.toBe(204);
    }
  });

  it('refuses API calls a browser labels as coming from another site or port, reads and the stream included', async () => {
    const host = `127.0.0.1:${srv.port}`;
    for (const site of ['cross-site', 'same-site']) {
      expect((await raw('GET', '/dashboard/api/events', { host, 'sec-fetch-site': site })).status, site).toBe(403);
      expect((await raw('GET', '/dashboard/api/memory', { host, 'sec-fetch-site': site })).status, site).toBe(403);
      expect((await raw('POST', '/dashboard/api/actions/heal', { host, 'sec-fetch-site': site, 'content-type': 'application/json' }, '{}')).status, site).toBe(403);
    }
    // The page's own calls (same-origin) and non-browser clients (no label) are served.
    expect((await raw('GET', '/dashboard/api/memory', { host, 'sec-fetch-site': 'same-origin' })).status).toBe(200);
    expect((await raw('GET', '/dashboard/api/memory', { host })).status).toBe(200);
  });
});
