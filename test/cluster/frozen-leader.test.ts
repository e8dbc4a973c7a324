// A FROZEN leader (SIGSTOP: its process keeps its connections open, as when a machine hangs):
// nothing fails and nothing answers, so a client that only waits for its answer would wait out
// its whole answer timeout. The client takes a leader that answers nothing for the cluster's
// minimum election timeout as suspect and sends the call to another member too, naming the
// leader unreachable; that member holds it until a new leader is elected and redirects it
// there. The copy on the frozen leader runs when it resumes, in its stale term: the write
// must still be applied exactly once. Three `concord node` processes (built CLI: `npm run
// build` first).

import fs from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { ClusterClient } from '../../src/cluster/cluster-client.js';
import type { MemberStatus } from '../../src/cluster/protocol.js';
import { killAll, type MemberProc, resultText, startCluster } from './procs.js';

const IDS = ['f1', 'f2', 'f3'];
/**
 * The frozen-leader calls' whole budget. Before clients suspected a silent leader, the attempt
 * on it waited for its answer up to 5 s, so these calls failed; a failover takes about 0.3 s
 * (the default 150-300 ms election timeout and an election), which leaves a loaded machine
 * more than 3 s of slack.
 */
const CALL_BUDGET_MS = 4_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(what: string, timeoutMs: number, f: () => Promise<T | null>): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f().catch(() => null);
    if (v !== null) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

