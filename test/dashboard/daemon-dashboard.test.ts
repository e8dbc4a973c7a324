/**
 * The daemon's dashboard through the built CLI: `concord daemon start` listens on a loopback
 * port and says where in its status, `concord dashboard` prints that URL, the page and the
 * live stream answer there, an open page keeps an idle daemon up, and a non-loopback or
 * disabled address is handled.
 */
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alive, cli, cliOk, killDaemons, logText } from '../daemon/daemon-helpers.js';
import { cleanupTempDirs, requireBuild, sleep, tempDataDir, waitFor } from '../mcp/helpers.js';

const dirs: string[] = [];
function dataDir(tag: string): string {
  const d = tempDataDir(tag);
  dirs.push(d);
  return d;
}

beforeAll(() => {
  requireBuild();
});

afterAll(async () => {
  for (const d of dirs) await killDaemons(d);
  cleanupTempDirs();
});

/** Reads the stream until the first snapshot; returns it and the still-open response body. */
async function openStream(url: string): Promise<{ snap: { swarms: Array<{ name: string; leader: { leader_id: string | null } }> }; close: () => void }> {
  const ctl = new AbortController();
  const res = await fetch(`${url}dashboard/api/events`, { signal: ctl.signal });
  expect(res.status).toBe(200);
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error('stream ended');
    buf += value;
    const m = /^data: (.*)\n\n/m.exec(buf);
    if (m) return { snap: JSON.parse(m[1]!), close: () => ctl.abort() };
  }
}

describe('daemon dashboard', () => {
  it('serves the dashboard on loopback, named in daemon status and by concord dashboard', async () => {
    const dir = dataDir('dash');
    const st = await cliOk(dir, ['daemon', 'start']);
    expect(st.dashboard).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const url = st.dashboard as string;
    const shown = await cli(dir, ['dashboard', '--no-open']);
    expect(shown.code).toBe(0);
    expect(shown.stdout.trim()).toBe(url);
    // Without --no-open and without a display it still succeeds, saying why nothing opened.
    const headless = await cli(dir, ['dashboard'], { DISPLAY: '', WAYLAND_DISPLAY: '' });
    expect(headless.code).toBe(0);
    expect(headless.stdout.trim()).toBe(url);
    expect((await fetch(url)).headers.get('content-type')).toContain('text/html');

    await cliOk(dir, ['swarm', 'init', '--max-agents', '3']);
    for (let i = 0; i < 3; i++) await cliOk(dir, ['agent', 'spawn']);
    const leader = await cliOk(dir, ['consensus', 'leader']);
    const { snap, close } = await openStream(url);
    close();
    expect(snap.swarms.map((s) => s.name)).toEqual(['default']);
    expect(snap.swarms[0]!.leader.leader_id).toBe(leader.leader_id);
    // A foreign Host (DNS rebinding) is refused on the daemon's listener too.
    // (node:http: fetch does not send a Host header of its own choosing.)
    const status = await new Promise<number | undefined>((resolve, reject) => {
      http.get(`${url}dashboard/api/events`, { headers: { host: 'evil.example' } }, (res) => {
        res.destroy();
        resolve(res.statusCode);
      }).once('error', reject);
    });
    expect(status).toBe(403);
  });

  it('an open page keeps an idle daemon up; it exits once the page is gone', async () => {
    const dir = dataDir('idle');
    const st = await cliOk(dir, ['daemon', 'start'], { CONCORD_DAEMON_IDLE_S: '1' });
    const pid = st.pid as number;
    const page = await openStream(st.dashboard as string);
    await sleep(3_000);
    expect(alive(pid), logText(dir)).toBe(true);
    const during = await cliOk(dir, ['daemon', 'status']);
    expect(during.dashboard_pages).toBe(1);
    page.close();
    await waitFor('the idle daemon to exit', async () => !alive(pid), 15_000);
  });

  it('CONCORD_DASHBOARD_ADDR: off serves none; beyond loopback the daemon refuses to start', async () => {
    const off = dataDir('off');
    const st = await cliOk(off, ['daemon', 'start'], { CONCORD_DASHBOARD_ADDR: 'off' });
    expect(st.dashboard).toBeNull();
    const r = await cli(off, ['dashboard', '--no-open']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('serves no dashboard');

    const wide = dataDir('wide');
    const bad = await cli(wide, ['daemon', 'start'], { CONCORD_DASHBOARD_ADDR: '0.0.0.0:0' });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr + logText(wide)).toContain('loopback HOST:PORT');
  });
});
