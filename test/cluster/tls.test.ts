// Cluster mode over mutual TLS: three `concord node` processes started with --cert/--key/--ca
// elect a leader and commit writes from a TLS client (the ClusterClient, the CLI with the
// CONCORD_TLS_* environment or flags, and `concord mcp`); a plaintext CLI and a client with a
// certificate from another CA are refused, cleanly and at once, and counted by the members.

import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterClient } from '../../src/cluster/cluster-client.js';
import { clientKey, clientKeyFileText } from '../../src/transport/auth.js';
import { loadTls, type TlsMaterial } from '../../src/transport/tls.js';
import { TestPki } from '../transport/tls-certs.js';
import { freePorts, killAll, MAIN, MemberProc, requireBuild, ROOT } from './procs.js';

const IDS = ['t1', 't2', 't3'];
let tmp: string;
let pki: TestPki;
let secret: Buffer;
let clientKeyFile: string;
let procs: MemberProc[] = [];
const clients: ClusterClient[] = [];
let addrs: string[] = [];
let clientFiles: { cert: string; key: string; ca: string };

beforeAll(async () => {
  requireBuild();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-tls-cluster-'));
  pki = new TestPki(fs.mkdtempSync(path.join(tmp, 'pki-')));
  const hex = crypto.randomBytes(32).toString('hex');
  secret = Buffer.from(hex);
  const secretFile = path.join(tmp, 'secret');
  fs.writeFileSync(secretFile, `${hex}\n`, { mode: 0o600 });
  clientKeyFile = path.join(tmp, 'client.key');
  fs.writeFileSync(clientKeyFile, clientKeyFileText(secret), { mode: 0o600 });
  clientFiles = pki.leaf('client:test');
  const ports = await freePorts(IDS.length);
  addrs = ports.map((p) => `127.0.0.1:${p}`);
  const peers = IDS.map((id, i) => `${id}=${addrs[i]}`).join(',');
  const env = { ...process.env, CONCORD_LOG_LEVEL: 'warn' };
  procs = IDS.map((id, i) => {
    const f = pki.leaf(id);
    const dataDir = path.join(tmp, id);
    fs.mkdirSync(dataDir);
    const args = ['node', '--swarm', 'tls', '--id', id, '--listen', addrs[i]!, '--peers', peers, '--data-dir', dataDir, '--secret-file', secretFile, '--cert', f.cert, '--key', f.key, '--ca', f.ca];
    return new MemberProc(id, addrs[i]!, args, path.join(tmp, `${id}.log`), env);
  });
  for (const p of procs) p.start();
  await Promise.all(procs.map((p) => p.waitListening(20_000)));
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await killAll(procs);
  fs.rmSync(tmp, { recursive: true, force: true });
});

function client(tls: TlsMaterial = loadTls(clientFiles)!, timeoutMs = 20_000): ClusterClient {
  const c = new ClusterClient({ members: addrs, clientKey: clientKey(secret), tls, name: 'tls-test', timeoutMs });
  clients.push(c);
  return c;
}

