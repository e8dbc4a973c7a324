/** What the server advertises: tools (names, metadata, schemas), resources, server info. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Tool } from '@modelcontextprotocol/sdk/types.js';
import { EXPECTED_TOOLS, cleanupTempDirs, requireBuild, startStdio, tempDataDir, type StdioServer } from './helpers.js';

let srv: StdioServer;
let tools: Tool[];

beforeAll(async () => {
  requireBuild();
  srv = await startStdio(tempDataDir('catalog'));
  tools = (await srv.client.listTools()).tools;
});

afterAll(async () => {
  await srv?.close();
  cleanupTempDirs();
});

describe('tool catalog', () => {
  it('lists exactly the tools of the issues, once each', () => {
    const names = tools.map((t) => t.name);
    expect(names.length).toBe(EXPECTED_TOOLS.length);
    expect(new Set(names).size).toBe(EXPECTED_TOOLS.length);
    expect([...names].sort()).toEqual([...EXPECTED_TOOLS].sort());
  });

  it('gives every tool a title, a description, annotations and an object outputSchema', () => {
    for (const t of tools) {
      expect(t.title, t.name).toMatch(/\S{3,}/);
      expect(t.description?.length ?? 0, t.name).toBeGreaterThan(20);
      expect(t.annotations, t.name).toBeDefined();
      for (const hint of ['readOnlyHint', 'destructiveHint', 'idempotentHint', 'openWorldHint'] as const) {
        expect(typeof t.annotations?.[hint], `${t.name}.${hint}`).toBe('boolean');
      }
      expect(t.outputSchema?.type, t.name).toBe('object');
      // Tools return more measured fields than they declare: the schema must allow them.
      expect((t.outputSchema as Record<string, unknown>).additionalProperties, t.name).not.toBe(false);
      // The input schema refuses unknown arguments, as it advertises.
      expect(t.inputSchema.type, t.name).toBe('object');
      expect((t.inputSchema as Record<string, unknown>).additionalProperties, t.name).toBe(false);
    }
  });

  it('annotates read-only and destructive tools truthfully', () => {
    const by = new Map(tools.map((t) => [t.name, t]));
    for (const n of ['swarm_status', 'swarm_list', 'agent_list', 'agent_metrics', 'consensus_status', 'consensus_leader', 'consensus_log_status', 'consensus_verify_quorum', 'consensus_election_history', 'network_diagnose', 'task_status', 'task_results', 'memory_retrieve', 'memory_list']) {
      expect(by.get(n)?.annotations?.readOnlyHint, n).toBe(true);
      expect(by.get(n)?.annotations?.destructiveHint, n).toBe(false);
    }
    for (const n of ['swarm_destroy', 'agent_terminate', 'memory_delete', 'network_partition']) {
      expect(by.get(n)?.annotations?.destructiveHint, n).toBe(true);
      expect(by.get(n)?.annotations?.readOnlyHint, n).toBe(false);
    }
    for (const n of ['swarm_init', 'agent_spawn', 'task_orchestrate', 'memory_store', 'consensus_config']) {
      expect(by.get(n)?.annotations?.readOnlyHint, n).toBe(false);
    }
  });

  it('marks required arguments as required in the input schemas', () => {
    const required = (n: string) => ((tools.find((t) => t.name === n)?.inputSchema.required as string[] | undefined) ?? []).sort();
    expect(required('swarm_destroy')).toEqual(['confirm', 'swarm']);
    expect(required('agent_terminate')).toEqual(['agent_id']);
    expect(required('agent_restart')).toEqual(['agent_id']);
    expect(required('task_orchestrate')).toEqual(['task']);
    expect(required('task_claim')).toEqual(['agent_id']);
    expect(required('task_complete')).toEqual(['agent_id', 'epoch', 'task_id']);
    expect(required('memory_store')).toEqual(['key', 'value']);
    expect(required('memory_retrieve')).toEqual(['key']);
    expect(required('memory_delete')).toEqual(['key']);
    expect(required('swarm_list')).toEqual([]);
    expect(required('swarm_init')).toEqual([]);
  });

  it('identifies itself with instructions', () => {
    expect(srv.client.getServerVersion()).toMatchObject({ name: 'concord', version: '0.1.0' });
    expect(srv.client.getInstructions()).toMatch(/Raft/);
    expect(srv.client.getServerCapabilities()).toMatchObject({ tools: {}, resources: {} });
  });
});

describe('resources', () => {
  it('lists nothing before a swarm exists, then three views per swarm', async () => {
    expect((await srv.client.listResources()).resources).toEqual([]);
    await srv.mcp.ok('swarm_init', { name: 'res-a', max_agents: 3 });
    // A group of one (bootstrap_expect 1): the one agent spawned below forms it alone.
    await srv.mcp.ok('swarm_init', { bootstrap_expect: 1 });
    const uris = (await srv.client.listResources()).resources.map((r) => r.uri).sort();
    expect(uris).toEqual([
      'concord://swarms/default/election-history',
      'concord://swarms/default/log-status',
      'concord://swarms/default/status',
      'concord://swarms/res-a/election-history',
      'concord://swarms/res-a/log-status',
      'concord://swarms/res-a/status',
    ]);
    const templates = (await srv.client.listResourceTemplates()).resourceTemplates.map((t) => t.uriTemplate).sort();
    expect(templates).toEqual(['concord://swarms/{name}/election-history', 'concord://swarms/{name}/log-status', 'concord://swarms/{name}/status']);
  });

  it('reads status, log-status and election-history as JSON measured from the swarm', async () => {
    await srv.mcp.ok('agent_spawn', { name: 'raft-agent-1' });
    const read = async (uri: string) => {
      const r = await srv.client.readResource({ uri });
      expect(r.contents).toHaveLength(1);
      expect(r.contents[0]).toMatchObject({ uri, mimeType: 'application/json' });
      return JSON.parse((r.contents[0] as { text: string }).text) as Record<string, unknown>;
    };
    const status = await read('concord://swarms/default/status');
    expect(status).toMatchObject({ swarm_id: 'default', status: 'active', agents: ['raft-agent-1'], leader_id: 'raft-agent-1', topology: 'mesh', consensus: 'raft' });
    expect(status.members).toEqual([expect.objectContaining({ agent_id: 'raft-agent-1', running: true, role: 'leader' })]);
    // The new leader's election record is proposed in the
    // background right after it wins: under load one may still be uncommitted, so wait for it.
    let log = await read('concord://swarms/default/log-status');
    for (let i = 0; i < 100 && log.uncommitted_entries !== 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
      log = await read('concord://swarms/default/log-status');
    }
    expect(log).toMatchObject({ leader: 'raft-agent-1', followers: [], uncommitted_entries: 0 });
    expect(log.committed_entries).toBeGreaterThan(0);
    let hist = await read('concord://swarms/default/election-history');
    for (let i = 0; i < 100 && hist.total_elections === 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
      hist = await read('concord://swarms/default/election-history');
    }
    expect(hist).toMatchObject({ swarm: 'default', total_elections: 1, leader_failures: 0 });
    expect(hist.elections).toEqual([expect.objectContaining({ new_leader: 'raft-agent-1', cause: 'startup', old_leader: null })]);
    const other = await read('concord://swarms/res-a/status');
    expect(other).toMatchObject({ swarm_id: 'res-a', status: 'initializing', agents: [], max_agents: 3, leader_id: null });
  });

  it('refuses to read an unknown swarm, and keeps serving', async () => {
    // MCP's "resource not found" (-32002), not an internal error (-32603).
    const err = await srv.client.readResource({ uri: 'concord://swarms/ghost/status' }).then(
      () => null,
      (e: unknown) => e as { code?: number; message: string },
    );
    expect(err?.code).toBe(-32002);
    expect(err?.message).toMatch(/concord:\/\/swarms\/ghost\/status not found: swarm="ghost" does not exist/);
    expect((await srv.mcp.ok('swarm_list')).swarms).toHaveLength(2);
  });
});
