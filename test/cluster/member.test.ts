// Cluster mode end to end: three `concord node` processes on loopback, reached through the
// ClusterClient, the CLI (--cluster) and the MCP proxy (mcp --cluster) over stdio.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterClient } from '../../src/cluster/cluster-client.js';
import { runHttp } from '../../src/server/http.js';
import { RemoteError, TcpClient } from '../../src/transport/tcp-client.js';
import { EXPECTED_TOOLS } from '../mcp/helpers.js';

const MAIN = path.resolve('dist/src/cli/main.js');
const IDS = ['m1', 'm2', 'm3'];

interface Member {
  id: string;
  addr: string;
  dir: string;
  proc: ChildProcess | null;
}

let tmp: string;
/** The client key file (what clients hold). */
let secretFile: string;
/** The cluster secret file (members only). */
let memberSecretFile: string;
let secret: Buffer;
const members = new Map<string, Member>();
const clients: ClusterClient[] = [];
const unexpectedExits: { id: string; code: number | null; signal: NodeJS.Signals | null; log: string }[] = [];

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function peersSpec(): string {
  return [...members.values()].map((m) => `${m.id}=${m.addr}`).join(',');
}

function start(id: string): Promise<void> {
  const m = members.get(id)!;
  const log = fs.openSync(path.join(tmp, `${id}.log`), 'a');
  const p = spawn(process.execPath, [MAIN, 'node', '--swarm', 'ct', '--id', id, '--peers', peersSpec(), '--data-dir', m.dir, '--secret-file', memberSecretFile], {
    stdio: ['ignore', 'ignore', log],
  });
  m.proc = p;
  // A member that exits on its own is a finding: its log tail is printed when the file ends
  // (the temporary directory, and the log with it, is removed then).
  p.once('exit', (code, signal) => {
    if (m.proc !== p) return;
    const file = path.join(tmp, `${id}.log`);
    // Read now: a restart of the same member appends to this file.
    const log = fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').slice(-40).join('\n') : '(no log)';
    unexpectedExits.push({ id, code, signal, log });
  });
  // Ready once it answers status on its port.
  return waitFor(async () => {
    const c = new TcpClient({ host: '127.0.0.1', port: Number(m.addr.split(':')[1]), secret, name: 'probe' });
    try {
      await c.request({ kind: 'status' }, 300);
      return true;
    } catch {
      return false;
    } finally {
      c.close();
    }
  }, 10_000);
}

function kill9(id: string): void {
  const m = members.get(id)!;
  m.proc?.kill('SIGKILL');
  m.proc = null;
}

async function waitFor(cond: () => Promise<boolean> | boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`condition not met within ${timeoutMs} ms`);
}

function client(list = [...members.values()].map((m) => m.addr), timeoutMs = 10_000): ClusterClient {
  const c = new ClusterClient({ members: list, secret, name: 'test', timeoutMs });
  clients.push(c);
  return c;
}

async function leaderId(c: ClusterClient): Promise<string> {
  let id = '';
  await waitFor(async () => {
    const r = await c.callTool('consensus_leader', {});
    id = String((r.structuredContent as { leader_id?: unknown } | undefined)?.leader_id ?? '');
    return id !== '';
  }, 10_000);
  return id;
}

function cli(args: string[], env: Record<string, string> = {}): { code: number | null; out: string; err: string } {
  return cliRaw(args, { CONCORD_CLUSTER: [...members.values()].map((m) => m.addr).join(','), CONCORD_SECRET_FILE: secretFile, ...env });
}

function cliRaw(args: string[], env: Record<string, string> = {}): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 30_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