function cli(args: string[], env: Record<string, string>): { code: number | null; out: string; err: string; ms: number } {
  const t0 = Date.now();
  const base = { ...process.env, CONCORD_CLUSTER: addrs.join(','), CONCORD_SECRET_FILE: clientKeyFile, CONCORD_LOG_LEVEL: 'warn' };
  for (const k of ['CONCORD_TLS_CERT', 'CONCORD_TLS_KEY', 'CONCORD_TLS_CA']) delete (base as Record<string, string | undefined>)[k];
  const r = spawnSync(process.execPath, [MAIN, ...args], { cwd: ROOT, encoding: 'utf8', env: { ...base, ...env }, timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr, ms: Date.now() - t0 };
}

describe('cluster mode over mutual TLS', () => {
  it('three members elect a leader and commit writes from a TLS client', async () => {
    for (const p of procs) expect(fs.readFileSync(p.logPath, 'utf8')).toMatch(new RegExp(`concord node ${p.id} listening on .* \\(mutual TLS\\)`));
    const c = client();
    let leader = '';
    const deadline = Date.now() + 20_000;
    while (!leader && Date.now() < deadline) {
      const r = await c.callTool('consensus_leader', {});
      leader = String((r.structuredContent as { leader_id?: unknown } | undefined)?.leader_id ?? '');
      if (!leader) await new Promise((r) => setTimeout(r, 100));
    }
    expect(IDS).toContain(leader);
    for (let i = 0; i < 20; i++) expect((await c.callTool('memory_store', { key: `k${i}`, value: { i } })).isError).toBeFalsy();
    const got = await c.callTool('memory_retrieve', { key: 'k19' });
    expect(got.structuredContent).toMatchObject({ found: true, value: { i: 19 } });
    // Every member holds the same committed log, replicated over TLS.
    const digests = await Promise.all(addrs.map((a) => c.admin(a, { op: 'log' }) as Promise<{ commit: number; entries: Array<{ hash: string }> }>));
    const commit = Math.min(...digests.map((d) => d.commit));
    expect(commit).toBeGreaterThanOrEqual(20);
    const upTo = (d: (typeof digests)[number]) => d.entries.slice(0, commit - 1).map((e) => e.hash).join();
    expect(new Set(digests.map(upTo)).size).toBe(1);
    for (const a of addrs) expect((await c.status(a)).auth_failures).toBe(0);
  });

  it('the CLI reaches the cluster with the CONCORD_TLS_* environment or with --cert/--tls-key/--ca', () => {
    const viaFlags = cli(['memory', 'store', '--key', 'from-cli', '--value', '{"n":1}', '--cert', clientFiles.cert, '--tls-key', clientFiles.key, '--ca', clientFiles.ca], {});
    expect(viaFlags.err).toBe('');
    expect(viaFlags.code).toBe(0);
    const viaEnv = cli(['memory', 'retrieve', '--key', 'from-cli'], { CONCORD_TLS_CERT: clientFiles.cert, CONCORD_TLS_KEY: clientFiles.key, CONCORD_TLS_CA: clientFiles.ca });
    expect(viaEnv.code).toBe(0);
    expect(JSON.parse(viaEnv.out)).toMatchObject({ found: true, value: { n: 1 } });
  });

  it('concord mcp serves the cluster over TLS with the CONCORD_TLS_* environment an MCP client sets', async () => {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('CONCORD_')) env[k] = v;
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [MAIN, 'mcp'],
      env: { ...env, CONCORD_CLUSTER: addrs.join(','), CONCORD_SECRET_FILE: clientKeyFile, CONCORD_TLS_CERT: clientFiles.cert, CONCORD_TLS_KEY: clientFiles.key, CONCORD_TLS_CA: clientFiles.ca, CONCORD_LOG_LEVEL: 'warn' },
      stderr: 'ignore',
    });
    const mcp = new Client({ name: 'tls-test', version: '1' });
    await mcp.connect(transport);
    try {
      expect((await mcp.callTool({ name: 'memory_store', arguments: { key: 'over-mcp', value: 'tls' } })).isError).toBeFalsy();
      const back = await mcp.callTool({ name: 'memory_retrieve', arguments: { key: 'over-mcp' } });
      expect(back.structuredContent).toMatchObject({ found: true, value: 'tls' });
    } finally {
      await mcp.close();
    }
  });

  it('a plaintext CLI and a client with a certificate from another CA are refused at once, and counted', async () => {
    const before = await Promise.all(addrs.map(async (a) => (await client().status(a)).auth_failures));
    const plain = cli(['memory', 'retrieve', '--key', 'from-cli'], {});
    expect(plain.code).not.toBe(0);
    expect(plain.err).toMatch(/refused the connection: .*this member requires TLS/);
    expect(plain.out).toBe('');
    // Refused, not retried until the 15 s timeout.
    expect(plain.ms).toBeLessThan(10_000);
    const rogue = client(pki.raw(pki.leaf('client:test', { issuer: 'wrong-ca' }), 'client:test'), 3_000);
    const e = await rogue.callTool('memory_retrieve', { key: 'from-cli' }).then(
      () => null,
      (x: Error) => x,
    );
    expect(e?.message).toMatch(/refused this certificate/);
    const after = await Promise.all(addrs.map(async (a) => (await client().status(a)).auth_failures));
    expect(after.reduce((s, n) => s + n, 0)).toBeGreaterThanOrEqual(before.reduce((s, n) => s + n, 0) + 2);
    for (const p of procs) expect(p.crashes()).toEqual([]);
  });
});
