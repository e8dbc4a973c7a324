/**
 * Every tool called successfully at least once over MCP stdio, on a named
 * 3-agent swarm, with the values checked (not just the absence of errors).
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXPECTED_TOOLS, cleanupTempDirs, requireBuild, startStdio, tempDataDir, waitFor, type Mcp, type StdioServer } from './helpers.js';

const S = 'alpha';
const AGENTS = ['raft-agent-1', 'raft-agent-2', 'raft-agent-3'];

let srv: StdioServer;
let mcp: Mcp;
let dataDir: string;

beforeAll(async () => {
  requireBuild();
  dataDir = tempDataDir('all-tools');
  srv = await startStdio(dataDir);
  mcp = srv.mcp;
});

afterAll(async () => {
  await srv?.close();
  cleanupTempDirs();
});

const leaderOf = async () =>
  waitFor('a leader', async () => {
    const l = await mcp.ok('consensus_leader', { swarm: S });
    return typeof l.leader_id === 'string' ? (l.leader_id as string) : undefined;
  });

describe('every tool, successfully, on a named swarm', () => {
  it('swarm_list, swarm_init, consensus_config before any agent', async () => {
    expect(await mcp.ok('swarm_list')).toEqual({ swarms: [], data_dir: path.resolve(dataDir) });
    const init = await mcp.ok('swarm_init', { name: S, max_agents: 3 });
    expect(init).toMatchObject({ swarm_id: S, created: true, max_agents: 3, status: 'initializing' });
    // Idempotent: same name again is not a new swarm.
    expect(await mcp.ok('swarm_init', { name: S, max_agents: 3 })).toMatchObject({ swarm_id: S, created: false });
    const cfg = await mcp.ok('consensus_config', { swarm: S, election_timeout_min: 160, election_timeout_max: 320, heartbeat_interval: 40, quorum_size: 2, batch_size: 50 });
    expect(cfg.config).toMatchObject({ election_timeout_min: 160, election_timeout_max: 320, heartbeat_interval: 40, quorum_size: 2, batch_size: 50 });
    const list = await mcp.ok('swarm_list');
    expect((list.swarms as Array<Record<string, unknown>>).map((s) => s.swarm_id)).toEqual([S]);
  });

  it('agent_spawn (default names), agent_list, swarm_status', async () => {
    // bootstrap_expect defaults to the quorum of max_agents (2 of 3): the first agent waits,
    // the second forms the group with it, the third joins as a learner.
    const statuses = ['waiting_for_bootstrap', 'active', 'active'];
    for (const [i, id] of AGENTS.entries()) expect(await mcp.ok('agent_spawn', { swarm: S, type: 'worker' })).toMatchObject({ agent_id: id, type: 'worker', status: statuses[i] });
    const agents = (await mcp.ok('agent_list', { swarm: S })).agents as Array<Record<string, unknown>>;
    expect(agents.map((a) => [a.agent_id, a.status, a.type])).toEqual(AGENTS.map((a) => [a, 'active', 'worker']));
    const st = await mcp.ok('swarm_status', { swarm: S, verbose: true });
    expect(st).toMatchObject({ swarm_id: S, status: 'active', agents: AGENTS, agents_running: 3, max_agents: 3 });
    expect(st.config).toMatchObject({ election_timeout_min: 160, heartbeat_interval: 40, batch_size: 50 });
    expect((st.members as Array<Record<string, unknown>>).map((m) => m.running)).toEqual([true, true, true]);
  });

  it('consensus_status, consensus_leader, consensus_log_status, consensus_verify_quorum, consensus_election_history', async () => {
    const leader = await leaderOf();
    const cs = await mcp.ok('consensus_status', { swarm: S });
    expect(cs).toMatchObject({ swarm_id: S, leader_id: leader, watched_ms: 0, elections_seen: [] });
    expect(['healthy', 'degraded']).toContain(cs.heartbeat_status);
    const log = await mcp.ok('consensus_log_status', { swarm: S });
    expect(log.leader).toBe(leader);
    expect((log.followers as Array<Record<string, unknown>>).map((f) => f.agent_id)).toEqual(AGENTS.filter((a) => a !== leader));
    const q = await mcp.ok('consensus_verify_quorum', { swarm: S });
    expect(q).toMatchObject({ quorum_size: 2, has_quorum: true, leader_id: leader, tolerates_failures: 1 });
    const h = await mcp.ok('consensus_election_history', { swarm: S, limit: 5 });
    expect(h).toMatchObject({ swarm: S, total_elections: 1, leader_failures: 0 });
    // Both initial voters elected the first leader (a majority of 2 is 2).
    expect(h.elections).toEqual([expect.objectContaining({ new_leader: leader, cause: 'startup', voted_by: ['raft-agent-1', 'raft-agent-2'] })]);
  });

  it('agent_metrics: measured disk, log and message counters', async () => {
    const all = await mcp.ok('agent_metrics', { swarm: S });
    const agents = all.agents as Array<Record<string, any>>;
    expect(agents.map((a) => a.agent_id)).toEqual(AGENTS);
    for (const a of agents) {
      expect(a.status).toBe('active');
      expect(a['disk-io'].fsync_count).toBeGreaterThan(0);
      expect(a['disk-io'].bytes_written).toBeGreaterThan(0);
      expect(a.messages.in + a.messages.out).toBeGreaterThan(0);
      expect(a.log.last_index).toBeGreaterThan(0);
    }
    const one = await mcp.ok('agent_metrics', { swarm: S, agent_id: 'raft-agent-2', metric: 'disk-io' });
    const only = (one.agents as Array<Record<string, unknown>>)[0]!;
    expect(Object.keys(only).sort()).toEqual(['agent_id', 'disk-io', 'status']);
    expect(only.agent_id).toBe('raft-agent-2');
  });

  it('consensus_step_down hands leadership to the named successor; consensus_trigger_election campaigns', async () => {
    const leader = await leaderOf();
    const successor = AGENTS.find((a) => a !== leader)!;
    const sd = await mcp.ok('consensus_step_down', { swarm: S, agent: leader, successor });
    expect(sd).toMatchObject({ old_leader: leader, event: 'leader_election', new_leader: successor, changed: true });
    expect(await leaderOf()).toBe(successor);
    const h = await waitFor('the transfer in the history', async () => {
      const r = await mcp.ok('consensus_election_history', { swarm: S });
      return r.total_elections === 2 ? r : undefined;
    });
    expect((h.elections as Array<Record<string, unknown>>)[0]).toMatchObject({ old_leader: leader, new_leader: successor, cause: 'step-down' });

    const follower = AGENTS.find((a) => a !== successor)!;
    const te = await mcp.ok('consensus_trigger_election', { swarm: S, agent: follower });
    expect(te).toMatchObject({ old_leader: successor, candidate: follower });
    expect(['leader_election', 'no_change']).toContain(te.event);
    expect(AGENTS).toContain(te.new_leader);
    expect(te.term).toBeGreaterThanOrEqual(sd.term as number);
  });

  it('network_diagnose, network_partition (isolate and groups), network_heal', async () => {
    const d = await mcp.ok('network_diagnose', { swarm: S });
    const links = d.links as Array<Record<string, any>>;
    expect(links).toHaveLength(6);
    expect(links.every((l) => l.connected === true)).toBe(true);
    expect(links.reduce((n, l) => n + l.messages_sent, 0)).toBeGreaterThan(0);
    const leader = await leaderOf();
    const victim = AGENTS.find((a) => a !== leader)!;
    expect(await mcp.ok('network_partition', { swarm: S, isolate: victim })).toMatchObject({ isolated: victim });
    const q = await mcp.ok('consensus_verify_quorum', { swarm: S });
    expect(q.unreachable).toEqual([victim]);
    expect(q.has_quorum).toBe(true);
    const cut = (await mcp.ok('network_diagnose', { swarm: S })).links as Array<Record<string, unknown>>;
    expect(cut.filter((l) => !l.connected).map((l) => [l.from, l.to]).flat().filter((x) => x === victim)).toHaveLength(4);
    expect(await mcp.ok('network_heal', { swarm: S })).toEqual({ healed: true });
    expect((await mcp.ok('consensus_verify_quorum', { swarm: S })).unreachable).toEqual([]);
    const groups = [[AGENTS[0]!], [AGENTS[1]!, AGENTS[2]!]];
    expect(await mcp.ok('network_partition', { swarm: S, groups })).toMatchObject({ partitioned: groups });
    expect(await mcp.ok('network_heal', { swarm: S })).toEqual({ healed: true });
    await leaderOf();
  });

  it('task_orchestrate (external), task_claim, task_complete (and a rejected repeat), task_status, task_results', async () => {
    const o = await mcp.ok('task_orchestrate', { swarm: S, task: 'label images', count: 3, executor: { kind: 'external' }, payload: { batch: 7 }, idempotency_key: 'k-1' });
    expect(o).toMatchObject({ total_tasks: 3, status: 'running', deduplicated: false });
    const id = o.orchestration_id as string;
    // Same idempotency key: the same orchestration, not a new one.
    expect(await mcp.ok('task_orchestrate', { swarm: S, task: 'label images', count: 3, executor: { kind: 'external' }, idempotency_key: 'k-1' })).toMatchObject({ orchestration_id: id, deduplicated: true });

    const claim = await mcp.ok('task_claim', { swarm: S, agent_id: 'ext-1', count: 2, orchestration_id: id, lease_ms: 60_000 });
    const tasks = claim.tasks as Array<Record<string, any>>;
    expect(claim.agent_id).toBe('ext-1');
    expect(tasks).toHaveLength(2);
    for (const t of tasks) {
      expect(t.epoch).toBeGreaterThanOrEqual(1);
      expect(t.payload).toEqual({ batch: 7 });
      expect(t.description).toBe('label images');
      expect(t.idempotency_key).toBe(t.task_id);
    }
    const t0 = tasks[0]!;
    const done = await mcp.ok('task_complete', { swarm: S, task_id: t0.task_id, agent_id: 'ext-1', epoch: t0.epoch, result: { labels: ['cat'] } });
    expect(done).toMatchObject({ task_id: t0.task_id, accepted: true, status: 'completed' });
    const again = await mcp.ok('task_complete', { swarm: S, task_id: t0.task_id, agent_id: 'ext-1', epoch: t0.epoch, result: { labels: ['dog'] } });
    expect(again).toMatchObject({ task_id: t0.task_id, accepted: false, status: 'completed' });

    const st = await mcp.ok('task_status', { swarm: S, orchestration_id: id });
    expect(st).toMatchObject({ orchestration_id: id, status: 'running', total_tasks: 3, completed: 1, assigned: 1, pending: 1, failed: 0, executor: 'external' });
    const recent = await mcp.ok('task_status', { swarm: S });
    expect(recent).toMatchObject({ swarm: S, total_orchestrations: 1 });

    const r = await mcp.ok('task_results', { swarm: S, orchestration_id: id, include_tasks: 3 });
    expect(r).toMatchObject({ total_tasks: 3, completed: 1, in_progress: 2, duplicates: 0, stale_completions_refused: 1, executions_started: 2, execution_guarantee: expect.stringMatching(/^completion committed exactly once per task/) });
    const recs = r.tasks as Array<Record<string, unknown>>;
    expect(recs).toHaveLength(3);
    expect(recs.find((t) => t.id === t0.task_id)).toMatchObject({ status: 'completed', result: { labels: ['cat'] } });
  });

  it('memory_store (JSON string parsed, compare-and-set), memory_retrieve, memory_list, memory_delete', async () => {
    const put = await mcp.ok('memory_store', { swarm: S, key: 'app/a', value: '{"x":1}' });
    expect(put).toMatchObject({ stored: true, key: 'app/a', version: 1, expires_at: null });
    expect(await mcp.ok('memory_retrieve', { swarm: S, key: 'app/a' })).toMatchObject({ found: true, value: { x: 1 }, version: 1, consistency: 'linearizable' });
    expect(await mcp.ok('memory_store', { swarm: S, key: 'app/a', value: [1, 2], if_version: 1 })).toMatchObject({ version: 2 });
    expect(await mcp.err('memory_store', { swarm: S, key: 'app/a', value: 3, if_version: 1 })).toMatch(/^conflict: .*version/);
    const ttl = await mcp.ok('memory_store', { swarm: S, key: 'app/b', value: null, ttl_s: 3600, namespace: 'ns1' });
    expect(Date.parse(ttl.expires_at as string) - Date.now()).toBeGreaterThan(3_500_000);
    expect(await mcp.ok('memory_retrieve', { swarm: S, key: 'app/b', namespace: 'ns1', consistency: 'local' })).toMatchObject({ found: true, value: null, consistency: 'local' });
    const list = await mcp.ok('memory_list', { swarm: S, prefix: 'app/' });
    expect((list.keys as Array<Record<string, unknown>>).map((k) => [k.key, k.version])).toEqual([['app/a', 2]]);
    expect(list.truncated).toBe(false);
    expect(await mcp.ok('memory_delete', { swarm: S, key: 'app/a', if_version: 2 })).toMatchObject({ key: 'app/a', deleted: true });
    expect(await mcp.err('memory_retrieve', { swarm: S, key: 'app/a' })).toMatch(/^not_found: key="app\/a"/);
    expect(await mcp.ok('memory_delete', { swarm: S, key: 'app/a' })).toMatchObject({ deleted: false });
  });

  it('consensus_replicate: inline content, a named file, and never a server-side read', async () => {
    const inline = await mcp.ok('consensus_replicate', { swarm: S, content: 'hello', key: 'files/greeting' });
    expect(inline).toMatchObject({ stored: true, key: 'files/greeting', version: 1, bytes: 5 });
    const file = path.join(dataDir, 'notes.md');
    const r = await mcp.ok('consensus_replicate', { swarm: S, file, content: '# notes\nπ\n' });
    // One slash: files/tmp/..., not files//tmp/...
    const key = `files/${file.replace(/^\/+/, '')}`;
    expect(key).not.toMatch(/\/\//);
    expect(r).toMatchObject({ stored: true, key, bytes: Buffer.byteLength('# notes\nπ\n') });
    expect((await mcp.ok('memory_retrieve', { swarm: S, key })).value).toEqual({ file, content: '# notes\nπ\n' });
    // A path alone is refused: the server never opens it (it returned /etc/passwd, the
    // cluster secret, /proc/self/environ before).
    fs.writeFileSync(path.join(dataDir, 'server-secret'), 'do not leak');
    for (const f of [path.join(dataDir, 'server-secret'), '/etc/passwd', '/proc/self/environ']) {
      expect(await mcp.err('consensus_replicate', { swarm: S, file: f })).toMatch(/^invalid_argument: content=missing: send the file's content \(the server never reads files/);
    }
    expect(await mcp.err('memory_retrieve', { swarm: S, key: `files/${path.join(dataDir, 'server-secret').replace(/^\/+/, '')}` })).toMatch(/^not_found/);
  });

  it('agent_terminate (crash), agent_restart, agent_terminate (graceful)', async () => {
    const leader = await leaderOf();
    const follower = AGENTS.find((a) => a !== leader)!;
    expect(await mcp.ok('agent_terminate', { swarm: S, agent_id: follower })).toMatchObject({ agent_id: follower, mode: 'crash', status: 'crashed', was_leader: false });
    expect((await mcp.ok('swarm_status', { swarm: S })).status).toBe('degraded');
    const rs = await mcp.ok('agent_restart', { swarm: S, agent_id: follower });
    expect(rs).toMatchObject({ agent_id: follower, status: 'active' });
    expect((rs.recovered as Record<string, number>).term).toBeGreaterThanOrEqual(1);
    expect((rs.recovered as Record<string, number>).last_index).toBeGreaterThan(0);
    await waitFor('the restarted agent to catch up', async () => {
      const log = await mcp.ok('consensus_log_status', { swarm: S });
      const f = (log.followers as Array<Record<string, number | string>>).find((x) => x.agent_id === follower);
      return f && f.match_index === log.last_index;
    });
    const g = await mcp.ok('agent_terminate', { swarm: S, agent_id: leader, mode: 'graceful' });
    expect(g).toMatchObject({ agent_id: leader, mode: 'graceful', status: 'terminated', was_leader: true });
    // leadership_transferred_to may be null: see the report (terminateAgent stops waiting as soon
    // as the old leader steps down, before its successor has won). Check the outcome instead.
    if (g.leadership_transferred_to !== null) expect(AGENTS.filter((a) => a !== leader)).toContain(g.leadership_transferred_to);
    expect(AGENTS.filter((a) => a !== leader)).toContain(await leaderOf());
    const gone = (await mcp.ok('agent_list', { swarm: S, filter: 'terminated' })).agents as Array<Record<string, unknown>>;
    expect(gone.map((a) => [a.agent_id, a.status])).toEqual([[leader, 'terminated']]);
    const q = await mcp.ok('consensus_verify_quorum', { swarm: S });
    expect([...(q.voters as string[])].sort()).toEqual(AGENTS.filter((a) => a !== leader));
  });

  it('swarm_snapshot writes a verified backup inside the data directory', async () => {
    const s = await mcp.ok('swarm_snapshot', { swarm: S, path: 'before-destroy.snapshot' });
    expect(s.path).toBe(path.join(path.resolve(dataDir), 'backups', 'before-destroy.snapshot'));
    expect(s.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(s.bytes).toBe(fs.statSync(s.path as string).size);
    expect(s.index).toBeGreaterThan(0);
    expect(s.swarm).toBe(S);
  });

  it('swarm_destroy removes the swarm and its files', async () => {
    const d = await mcp.ok('swarm_destroy', { swarm: S, confirm: true });
    expect(d.destroyed).toBe(S);
    expect(d.files_removed).toBeGreaterThan(0);
    expect(fs.existsSync(path.join(dataDir, 'swarms', S))).toBe(false);
    expect((await mcp.ok('swarm_list')).swarms).toEqual([]);
  });

  it('called every tool', () => {
    expect([...mcp.called].sort()).toEqual([...EXPECTED_TOOLS].sort());
  });
});
