// Chaos test of cluster mode: five `concord node` processes on loopback, concurrent clients
// (ClusterClient) orchestrating tasks and reading/writing replicated memory, and a nemesis
// driven by a seeded PRNG that kill -9s members (the leader about half the time) and restarts
// them on the same data dir, SIGSTOPs and SIGCONTs them, partitions them with admin blocks, and
// replaces members (kill -9 one as a dead machine, member_remove it, wipe its directory,
// member_add a NEW id at its address and start that with --join while the load runs).
// After the chaos everything is healed and the test checks: every acknowledged orchestration
// completed exactly once, no acknowledged memory write was lost, the memory history is
// linearizable, and the members' committed logs agree.
//
// Replay: CONCORD_CHAOS_SEED=<seed printed by a run> npx vitest run test/cluster/chaos.test.ts
// (the nemesis' choices follow the seed; timing still varies). CONCORD_CHAOS_SECONDS sets the
// chaos duration (default 70), CONCORD_CHAOS_KEEP=1 keeps the temp dir of a passing run.
// The members run the built CLI (dist/): `npm run build` first.

import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, describe, expect, it } from 'vitest';
import { ClusterClient } from '../../src/cluster/cluster-client.js';
import type { MemberStatus } from '../../src/cluster/protocol.js';
import { Prng } from '../../src/util/prng.js';
import { HistoryRecorder, checkKvHistory, type KvInput, type KvOperation, type KvOutput } from '../helpers/linearizability.js';
import { checkFinalValues, compareLogs, type LogDigest } from './chaos-checks.js';
import { describeExit, freePorts, killAll, MemberProc, memberProcs, requireBuild, resultText, writeSecretFile } from './procs.js';

// CI (CI set) uses the day's seed, so a red run replays with the seed it printed; locally
// every run explores a new one.
const SEED = process.env.CONCORD_CHAOS_SEED
  ? Number(process.env.CONCORD_CHAOS_SEED) >>> 0
  : process.env.CI
    ? Math.floor(Date.now() / 86_400_000) >>> 0
    : (Math.random() * 2 ** 32) >>> 0;
const CHAOS_MS = Number(process.env.CONCORD_CHAOS_SECONDS ?? 70) * 1000;
const KEEP = process.env.CONCORD_CHAOS_KEEP === '1';
const SWARM = 'chaos';
const IDS = ['n1', 'n2', 'n3', 'n4', 'n5'];
const KEYS = ['chaos/a', 'chaos/b', 'chaos/c', 'chaos/d'];
/** Per memory client: how long a call may take (with retries) before its outcome is unknown.
 * The impatient one gives up during most failovers, so the history has unknown outcomes. */
const MEMORY_CLIENT_TIMEOUTS_MS = [5_000, 5_000, 1_000];
const CLIENT_TIMEOUT_MS = 5_000;
/** Members replaced during the chaos (at evenly spaced times, when nothing else is down). */
const REPLACES = CHAOS_MS >= 30_000 ? 2 : 0;
/** Committed-log digests are sampled from the running members this often during the chaos. */
const LOG_SAMPLE_MS = 2_000;
/** Clients keep going at least this long after the final heal... */
const AFTER_HEAL_MS = 3_000;
/** ...and until one of their calls started after the heal succeeds (bounded by this). */
const RECOVERY_MS = 20_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));


function structured(r: CallToolResult): Record<string, unknown> {
  return (r.structuredContent ?? {}) as Record<string, unknown>;
}

interface TaskOp {
  client: string;
  n: number;
  count: number;
  executor: string;
  call: number;
  ret: number;
  outcome: 'ack' | 'error' | 'unknown';
  orchestration_id?: string;
  deduplicated?: boolean;
  detail?: string;
}

interface ClientStats {
  ops: number;
  acked: number;
  unknown: number;
  failedReads: number;
  errors: Record<string, number>;
  lastSuccessAt: number;
}

function newStats(): ClientStats {
  return { ops: 0, acked: 0, unknown: 0, failedReads: 0, errors: {}, lastSuccessAt: -1 };
}

