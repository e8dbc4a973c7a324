// Hostile peers against real `concord node` processes (issue 10): a client-credentialed
// connection tries to act as the leader, and a member-credentialed peer sends snapshots no
// correct leader would. Members refuse, log at warn, keep their term and state, keep running.

import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterClient } from '../../src/cluster/cluster-client.js';
import type { MemberStatus } from '../../src/cluster/protocol.js';
import { clientKey } from '../../src/transport/auth.js';
import { encodeBatch } from '../../src/transport/codec.js';
import { FrameType } from '../../src/transport/frame.js';
import { TcpClient } from '../../src/transport/tcp-client.js';
import { msg, RawPeer } from '../transport/helpers.js';
import { freePorts, killAll, type MemberProc, memberProcs, requireBuild, writeSecretFile } from './procs.js';

const IDS = ['h1', 'h2', 'h3'];
let dir: string;
let procs: MemberProc[];
let secret: Buffer;
let key: Buffer;
let c: ClusterClient;

const portOf = (p: MemberProc): number => Number(p.addr.split(':')[1]);
const byId = (id: string): MemberProc => procs.find((p) => p.id === id)!;
const status = (id: string): Promise<MemberStatus> => c.status(byId(id).addr);

async function waitFor(cond: () => Promise<boolean> | boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await Promise.resolve().then(cond).catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what}: not within ${timeoutMs} ms`);
}

/** A leader that committed in its term, and every member following it at that term. */
async function settled(): Promise<{ leader: string; term: number; followers: string[] }> {
  let out = { leader: '', term: 0, followers: [] as string[] };
  await waitFor(async () => {
    const r = await c.callTool('memory_store', { key: 'probe', value: Date.now() });
    if (r.isError) return false;
    const all = await Promise.all(IDS.map((id) => status(id)));
    const leader = all.find((s) => s.role === 'leader');
    if (!leader || !all.every((s) => s.term === leader.term && s.leader === leader.id && s.applied === leader.commit)) return false;
    out = { leader: leader.id, term: leader.term!, followers: IDS.filter((id) => id !== leader.id) };
    return true;
  }, 'a settled cluster');
  return out;
}

const logOf = (id: string): string => fs.readFileSync(byId(id).logPath, 'utf8');

beforeAll(async () => {
  requireBuild();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-hostile-'));
  const w = writeSecretFile(dir);
  const secretFile = w.secretFile;
  secret = w.secret;
  key = clientKey(secret);
  procs = memberProcs({ swarm: 'hostile', ids: IDS, ports: await freePorts(IDS.length), dir, secretFile });
  for (const p of procs) p.start();
  await Promise.all(procs.map((p) => p.waitListening(20_000)));
  c = new ClusterClient({ members: procs.map((p) => p.addr), clientKey: key, name: 'hostile-test', timeoutMs: 10_000 });
}, 60_000);

afterAll(async () => {
  c?.close();
  if (procs) await killAll(procs);
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('hostile peers against concord node', () => {
  it('a client credential cannot claim the leader id, send Raft messages or propose raw entries', async () => {
    const { leader, term, followers } = await settled();
    const f = byId(followers[0]!);

    // 1. Claim the leader's id, holding only the client key: the handshake fails.
    const claim = await RawPeer.authenticated(portOf(f), leader, Buffer.alloc(0), key).catch((e: Error) => e);
    expect(claim).toBeInstanceOf(Error);

    // 2. As a client, send the leader's MsgApp with term+100 anyway: refused, connection closed.
    const st = await status(f.id);
    const raw = await RawPeer.authenticated(portOf(f), 'client:mallory', Buffer.alloc(0), key);
    const forged = msg(leader, f.id, {
      type: 'MsgApp',
      term: term + 100,
      index: st.last_index!,
      logTerm: term,
      entries: [{ index: st.last_index! + 1, term: term + 100, type: 'normal', data: '{"op":"evil"}' }],
      commit: st.last_index! + 1,
    });
    raw.write(raw.tagged(FrameType.MSG, encodeBatch([JSON.stringify(forged)])));
    await raw.closed;

    // 3. A raw proposal (a config that would stop every restarted member) from a client.
    const tc = new TcpClient({ host: '127.0.0.1', port: portOf(byId(leader)), clientKey: key, name: 'proposer' });
    try {
      const op = JSON.stringify({ kind: 'config', patch: { max_log_entries: 0 } });
      await expect(tc.request({ kind: 'propose', data: op }, 5_000)).rejects.toThrow(/raw proposals are accepted only from members/);
    } finally {
      tc.close();
    }

    // No member's term moved, the cluster still serves, nobody exited.
    await new Promise((r) => setTimeout(r, 500));
    const after = await settled();
    expect(after.term).toBe(term);
    for (const id of IDS) expect((await status(id)).term).toBe(term);
    expect(logOf(f.id)).toMatch(new RegExp(`${leader} failed to prove the cluster secret`));
    expect(logOf(f.id)).toMatch(/refused MSG frame from client:mallory: a client credential may only send requests/);
    expect(logOf(leader)).toMatch(/refused a raw proposal from a client credential/);
    for (const p of procs) expect(p.unexpectedExits()).toEqual([]);
  }, 60_000);

  it('a member-credentialed peer sending unusable snapshots is refused; the member keeps its state and runs', async () => {
    const { leader, term, followers } = await settled();
    const [victim, impersonated] = [followers[0]!, followers[1]!];
    const before = await status(victim);
    const forgedIndex = before.commit! + 1000;
    const snap = (data: string) =>
      msg(impersonated, victim, {
        type: 'MsgSnap',
        term,
        snapshot: { metadata: { index: forgedIndex, term, confState: { voters: IDS, learners: [] } }, data },
      });
    // Empty state (installing it kept no state and later left no snapshot to serve from),
    // not JSON, and JSON that is not a coordination snapshot.
    for (const data of ['', 'garbage', '{"v":1}']) {
      const p = await RawPeer.authenticated(portOf(byId(victim)), impersonated, secret);
      p.write(p.tagged(FrameType.MSG, encodeBatch([JSON.stringify(snap(data))])));
      await new Promise((r) => setTimeout(r, 200));
      p.socket.destroy();
    }
    // The victim never jumped to the forged index, still applies new writes, and is alive.
    await new Promise((r) => setTimeout(r, 500));
    expect(byId(victim).unexpectedExits()).toEqual([]);
    expect((await status(victim)).commit!).toBeLessThan(forgedIndex);
    const put = await c.callTool('memory_store', { key: 'after-forgery', value: 42 });
    expect(put.isError).toBeFalsy();
    const leaderNow = await status(leader);
    await waitFor(async () => (await status(victim)).applied === leaderNow.commit, 'victim applies the new write');
    const v = await status(victim);
    expect(v.commit!).toBeLessThan(forgedIndex);
    // The forgeries carried the current term, so they could not move terms; a loaded machine
    // can still hold a real election meanwhile: the victim must be in the cluster's term.
    expect(v.term).toBeGreaterThanOrEqual(term);
    expect(v.term).toBe((await status(v.leader ?? leader)).term);
    await waitFor(() => (logOf(victim).match(/refused a peer message that would violate an invariant/g) ?? []).length >= 3, 'three refusals logged');
    expect(logOf(victim)).toMatch(/MsgSnap with empty state data/);
    expect(logOf(victim)).toMatch(/MsgSnap state data unusable: not JSON/);
    expect(logOf(victim)).toMatch(/MsgSnap state data unusable: not a complete coordination snapshot/);

    for (const p of procs) expect(p.unexpectedExits()).toEqual([]);

    // A restarted victim starts from its own (untouched) storage and catches up.
    await byId(victim).kill9();
    byId(victim).start();
    await byId(victim).waitListening(20_000);
    await waitFor(async () => (await status(victim)).applied! >= leaderNow.commit!, 'restarted victim catches up');
    const got = await c.callTool('memory_retrieve', { key: 'after-forgery' });
    expect(got.structuredContent).toMatchObject({ found: true, value: 42 });
  }, 90_000);

  it('a raw config entry the tool would refuse commits as a recorded no-op; members restart fine', async () => {
    const { leader } = await settled();
    // Only a member credential may still propose raw entries (followers forward their own).
    const other = IDS.find((id) => id !== leader)!;
    const tc = new TcpClient({ host: '127.0.0.1', port: portOf(byId(leader)), secret, name: other, asMember: other });
    let r: { index: number; result: unknown };
    try {
      const data = JSON.stringify({ op: { t: 'config', patch: { max_log_entries: 0 } }, now: Date.now() });
      r = (await tc.request({ kind: 'propose', data }, 10_000)) as { index: number; result: unknown };
    } finally {
      tc.close();
    }
    expect(r.index).toBeGreaterThan(0);
    expect(r.result).toMatchObject({ ok: false, code: 'invalid' });
    expect(JSON.stringify(r.result)).toMatch(/max_log_entries=0/);
    // Every member restarts on that log and serves.
    for (const p of procs) await p.kill9();
    for (const p of procs) p.start();
    await Promise.all(procs.map((p) => p.waitListening(20_000)));
    await settled();
    const got = await c.callTool('memory_retrieve', { key: 'after-forgery' });
    expect(got.structuredContent).toMatchObject({ found: true, value: 42 });
    for (const p of procs) expect(p.unexpectedExits()).toEqual([]);
  }, 90_000);
  it('a removal notice is taken only from the leader the member follows: not from a client, not from another member', async () => {
    const { leader, followers } = await settled();
    const [victim, other] = [followers[0]!, followers[1]!];
    const removed = { kind: 'admin', op: 'removed' };
    // A client key: forbidden.
    const asClient = new TcpClient({ host: '127.0.0.1', port: portOf(byId(victim)), clientKey: key, name: 'mallory' });
    try {
      await expect(asClient.request(removed, 5_000)).rejects.toMatchObject({ code: 'forbidden' });
    } finally {
      asClient.close();
    }
    // A real member that is not the victim's leader (before: the victim exited with code 3,
    // told its id could never be used again).
    const asMember = new TcpClient({ host: '127.0.0.1', port: portOf(byId(victim)), secret, name: other, asMember: other });
    try {
      const e = (await asMember.request(removed, 5_000).then(() => null, (x: unknown) => x)) as { code?: string; message?: string } | null;
      expect(e?.code).toBe('forbidden');
      expect(e?.message).toContain(`only the leader ${victim} follows may report its removal; ${other} is not (leader: ${leader})`);
    } finally {
      asMember.close();
    }
    // Nor is the leader stopped by a follower's word.
    const toLeader = new TcpClient({ host: '127.0.0.1', port: portOf(byId(leader)), secret, name: victim, asMember: victim });
    try {
      await expect(toLeader.request(removed, 5_000)).rejects.toMatchObject({ code: 'forbidden' });
    } finally {
      toLeader.close();
    }
    await new Promise((r) => setTimeout(r, 500));
    for (const p of procs) expect(p.unexpectedExits()).toEqual([]);
    expect((await status(victim)).role).toBe('follower');
    expect((await status(leader)).role).toBe('leader');
    expect(logOf(victim)).toMatch(/refused a removal notice from a member that is not the leader/);
    await settled();
  }, 60_000);
});
