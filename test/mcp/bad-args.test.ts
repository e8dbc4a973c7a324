/**
 * Bad arguments for every tool: an isError result whose message names the field and the
 * value received, and the server keeps answering (swarm_list after each).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXPECTED_TOOLS, cleanupTempDirs, requireBuild, startStdio, tempDataDir, type StdioServer } from './helpers.js';

let srv: StdioServer;

beforeAll(async () => {
  requireBuild();
  srv = await startStdio(tempDataDir('bad-args'));
  // One agent, so nothing below waits on a swarm that cannot commit.
  await srv.mcp.ok('swarm_init', { max_agents: 5, bootstrap_expect: 1 });
  await srv.mcp.ok('agent_spawn', { name: 'raft-agent-1' });
});

afterAll(async () => {
  await srv?.close();
  cleanupTempDirs();
});

/** [tool, arguments, text the message must contain (field=value)]. */
const CASES: Array<[string, Record<string, unknown>, string]> = [
  ['swarm_init', { max_agents: 99 }, 'max_agents=99'],
  ['swarm_init', { bootstrap_expect: 9 }, 'bootstrap_expect=9'],
  ['swarm_init', { topology: 'ring' }, 'topology="ring"'],
  ['swarm_init', { name: 'bad name!' }, 'name="bad name!"'],
  ['swarm_status', { swarm: 'ghost' }, 'swarm="ghost"'],
  ['swarm_status', { verbose: 'yes' }, 'verbose="yes"'],
  ['swarm_list', { bogus: 1 }, 'bogus=1'],
  ['swarm_destroy', { swarm: 'default' }, 'confirm=missing'],
  ['swarm_destroy', { swarm: 'default', confirm: false }, 'confirm=false'],
  ['swarm_destroy', { swarm: 'ghost', confirm: true }, 'swarm="ghost"'],
  ['swarm_snapshot', { path: '../escape.snapshot' }, 'path="../escape.snapshot"'],
  ['swarm_snapshot', { path: '/etc/passwd' }, 'path="/etc/passwd"'],
  ['swarm_snapshot', { swarm: 'ghost' }, 'swarm="ghost"'],
  ['swarm_snapshot', { overwrite: 'yes' }, 'overwrite="yes"'],
  ['swarm_snapshot', { inline: true, path: 'x.snapshot' }, 'inline=true'],
  ['consensus_config', { quorum_size: 2 }, 'quorum_size=2'],
  ['consensus_config', { heartbeat_interval: 200 }, 'heartbeat_interval=200'],
  ['consensus_config', { election_timeout_min: 5 }, 'election_timeout_min=5'],
  ['consensus_config', { election_timeout_min: 'fast' }, 'election_timeout_min="fast"'],
  ['agent_spawn', { name: 'bad name' }, 'name="bad name"'],
  ['agent_spawn', { capabilities: 'voting' }, 'capabilities="voting"'],
  ['agent_spawn', { capabilites: ['voting'] }, 'capabilites=["voting"]'],
  ['agent_list', { filter: 'bogus' }, 'filter="bogus"'],
  ['agent_terminate', {}, 'agent_id=missing'],
  ['agent_terminate', { agent_id: 'ghost' }, 'agent_id="ghost"'],
  ['agent_terminate', { agent_id: 'raft-agent-1', mode: 'nuke' }, 'mode="nuke"'],
  ['agent_restart', { agent_id: 'ghost' }, 'agent_id="ghost"'],
  ['agent_restart', { agent_id: '' }, 'agent_id=""'],
  ['agent_metrics', { agent_id: 'ghost' }, 'agent_id="ghost"'],
  ['agent_metrics', { metric: 'cpu' }, 'metric="cpu"'],
  ['consensus_status', { watch_ms: -1 }, 'watch_ms=-1'],
  ['consensus_status', { watch_ms: 60_001 }, 'watch_ms=60001'],
  ['consensus_leader', { swarm: '' }, 'swarm=""'],
  ['consensus_leader', { swarm: 'ghost' }, 'swarm="ghost"'],
  ['consensus_log_status', { swarm: 42 }, 'swarm=42'],
  ['consensus_step_down', { agent: 'ghost' }, 'agent="ghost"'],
  ['consensus_step_down', { successor: 'ghost' }, 'successor="ghost"'],
  ['consensus_trigger_election', { agent: 'ghost' }, 'agent="ghost"'],
  ['consensus_verify_quorum', { swarm: 'ghost' }, 'swarm="ghost"'],
  ['consensus_election_history', { limit: 0 }, 'limit=0'],
  ['consensus_election_history', { limit: 1.5 }, 'limit=1.5'],
  ['consensus_replicate', {}, 'content=missing'],
  ['consensus_replicate', { file: '/etc/passwd' }, 'content=missing'],
  ['network_diagnose', { swarm: 'ghost' }, 'swarm="ghost"'],
  ['network_partition', { groups: 'a,b' }, 'groups="a,b"'],
  ['network_partition', { isolate: 7 }, 'isolate=7'],
  ['network_heal', { swarm: 'ghost' }, 'swarm="ghost"'],
  ['network_heal', { force: true }, 'force=true'],
  ['task_orchestrate', {}, 'task=missing'],
  ['task_orchestrate', { task: 'x', count: 0 }, 'count=0'],
  ['task_orchestrate', { task: 'x', priority: 'urgent' }, 'priority="urgent"'],
  ['task_orchestrate', { task: 'x', executor: { kind: 'http', http: { method: 'GET', url: 'not a url' } } }, 'executor.http.url="not a url"'],
  ['task_orchestrate', { task: 'x', executor: { kind: 'teleport' } }, 'executor.kind="teleport"'],
  ['task_status', { orchestration_id: 'orch-999' }, 'orchestration_id="orch-999"'],
  ['task_results', { include_tasks: -1 }, 'include_tasks=-1'],
  ['task_results', { orchestration_id: 'nope' }, 'orchestration_id="nope"'],
  ['task_claim', {}, 'agent_id=missing'],
  ['task_claim', { agent_id: 'a', lease_ms: 5 }, 'lease_ms=5'],
  ['task_claim', { agent_id: 'a', orchestration_id: 'nope' }, 'orchestration_id="nope"'],
  ['task_complete', { task_id: 't', agent_id: 'a' }, 'epoch=missing'],
  ['task_complete', { task_id: 't', agent_id: 'a', epoch: 0 }, 'epoch=0'],
  ['memory_store', { key: 'k' }, 'value=missing'],
  ['memory_store', { key: '', value: 1 }, 'key=""'],
  ['memory_store', { key: 'k', value: 1, ttl_s: 0 }, 'ttl_s=0'],
  ['memory_retrieve', { key: 'never-stored' }, 'key="never-stored"'],
  ['memory_retrieve', { key: 'k', consistency: 'eventual' }, 'consistency="eventual"'],
  ['memory_list', { limit: 0 }, 'limit=0'],
  ['memory_list', { prefix: 5 }, 'prefix=5'],
  ['memory_delete', {}, 'key=missing'],
  ['memory_delete', { key: 'k', if_version: 0 }, 'if_version=0'],
];

