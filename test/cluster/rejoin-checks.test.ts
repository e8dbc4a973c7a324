// What a `concord node` restarted on its own data checks before (and while) it runs, with
// members in this process (MemberNode on loopback TCP, no built CLI needed):
// - a member that joined with --join and was removed while it was down restarts from its own
//   state (its seeds may all be down) and stops as soon as a seed says it was removed: the
//   background --join check's own answer, not the keeper's later peer poll;
// - a bootstrap member whose data directory was wiped, restarted with its usual --peers while
//   the others run: its id is bound to the old directory's incarnation, so it must not run as
//   an empty-logged voter (it would grant any candidate its vote).

import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemberNode, type MemberNodeOptions } from '../../src/cluster/member-node.js';
import { freePorts, waitFor } from './procs.js';

const SWARM = 'rj';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));


describe('concord node restarted on its own data', () => {
  let dir = '';
  const secret = crypto.randomBytes(32);
  const nodes = new Map<string, MemberNode>();
  const opts = new Map<string, MemberNodeOptions>();
  const fatal = new Map<string, string[]>();
  let ports: number[] = [];
  const boot = ['a1', 'a2', 'a3'];

  const addr = (id: string): string => {
    const p = opts.get(id)!.peers[id]!;
    return `${p.host}:${p.port}`;
  };

  async function start(id: string): Promise<MemberNode> {
    const n = await MemberNode.start(opts.get(id)!);
    nodes.set(id, n);
    return n;
  }

  async function stop(id: string): Promise<void> {
    await nodes.get(id)?.close();
    nodes.delete(id);
  }

  function leader(): MemberNode | undefined {
    return [...nodes.values()].find((n) => n.cluster.leader() !== undefined);
  }

  async function tool(name: string, args: Record<string, unknown>): Promise<Record<string, unknown>> {
    const l = await waitFor('a leader that committed in its term', 20_000, () => {
      const n = leader();
      const h = n?.cluster.leader();
      return h && h.core.log.term(h.core.log.committed) === h.core.term ? n : null;
    });
    const r = (await l.handle({ kind: 'tool', name, arguments: args }, 'test')) as { result: { isError?: boolean; content?: Array<{ text?: string }>; structuredContent?: Record<string, unknown> } };
    if (r.result.isError) throw new Error(r.result.content?.[0]?.text ?? 'tool error');
    return r.result.structuredContent ?? {};
  }

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-rejoin-'));
    ports = await freePorts(4);
    const peers = Object.fromEntries(boot.map((id, i) => [id, { host: '127.0.0.1', port: ports[i]! }]));
    for (const id of [...boot, 'j']) fatal.set(id, []);
    for (const id of boot) {
      opts.set(id, { swarm: SWARM, id, peers: { ...peers }, dataDir: path.join(dir, id), secret, durability: 'normal', onFatal: (m) => fatal.get(id)!.push(m) });
    }
    await Promise.all(boot.map((id) => start(id)));
    await waitFor('the cluster id and every bootstrap member bound', 30_000, () => {
      const b = leader()?.status().membership;
      return b?.cluster_id && boot.every((id) => b.members[id]?.incarnation) ? b : null;
    });
  }, 60_000);

  afterAll(async () => {
    for (const id of [...nodes.keys()]) await stop(id);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a joined member removed while it was down restarts from its state, then stops because a seed says it was removed', { timeout: 90_000 }, async () => {
    const joinAt = { host: '127.0.0.1', port: ports[3]! };
    opts.set('j', { swarm: SWARM, id: 'j', peers: { j: joinAt }, dataDir: path.join(dir, 'j'), secret, durability: 'normal', join: boot.map(addr), onFatal: (m) => fatal.get('j')!.push(m) });
    await tool('member_add', { id: 'j', address: `${joinAt.host}:${joinAt.port}` });
    await tool('memory_store', { key: 'before-join', value: 1 });
    const j = await start('j');
    // Joined for good: promoted to voter, its incarnation bound, the cluster id recorded beside its state.
    await waitFor('j to be a bound voter', 30_000, () => {
      const st = leader()?.cluster.leader()?.status();
      const b = leader()?.status().membership;
      return st?.conf.voters.includes('j') && b?.members.j?.incarnation ? true : null;
    });
    await waitFor('j to apply its own binding', 10_000, () => j.status().membership?.members.j?.incarnation);
    const recorded = JSON.parse(fs.readFileSync(path.join(dir, 'j', 'swarms', SWARM, 'membership.json'), 'utf8')) as { cluster_id: string | null };
    expect(recorded.cluster_id).toBe(leader()!.status().membership!.cluster_id);

    // Down (a dead machine) while it is removed: it never applies its removal.
    await stop('j');
    const rm = await tool('member_remove', { id: 'j' });
    expect(rm.removed).toBe(true);
    expect(fatal.get('j')).toEqual([]);
    // Down for a while: the leader's one notice to it (at the removal, 1 s timeout) has failed.
    await sleep(1_500);

    // Back with its --join command line: it starts from its own state (no refusal at start)...
    const t0 = Date.now();
    await start('j');
    // ...and the background --join check hears from a seed that it was removed.
    const msgs = await waitFor('j to stop', 20_000, () => (fatal.get('j')!.length > 0 ? fatal.get('j')! : null));
    const ms = Date.now() - t0;
    // The first reason is the seeds' answer to the --join check. The keeper's own poll of its
    // peers (after LEADERLESS_CHECK_MS without a leader) would say "removed from the cluster
    // configuration (as X reports)"; with the background check's removal path broken, that
    // poll is what stops it, and this fails.
    expect(msgs[0]).toMatch(/^--join: member id j was removed from this cluster and ids are never reused/);
    console.log(`rejoin-checks: removed joiner stopped ${ms} ms after its restart; reasons: ${JSON.stringify(msgs)}`);
    await stop('j');
  });

  it('a bootstrap member whose data directory was wiped is refused while its peers say its id is bound to another directory', { timeout: 90_000 }, async () => {
    const victim = boot.find((id) => leader()?.cluster.id !== id)!;
    const before = leader()!.status().membership!.members[victim]!.incarnation;
    expect(before).toEqual(expect.any(String));
    await tool('memory_store', { key: 'before-wipe', value: 2 });
    await stop(victim);
    // A replaced disk: the whole data directory is gone (registry, membership file, database).
    fs.rmSync(path.join(dir, victim), { recursive: true, force: true });
    let started: MemberNode | null = null;
    let refusal: Error | null = null;
    try {
      started = await start(victim);
    } catch (e) {
      refusal = e as Error;
    }
    if (started) {
      // What it did instead: it runs as a voter with an empty log and no vote, which grants
      // any candidate (it stops only once a snapshot brings it the book).
      const h = started.cluster.local();
      const st = h?.status();
      console.log(`rejoin-checks: wiped ${victim} started as ${st?.role} (term ${st?.term}, last index ${st?.lastIndex}, voters ${JSON.stringify(h?.core.confState().voters)})`);
      await stop(victim);
    }
    expect(refusal?.message ?? `started (no refusal); fatal reports: ${JSON.stringify(fatal.get(victim))}`).toMatch(new RegExp(`${victim} is bound to another data directory`));
  });
  it('--join under the id of a running, bound member on another (empty) data directory is refused before it runs', { timeout: 60_000 }, async () => {
    const taken = [...nodes.keys()].find((id) => boot.includes(id))!;
    const bound = leader()!.status().membership!.members[taken]!.incarnation;
    expect(bound).toEqual(expect.any(String));
    const o: MemberNodeOptions = { swarm: SWARM, id: taken, peers: { [taken]: { host: '127.0.0.1', port: ports[3]! } }, dataDir: path.join(dir, `${taken}-copy`), secret, durability: 'normal', join: [...nodes.keys()].map(addr) };
    let refusal: Error | null = null;
    try {
      const rogue = await MemberNode.start(o);
      await rogue.close(); // it ran: the test fails below
    } catch (e) {
      refusal = e as Error;
    }
    expect(refusal?.message ?? 'started (no refusal)').toMatch(new RegExp(`--join: member id ${taken} is bound to another data directory \\(incarnation ${bound}\\)`));
    // Nothing of it ran: the running member keeps its binding.
    expect(leader()!.status().membership!.members[taken]!.incarnation).toBe(bound);
  });
});
