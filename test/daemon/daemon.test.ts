// `concord daemon`: one owner per data directory; `concord mcp` and every CLI command are
// clients of it, so they work side by side and do not restart the swarm (no new election).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ResourceUpdatedNotificationSchema, type Progress } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { MAIN, Mcp, ROOT, cleanupTempDirs, exited, requireBuild, sleep, tempDataDir, waitFor } from '../mcp/helpers.js';
import { alive, cli, cliOk, daemonEnv, daemonPids, killDaemons, logText, stdioClient } from './daemon-helpers.js';

const dirs: string[] = [];
function dataDir(tag: string): string {
  const d = tempDataDir(`d-${tag}`);
  dirs.push(d);
  return d;
}

beforeAll(() => requireBuild());
afterAll(async () => {
  for (const d of dirs) await killDaemons(d);
  cleanupTempDirs();
});

describe('concord mcp and the CLI share one daemon', () => {
  it('CLI commands succeed while concord mcp is connected, add no election, and progress passes through the proxy', async () => {
    const dir = dataDir('shared');
    const s = await stdioClient(dir);
    try {
      await s.mcp.ok('swarm_init', { max_agents: 5 });
      for (let i = 1; i <= 5; i++) await s.mcp.ok('agent_spawn', { name: `raft-agent-${i}` });
      const leader = await s.mcp.ok('consensus_leader');
      expect(typeof leader.leader_id).toBe('string');
      const before = await s.mcp.ok('consensus_election_history', { limit: 1 });

      // A hook's command, as a separate process, while the stdio session holds the swarm.
      const req = await cli(dir, ['consensus', 'leader', '--require']);
      expect(req.stderr).not.toMatch(/in use/);
      expect(req.code).toBe(0);
      expect(req.json().leader_id).toBe(leader.leader_id);
      await cliOk(dir, ['memory', 'store', '--key', 'shared/k', '--value', '{"n":1}']);
      expect((await s.mcp.ok('memory_retrieve', { key: 'shared/k' })).value).toEqual({ n: 1 });

      for (let i = 0; i < 20; i++) {
        const r = await cliOk(dir, i % 2 ? ['consensus', 'leader'] : ['agent', 'list', '--format', 'json']);
        if (i % 2) expect(r.leader_id).toBe(leader.leader_id);
      }
      const after = await s.mcp.ok('consensus_election_history', { limit: 1 });
      expect(after.total_elections).toBe(before.total_elections);

      const progress: Progress[] = [];
      const orch = await s.mcp.ok('task_orchestrate', { task: 'p', count: 200, wait: true }, (p) => progress.push(p));
      expect(orch.status).toBe('finished');
      expect(progress.length).toBeGreaterThan(0);
      expect(progress.at(-1)!.total).toBe(200);
      expect(daemonPids(dir)).toHaveLength(1);
    } finally {
      await s.client.close();
    }
  });

  it('a daemon killed with kill -9 is restarted by the next CLI call, with the data intact', async () => {
    const dir = dataDir('kill9');
    await cliOk(dir, ['swarm', 'init', '--max-agents', '3']);
    for (let i = 1; i <= 3; i++) await cliOk(dir, ['agent', 'spawn', '--name', `a${i}`]);
    await cliOk(dir, ['memory', 'store', '--key', 'survives', '--value', '"yes"']);
    const st = await cliOk(dir, ['daemon', 'status']);
    const pid = st.pid as number;
    const s = await stdioClient(dir);
    try {
      expect((await s.mcp.ok('memory_retrieve', { key: 'survives' })).value).toBe('yes');
      process.kill(pid, 'SIGKILL');
      await waitFor('the killed daemon to be gone', async () => !alive(pid));
      expect(fs.existsSync(path.join(dir, 'concord.sock'))).toBe(true);

      const got = await cliOk(dir, ['memory', 'retrieve', '--key', 'survives']);
      expect(got.value).toBe('yes');
      const st2 = await cliOk(dir, ['daemon', 'status']);
      expect(st2.pid).not.toBe(pid);
      expect((st2.swarms as Array<Record<string, unknown>>)[0]!.agents_running).toBe(3);
      // The connected MCP session survived: its proxy re-attached to the new daemon.
      expect((await s.mcp.ok('memory_retrieve', { key: 'survives' })).value).toBe('yes');
      // The CLI call and the MCP proxy may both have started a daemon: the one that lost the
      // directory exits (CI once listed it still alive here); a second owner never would.
      await waitFor('the daemon that lost the race to exit', async () => daemonPids(dir).length === 1);
      expect(daemonPids(dir)).toEqual([st2.pid]);
    } finally {
      await s.client.close();
    }
  });

  it("an MCP session's resource subscriptions survive a daemon restart (the proxy re-subscribes)", async () => {
    const dir = dataDir('resub');
    await cliOk(dir, ['swarm', 'init', '--max-agents', '5']);
    for (let i = 1; i <= 3; i++) await cliOk(dir, ['agent', 'spawn', '--name', `a${i}`]);
    const s = await stdioClient(dir);
    const uri = 'concord://swarms/default/status';
    const updates: string[] = [];
    s.client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => {
      updates.push(n.params.uri);
    });
    try {
      await s.client.subscribeResource({ uri });
      const pid = (await cliOk(dir, ['daemon', 'status'])).pid as number;
      process.kill(pid, 'SIGKILL');
      await waitFor('the killed daemon to be gone', async () => !alive(pid));
      // The proxy re-attaches to a new daemon; the session goes on.
      await waitFor('a new daemon', async () => daemonPids(dir).length === 1 && daemonPids(dir)[0] !== pid);
      expect(JSON.stringify(await s.mcp.ok('swarm_list'))).toMatch(/"default"/);
      await sleep(500);
      updates.length = 0;
      // A membership change made by another client: the subscribed session hears of it.
      await cliOk(dir, ['agent', 'spawn', '--name', 'a4']);
      await waitFor('a status update after the restart', async () => updates.includes(uri));
    } finally {
      await s.client.close();
    }
  });

  it('notifications/cancelled passes through concord mcp to the daemon: the cancelled call is never answered', async () => {
    const dir = dataDir('cancel');
    await cliOk(dir, ['swarm', 'init', '--max-agents', '3']);
    for (let i = 1; i <= 3; i++) await cliOk(dir, ['agent', 'spawn', '--name', `a${i}`]);
    const child = spawn(process.execPath, [MAIN, 'mcp'], { env: daemonEnv(dir), cwd: ROOT, stdio: ['pipe', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString('utf8');
    });
    const answered = (id: number) => out.split('\n').some((l) => l.startsWith('{') && (JSON.parse(l) as { id?: unknown }).id === id);
    const send = (m: object) => child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', ...m })}\n`);
    try {
      send({ id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '0' } } });
      await waitFor('initialize answered', async () => answered(1));
      send({ method: 'notifications/initialized' });
      // External tasks never finish: uncancelled, this wait is answered when it times out (2 s).
      const args = { task: 'never done', count: 2, executor: { kind: 'external' }, wait: true, wait_timeout_ms: 2000 };
      send({ id: 7, method: 'tools/call', params: { name: 'task_orchestrate', arguments: args, _meta: { progressToken: 'p7' } } });
      await waitFor('the wait to start (a progress notification)', async () => out.includes('"p7"'));
      send({ method: 'notifications/cancelled', params: { requestId: 7, reason: 'test' } });
      send({ id: 8, method: 'tools/call', params: { name: 'task_orchestrate', arguments: args } });
      // The uncancelled twin is answered at its timeout; by then the cancelled one would have been too.
      await waitFor('the uncancelled call to time out', async () => answered(8), 20_000);
      await sleep(500);
      expect(answered(7)).toBe(false);
    } finally {
      child.stdin.end();
      await exited(child);
    }
  });

  it('clients racing to start the daemon end up with exactly one', async () => {
    const dir = dataDir('race');
    const racers = await Promise.all(Array.from({ length: 5 }, () => cli(dir, ['swarm', 'list'])));
    for (const r of racers) expect(r.code, r.stderr).toBe(0);
    await waitFor('losing daemons to exit', async () => daemonPids(dir).length === 1);
    await sleep(300);
    expect(daemonPids(dir)).toHaveLength(1);
    // Exactly one started serving; any other started one saw the lock and left.
    expect(logText(dir).match(/concord daemon pid \d+ serving/g)).toHaveLength(1);
    const st = await cliOk(dir, ['daemon', 'status']);
    expect(daemonPids(dir)).toEqual([st.pid]);
  });

  it('exits after the idle timeout once no client is attached, removing its socket', async () => {
    const dir = dataDir('idle');
    await cliOk(dir, ['swarm', 'init', '--max-agents', '1'], { CONCORD_DAEMON_IDLE_S: '1' });
    const [pid] = daemonPids(dir);
    expect(pid).toBeDefined();
    await waitFor('the idle daemon to exit', async () => !alive(pid!), 20_000, 100);
    expect(fs.existsSync(path.join(dir, 'concord.sock'))).toBe(false);
    expect(logText(dir)).toMatch(/idle for 1 s/);
    // Data kept: the next call starts a new daemon and finds the swarm.
    const list = await cliOk(dir, ['swarm', 'list'], { CONCORD_DAEMON_IDLE_S: '1' });
    expect(JSON.stringify(list)).toMatch(/"default"/);
  });

  it('stays up past the idle timeout while its agents still run tasks, then exits', async () => {
    const dir = dataDir('busy');
    const env = { CONCORD_DAEMON_IDLE_S: '1' };
    await cliOk(dir, ['swarm', 'init', '--max-agents', '1'], env);
    await cliOk(dir, ['agent', 'spawn'], env);
    const orch = await cliOk(dir, ['task', 'orchestrate', '--task', 't', '--executor', 'sleep', '--sleep-ms', '4000', '--count', '2'], env);
    const [pid] = daemonPids(dir);
    await sleep(2500);
    // No client for 2.5 s (idle timeout 1 s), but two 4 s tasks are still running.
    expect(alive(pid!)).toBe(true);
    await waitFor('the daemon to exit once the tasks are done', async () => !alive(pid!), 30_000, 100);
    const res = await cliOk(dir, ['task', 'results', '--orchestration-id', orch.orchestration_id as string], env);
    expect(res).toMatchObject({ completed: 2, duplicates: 0 });
  });

  it('--embedded and CONCORD_EMBEDDED=1 run in-process and start no daemon', async () => {
    const dir = dataDir('embedded');
    await cliOk(dir, ['--embedded', 'swarm', 'init', '--max-agents', '1']);
    const list = await cliOk(dir, ['swarm', 'list'], { CONCORD_EMBEDDED: '1' });
    expect(JSON.stringify(list)).toMatch(/"default"/);
    expect(daemonPids(dir)).toEqual([]);
    expect(fs.existsSync(path.join(dir, 'concord.sock'))).toBe(false);
  });

  it('daemon status, stop and logs', async () => {
    const dir = dataDir('ctl');
    const none = await cli(dir, ['daemon', 'status']);
    expect(none.code).toBe(1);
    expect(none.json().running).toBe(false);
    const started = await cliOk(dir, ['daemon', 'start']);
    expect(started.pid).toBeTypeOf('number');
    const st = await cliOk(dir, ['daemon', 'status']);
    expect(st).toMatchObject({ running: true, pid: started.pid, socket: path.join(dir, 'concord.sock'), attached_clients: 0 });
    expect(st.uptime_s).toBeTypeOf('number');
    expect(fs.statSync(path.join(dir, 'concord.sock')).mode & 0o777).toBe(0o600);
    const s = await stdioClient(dir);
    await s.mcp.ok('swarm_list');
    const stop = await cliOk(dir, ['daemon', 'stop']);
    expect(stop).toMatchObject({ stopped: true, pid: started.pid });
    expect(alive(started.pid as number)).toBe(false);
    expect(fs.existsSync(path.join(dir, 'concord.sock'))).toBe(false);
    // A stop on purpose ends attached sessions; their proxies do not start a new daemon.
    await waitFor('the attached proxy to exit', async () => !alive(s.pid));
    await s.client.close();
    await sleep(500);
    expect(daemonPids(dir)).toEqual([]);
    expect((await cli(dir, ['daemon', 'status'])).code).toBe(1);
    const logs = await cli(dir, ['daemon', 'logs', '--lines', '3']);
    expect(logs.stdout).toMatch(/daemon stopped/);
  });

  it('concord serve --http shares its swarms with stdio and CLI clients over the socket', async () => {
    const dir = dataDir('serve');
    const child = spawn(process.execPath, [MAIN, 'serve', '--http', '127.0.0.1:0'], { env: daemonEnv(dir), cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c: Buffer) => {
      err += c.toString('utf8');
    });
    try {
      await waitFor('serve to share the socket', async () => /clients also on/.test(err));
      await cliOk(dir, ['swarm', 'init', '--max-agents', '1']);
      await cliOk(dir, ['agent', 'spawn']);
      const st = await cliOk(dir, ['daemon', 'status']);
      expect(st).toMatchObject({ role: 'serve', pid: child.pid });
      const s = await stdioClient(dir);
      const list = await s.mcp.ok('swarm_list');
      await s.client.close();
      expect(JSON.stringify(list)).toMatch(/"default"/);
      expect(daemonPids(dir)).toHaveLength(0);
      // Its dashboard is owner-only although loopback MCP has no token: the token comes over
      // the socket (concord dashboard), never on stderr or in daemon status.
      const port = /serving MCP at http:\/\/127\.0\.0\.1:(\d+)\/mcp/.exec(err)![1]!;
      const api = `http://127.0.0.1:${port}/dashboard/api/memory?swarm=default`;
      expect((await fetch(api)).status).toBe(401);
      const shown = await cli(dir, ['dashboard', '--no-open']);
      const m = new RegExp(`^http://127\\.0\\.0\\.1:${port}/#token=([A-Za-z0-9_-]{43,})$`).exec(shown.stdout.trim());
      expect(m, shown.stdout + shown.stderr).not.toBeNull();
      expect((await fetch(api, { headers: { authorization: `Bearer ${m![1]}` } })).status).toBe(200);
      expect(err).not.toContain(m![1]);
      expect((await cli(dir, ['daemon', 'status'])).stdout).not.toContain(m![1]);
    } finally {
      child.kill('SIGTERM');
      await exited(child);
    }
    expect(fs.existsSync(path.join(dir, 'concord.sock'))).toBe(false);
  });

  it('concord serve --http while a daemon owns the directory attaches to it (no "in use"); progress reaches the HTTP client', async () => {
    const dir = dataDir('serve-attach');
    await cliOk(dir, ['swarm', 'init', '--max-agents', '3']);
    for (let i = 1; i <= 3; i++) await cliOk(dir, ['agent', 'spawn', '--name', `a${i}`]);
    const daemonPid = (await cliOk(dir, ['daemon', 'status'])).pid as number;
    const child = spawn(process.execPath, [MAIN, 'serve', '--http', '127.0.0.1:0'], { env: daemonEnv(dir), cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c: Buffer) => {
      err += c.toString('utf8');
    });
    const client = new Client({ name: 'serve-attach', version: '0.0.0' });
    try {
      const port = await waitFor('serve to listen', async () => {
        if (child.exitCode !== null) throw new Error(`serve exited ${child.exitCode}: ${err}`);
        return /serving MCP at http:\/\/127\.0\.0\.1:(\d+)\/mcp/.exec(err)?.[1];
      });
      expect(err).toMatch(/attached to the daemon/);
      await client.connect(new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${port}/mcp`)));
      const mcp = new Mcp(client);
      // The daemon's swarm, its agents and its leader: the same state the CLI sees.
      const leader = await mcp.ok('consensus_leader');
      expect(leader.leader_id).toBe((await cliOk(dir, ['consensus', 'leader'])).leader_id);
      await mcp.ok('memory_store', { key: 'via-http', value: 7 });
      expect((await cliOk(dir, ['memory', 'retrieve', '--key', 'via-http'])).value).toBe(7);
      const progress: Progress[] = [];
      const orch = await mcp.ok('task_orchestrate', { task: 'p', count: 100, wait: true }, (p) => progress.push(p));
      expect(orch.status).toBe('finished');
      expect(progress.length).toBeGreaterThan(0);
      // One owner: the daemon; serve holds no lock of its own.
      expect(daemonPids(dir)).toEqual([daemonPid]);
      expect((await cliOk(dir, ['daemon', 'status'])).pid).toBe(daemonPid);
    } finally {
      await client.close().catch(() => undefined);
      child.kill('SIGTERM');
      await exited(child);
    }
  });
});