describe('bad arguments', () => {
  it('cover every tool', () => {
    expect([...new Set(CASES.map(([t]) => t))].sort()).toEqual([...EXPECTED_TOOLS].sort());
  });

  for (const [tool, args, needle] of CASES) {
    it(`${tool} ${JSON.stringify(args)} -> isError naming ${needle}`, async () => {
      const text = await srv.mcp.err(tool, args);
      expect(text).toContain(needle);
      // Short and to the point: no stack traces.
      expect(text).not.toMatch(/\n\s+at /);
      expect(text).not.toMatch(/^internal error/);
      const list = await srv.mcp.ok('swarm_list');
      expect((list.swarms as Array<Record<string, unknown>>).map((s) => s.swarm_id)).toEqual(['default']);
    });
  }

  it('refused calls changed nothing', async () => {
    const st = await srv.mcp.ok('swarm_status', { verbose: true });
    expect(st).toMatchObject({ swarm_id: 'default', status: 'active', agents: ['raft-agent-1'], max_agents: 5 });
    expect(st.config).toMatchObject({ election_timeout_min: 150, heartbeat_interval: 50, quorum_size: null });
    expect((await srv.mcp.ok('task_status')).total_orchestrations).toBe(0);
    expect((await srv.mcp.ok('memory_list', { prefix: 'k' })).keys).toEqual([]);
  });

  it('an unknown tool is an error naming it, and the server keeps serving', async () => {
    const r = await srv.client.callTool({ name: 'swarm_explode', arguments: {} }).then(
      (x) => ({ isError: x.isError === true, text: JSON.stringify(x.content) }),
      (e: Error) => ({ isError: true, text: e.message }),
    );
    expect(r.isError).toBe(true);
    expect(r.text).toContain('swarm_explode');
    expect((await srv.mcp.ok('swarm_list')).swarms).toHaveLength(1);
  });
});
