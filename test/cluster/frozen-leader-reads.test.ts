// Reads and writes across a leader that is paused (SIGSTOP) for 1.5 s, then resumed
// (SIGCONT), in cluster mode (three `concord node` processes; built CLI: `npm run build`
// first). One client writes a counter, one value after another; other clients read it all
// along, each with its own view of who leads (the readers' calls queue on the frozen leader's
// socket and it answers them when it resumes, still believing it leads until it hears the new
// term; the other members drop its traffic from the pause until a second after it resumes,
// so it cannot hear the new term from them). Checked:
// - no stale read: a read returns at least the last value whose write was acknowledged before
//   the read was sent (what a leader that answered from its own state without confirming its
//   leadership would break);
// - no lost write, none applied twice: the final value is the last acknowledged one, and the
//   key's version counts each write once.

import crypto from 'node:crypto';
import fs from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { ClusterClient } from '../../src/cluster/cluster-client.js';
import { killAll, type MemberProc, resultText, startCluster, waitFor } from './procs.js';

const IDS = ['r1', 'r2', 'r3'];
const READERS = 6;
const PAUSE_MS = 1_500;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('a leader paused 1.5 s (SIGSTOP) and resumed during reads and writes', () => {
  let dir = '';
  let procs: MemberProc[] = [];
  const clients: ClusterClient[] = [];

  afterAll(async () => {
    for (const c of clients) c.close();
    await killAll(procs);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('no read returns a value older than a write acknowledged before it was sent; no write lost or applied twice', { timeout: 120_000 }, async () => {
    const started = await startCluster('frozenreads', IDS);
    ({ dir, procs } = started);
    const { secret } = started;
    const byAddr = new Map(procs.map((p) => [p.addr, p]));
    const client = (name: string, members = procs.map((p) => p.addr)): ClusterClient => {
      const c = new ClusterClient({ members, secret, name, timeoutMs: 20_000 });
      clients.push(c);
      return c;
    };
    const writer = client('writer');
    const oldAddr = await waitFor('a leader', 20_000, async () => {
      const r = await writer.callTool('memory_store', { key: 'ctr', value: 0 });
      return r.isError ? null : writer.leaderAddress;
    });
    // Half the readers know every member (they send a call to another member when the leader
    // is silent); half know only the leader's address (CONCORD_CLUSTER may list only some
    // members): their calls wait on the paused leader's socket, and it answers them itself
    // when it resumes.
    const readers = Array.from({ length: READERS }, (_, i) => client(`reader-${i}`, i % 2 === 0 ? undefined : [oldAddr]));

    // Every client knows the leader and the cluster's timing (so it hedges a silent leader).
    for (const c of readers) {
      const r = await c.callTool('memory_retrieve', { key: 'ctr' });
      expect(r.isError, resultText(r)).toBeFalsy();
    }
    for (const c of [writer, ...readers]) await waitFor('the client to learn the election timeout', 10_000, () => c.electionTimeoutMinMs);
    expect(readers.every((c) => c.leaderAddress === oldAddr)).toBe(true);
    const old = byAddr.get(oldAddr)!;

    // Acknowledged writes: value n acked at time t (this process's clock).
    const acked: Array<{ n: number; at: number }> = [{ n: 0, at: performance.now() }];
    const writeFailures: string[] = [];
    let stop = false;
    const writes = (async () => {
      for (let n = 1; !stop; n++) {
        try {
          const r = await writer.callTool('memory_store', { key: 'ctr', value: n }, { timeoutMs: 15_000 });
          if (r.isError) writeFailures.push(`${n}: ${resultText(r)}`);
          else acked.push({ n, at: performance.now() });
        } catch (e) {
          writeFailures.push(`${n}: ${(e as Error).message}`);
        }
      }
    })();
    const reads: Array<{ sent: number; value: number; version: number; at: number }> = [];
    const readFailures: string[] = [];
    const reading = readers.map(async (c) => {
      while (!stop) {
        const sent = performance.now();
        try {
          const r = await c.callTool('memory_retrieve', { key: 'ctr' }, { timeoutMs: 15_000 });
          const s = r.structuredContent as { found?: boolean; value?: number; version?: number } | undefined;
          if (r.isError || s?.found !== true) readFailures.push(resultText(r));
          else reads.push({ sent, value: s.value as number, version: s.version as number, at: performance.now() });
        } catch (e) {
          readFailures.push((e as Error).message);
        }
      }
    });

    await sleep(500);
    // The others drop its Raft traffic from the moment it is paused until a second after it
    // resumes: nothing of the new term waits on its sockets, so it resumes believing it leads
    // and answers the calls queued meanwhile. Then the cut heals.
    const others = procs.filter((p) => p !== old);
    await Promise.all(others.map((p) => writer.admin(p.addr, { op: 'block', peers: [old.id] })));
    old.pause();
    await sleep(PAUSE_MS);
    const resumedAt = performance.now();
    old.resume();
    await sleep(1_000);
    for (const p of others) await writer.admin(p.addr, { op: 'unblock' });
    await sleep(2_500);
    stop = true;
    await Promise.all([writes, ...reading]);

    // Reads answered after the resume, and reads sent while it was paused, both happened.
    expect(reads.filter((r) => r.at > resumedAt).length).toBeGreaterThan(READERS);
    expect(writeFailures).toEqual([]);
    // Stale: the value read is below one whose write was acknowledged before the read was sent.
    const stale: string[] = [];
    for (const r of reads) {
      let floor = 0;
      for (const w of acked) if (w.at < r.sent) floor = Math.max(floor, w.n);
      if (r.value < floor) stale.push(`read sent at ${Math.round(r.sent)} ms returned ${r.value}, but ${floor} was acknowledged before`);
    }
    expect(stale).toEqual([]);

    // Final state, once the old leader follows again: the last acknowledged value, written once each.
    const last = acked[acked.length - 1]!;
    const final = await waitFor('a linearizable read of the final value', 20_000, async () => {
      const r = await writer.callTool('memory_retrieve', { key: 'ctr' });
      return r.isError ? null : (r.structuredContent as { value: number; version: number });
    });
    expect(final.value).toBe(last.n);
    expect(final.version).toBe(acked.length);
    console.log(`paused leader ${old.id} ${PAUSE_MS} ms: ${acked.length - 1} writes acknowledged, ${reads.length} reads (${reads.filter((r) => r.at > resumedAt).length} answered after the resume, ${readFailures.length} failed), 0 stale; hedges: ${[writer, ...readers].reduce((s, c) => s + c.hedges, 0)}`);
  });
});