beforeAll(async () => {
  if (!fs.existsSync(MAIN)) throw new Error(`${MAIN} missing: run npm run build first`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-member-'));
  const hex = crypto.randomBytes(32).toString('hex');
  const clusterSecretFile = path.join(tmp, 'secret');
  fs.writeFileSync(clusterSecretFile, `${hex}\n`, { mode: 0o600 });
  secret = Buffer.from(hex);
  // Members get the cluster secret; the CLI and MCP proxy only the client key derived from it.
  memberSecretFile = clusterSecretFile;
  const key = cliRaw(['secret', 'client', '--secret-file', clusterSecretFile]);
  if (key.code !== 0) throw new Error(`concord secret client failed: ${key.err}`);
  secretFile = path.join(tmp, 'client.key');
  fs.writeFileSync(secretFile, key.out, { mode: 0o600 });
  for (const id of IDS) members.set(id, { id, addr: `127.0.0.1:${await freePort()}`, dir: path.join(tmp, id), proc: null });
  await Promise.all(IDS.map((id) => start(id)));
}, 60_000);

afterAll(() => {
  for (const c of clients) c.close();
  for (const m of members.values()) {
    const p = m.proc;
    m.proc = null;
    p?.kill('SIGKILL');
  }
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('concord node (cluster mode)', () => {
  it('elects one of the members and serves the tools on its leader', async () => {
    const c = client();
    const leader = await leaderId(c);
    expect(IDS).toContain(leader);
    const put = await c.callTool('memory_store', { key: 'greeting', value: { hello: 'cluster' } });
    expect(put.isError).toBeFalsy();
    const got = await c.callTool('memory_retrieve', { key: 'greeting' });
    // Read on the member that answered: a loaded machine may elect again after the first
    // election, so that is the leader of the moment, not necessarily the one looked up above.
    const answered = [...members.values()].find((m) => m.addr === c.leaderAddress)?.id;
    expect(got.structuredContent).toMatchObject({ found: true, value: { hello: 'cluster' }, consistency: 'linearizable', read_from: answered });
    type Agents = { agents: Array<{ agent_id: string; status: string; role: string }> };
    let agents: Agents = { agents: [] };
    let now = '';
    // Right after an election a follower may not have answered the new leader yet.
    await waitFor(async () => {
      agents = (await c.callTool('agent_list', {})).structuredContent as Agents;
      now = [...members.values()].find((m) => m.addr === c.leaderAddress)?.id ?? '';
      return agents.agents.every((a) => a.status === 'active');
    }, 5_000);
    expect(agents.agents.map((a) => a.agent_id)).toEqual(IDS);
    expect(agents.agents.filter((a) => a.role === 'leader').map((a) => a.agent_id)).toEqual([now]);
    expect(agents.agents.filter((a) => a.role === 'follower')).toHaveLength(2);
  });

  it('a proposal forwarded by a member whose clock is an hour ahead cannot expire TTL memory early', async () => {
    const c = client();
    expect((await c.callTool('memory_store', { key: 'ttl-key', value: 1, ttl_s: 1800 })).isError).toBeFalsy();
    // What a follower process forwards to the leader (Proposer -> forwardProposal), stamped
    // with its own clock, here an hour fast. Sent to the leader of the moment: a loaded machine
    // may move leadership between the lookup and the request.
    for (let attempt = 1; ; attempt++) {
      const leader = await leaderId(c);
      const addr = members.get(leader)!.addr;
      // Raw proposals are accepted only on a member's request channel (its member key).
      const follower = IDS.find((id) => id !== leader)!;
      const raw = new TcpClient({ host: '127.0.0.1', port: Number(addr.split(':')[1]), secret, name: follower, asMember: follower });
      try {
        await raw.request({ kind: 'propose', data: JSON.stringify({ op: { t: 'clock' }, now: Date.now() + 3_600_000 }) }, 10_000);
        break;
      } catch (e) {
        if (attempt >= 5 || !/is not the leader/.test((e as Error).message)) throw e;
      } finally {
        raw.close();
      }
    }
    const got = await c.callTool('memory_retrieve', { key: 'ttl-key' });
    expect(got.isError, JSON.stringify(got.content)).toBeFalsy();
    expect(got.structuredContent).toMatchObject({ found: true, value: 1 });
  });

  it('consensus_verify_quorum: every member answers the round the leader process runs', async () => {
    const c = client();
    const leader = await leaderId(c);
    const q = (await c.callTool('consensus_verify_quorum', {})).structuredContent as { leader_id: string; has_quorum: boolean; responses: Array<{ agent_id: string; answered: boolean; rtt_ms: number }> };
    expect(q).toMatchObject({ leader_id: leader, has_quorum: true });
    expect(q.responses.map((r) => r.agent_id)).toEqual(IDS);
    for (const r of q.responses) {
      expect(r.answered).toBe(true);
      expect(r.rtt_ms).toBeGreaterThanOrEqual(0);
    }
  });

  it('a follower redirects: a client that only knows followers first still reaches the leader', async () => {
    const c0 = client();
    const leader = await leaderId(c0);
    const followers = IDS.filter((id) => id !== leader).map((id) => members.get(id)!.addr);
    const st = await c0.status(followers[0]!);
    expect(st.role).toBe('follower');
    expect(st.leader).toBe(leader);
    // The follower's answer names the leader's address; the client follows it.
    const c = client([...followers, members.get(leader)!.addr]);
    const r = await c.callTool('memory_store', { key: 'via-follower', value: 1 });
    expect(r.isError).toBeFalsy();
    expect(c.leaderAddress).toBe(members.get(leader)!.addr);
  });

  it('follows a redirect to a leader it was not given (CONCORD_CLUSTER listing some members only)', async () => {
    const c0 = client();
    const leader = await leaderId(c0);
    const follower = members.get(IDS.find((id) => id !== leader)!)!.addr;
    const c = client([follower]);
    const r = await c.callTool('memory_store', { key: 'via-unlisted-leader', value: 2 });
    expect(r.isError, JSON.stringify(r.content)).toBeFalsy();
    expect(c.leaderAddress).toBe(members.get(leader)!.addr);
    expect(c.members).toContain(members.get(leader)!.addr);
  });

  it('a follower holds a request whose client cannot reach its leader, and redirects to the next leader', async () => {
    const c0 = client();
    const leader = await leaderId(c0);
    const dead = members.get(leader)!;
    const follower = members.get(IDS.find((id) => id !== leader)!)!;
    // A 300-400 ms election timeout leaves the request time to arrive while its leader is
    // still followed, and the election ends within the 1 s a member holds a request.
    const timing = await c0.callTool('consensus_config', { election_timeout_min: 300, election_timeout_max: 400 });
    expect(timing.isError, JSON.stringify(timing.content)).toBeFalsy();
    // Frozen, not killed: its connections stay open, so the followers still follow it until
    // their election timeout (a killed process's refused port would end their lease at once).
    dead.proc!.kill('SIGSTOP');
    try {
      const raw = new TcpClient({ host: '127.0.0.1', port: Number(follower.addr.split(':')[1]), secret, name: 'hold' });
      const body = { kind: 'tool', name: 'memory_retrieve', arguments: { key: 'nothing' }, hold_ms: 5_000, unreachable: [dead.addr] };
      // Asked again after a hold that ran out (an election can take more than one round).
      let err: RemoteError | null = null;
      for (let i = 0; i < 10; i++) {
        const t0 = Date.now();
        err = (await raw.request(body, 8_000).then(
          () => null,
          (e: unknown) => e,
        )) as RemoteError | null;
        if (err === null || /the leader is m\d at /.test(err.message) && !err.message.includes(dead.addr)) break;
        // No leader yet, or still the frozen one: said only after the whole hold (a member caps
        // it at 1 s), never at once.
        expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
        if (err.message.includes(dead.addr)) expect(err.message).toContain('the caller cannot reach it');
      }
      raw.close();
      // Then answered here (this member won the election) or sent to the winner.
      if (err !== null) {
        expect(err).toBeInstanceOf(RemoteError);
        expect(err.code).toBe('not_leader');
        expect(err.message).not.toContain(dead.addr);
        expect(err.message).toMatch(/the leader is m\d at 127\.0\.0\.1:\d+/);
      }
    } finally {
      dead.proc!.kill('SIGCONT');
    }
    // The old leader steps down on the new term and follows again.
    await waitFor(async () => (await c0.status(dead.addr).catch(() => null))?.role === 'follower', 15_000);
    const back = await c0.callTool('consensus_config', { election_timeout_min: 150, election_timeout_max: 300 });
    expect(back.isError, JSON.stringify(back.content)).toBeFalsy();
  }, 60_000);

  it('runs an orchestration to completion on the members (tasks executed by every process)', async () => {
    const c = client();
    const r = await c.callTool('task_orchestrate', { task: 'cluster work', count: 120, wait: true });
    expect(r.structuredContent).toMatchObject({ status: 'finished', completed: 120 });
    const res = (await c.callTool('task_results', { orchestration_id: (r.structuredContent as { orchestration_id: string }).orchestration_id })).structuredContent;
    expect(res).toMatchObject({ completed: 120, duplicates: 0 });
  });

  it('a retried call with the same session is applied once, even on another leader', async () => {
    const c = client();
    const leader = await leaderId(c);
    const addr = members.get(leader)!.addr;
    const raw = new TcpClient({ host: '127.0.0.1', port: Number(addr.split(':')[1]), secret, name: 'retry' });
    const registered = (await raw.request({ kind: 'session' })) as { result: { session: string; timeout_ms: number } };
    expect(registered.result.timeout_ms).toBe(3_600_000);
    // An unregistered client id is refused before the call changes anything.
    const unregistered = { kind: 'tool', name: 'task_orchestrate', arguments: { task: 'never', count: 1 }, session: { client: 'made-up', seq: 1, ack: 1 } };
    await expect(raw.request(unregistered)).rejects.toMatchObject({ code: 'session_expired' });
    const body = { kind: 'tool', name: 'task_orchestrate', arguments: { task: 'once', count: 7 }, session: { client: registered.result.session, seq: 1, ack: 1 } };
    const first = (await raw.request(body)) as { result: { structuredContent: { orchestration_id: string } } };
    const again = (await raw.request(body)) as { result: { structuredContent: { orchestration_id: string } } };
    raw.close();
    expect(again.result.structuredContent.orchestration_id).toBe(first.result.structuredContent.orchestration_id);
    // The leader dies; the retry lands on its successor and is still answered, not re-applied.
    kill9(leader);
    const c2 = client(IDS.filter((id) => id !== leader).map((id) => members.get(id)!.addr));
    const next = await leaderId(c2);
    expect(next).not.toBe(leader);
    const raw2 = new TcpClient({ host: '127.0.0.1', port: Number(members.get(next)!.addr.split(':')[1]), secret, name: 'retry' });
    const third = (await raw2.request(body, 10_000)) as { result: { structuredContent: { orchestration_id: string } } };
    raw2.close();
    expect(third.result.structuredContent.orchestration_id).toBe(first.result.structuredContent.orchestration_id);
    const status = (await c2.callTool('task_status', {})).structuredContent as { orchestrations: Array<{ task: string }> };
    expect(status.orchestrations.filter((o) => o.task === 'once')).toHaveLength(1);
    expect(status.orchestrations.filter((o) => o.task === 'never')).toHaveLength(0);
    // Restarted on its data directory, the old leader rejoins with its durable state.
    await start(leader);
    await waitFor(async () => {
      const s = await c2.status(members.get(leader)!.addr);
      const l = await c2.status(members.get(next)!.addr);
      return s.role === 'follower' && s.applied !== null && l.commit !== null && s.applied >= l.commit;
    }, 15_000);
  }, 60_000);

  it('a client registers one session at its first write and reuses it; read-only calls register none', async () => {
    const c = client();
    await leaderId(c);
    expect((await c.callTool('task_status', {})).isError).toBeFalsy();
    expect(c.session).toBeNull();
    expect(c.sessionsRegistered).toBe(0);
    expect((await c.callTool('memory_store', { key: 'sess-a', value: 1 })).isError).toBeFalsy();
    const sid = c.session;
    expect(sid).toMatch(/^s\d+$/);
    expect((await c.callTool('memory_store', { key: 'sess-a', value: 2 })).isError).toBeFalsy();
    expect(c.session).toBe(sid);
    expect(c.sessionsRegistered).toBe(1);
    // Each write applied once: the refused first attempt of the first one changed nothing.
    const got = (await c.callTool('memory_retrieve', { key: 'sess-a' })).structuredContent as { version: number; value: unknown };
    expect(got).toMatchObject({ version: 2, value: 2 });
  });

  it('a session expired by log time: a retry is refused, not re-applied; a client re-registers for its next call', async () => {
    const c = client();
    const leader = await leaderId(c);
    const raw = new TcpClient({ host: '127.0.0.1', port: Number(members.get(leader)!.addr.split(':')[1]), secret, name: 'expiry' });
    const reg = (await raw.request({ kind: 'session', timeout_ms: 1_000 })) as { result: { session: string; timeout_ms: number } };
    expect(reg.result.timeout_ms).toBe(1_000);
    const body = { kind: 'tool', name: 'memory_store', arguments: { key: 'expiry-k', value: 'v' }, session: { client: reg.result.session, seq: 1, ack: 1 } };
    await raw.request(body);
    // A short-lived client that goes idle past its timeout, while others keep writing (log time).
    const quick = new ClusterClient({ members: [...members.values()].map((m) => m.addr), secret, name: 'quick', sessionTimeoutMs: 1_000 });
    clients.push(quick);
    expect((await quick.callTool('memory_store', { key: 'quick-k', value: 1 })).isError).toBeFalsy();
    await new Promise((r) => setTimeout(r, 1_500));
    expect((await c.callTool('memory_store', { key: 'clock-mover', value: 1 })).isError).toBeFalsy();
    // The retry of an applied call after expiry: refused, and not applied again.
    await expect(raw.request(body)).rejects.toMatchObject({ code: 'session_expired' });
    raw.close();
    const k = (await c.callTool('memory_retrieve', { key: 'expiry-k' })).structuredContent as { version: number };
    expect(k.version).toBe(1);
    // The idle client's next call: its session is gone; nothing was applied, so it registers
    // again and the call is applied once.
    const first = quick.session;
    expect((await quick.callTool('memory_store', { key: 'quick-k', value: 2 })).isError).toBeFalsy();
    expect(quick.sessionsRegistered).toBe(2);
    expect(quick.session).not.toBe(first);
    const q = (await c.callTool('memory_retrieve', { key: 'quick-k' })).structuredContent as { version: number; value: unknown };
    expect(q).toMatchObject({ version: 2, value: 2 });
  }, 30_000);

  it('the CLI talks to the cluster with --cluster / CONCORD_CLUSTER, and its errors are actionable', () => {
    const stored = cli(['memory', 'store', '--key', 'cli-key', '--value', '{"n":3}']);
    expect(stored.code, stored.err).toBe(0);
    const got = cli(['memory', 'retrieve', '--key', 'cli-key']);
    expect(JSON.parse(got.out)).toMatchObject({ found: true, value: { n: 3 } });
    // The CLI reads the file (the editor's side) and sends its content; the key has one slash.
    const edited = path.join(tmp, 'edited.md');
    fs.writeFileSync(edited, '# edited here\n');
    const rep = cli(['consensus', 'replicate', '--file', edited]);
    expect(rep.code, rep.err).toBe(0);
    const key = `files/${edited.slice(1)}`;
    expect(JSON.parse(rep.out)).toMatchObject({ stored: true, key, bytes: 14 });
    expect(JSON.parse(cli(['memory', 'retrieve', '--key', key]).out)).toMatchObject({ found: true, value: { file: edited, content: '# edited here\n' } });
    const spawnTry = cli(['agent', 'spawn']);
    expect(spawnTry.code).toBe(1);
    expect(spawnTry.err).toMatch(/not available in cluster mode/);
    const wrong = path.join(tmp, 'wrong-secret');
    fs.writeFileSync(wrong, crypto.randomBytes(32).toString('hex'), { mode: 0o600 });
    const denied = cli(['consensus', 'leader'], { CONCORD_SECRET_FILE: wrong });
    expect(denied.code).toBe(2);
    expect(denied.err).toMatch(/authentication failed.*secret/);
    expect(denied.err).not.toMatch(/\n\s+at /); // no stack trace
  });

  it('serves MCP over stdio for the cluster (mcp --cluster)', async () => {
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [MAIN, 'mcp', '--cluster', [...members.values()].map((m) => m.addr).join(','), '--secret-file', secretFile],
      stderr: 'ignore',
    });
    const mcp = new Client({ name: 'member-test', version: '1' });
    await mcp.connect(transport);
    try {
      const tools = await mcp.listTools();
      // The spec's tools, and cluster mode's runtime membership tools.
      expect(tools.tools).toHaveLength(EXPECTED_TOOLS.length + 3);
      expect(tools.tools.map((t) => t.name)).toEqual(expect.arrayContaining(['member_list', 'member_add', 'member_remove']));
      const r = await mcp.callTool({ name: 'memory_store', arguments: { key: 'over-stdio', value: [1, 2] } });
      expect(r.isError).toBeFalsy();
      const back = await mcp.callTool({ name: 'memory_retrieve', arguments: { key: 'over-stdio' } });
      expect(back.structuredContent).toMatchObject({ found: true, value: [1, 2] });
      const res = await mcp.listResources();
      expect(res.resources.map((x) => x.uri)).toContain('concord://swarms/ct/status');
      // An unknown swarm's resource: MCP's resource-not-found (-32002), not an internal error.
      const missing = await mcp.readResource({ uri: 'concord://swarms/ghost/status' }).then(
        () => null,
        (e: unknown) => e as { code?: number; message: string },
      );
      expect(missing?.code).toBe(-32002);
      expect(missing?.message).toMatch(/concord:\/\/swarms\/ghost\/status not found/);
      const bad = await mcp.callTool({ name: 'memory_store', arguments: { key: 'x' } });
      expect(bad.isError).toBe(true);
    } finally {
      await mcp.close();
    }
  });

  it('mcp --cluster passes progress notifications through to its client', async () => {
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [MAIN, 'mcp', '--cluster', [...members.values()].map((m) => m.addr).join(','), '--secret-file', secretFile],
      stderr: 'ignore',
    });
    const mcp = new Client({ name: 'member-progress', version: '1' });
    await mcp.connect(transport);
    try {
      const progress: Array<{ progress: number; total?: number }> = [];
      const r = await mcp.callTool({ name: 'task_orchestrate', arguments: { task: 'progress over the cluster', count: 60, wait: true } }, undefined, {
        onprogress: (p) => progress.push(p),
        timeout: 60_000,
      });
      expect(r.structuredContent).toMatchObject({ status: 'finished', completed: 60 });
      expect(progress.length).toBeGreaterThan(0);
      // (The last one may reach the SDK client after the answer, which drops it: not asserted.)
      for (const p of progress) expect(p).toMatchObject({ total: 60, progress: expect.any(Number) });
    } finally {
      await mcp.close();
    }
  }, 60_000);

  it('a cancelled call stops waiting on the member (the tasks it created keep their state)', async () => {
    const c = client();
    const abort = new AbortController();
    const t0 = Date.now();
    setTimeout(() => abort.abort(), 500);
    // External tasks never finish on their own: without the cancel this waits out wait_timeout_ms.
    const r = await c.callTool('task_orchestrate', { task: 'never done', count: 2, executor: { kind: 'external' }, wait: true, wait_timeout_ms: 30_000 }, { signal: abort.signal });
    expect(r.structuredContent).toMatchObject({ status: 'running', note: expect.stringMatching(/cancelled by the client/) });
    expect(Date.now() - t0).toBeLessThan(20_000);
  }, 60_000);

  it('serves MCP over HTTP for the cluster (serve --cluster)', async () => {
    const srv = await runHttp({ host: '127.0.0.1', port: 0, cluster: { members: [...members.values()].map((m) => m.addr), secret, name: 'http' } });
    const mcp = new Client({ name: 'member-http', version: '1' });
    try {
      expect(srv.coordinator).toBeNull();
      await mcp.connect(new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${srv.port}/mcp`)));
      const r = await mcp.callTool({ name: 'memory_store', arguments: { key: 'over-http', value: 'h' } });
      expect(r.isError).toBeFalsy();
      const back = await mcp.callTool({ name: 'memory_retrieve', arguments: { key: 'over-http' } });
      expect(back.structuredContent).toMatchObject({ found: true, value: 'h' });
    } finally {
      await mcp.close();
      await srv.close();
    }
  });

  it('network_partition spreads to every member; the isolated leader is replaced; heal restores', async () => {
    const c = client();
    const leader = await leaderId(c);
    const termBefore = (await c.status(members.get(leader)!.addr)).term ?? 0;
    const cut = await c.callTool('network_partition', { isolate: leader });
    expect(cut.isError).toBeFalsy();
    const others = IDS.filter((id) => id !== leader);
    const blocked = await c.status(members.get(others[0]!)!.addr);
    expect(blocked.blocked).toEqual([leader]);
    const c2 = client(others.map((id) => members.get(id)!.addr));
    let next = '';
    await waitFor(async () => {
      next = (await c2.status(members.get(others[0]!)!.addr)).leader ?? '';
      return others.includes(next);
    }, 10_000);
    // The election the partition caused: the new leader records it through the log, so the
    // member answering may apply it a moment after it reports the new leader (and a loaded
    // machine may add other elections around it).
    // On a loaded machine the winner may not have heard the isolated leader's last term (it
    // voted in it but got no append before the cut): its record then names the leader it last
    // heard, and the cause cannot be attributed. So: an election after the cut, won by one of
    // the others; when its record names the isolated leader, the cause must say unreachable.
    type Rec = { term: number; new_leader: string; old_leader: string | null; cause: string };
    let caused: Rec | undefined;
    let seen: Rec[] = [];
    await waitFor(async () => {
      const hist = (await c2.callTool('consensus_election_history', { limit: 10 })).structuredContent as { elections: Rec[] };
      seen = hist.elections;
      caused = hist.elections.find((e) => e.term > termBefore && others.includes(e.new_leader));
      return caused !== undefined;
    }, 20_000).catch((e: Error) => {
      throw new Error(`${e.message}: no election after term ${termBefore} won by one of ${others.join(',')} in ${JSON.stringify(seen)}`);
    });
    expect(others).toContain(caused!.new_leader);
    if (caused!.old_leader === leader) expect(caused).toMatchObject({ cause: 'leader unreachable' });
    // The new leader's process runs the round: the isolated member does not answer it.
    type Quorum = { leader_id: string; has_quorum: boolean; unreachable: string[]; responses: Array<{ agent_id: string; rtt_ms: number | null }> };
    const q = (await c2.callTool('consensus_verify_quorum', { timeout_ms: 500 })).structuredContent as Quorum;
    expect(q).toMatchObject({ has_quorum: true, unreachable: [leader] });
    expect(others).toContain(q.leader_id);
    for (const r of q.responses) if (r.agent_id !== leader) expect(r.rtt_ms).toBeGreaterThanOrEqual(0);
    const healed = await c2.callTool('network_heal', {});
    expect(healed.isError).toBeFalsy();
    for (const id of IDS) expect((await c2.status(members.get(id)!.addr)).blocked).toEqual([]);
  }, 60_000);

  it('refuses malformed requests with a reason and keeps serving', async () => {
    const addr = members.get(IDS[0]!)!.addr;
    const raw = new TcpClient({ host: '127.0.0.1', port: Number(addr.split(':')[1]), secret, name: 'fuzz' });
    await expect(raw.request({ kind: 'bogus' })).rejects.toThrow(/malformed request/);
    await expect(raw.request({ kind: 'tool', name: 42 })).rejects.toBeInstanceOf(RemoteError);
    await expect(raw.request({ kind: 'admin', op: 'block', peers: 'm2' })).rejects.toThrow(/peers/);
    const st = (await raw.request({ kind: 'status' })) as { id: string };
    expect(st.id).toBe(IDS[0]);
    raw.close();
  });

  it('times out with a clear error when no quorum answers', async () => {
    const survivors = IDS.slice(0, 1);
    for (const id of IDS.slice(1)) kill9(id);
    const c = client(survivors.map((id) => members.get(id)!.addr), 2_000);
    const t0 = Date.now();
    await expect(c.callTool('memory_store', { key: 'lost', value: 1 })).rejects.toThrow(/^unavailable: no leader answered within 2000 ms/);
    expect(Date.now() - t0).toBeLessThan(10_000);
  }, 30_000);

  // Last, so it covers every test above: a member process that died without being killed is a
  // crash, whatever the test that was running at the time reported.
  it('no member process exited on its own', () => {
    const report = unexpectedExits.map((e) => `member ${e.id} exited (code ${e.code}, signal ${e.signal}); its log ends:\n${e.log}`);
    expect(report.join('\n\n')).toBe('');
  });
});
