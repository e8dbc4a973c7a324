/**
 * The daemon's dashboard through the built CLI: `concord daemon start` listens on a loopback
 * port and says where in its status, `concord dashboard` prints that URL, the page and the
 * live stream answer there, an open page keeps an idle daemon up, and a non-loopback or
 * disabled address is handled. The listener is owner-only: without the token the daemon
 * gives its owner (over the 0600 socket) nothing but the page files answer.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
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
async function openStream(url: string, token: string): Promise<{ snap: { swarms: Array<{ name: string; leader: { leader_id: string | null } }> }; close: () => void }> {
  const ctl = new AbortController();
  const res = await fetch(`${url}dashboard/api/events`, { signal: ctl.signal, headers: { authorization: `Bearer ${token}` } });
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

/** `concord dashboard --no-open`: the URL and the token in its fragment. */
async function ownerUrl(dir: string): Promise<{ url: string; token: string }> {
  const shown = await cli(dir, ['dashboard', '--no-open']);
  expect(shown.code, shown.stderr).toBe(0);
  const m = /^(http:\/\/127\.0\.0\.1:\d+\/)#token=([A-Za-z0-9_-]+)$/.exec(shown.stdout.trim());
  expect(m, shown.stdout).not.toBeNull();
  return { url: m![1]!, token: m![2]! };
}

/** Status of a GET, reading no more than the head (the event stream never ends). */
function statusOf(url: string, headers: Record<string, string> = {}): Promise<number | undefined> {
  return new Promise((resolve, reject) => {
    http.get(url, { headers }, (res) => {
      res.destroy();
      resolve(res.statusCode);
    }).once('error', reject);
  });
}

/** Every file under `dir` (recursively) with its mode. */
function filesUnder(dir: string): Array<{ file: string; mode: number }> {
  const out: Array<{ file: string; mode: number }> = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const file = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(file));
    else out.push({ file, mode: fs.lstatSync(file).mode & 0o777 });
  }
  return out;
}

describe('daemon dashboard', () => {
  it('is owner-only: the API, the stream and /metrics answer 401 without the token and work with it', async () => {
    const dir = dataDir('token');
    const st = await cliOk(dir, ['daemon', 'start']);
    await cliOk(dir, ['swarm', 'init', '--max-agents', '3']);
    for (let i = 0; i < 3; i++) await cliOk(dir, ['agent', 'spawn']);
    await cliOk(dir, ['memory', 'store', '--key', 'secret/k', '--value', '"v1"']);
    const base = st.dashboard as string;
    const api = [`${base}dashboard/api/events`, `${base}dashboard/api/memory?swarm=default`, `${base}dashboard/api/memory/key?swarm=default&key=secret/k`, `${base}metrics`, `${base}health`, `${base}readyz`];
    for (const u of api) {
      expect(await statusOf(u), u).toBe(401);
      expect(await statusOf(u, { authorization: 'Bearer wrong' }), u).toBe(401);
    }
    const crash = await fetch(`${base}dashboard/api/actions/step-down`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"swarm":"default"}' });
    expect(crash.status).toBe(401);

    const { url, token } = await ownerUrl(dir);
    expect(url).toBe(base);
    expect(Buffer.from(token, 'base64url').length).toBeGreaterThanOrEqual(32);
    const auth = { authorization: `Bearer ${token}` };
    const value = await fetch(`${url}dashboard/api/memory/key?swarm=default&key=secret/k`, { headers: auth });
    expect(value.status).toBe(200);
    expect(JSON.stringify(await value.json())).toContain('v1');
    expect((await fetch(`${url}metrics`, { headers: auth })).status).toBe(200);
    const { snap, close } = await openStream(url, token);
    close();
    expect(snap.swarms.map((s) => s.name)).toEqual(['default']);
    // The page itself needs no token: it reads it from the fragment.
    expect((await fetch(url)).status).toBe(200);

    // daemon status shows the address, never the token; no file others can read holds it,
    // and the log does not either.
    const shown = await cli(dir, ['daemon', 'status']);
    expect(shown.stdout).toContain(base);
    expect(shown.stdout).not.toContain(token);
    expect(logText(dir)).not.toContain(token);
    expect(fs.statSync(dir).mode & 0o077).toBe(0);
    for (const f of filesUnder(dir)) {
      if (f.mode & 0o077) expect(fs.readFileSync(f.file).includes(token), `${f.file} (mode ${f.mode.toString(8)}) is readable by others`).toBe(false);
    }
  });


  it('opens the browser without the token on its command line: through a 0600 page that redirects', async () => {
    const dir = dataDir('open');
    const { url, token } = await ownerUrl(dir);
    // A stand-in xdg-open that records the arguments it was started with.
    const bin = fs.mkdtempSync(path.join(dir, 'bin-'));
    const argsFile = path.join(bin, 'args');
    fs.writeFileSync(path.join(bin, 'xdg-open'), `#!/bin/sh\nprintf '%s' "$*" > '${argsFile}'\n`, { mode: 0o700 });
    const r = await cli(dir, ['dashboard'], { DISPLAY: ':99', WAYLAND_DISPLAY: '', PATH: `${bin}${path.delimiter}${process.env.PATH ?? ''}` });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(`${url}#token=${token}`);
    const args = await waitFor('the opener to run', async () => (fs.existsSync(argsFile) ? fs.readFileSync(argsFile, 'utf8') || undefined : undefined), 10_000);
    expect(args).not.toContain(token);
    const page = new URL(args).pathname;
    expect(fs.statSync(page).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(page, 'utf8')).toContain(`${url}#token=${token}`);
    // The page holds a token of this daemon's life: it goes with the daemon.
    expect((await cli(dir, ['daemon', 'stop'])).code).toBe(0);
    await waitFor('the open page to be removed', async () => !fs.existsSync(page), 10_000);
  });

  it('serves the dashboard on loopback, named in daemon status and by concord dashboard', async () => {
    const dir = dataDir('dash');
    const st = await cliOk(dir, ['daemon', 'start']);
    expect(st.dashboard).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const url = st.dashboard as string;
    const { url: shown, token } = await ownerUrl(dir);
    expect(shown).toBe(url);
    // Without --no-open and without a display it still succeeds, saying why nothing opened.
    const headless = await cli(dir, ['dashboard'], { DISPLAY: '', WAYLAND_DISPLAY: '' });
    expect(headless.code).toBe(0);
    expect(headless.stdout.trim()).toBe(`${url}#token=${token}`);
    expect((await fetch(url)).headers.get('content-type')).toContain('text/html');

    await cliOk(dir, ['swarm', 'init', '--max-agents', '3']);
    for (let i = 0; i < 3; i++) await cliOk(dir, ['agent', 'spawn']);
    const leader = await cliOk(dir, ['consensus', 'leader']);
    const { snap, close } = await openStream(url, token);
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
    // Idle 4 s: the page must connect before the daemon's first idle exit, and a CLI call to
    // fetch the token took over a second at load average 24.
    const st = await cliOk(dir, ['daemon', 'start'], { CONCORD_DAEMON_IDLE_S: '4' });
    const pid = st.pid as number;
    const page = await openStream(st.dashboard as string, (await ownerUrl(dir)).token);
    await sleep(9_000); // over twice the idle time with the page as the only client
    expect(alive(pid), logText(dir)).toBe(true);
    const during = await cliOk(dir, ['daemon', 'status']);
    expect(during.dashboard_pages).toBe(1);
    page.close();
    await waitFor('the idle daemon to exit', async () => !alive(pid), 20_000);
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
