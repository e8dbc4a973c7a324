// GET has no side effects on the dashboard: a cross-site <img src=".../dashboard/api/memory">
// is sent by any page the user visits (no preflight, no Origin check on reads). It must not
// create the default swarm, which would also turn /health to 503 ("no agents").
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runHttp } from '../../src/server/http.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-review-get-'));
let srv: Awaited<ReturnType<typeof runHttp>>;
let base = '';
beforeAll(async () => {
  srv = await runHttp({ host: '127.0.0.1', port: 0, dataDir: dir });
  base = `http://127.0.0.1:${srv.port}`;
});
afterAll(async () => {
  await srv.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('dashboard reads on a server with no swarm', () => {
  it('create nothing: no swarm appears and /health stays 200', async () => {
    expect((await fetch(`${base}/health`)).status).toBe(200);
    for (const p of ['/dashboard/api/memory', '/dashboard/api/memory?page=1', '/dashboard/api/memory/key?key=x']) {
      const r = await fetch(`${base}${p}`);
      expect(r.status, p).toBe(404);
      expect(((await r.json()) as { error: string }).error, p).toMatch(/swarm="default" does not exist/);
    }
    // Actions name their swarm too: a heal with no swarm creates none.
    const heal = await fetch(`${base}/dashboard/api/actions/heal`, { method: 'POST', headers: { 'content-type': 'application/json', origin: base }, body: '{}' });
    expect(heal.status).toBe(404);
    expect(srv.coordinator!.names()).toEqual([]);
    expect(fs.existsSync(path.join(dir, 'swarms', 'default'))).toBe(false);
    expect((await fetch(`${base}/health`)).status).toBe(200);
  });
});
