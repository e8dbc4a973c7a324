// The spec's CLI sequence as separate processes while `concord mcp` is connected: one swarm
// lives across all of them (the daemon), so the leader `consensus leader` printed is the one
// `agent terminate` crashes, the failover is recorded once, and tasks run between calls.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, requireBuild, tempDataDir, waitFor } from '../mcp/helpers.js';
import { cliOk, killDaemons, stdioClient } from './daemon-helpers.js';

let dir = '';
beforeAll(() => {
  requireBuild();
  dir = tempDataDir('d-spec');
});
afterAll(async () => {
  await killDaemons(dir);
  cleanupTempDirs();
});

describe("the spec's CLI sequence through the daemon", () => {
  it('leader seen, leader crashed, one failover, 1000 tasks exactly once', async () => {
    const s = await stdioClient(dir);
    try {
      await cliOk(dir, ['swarm', 'init', '--topology', 'mesh', '--consensus', 'raft', '--max-agents', '5']);
      await cliOk(dir, ['consensus', 'config', '--election-timeout-min', '150', '--election-timeout-max', '300', '--heartbeat-interval', '50', '--quorum-size', '3']);
      for (let i = 1; i <= 5; i++) await cliOk(dir, ['agent', 'spawn', '--type', 'coordinator', '--name', `raft-agent-${i}`, '--capabilities', 'task-processing,log-replication,voting']);
      const leader = await cliOk(dir, ['consensus', 'leader']);
      expect(typeof leader.leader_id).toBe('string');
      const hist0 = await cliOk(dir, ['consensus', 'election-history', '--limit', '10']);

      const orch = await cliOk(dir, ['task', 'orchestrate', '--task', 'process-log-entry', '--count', '1000', '--strategy', 'sequential', '--priority', 'high', '--max-agents', '5']);
      const logs = await cliOk(dir, ['consensus', 'log-status']);
      expect(logs.leader).toBe(leader.leader_id);

      const term = await cliOk(dir, ['agent', 'terminate', '--agent-id', leader.leader_id as string]);
      expect(term.was_leader).toBe(true);
      const newLeader = await cliOk(dir, ['consensus', 'leader']);
      expect(typeof newLeader.leader_id).toBe('string');
      expect(newLeader.leader_id).not.toBe(leader.leader_id);

      // The tasks run in the daemon between the calls: poll from separate processes.
      const id = orch.orchestration_id as string;
      await waitFor('1000 tasks finished', async () => (await s.mcp.ok('task_status', { orchestration_id: id })).status === 'finished', 60_000, 250);
      const res = await cliOk(dir, ['task', 'results', '--orchestration-id', id]);
      expect(res).toMatchObject({ total_tasks: 1000, completed: 1000, duplicates: 0 });

      const hist = await cliOk(dir, ['consensus', 'election-history', '--limit', '10']);
      expect(hist.total_elections).toBe((hist0.total_elections as number) + 1);
      expect(hist.leader_failures).toBe((hist0.leader_failures as number) + 1);
      const last = (hist.elections as Array<Record<string, unknown>>)[0]!;
      expect(last).toMatchObject({ old_leader: leader.leader_id, new_leader: newLeader.leader_id, cause: 'leader crash' });

      await cliOk(dir, ['memory', 'store', '--key', 'coordination/raft/commit-index', '--value', '{"commit_index":1000}']);
      const got = await cliOk(dir, ['memory', 'retrieve', '--key', 'coordination/raft/commit-index']);
      expect(got.value).toEqual({ commit_index: 1000 });
    } finally {
      await s.client.close();
    }
  });
});