function errorKind(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return m.split(/[:(]/)[0]!.slice(0, 60);
}

describe('cluster chaos (5 member processes, kill -9 / SIGSTOP / partitions)', () => {
  let dir = '';
  let procs: MemberProc[] = [];
  const clients: ClusterClient[] = [];
  let passed = false;
  /** Tells the client loops to finish (also set when the test fails). */
  let stopClients = false;

  afterAll(async () => {
    stopClients = true;
    for (const c of clients) c.close();
    await killAll(procs);
    const leaked = procs.filter((p) => p.state !== 'down');
    if (leaked.length > 0) console.error(`chaos: processes still alive after cleanup: ${leaked.map((p) => `${p.id} pid ${p.pid}`).join(', ')}`);
    if (dir && passed && !KEEP) fs.rmSync(dir, { recursive: true, force: true });
    else if (dir) console.log(`chaos: seed ${SEED}; data dirs, member logs and history kept in ${dir}`);
  });

  it('keeps tasks exactly-once, memory linearizable and logs identical', { timeout: CHAOS_MS + 170_000 }, async () => {
    requireBuild();
    const t0 = Date.now();
    console.log(`chaos: seed ${SEED} (replay with CONCORD_CHAOS_SEED=${SEED}), ${CHAOS_MS / 1000}s of faults`);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-chaos-'));
    const { secretFile, secret } = writeSecretFile(dir);
    const ports = await freePorts(IDS.length);
    procs = memberProcs({ swarm: SWARM, ids: IDS, ports, dir, secretFile });
    const byId = new Map(procs.map((p) => [p.id, p]));
    /** The current members' ids (replacements change them). */
    const memberIds = [...IDS];
    const memberEnv = { ...process.env, CONCORD_LOG_LEVEL: process.env.CONCORD_LOG_LEVEL ?? 'warn' };
    const addrs = procs.map((p) => p.addr);
    const prng = new Prng(SEED);
    const rec = new HistoryRecorder();
    const events: string[] = [];
    const note = (m: string): void => {
      events.push(`${rec.now().toFixed(0).padStart(7)} ms  ${m}`);
    };
    const taskOps: TaskOp[] = [];
    const stats: Record<string, ClientStats> = {};
    let finals: KvOperation[] = [];

    const dump = (why: string): string => {
      const file = path.join(dir, 'history.json');
      try {
        fs.writeFileSync(file, JSON.stringify({ seed: SEED, why, events, memory: rec.ops, finals, tasks: taskOps, stats }, null, 1));
      } catch (e) {
        return `(could not write ${file}: ${(e as Error).message})`;
      }
      return file;
    };

    const admin = new ClusterClient({ members: addrs, secret, name: 'nemesis', timeoutMs: 5_000 });
    clients.push(admin);

    const statusOf = async (p: MemberProc, timeoutMs = 1_000): Promise<MemberStatus | null> => {
      if (p.state !== 'running') return null;
      try {
        return await admin.status(p.addr, timeoutMs);
      } catch {
        return null;
      }
    };
    const currentLeader = async (): Promise<MemberStatus | null> => {
      const st = await Promise.all(procs.map((p) => statusOf(p, 500)));
      const leaders = st.filter((s): s is MemberStatus => s !== null && s.role === 'leader').sort((a, b) => (b.term ?? 0) - (a.term ?? 0));
      return leaders[0] ?? null;
    };

    try {
      // ---- start -----------------------------------------------------------------------------
      for (const p of procs) p.start();
      await Promise.all(procs.map((p) => p.waitListening(30_000)));
      const deadline0 = Date.now() + 30_000;
      while (!(await currentLeader())) {
        if (Date.now() > deadline0) throw new Error('no leader within 30 s of start');
        await sleep(50);
      }
      note(`cluster up: ${procs.map((p) => `${p.id}=${p.addr}`).join(' ')}`);

      // ---- clients ---------------------------------------------------------------------------

      const memoryClient = async (i: number, cp: Prng): Promise<void> => {
        const name = `m${i}`;
        const st = (stats[name] = newStats());
        const c = new ClusterClient({ members: addrs, secret, name: `chaos-${name}`, timeoutMs: MEMORY_CLIENT_TIMEOUTS_MS[i] ?? CLIENT_TIMEOUT_MS });
        clients.push(c);
        const lastVersion = new Map<string, number>();
        let n = 0;
        const call = async (tool: string, args: Record<string, unknown>): Promise<CallToolResult> => c.callTool(tool, args);
        const writeOutcome = (o: { value: CallToolResult } | { error: unknown }, kind: 'put' | 'delete'): KvOutput | null => {
          if ('error' in o) {
            const k = errorKind(o.error);
            st.errors[k] = (st.errors[k] ?? 0) + 1;
            return null;
          }
          const r = o.value;
          if (!r.isError) {
            const s = structured(r);
            return kind === 'put' ? { ok: true, version: s.version as number } : { ok: true, deleted: s.deleted as boolean };
          }
          const t = resultText(r);
          // A version condition refused: applied through the log, no effect.
          if (t.startsWith('conflict:')) return { ok: false };
          const k = `tool ${t.split(':')[0]!.slice(0, 40)}`;
          st.errors[k] = (st.errors[k] ?? 0) + 1;
          return null;
        };
        while (!stopClients) {
          const key = cp.pick(KEYS);
          const r = cp.next();
          let input: KvInput;
          let run: () => Promise<CallToolResult>;
          let classify: (o: { value: CallToolResult } | { error: unknown }) => KvOutput | null | 'skip';
          if (r < 0.4) {
            const value = `${name}-${n++}`;
            input = { op: 'put', key, value };
            run = () => call('memory_store', { key, value });
            classify = (o) => writeOutcome(o, 'put');
          } else if (r < 0.5) {
            // Compare-and-set from the version this client last saw (0: "must not exist");
            // often stale under concurrency, then refused.
            const value = `${name}-${n++}`;
            const ifVersion = lastVersion.get(key) ?? 0;
            input = { op: 'put', key, value, ifVersion };
            run = () => call('memory_store', { key, value, if_version: ifVersion });
            classify = (o) => writeOutcome(o, 'put');
          } else if (r < 0.9) {
            input = { op: 'get', key };
            run = () => call('memory_retrieve', { key });
            classify = (o) => {
              if ('value' in o) {
                const res = o.value;
                if (!res.isError) {
                  const s = structured(res);
                  return { found: true, value: s.value, version: s.version as number };
                }
                if (resultText(res).startsWith('not_found:')) return { found: false };
              }
              st.failedReads++;
              return 'skip'; // a failed read changed nothing
            };
          } else {
            const ifVersion = cp.chance(0.5) ? lastVersion.get(key) : undefined;
            input = { op: 'delete', key, ifVersion: ifVersion ?? null };
            run = () => call('memory_delete', ifVersion === undefined ? { key } : { key, if_version: ifVersion });
            classify = (o) => writeOutcome(o, 'delete');
          }
          const op = await rec.record(name, input, run, classify);
          st.ops++;
          if (!op) continue;
          if (op.output === null) {
            st.unknown++;
            continue;
          }
          st.acked++;
          st.lastSuccessAt = op.ret;
          const out = op.output;
          if ('found' in out) {
            if (out.found) lastVersion.set(key, out.version);
            else lastVersion.delete(key);
          } else if ('version' in out) lastVersion.set(key, out.version);
          else if ('deleted' in out) lastVersion.delete(key);
        }
      };

      const taskClient = async (i: number, cp: Prng): Promise<void> => {
        const name = `t${i}`;
        const st = (stats[name] = newStats());
        const c = new ClusterClient({ members: addrs, secret, name: `chaos-${name}`, timeoutMs: CLIENT_TIMEOUT_MS });
        clients.push(c);
        let n = 0;
        while (!stopClients) {
          const count = cp.int(1, 17);
          const sleepy = cp.chance(0.3);
          const args: Record<string, unknown> = { task: `chaos ${name} #${n}`, count };
          if (sleepy) args.executor = { kind: 'sleep', sleep_ms: cp.int(5, 60) };
          const op: TaskOp = { client: name, n: n++, count, executor: sleepy ? `sleep ${(args.executor as { sleep_ms: number }).sleep_ms}ms` : 'noop', call: rec.now(), ret: 0, outcome: 'unknown' };
          try {
            const r = await c.callTool('task_orchestrate', args);
            op.ret = rec.now();
            const s = structured(r);
            if (!r.isError && typeof s.orchestration_id === 'string') {
              op.outcome = 'ack';
              op.orchestration_id = s.orchestration_id;
              op.deduplicated = s.deduplicated === true;
              st.acked++;
              st.lastSuccessAt = op.ret;
            } else {
              op.outcome = 'error';
              op.detail = resultText(r).slice(0, 200);
              const k = `tool ${resultText(r).split(':')[0]!.slice(0, 40)}`;
              st.errors[k] = (st.errors[k] ?? 0) + 1;
            }
          } catch (e) {
            op.ret = rec.now();
            op.outcome = 'unknown';
            op.detail = (e as Error).message.slice(0, 200);
            st.unknown++;
            const k = errorKind(e);
            st.errors[k] = (st.errors[k] ?? 0) + 1;
          }
          st.ops++;
          taskOps.push(op);
          await sleep(cp.int(50, 300));
        }
      };

      const running = [
        ...MEMORY_CLIENT_TIMEOUTS_MS.map((_, i) => memoryClient(i, prng.fork())),
        taskClient(0, prng.fork()),
      ];
      const clientsDone = Promise.allSettled(running);

      // ---- nemesis ---------------------------------------------------------------------------
      const np = prng.fork();
      let plan: Map<string, string[]> | null = null;
      const restores: Array<{ at: number; what: string; fn: () => Promise<void> }> = [];
      const faults: Record<string, number> = { kill: 0, killLeader: 0, stop: 0, partition: 0, noQuorumWindows: 0, killAll: 0, replace: 0 };
      const chaosStart = Date.now();
      let nextMemberNo = IDS.length + 1;
      const added: string[] = [];
      /** A member_* call, retried through faults until it succeeds or `ms` passes; the error text otherwise. */
      const membership = async (tool: string, args: Record<string, unknown>, ms: number): Promise<string | null> => {
        const deadline = Date.now() + ms;
        let last = '';
        while (Date.now() < deadline) {
          try {
            const r = await admin.callTool(tool, args, { timeoutMs: 5_000 });
            if (!r.isError) return null;
            last = resultText(r);
          } catch (e) {
            last = (e as Error).message;
          }
          await sleep(200);
        }
        return last;
      };
      /** Replace a dead machine: kill -9 a follower, remove it, wipe it, add a new id at its address. */
      const replaceMember = async (): Promise<void> => {
        const leader = await currentLeader();
        const candidates = procs.filter((p) => p.state === 'running' && p.id !== leader?.id);
        if (!leader || candidates.length === 0) return;
        const victim = np.pick(candidates);
        const newId = `n${nextMemberNo++}`;
        faults.replace!++;
        await victim.kill9();
        note(`replace: kill -9 ${victim.id} (a dead machine); member_remove it, wipe it, member_add ${newId} at ${victim.addr}`);
        const rmErr = await membership('member_remove', { id: victim.id }, 20_000);
        if (rmErr !== null) {
          note(`replace: member_remove ${victim.id} failed (${rmErr.slice(0, 160)}); restarting it instead`);
          restores.push({ at: Date.now() + 100, what: `restart ${victim.id}`, fn: () => restart(victim) });
          return;
        }
        procs.splice(procs.indexOf(victim), 1);
        byId.delete(victim.id);
        memberIds.splice(memberIds.indexOf(victim.id), 1);
        fs.rmSync(path.join(dir, victim.id), { recursive: true, force: true });
        // A previous replacement may still be catching up as a learner: one change at a time.
        const addErr = await membership('member_add', { id: newId, address: victim.addr }, 30_000);
        if (addErr !== null) {
          note(`replace: member_add ${newId} failed (${addErr.slice(0, 160)}); the cluster goes on with ${procs.length} members`);
          return;
        }
        const dataDir = path.join(dir, newId);
        fs.mkdirSync(dataDir, { recursive: true });
        const args = ['node', '--swarm', SWARM, '--id', newId, '--listen', victim.addr, '--join', procs.map((p) => p.addr).join(','), '--data-dir', dataDir, '--secret-file', secretFile];
        const joined = new MemberProc(newId, victim.addr, args, path.join(dir, `${newId}.log`), memberEnv);
        procs.push(joined);
        byId.set(newId, joined);
        memberIds.push(newId);
        added.push(newId);
        joined.start();
        try {
          await joined.waitListening(15_000);
          note(`replace: ${newId} started with --join`);
        } catch (e) {
          note(`replace: ${newId} did not start: ${(e as Error).message.split('\n')[0]}`);
        }
      };

      const setBlocks = async (p: MemberProc): Promise<void> => {
        if (p.state !== 'running') return;
        const peers = plan?.get(p.id) ?? [];
        try {
          await admin.admin(p.addr, peers.length > 0 ? { op: 'block', peers } : { op: 'unblock' }, 1_000);
        } catch (e) {
          note(`admin ${peers.length > 0 ? 'block' : 'unblock'} on ${p.id} failed: ${(e as Error).message.slice(0, 120)}`);
        }
      };
      const applyPlan = async (): Promise<void> => {
        await Promise.all(procs.map((p) => setBlocks(p)));
      };
      const restart = async (p: MemberProc): Promise<void> => {
        if (p.state !== 'down') return;
        p.start();
        try {
          await p.waitListening(15_000);
        } catch (e) {
          note(`restart of ${p.id} failed: ${(e as Error).message.split('\n')[0]}`);
          return;
        }
        note(`restarted ${p.id}`);
        // Blocks are in memory: a restarted member rejoins the partition it was in.
        if (plan) await setBlocks(p);
      };
      const resume = async (p: MemberProc): Promise<void> => {
        if (p.state !== 'stopped') return;
        p.resume();
        note(`SIGCONT ${p.id}`);
        // A heal (or a new partition) may have happened while it was stopped.
        await setBlocks(p);
      };
      const downCount = (): number => procs.filter((p) => p.state !== 'running').length;

      const injectFault = async (): Promise<void> => {
        // Replacements at evenly spaced times, once nothing is down, stopped or cut off.
        const replaceDue = faults.replace! < REPLACES && Date.now() - chaosStart >= ((faults.replace! + 1) * CHAOS_MS) / (REPLACES + 1);
        if (replaceDue && downCount() === 0 && !plan && restores.length === 0) return replaceMember();
        // Keep a majority running most of the time; now and then allow a window without quorum.
        const budget = np.chance(0.12) ? 3 : 2;
        const r = np.next();
        if (r < 0.56) {
          if (downCount() >= budget) return;
          const kill = r < 0.38;
          const wantLeader = np.chance(0.5);
          const randomPick = np.pick(procs.filter((p) => p.state === 'running'));
          // The leader about half the time: wait a little for one if an election is under way.
          let leader: MemberStatus | null = null;
          for (let i = 0; wantLeader && i < 20 && !(leader = await currentLeader()); i++) await sleep(50);
          const target = leader ? byId.get(leader.id) : undefined;
          const victim = target && target.state === 'running' ? target : randomPick.state === 'running' ? randomPick : undefined;
          if (!victim) return;
          const isLeader = leader?.id === victim.id;
          const who = isLeader ? ' (leader)' : wantLeader ? (leader ? ` (leader ${leader.id} not running)` : ' (no leader found)') : '';
          const pauseMs = np.int(300, 3_500);
          if (downCount() + 1 >= 3) faults.noQuorumWindows!++;
          if (kill) {
            faults.kill!++;
            if (isLeader) faults.killLeader!++;
            await victim.kill9();
            note(`kill -9 ${victim.id}${who}; restart in ${pauseMs} ms`);
            restores.push({ at: Date.now() + pauseMs, what: `restart ${victim.id}`, fn: () => restart(victim) });
          } else {
            faults.stop!++;
            victim.pause();
            note(`SIGSTOP ${victim.id}${who}; SIGCONT in ${pauseMs} ms`);
            restores.push({ at: Date.now() + pauseMs, what: `SIGCONT ${victim.id}`, fn: () => resume(victim) });
          }
        } else if (r < 0.9) {
          if (plan) return;
          const leader = await currentLeader();
          const shuffled = [...memberIds].sort(() => np.next() - 0.5);
          const kind = np.pick(['isolate-leader', 'leader-in-minority', 'split-2-3', 'isolate-one'] as const);
          let groups: string[][];
          if ((kind === 'isolate-leader' || kind === 'leader-in-minority') && leader) {
            const others = shuffled.filter((id) => id !== leader.id);
            groups = kind === 'isolate-leader' ? [[leader.id], others] : [[leader.id, others[0]!], others.slice(1)];
          } else if (kind === 'split-2-3') {
            groups = [shuffled.slice(0, 2), shuffled.slice(2)];
          } else {
            groups = [[shuffled[0]!], shuffled.slice(1)];
          }
          plan = new Map(memberIds.map((id) => [id, memberIds.filter((o) => !groups.find((g) => g.includes(id))!.includes(o))]));
          faults.partition!++;
          const healMs = np.int(800, 4_000);
          await applyPlan();
          note(`partition ${kind}: ${groups.map((g) => `[${g.join(',')}]`).join(' ')}${leader ? ` (leader was ${leader.id})` : ''}; heal in ${healMs} ms`);
          restores.push({
            at: Date.now() + healMs,
            what: 'heal partition',
            fn: async () => {
              plan = null;
              await applyPlan();
              note('partition healed');
            },
          });
        } else if (r < 0.95) {
          // A window without quorum: three members stopped at once, briefly.
          if (downCount() > 0) return;
          const victims = [...memberIds].sort(() => np.next() - 0.5).slice(0, 3).map((id) => byId.get(id)!);
          const pauseMs = np.int(800, 2_500);
          faults.noQuorumWindows!++;
          for (const v of victims) {
            faults.stop!++;
            v.pause();
            restores.push({ at: Date.now() + pauseMs, what: `SIGCONT ${v.id}`, fn: () => resume(v) });
          }
          note(`SIGSTOP ${victims.map((v) => v.id).join(',')} (no quorum); SIGCONT in ${pauseMs} ms`);
        } else {
          // Everyone dies at once (a power cut, as far as processes go); all restart from disk.
          const pauseMs = np.int(300, 2_000);
          faults.killAll!++;
          await Promise.all(procs.map((p) => p.kill9()));
          for (const p of procs) restores.push({ at: Date.now() + pauseMs, what: `restart ${p.id}`, fn: () => restart(p) });
          note(`kill -9 all members; restart in ${pauseMs} ms`);
        }
      };

      // Committed entries never change: digests taken during the chaos are compared with each
      // other and with the final ones, which covers far more of the log than compaction leaves.
      const digests: LogDigest[] = [];
      const sampleLogs = async (timeoutMs: number): Promise<void> => {
        await Promise.all(
          procs.map(async (p) => {
            if (p.state !== 'running') return;
            try {
              digests.push(await fetchLog(p, timeoutMs));
            } catch {
              // stopped, restarting or slow: next time
            }
          }),
        );
      };
      const fetchLog = async (p: MemberProc, timeoutMs: number): Promise<LogDigest> => {
        const first = (await admin.admin(p.addr, { op: 'log' }, timeoutMs)) as LogDigest;
        const entries = [...first.entries];
        // Answers carry at most 50,000 entries: page on.
        while (entries.length > 0 && entries[entries.length - 1]!.index < first.commit) {
          const more = (await admin.admin(p.addr, { op: 'log', from: entries[entries.length - 1]!.index + 1, to: first.commit }, timeoutMs)) as LogDigest;
          if (more.entries.length === 0) break;
          entries.push(...more.entries);
        }
        return { ...first, entries };
      };

      const chaosEnd = Date.now() + CHAOS_MS;
      let nextFault = Date.now() + 1_000;
      let nextSample = Date.now() + LOG_SAMPLE_MS;
      while (Date.now() < chaosEnd) {
        // A member that exited without the nemesis killing it (a crash, or a signal from
        // another process) is noted and restarted like a killed one; crashes fail the test.
        for (const p of procs) {
          if (p.state !== 'down' || restores.some((r) => r.what === `restart ${p.id}`)) continue;
          const e = p.exits[p.exits.length - 1];
          note(`${p.id} exited on its own: ${e ? describeExit(e) : 'unknown'}; restart in 500 ms`);
          restores.push({ at: Date.now() + 500, what: `restart ${p.id}`, fn: () => restart(p) });
        }
        // Restores that are due run together (e.g. five restarts after a kill of everyone).
        const now = Date.now();
        const due = restores.filter((r) => r.at <= now);
        if (due.length > 0) {
          restores.splice(0, restores.length, ...restores.filter((r) => r.at > now));
          await Promise.all(due.map((r) => r.fn()));
        }
        if (Date.now() >= nextFault) {
          await injectFault();
          nextFault = Date.now() + np.int(300, 2_000);
        }
        if (Date.now() >= nextSample) {
          await sampleLogs(1_000);
          nextSample = Date.now() + LOG_SAMPLE_MS;
        }
        await sleep(25);
      }

      // ---- heal everything -------------------------------------------------------------------
      note(`chaos over: ${JSON.stringify(faults)}; healing (pending: ${restores.map((r) => r.what).join(', ') || 'none'})`);
      restores.length = 0;
      plan = null;
      for (const p of procs) if (p.state === 'stopped') await resume(p);
      await Promise.all(procs.filter((p) => p.state === 'down').map((p) => restart(p)));
      const healDeadline = Date.now() + 20_000;
      for (;;) {
        const st = await Promise.all(procs.map((p) => statusOf(p, 1_000)));
        if (st.every((s) => s !== null && s.blocked.length === 0)) break;
        if (Date.now() > healDeadline) throw new Error(`could not heal: statuses ${JSON.stringify(st.map((s) => s && { id: s.id, blocked: s.blocked }))}`);
        for (const p of procs) if (p.state === 'down') await restart(p);
        await applyPlan();
        await sleep(100);
      }
      const healedAt = rec.now();
      note('healed: all members running, no blocks');

      // Clients go on for a while: the cluster must serve again.
      await sleep(AFTER_HEAL_MS);
      const recoveryDeadline = Date.now() + RECOVERY_MS;
      while (!rec.ops.some((o) => o.output !== null && o.call >= healedAt) && Date.now() < recoveryDeadline) await sleep(100);
      stopClients = true;
      await clientsDone;
      note('clients stopped');

      // ---- converge --------------------------------------------------------------------------
      let converged: MemberStatus[] = [];
      const convDeadline = Date.now() + 30_000;
      for (;;) {
        for (const p of procs) if (p.state === 'down') await restart(p);
        const st = await Promise.all(procs.map((p) => statusOf(p, 1_000)));
        const ok = st.filter((s): s is MemberStatus => s !== null);
        const leader = ok.filter((s) => s.role === 'leader').sort((a, b) => (b.term ?? 0) - (a.term ?? 0))[0];
        if (ok.length === procs.length && leader && ok.every((s) => s.leader === leader.id && (s.applied ?? 0) >= (leader.commit ?? 0))) {
          converged = ok;
          break;
        }
        if (Date.now() > convDeadline) throw new Error(`members did not converge within 30 s: ${JSON.stringify(st.map((s) => s && { id: s.id, role: s.role, term: s.term, leader: s.leader, commit: s.commit, applied: s.applied }))}`);
        await sleep(100);
      }
      note(`converged: ${converged.map((s) => `${s.id} ${s.role} term ${s.term} commit ${s.commit} applied ${s.applied}`).join('; ')}`);

      // Members that exited without being killed crashed: a bug, whatever else passes.
      const crashes = procs.flatMap((p) => p.crashes().map((e) => `${p.id} ${describeExit(e)}; log: ${p.logPath}`));
      if (crashes.length > 0) throw new Error(`members crashed:\n  ${crashes.join('\n  ')}`);

      const checker = new ClusterClient({ members: addrs, secret, name: 'chaos-checker', timeoutMs: 10_000 });
      clients.push(checker);

      // Replacements: every new member was promoted to voter, every replaced id is gone.
      const memberProblems: string[] = [];
      const ml = await checker.callTool('member_list', {});
      const mls = structured(ml) as { voters?: string[]; learners?: string[] };
      if (ml.isError) memberProblems.push(`member_list failed: ${resultText(ml)}`);
      else {
        const want = [...memberIds].sort();
        const deadlineVoters = Date.now() + 30_000;
        let voters = mls.voters ?? [];
        while (JSON.stringify([...voters].sort()) !== JSON.stringify(want) && Date.now() < deadlineVoters) {
          await sleep(200);
          voters = (structured(await checker.callTool('member_list', {})) as { voters?: string[] }).voters ?? [];
        }
        if (JSON.stringify([...voters].sort()) !== JSON.stringify(want)) memberProblems.push(`voters ${JSON.stringify(voters)} are not the running members ${JSON.stringify(want)}`);
      }

      // ---- 2 + 3: memory ---------------------------------------------------------------------
      finals = [];
      for (const key of KEYS) {
        const op = await rec.record(
          'final',
          { op: 'get', key },
          () => checker.callTool('memory_retrieve', { key }),
          (o): KvOutput | null | 'skip' => {
            if ('error' in o) throw new Error(`final read of ${key} failed: ${(o.error as Error).message}`);
            if (!o.value.isError) {
              const s = structured(o.value);
              return { found: true, value: s.value, version: s.version as number };
            }
            if (resultText(o.value).startsWith('not_found:')) return { found: false };
            throw new Error(`final read of ${key} failed: ${resultText(o.value)}`);
          },
        );
        finals.push(op!);
      }
      const lastWriters: Record<string, number> = {};
      const lost = checkFinalValues(rec.ops, finals, lastWriters);
      const lin = checkKvHistory(rec.ops, { maxSteps: 20_000_000 });

      // ---- 1: tasks --------------------------------------------------------------------------
      const acked = taskOps.filter((t) => t.outcome === 'ack');
      const ids = acked.map((t) => t.orchestration_id!);
      const taskProblems: string[] = [];
      if (new Set(ids).size !== ids.length) taskProblems.push(`two acknowledged orchestrate calls returned the same orchestration id: ${ids.join(',')}`);
      for (const t of acked) if (t.deduplicated) taskProblems.push(`${t.orchestration_id} acknowledged as deduplicated (no idempotency key was given)`);
      const pending = new Set(ids);
      const taskDeadline = Date.now() + 60_000;
      const lastStatus = new Map<string, Record<string, unknown>>();
      let reassigned = 0;
      let compacted = 0;
      while (pending.size > 0 && Date.now() < taskDeadline) {
        for (const id of [...pending]) {
          try {
            const r = await checker.callTool('task_status', { orchestration_id: id });
            if (r.isError) {
              lastStatus.set(id, { error: resultText(r) });
              continue;
            }
            const s = structured(r);
            lastStatus.set(id, s);
            if ((s.completed as number) + (s.failed as number) === (s.total_tasks as number)) pending.delete(id);
          } catch (e) {
            lastStatus.set(id, { error: (e as Error).message });
          }
        }
        if (pending.size > 0) await sleep(200);
      }
      for (const id of pending) taskProblems.push(`${id} did not finish within 60 s after healing: ${JSON.stringify(lastStatus.get(id))}`);
      for (const t of acked) {
        const id = t.orchestration_id!;
        if (pending.has(id)) continue;
        const r = await checker.callTool('task_results', { orchestration_id: id, include_tasks: t.count });
        const s = structured(r);
        if (r.isError || s.total_tasks !== t.count || s.completed !== t.count || s.failed !== 0 || s.duplicates !== 0 || s.in_progress !== 0) {
          taskProblems.push(`${id} (${t.count} tasks, ${t.executor}): ${r.isError ? resultText(r) : JSON.stringify({ total_tasks: s.total_tasks, completed: s.completed, failed: s.failed, duplicates: s.duplicates, in_progress: s.in_progress })}`);
          continue;
        }
        // Retention (default: the last 100 finished orchestrations keep their records) removed
        // this one's per-task records at apply time on every replica: its exact counts above
        // are what is left to check, and the compaction must account for every task.
        const records = s.task_records as { task_records?: string; compaction?: { records_removed?: number } } | undefined;
        if (records?.task_records === 'compacted' || records?.task_records === 'compacting') {
          compacted++;
          if (records.task_records === 'compacted' && records.compaction?.records_removed !== t.count) {
            taskProblems.push(`${id}: retention removed ${String(records.compaction?.records_removed)} records of ${t.count} tasks`);
          }
          continue;
        }
        // Each task on its own: completed, and its completion applied exactly once.
        const tasks = (s.tasks ?? []) as Array<{ id: string; status: string; completions_applied: number; completed_by: string | null; assignments: number }>;
        const bad = tasks.filter((x) => x.status !== 'completed' || x.completions_applied !== 1 || !x.completed_by);
        if (tasks.length !== t.count || bad.length > 0) {
          taskProblems.push(`${id}: ${tasks.length} task records for ${t.count} tasks; not completed exactly once: ${JSON.stringify(bad.slice(0, 5))}`);
        }
        reassigned += tasks.filter((x) => x.assignments > 1).length;
      }
      const all = structured(await checker.callTool('task_results', {}));
      if (all.duplicates !== 0) taskProblems.push(`task_results over the swarm reports duplicates=${String(all.duplicates)}`);
      // At most once per call: a call retried after a lost answer must not create a second
      // orchestration (the session table answers the retry).
      const created = structured(await checker.callTool('task_status', {})).total_orchestrations as number;
      const requestedTasks = taskOps.reduce((a, t) => a + t.count, 0);
      if (!(created >= acked.length && created <= taskOps.length)) {
        taskProblems.push(`the swarm holds ${created} orchestrations for ${taskOps.length} task_orchestrate calls (${acked.length} acknowledged)`);
      }
      if (!((all.total_tasks as number) <= requestedTasks)) taskProblems.push(`the swarm holds ${String(all.total_tasks)} tasks, more than the ${requestedTasks} all calls asked for`);

      // ---- 4: logs ---------------------------------------------------------------------------
      const sampled = digests.length;
      for (const p of procs) digests.push(await fetchLog(p, 10_000));
      const logs = compareLogs(digests);
      const finalLogs = compareLogs(digests.slice(sampled));
      const maxOverlap = Math.max(0, ...Object.values(finalLogs.overlap));

      // ---- report ----------------------------------------------------------------------------
      const memOps = rec.ops.filter((o) => o.client !== 'final');
      const summary = {
        seed: SEED,
        wall_s: Math.round((Date.now() - t0) / 1000),
        faults,
        members_added: added,
        memory_ops: memOps.length,
        memory_acked: memOps.filter((o) => o.output !== null).length,
        memory_unknown: memOps.filter((o) => o.output === null).length,
        memory_after_heal: memOps.filter((o) => o.output !== null && o.call >= healedAt).length,
        orchestrations: taskOps.length,
        orchestrations_acked: acked.length,
        orchestrations_created: created,
        tasks_acked: acked.reduce((a, t) => a + t.count, 0),
        tasks_reassigned: reassigned,
        orchestrations_compacted_by_retention: compacted,
        task_results_all: { total_tasks: all.total_tasks, completed: all.completed, duplicates: all.duplicates, stale_completions_refused: all.stale_completions_refused, tasks_recovered: all.tasks_recovered, elections: all.elections },
        log_digests: `${sampled} sampled during the chaos + ${procs.length} final`,
        log_compared_indices: `${logs.compared} of 1..${logs.maxIndex} seen on >= 2 members`,
        log_final: digests.slice(sampled).map((d) => `${d.id}:${d.first_index}..${d.commit}`).join(' '),
        final_values: Object.fromEntries(finals.map((f) => [f.input.key, { read: f.output, could_be_last_write: lastWriters[f.input.key] }])),
        linearizability_steps: Object.values(lin.keys).reduce((a, k) => a + k.explored, 0),
        clients: stats,
      };
      console.log(`chaos summary: ${JSON.stringify(summary, null, 1)}`);
      console.log(`chaos events:\n${events.join('\n')}`);

      const failures: string[] = [];
      const lateCrashes = procs.flatMap((p) => p.crashes().map((e) => `${p.id} ${describeExit(e)}; log: ${p.logPath}`));
      if (lateCrashes.length > 0) failures.push(`members crashed:\n  ${lateCrashes.join('\n  ')}`);
      if (taskProblems.length > 0) failures.push(`tasks:\n  ${taskProblems.join('\n  ')}`);
      if (memberProblems.length > 0) failures.push(`membership:\n  ${memberProblems.join('\n  ')}`);
      if (lost.length > 0) failures.push(`lost writes:\n  ${lost.map((l) => l.message).join('\n  ')}`);
      if (!lin.linearizable) failures.push(`memory history not linearizable:\n${lin.explanation}`);
      if (logs.mismatches.length > 0) failures.push(`committed logs differ at ${logs.mismatches.length} indices (member=term:hash), first: ${JSON.stringify(logs.mismatches.slice(0, 5))}`);
      if (maxOverlap === 0) failures.push(`at the end no two members hold a common committed entry to compare: ${JSON.stringify(finalLogs.overlap)}`);
      if (failures.length > 0) throw new Error(failures.join('\n'));

      // The run exercised what it should: faults bit, work got done, the cluster served after healing.
      expect(faults.kill! + faults.stop! + faults.partition!).toBeGreaterThan(5);
      if (REPLACES > 0) expect(added.length, 'no member was replaced during the chaos').toBeGreaterThan(0);
      expect(acked.length).toBeGreaterThan(5);
      expect(summary.memory_acked).toBeGreaterThan(100);
      expect(summary.memory_after_heal).toBeGreaterThan(0);
      expect(lin.linearizable).toBe(true);

      // The checks have teeth on this very history: a read forged to a version never written
      // is refused, and so is a final value rolled back to an overwritten acknowledged write.
      const ri = rec.ops.findIndex((o) => o.client !== 'final' && o.output !== null && 'found' in o.output && o.output.found);
      expect(ri).toBeGreaterThanOrEqual(0);
      const forged = rec.ops.map((o, j) => (j === ri ? { ...o, output: { ...(o.output as { found: true; value: unknown; version: number }), version: 1_000_000 } } : o));
      expect(checkKvHistory(forged, { maxSteps: 20_000_000 }).linearizable).toBe(false);
      let rolledBackChecked = false;
      for (const fin of finals) {
        const key = fin.input.key;
        const acks = rec.ops.filter((o) => o.input.key === key && o.input.op !== 'get' && o.output !== null && 'ok' in o.output && o.output.ok);
        const lastCall = Math.max(...acks.map((o) => o.call));
        // An acknowledged put that an acknowledged write started after: overwritten for sure.
        const stale = acks.find((o) => o.input.op === 'put' && lastCall > o.ret);
        if (!stale || stale.input.op !== 'put') continue;
        const rolledBack: KvOperation = { ...fin, output: { found: true, value: stale.input.value, version: 1 } };
        expect(checkFinalValues(rec.ops, [rolledBack])).toHaveLength(1);
        rolledBackChecked = true;
        break;
      }
      expect(rolledBackChecked).toBe(true);
      // ...and an entry forged on one member is found in the log comparison.
      const finalDigests = digests.slice(sampled);
      const shared = finalDigests
        .flatMap((d) => d.entries.filter((e) => e.index <= d.commit).map((e) => ({ d, e })))
        .find(({ d, e }) => finalDigests.some((o) => o.id !== d.id && e.index <= o.commit && o.entries.some((x) => x.index === e.index)));
      expect(shared).toBeDefined();
      const tampered = { ...shared!.d, entries: [{ ...shared!.e, hash: `x${shared!.e.hash.slice(1)}` }] };
      expect(compareLogs([...digests, tampered]).mismatches.map((m) => m.index)).toEqual([shared!.e.index]);
      passed = true;
      console.log(`chaos: passed in ${summary.wall_s}s (seed ${SEED})`);
    } catch (e) {
      stopClients = true;
      const file = dump((e as Error).message);
      console.error(`chaos: FAILED with seed ${SEED} (replay: CONCORD_CHAOS_SEED=${SEED}); history: ${file}; member logs: ${dir}/n*.log`);
      console.error(`chaos events:\n${events.join('\n')}`);
      const exits = procs.flatMap((p) => p.unexpectedExits().map((x) => `${p.id} ${describeExit(x)}`));
      if (exits.length > 0) console.error(`chaos: members that exited without being killed by the test: ${exits.join('; ')}`);
      throw e;
    }
  });
});
