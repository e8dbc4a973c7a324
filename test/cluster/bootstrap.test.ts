// A `concord node` with --peers, no --join, on a data directory holding nothing of it becomes a
// voter only on evidence that its empty log and votes are all it ever had (membership.ts
// checkFreshStart). Members in this process (MemberNode on loopback TCP, no built CLI needed):
// - a first start with members started one by one, seconds apart, forms a cluster;
// - a member wiped while ALL the others are down, restarted alone, waits (no database, no
//   term, its port answers "waiting to bootstrap") and, once the others are back, is refused;
// - a member down during the first start starts later on an empty directory and catches up:
//   the book lists it and never bound it to a data directory.

import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { MemberNode, type MemberNodeOptions } from '../../src/cluster/member-node.js';
import type { MemberStatus } from '../../src/cluster/protocol.js';
import { TcpClient } from '../../src/transport/tcp-client.js';
import { freePorts, waitFor } from './procs.js';

const SWARM = 'bs';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));


/** One start in flight: settled or not, and how. */
interface Starting {
  promise: Promise<MemberNode>;
  node: MemberNode | null;
  error: Error | null;
  abort: AbortController;
}

describe('concord node bootstrap on an empty data directory', () => {
  const secret = crypto.randomBytes(32);
  const dirs: string[] = [];
  const nodes = new Map<string, MemberNode>();
  const starting: Starting[] = [];

  function setup(ids: string[], ports: number[]): { opts: Map<string, MemberNodeOptions>; dir: string } {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-bootstrap-'));
    dirs.push(dir);
    const peers = Object.fromEntries(ids.map((id, i) => [id, { host: '127.0.0.1', port: ports[i]! }]));
    const opts = new Map(ids.map((id) => [id, { swarm: SWARM, id, peers: { ...peers }, dataDir: path.join(dir, id), secret, durability: 'normal' as const }]));
    return { opts, dir };
  }

  function start(o: MemberNodeOptions): Starting {
    const abort = new AbortController();
    const s: Starting = { promise: MemberNode.start({ ...o, signal: abort.signal }), node: null, error: null, abort };
    s.promise.then(
      (n) => {
        s.node = n;
        nodes.set(o.id, n);
      },
      (e: unknown) => {
        s.error = e as Error;
      },
    );
    s.promise.catch(() => undefined);
    starting.push(s);
    return s;
  }

  async function stop(id: string): Promise<void> {
    await nodes.get(id)?.close();
    nodes.delete(id);
  }

  function leader(ids: string[]): MemberNode | undefined {
    return ids.map((id) => nodes.get(id)).find((n) => n?.cluster.leader() !== undefined);
  }

  /** The cluster id recorded and each of `bound` bound to its data directory, as the leader applied it. */
  async function formed(ids: string[], bound: string[], ms = 60_000): Promise<NonNullable<MemberStatus['membership']>> {
    return waitFor(`a cluster id and ${bound.join(',')} bound`, ms, () => {
      const b = leader(ids)?.status().membership;
      return b?.cluster_id && bound.every((id) => b.members[id]?.incarnation) ? b : null;
    });
  }

  async function tool(ids: string[], name: string, args: Record<string, unknown>): Promise<Record<string, unknown>> {
    const l = await waitFor('a leader that committed in its term', 30_000, () => {
      const n = leader(ids);
      const h = n?.cluster.leader();
      return h && h.core.log.term(h.core.log.committed) === h.core.term ? n : null;
    });
    const r = (await l.handle({ kind: 'tool', name, arguments: args }, 'test')) as { result: { isError?: boolean; content?: Array<{ text?: string }>; structuredContent?: Record<string, unknown> } };
    if (r.result.isError) throw new Error(r.result.content?.[0]?.text ?? 'tool error');
    return r.result.structuredContent ?? {};
  }

  async function probe(port: number): Promise<MemberStatus> {
    const c = new TcpClient({ host: '127.0.0.1', port, secret, name: 'bootstrap-test', failFast: true });
    try {
      return (await c.request({ kind: 'status' }, 2_000, 1_000)) as MemberStatus;
    } finally {
      c.close();
    }
  }

  afterEach(async () => {
    for (const s of starting.splice(0)) {
      s.abort.abort();
      await s.promise.catch(() => undefined);
    }
    for (const id of [...nodes.keys()]) await stop(id);
  });

  afterAll(() => {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  it('members started one by one, seconds apart, form a cluster', { timeout: 120_000 }, async () => {
    const ids = ['f1', 'f2', 'f3'];
    const { opts } = setup(ids, await freePorts(3));
    const t0 = Date.now();
    const first = start(opts.get('f1')!);
    await sleep(2_000);
    // Alone, it waits (it cannot tell a first start from a wipe) and says so on its port.
    expect(first.node).toBeNull();
    expect(first.error).toBeNull();
    const waiting = await probe(opts.get('f1')!.peers.f1!.port);
    expect(waiting.role).toBe('waiting-to-bootstrap');
    expect(waiting.bootstrap).toEqual({ state: 'waiting', voters: ids });
    start(opts.get('f2')!);
    await sleep(2_000);
    start(opts.get('f3')!);
    await formed(ids, ids);
    console.log(`bootstrap: staggered first start (0, 2, 4 s) formed and bound all three ${Date.now() - t0} ms after the first start`);
    expect(first.node).not.toBeNull();
    await tool(ids, 'memory_store', { key: 'k', value: 1 });
  });

  it('a member wiped while all the others are down waits alone without a term, then is refused when they return', { timeout: 150_000 }, async () => {
    const ids = ['w1', 'w2', 'w3'];
    const { opts, dir } = setup(ids, await freePorts(3));
    for (const id of ids) start(opts.get(id)!);
    await formed(ids, ids);
    await tool(ids, 'memory_store', { key: 'acknowledged', value: 42 });
    const victim = 'w2';
    for (const id of ids) await stop(id);
    // A replaced disk: the whole data directory is gone (registry, membership file, database).
    fs.rmSync(path.join(dir, victim), { recursive: true, force: true });

    const s = start(opts.get(victim)!);
    const port = opts.get(victim)!.peers[victim]!.port;
    // Well past several election timeouts: a voter alone would have campaigned (term > 0).
    await sleep(4_000);
    const seen = s.node ? s.node.status() : await probe(port);
    console.log(`bootstrap: wiped ${victim} alone after 4 s: role ${seen.role}, term ${seen.term}, running ${s.node !== null}`);
    expect(s.node).toBeNull();
    expect(s.error).toBeNull();
    expect(seen.role).toBe('waiting-to-bootstrap');
    expect(seen.term).toBeNull();
    // No database: no term or vote was ever persisted, so none can have been granted.
    expect(fs.existsSync(path.join(dir, victim, 'swarms', SWARM, `${victim}.db`))).toBe(false);

    // The others come back on their own state and form again; the book binds w2 elsewhere.
    for (const id of ids.filter((i) => i !== victim)) start(opts.get(id)!);
    await waitFor(`${victim}'s start to end`, 60_000, () => s.node !== null || s.error !== null);
    expect(s.node).toBeNull();
    expect(s.error?.message).toMatch(new RegExp(`member id ${victim} is bound to another data directory`));
    expect(fs.existsSync(path.join(dir, victim, 'swarms', SWARM, `${victim}.db`))).toBe(false);
    const others = ids.filter((i) => i !== victim);
    await formed(others, others);
    // The acknowledged write survived: the survivors' state was never outvoted.
    const got = await tool(others, 'memory_retrieve', { key: 'acknowledged' });
    expect(JSON.stringify(got)).toContain('42');
  });

  it('a member down during the first start starts later on an empty directory and catches up', { timeout: 120_000 }, async () => {
    const ids = ['d1', 'd2', 'd3'];
    const { opts } = setup(ids, await freePorts(3));
    start(opts.get('d1')!);
    start(opts.get('d2')!);
    const book = await formed(ids, ['d1', 'd2']);
    // Listed by the first leader's seed, never bound: it never ran.
    expect(book.members.d3).toMatchObject({ state: 'active', incarnation: null });
    await tool(ids, 'memory_store', { key: 'early', value: 7 });
    const committed = leader(ids)!.status().commit!;
    const late = start(opts.get('d3')!);
    await waitFor('d3 to start', 30_000, () => late.node !== null || late.error !== null);
    expect(late.error).toBeNull();
    await formed(ids, ids);
    await waitFor(`d3 to apply up to ${committed}`, 30_000, () => (late.node!.status().applied ?? 0) >= committed);
    expect(late.node!.cluster.local()?.core.confState().voters).toContain('d3');
  });
});