describe('cluster client with a frozen (SIGSTOPped) leader', () => {
  let dir = '';
  let procs: MemberProc[] = [];
  const clients: ClusterClient[] = [];

  afterAll(async () => {
    for (const c of clients) c.close();
    await killAll(procs);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('fails over to the new leader before the old one resumes, and applies each write once after it does', { timeout: 120_000 }, async () => {
    const started = await startCluster('frozen', IDS);
    ({ dir, procs } = started);
    const { secret } = started;
    const byAddr = new Map(procs.map((p) => [p.addr, p]));
    const c = new ClusterClient({ members: procs.map((p) => p.addr), secret, name: 'frozen-test', timeoutMs: 30_000 });
    clients.push(c);
    const status = (p: MemberProc): Promise<MemberStatus> => c.status(p.addr, 1_000);

    // A write through the leader: the client knows it, and learns the cluster's timing.
    const warm = await c.callTool('memory_store', { key: 'frozen/warm', value: 0 });
    expect(warm.isError, resultText(warm)).toBeFalsy();
    const minMs = await waitFor('the client to learn the election timeout', 10_000, async () => c.electionTimeoutMinMs);
    expect(minMs).toBe(150); // the product's default, as the members report it
    const oldAddr = c.leaderAddress!;
    const old = byAddr.get(oldAddr)!;
    const oldTerm = (await status(old)).term!;
    const hedgesBefore = c.hedges;

    // Writers keep 16 writes in flight, so when the leader freezes some of its entries are
    // likely on the followers without it knowing them committed: the new leader commits them,
    // and the client's copies of those calls must be answered from the session table.
    const WRITERS = 16;
    let stopWriters = false;
    let t0 = Infinity;
    const acked: Array<{ key: string; at: number }> = [];
    const failures: string[] = [];
    const writer = async (w: number): Promise<void> => {
      for (let n = 0; !stopWriters; n++) {
        const key = `load/${w}/${n}`;
        try {
          const r = await c.callTool('memory_store', { key, value: n }, { timeoutMs: CALL_BUDGET_MS });
          if (r.isError) failures.push(`${key}: ${resultText(r)}`);
          else acked.push({ key, at: Date.now() });
        } catch (e) {
          failures.push(`${key}: ${(e as Error).message}`);
        }
      }
    };
    const writers = Array.from({ length: WRITERS }, (_, w) => writer(w));
    await sleep(300);

    old.pause();
    // Both calls are sent to the frozen leader (the one the client knows), then elsewhere.
    t0 = Date.now();
    const [stored, orchestrated] = await Promise.all([
      c.callTool('memory_store', { key: 'frozen/once', value: 'v' }, { timeoutMs: CALL_BUDGET_MS }),
      c.callTool('task_orchestrate', { task: 'frozen once', count: 3 }, { timeoutMs: CALL_BUDGET_MS }),
    ]);
    const failoverMs = Date.now() - t0;
    // Answered while the old leader is still stopped, by another member.
    expect(old.state).toBe('stopped');
    expect(stored.isError, resultText(stored)).toBeFalsy();
    expect(orchestrated.isError, resultText(orchestrated)).toBeFalsy();
    expect(c.leaderAddress).not.toBeNull();
    expect(c.leaderAddress).not.toBe(oldAddr);
    expect(c.hedges - hedgesBefore).toBeGreaterThanOrEqual(2);
    const newLeader = byAddr.get(c.leaderAddress!)!;
    const newTerm = (await status(newLeader)).term!;
    expect(newTerm).toBeGreaterThan(oldTerm);
    // Every writer also got a write through after the freeze, all while the old leader is stopped.
    await waitFor('a write of every writer after the freeze', 20_000, async () => (new Set(acked.filter((x) => x.at > t0).map((x) => x.key.split('/')[1])).size >= WRITERS ? true : null));
    stopWriters = true;
    await Promise.all(writers);
    expect(old.state).toBe('stopped');
    expect(failures).toEqual([]);
    const orchId = (orchestrated.structuredContent as { orchestration_id: string }).orchestration_id;
    console.log(`frozen leader ${old.id}: both calls answered by ${newLeader.id} (term ${newTerm}) ${failoverMs} ms after the SIGSTOP`);

    // The old leader resumes with the two requests waiting on its socket and runs them in
    // its stale term; it then hears the new term, steps down and catches up.
    old.resume();
    let last: MemberStatus[] = [];
    await waitFor('the old leader to follow the leader and catch up', 30_000, async () => {
      last = await Promise.all(procs.map((p) => status(p).catch(() => ({ id: p.id, role: 'no answer' }) as MemberStatus)));
      const o = last.find((s) => s.id === old.id)!;
      const l = last.find((s) => s.role === 'leader');
      return l && o.role === 'follower' && o.term === l.term && o.leader === l.id && (o.applied ?? 0) >= (l.commit ?? Infinity) ? o : null;
    }).catch((e: Error) => {
      throw new Error(`${e.message}; statuses: ${JSON.stringify(last.map((s) => ({ id: s.id, role: s.role, term: s.term, leader: s.leader, commit: s.commit, applied: s.applied })))}`);
    });
    // Give whatever the old leader did with them time to reach the log, then commit past it.
    await sleep(500);
    const after = await c.callTool('memory_store', { key: 'frozen/after', value: 1 });
    expect(after.isError, resultText(after)).toBeFalsy();

    // Applied once: the key's first version, and one orchestration of 3 tasks.
    const got = await c.callTool('memory_retrieve', { key: 'frozen/once' });
    expect(got.structuredContent).toMatchObject({ found: true, value: 'v', version: 1 });
    // The only orchestration of the test: 3 tasks in all (a second copy would make 6).
    const tasks = await c.callTool('task_results', {});
    expect(tasks.isError, resultText(tasks)).toBeFalsy();
    expect(tasks.structuredContent).toMatchObject({ total_tasks: 3, duplicates: 0 });
    const one = await c.callTool('task_results', { orchestration_id: orchId });
    expect(one.structuredContent).toMatchObject({ total_tasks: 3 });
    const listed = await c.callTool('memory_list', { prefix: 'load/', limit: 10_000 });
    const versions = new Map(((listed.structuredContent as { keys: Array<{ key: string; version: number }> }).keys ?? []).map((k) => [k.key, k.version]));
    expect(versions.size).toBe(acked.length);
    const twice = acked.filter((x) => versions.get(x.key) !== 1).map((x) => `${x.key}: version ${versions.get(x.key)}`);
    expect(twice).toEqual([]);
    console.log(`${acked.length} load writes acknowledged (${acked.filter((x) => x.at > t0).length} after the freeze), each applied once; ${c.hedges - hedgesBefore} calls sent to a second member`);
    // Every member applied the same state.
    const applied = await Promise.all(procs.map((p) => status(p)));
    expect(new Set(applied.map((s) => s.leader)).size).toBe(1);
  });
});
