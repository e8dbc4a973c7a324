// Runtime membership with mutual TLS on every member: a member joins with --join and its own
// certificate (CN = its id), is promoted, and when removed is told so by the leader and exits
// (over TLS it cannot ask its peers as a client: its certificate names a member).

import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ClusterClient } from '../../src/cluster/cluster-client.js';
import { loadSecret } from '../../src/transport/auth.js';
import { TestPki } from '../transport/tls-certs.js';
import { freePorts, killAll, MemberProc, requireBuild, waitFor, writeSecretFile } from './procs.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));


describe('membership changes over mutual TLS', () => {
  const procs: MemberProc[] = [];
  let client: ClusterClient | undefined;
  let dir = '';
  let passed = false;
  afterAll(async () => {
    client?.close();
    await killAll(procs);
    if (dir && passed) fs.rmSync(dir, { recursive: true, force: true });
    else if (dir) console.log(`membership-tls: member logs kept in ${dir}`);
  });

  it('a member joins with --join and its certificate, becomes a voter, and exits when removed', { timeout: 120_000 }, async () => {
    requireBuild();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-membership-tls-'));
    fs.mkdirSync(path.join(dir, 'pki'));
    const pki = new TestPki(path.join(dir, 'pki'));
    const { secretFile } = writeSecretFile(dir);
    const env = { ...process.env, CONCORD_LOG_LEVEL: 'warn' };
    const ports = await freePorts(4);
    const ids = ['t1', 't2', 't3', 't4'];
    const addr = (i: number): string => `127.0.0.1:${ports[i]}`;
    const peers = ids.slice(0, 3).map((id, i) => `${id}=${addr(i)}`).join(',');
    const proc = (i: number, extra: string[]): MemberProc => {
      const id = ids[i]!;
      const leaf = pki.leaf(id);
      const dataDir = path.join(dir, id);
      fs.mkdirSync(dataDir, { recursive: true });
      const args = ['node', '--swarm', 'tls', '--id', id, '--listen', addr(i), ...extra, '--data-dir', dataDir, '--secret-file', secretFile, '--cert', leaf.cert, '--key', leaf.key, '--ca', leaf.ca];
      const p = new MemberProc(id, addr(i), args, path.join(dir, `${id}.log`), env);
      procs.push(p);
      return p;
    };
    for (let i = 0; i < 3; i++) proc(i, ['--peers', peers]).start();
    await Promise.all(procs.map((p) => p.waitListening(30_000)));
    const cl = pki.leaf('client:test');
    client = new ClusterClient({ members: procs.map((p) => p.addr), secret: loadSecret(secretFile), tls: pki.raw(cl, 'client:test'), name: 'test', timeoutMs: 20_000 });
    const call = async (name: string, args: Record<string, unknown>): Promise<Record<string, unknown>> => {
      const r = await client!.callTool(name, args);
      if (r.isError) throw new Error(JSON.stringify(r.content));
      return r.structuredContent as Record<string, unknown>;
    };
    await waitFor('a leader with the book', 30_000, async () => (await call('member_list', {})).cluster_id);
    await call('memory_store', { key: 'before', value: 1 });
    expect(await call('member_add', { id: 't4', address: addr(3) })).toMatchObject({ role: 'learner' });
    const t4 = proc(3, ['--join', procs.map((p) => p.addr).join(',')]);
    t4.start();
    await t4.waitListening(30_000);
    await waitFor('t4 to be a voter', 60_000, async () => ((await call('member_list', {})).voters as string[]).includes('t4'));
    await call('memory_store', { key: 'after', value: 2 });
    expect(await call('member_remove', { id: 't4' })).toMatchObject({ removed: true });
    await waitFor('t4 to exit', 20_000, async () => t4.state === 'down');
    expect(t4.exits.at(-1)!.code).toBe(3);
    expect(t4.logTail(5)).toMatch(/member t4 was removed from the cluster configuration/);
    expect(await call('memory_retrieve', { key: 'after' })).toMatchObject({ value: 2 });
    passed = true;
  });
});
