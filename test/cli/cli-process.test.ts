// The built CLI as hooks and people run it (separate processes through the data directory's
// daemon): exit codes, piped JSON, --version and help, the watch commands' event lines,
// `consensus leader --require` on a missing swarm, a failure hook's trigger-election.

import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, requireBuild, tempDataDir } from '../mcp/helpers.js';
import { cli, cliOk, killDaemons } from '../daemon/daemon-helpers.js';

const dirs: string[] = [];
function dataDir(tag: string): string {
  const d = tempDataDir(`cli-${tag}`);
  dirs.push(d);
  return d;
}

beforeAll(() => requireBuild());
afterAll(async () => {
  for (const d of dirs) await killDaemons(d);
  cleanupTempDirs();
});

const lines = (s: string) => s.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);

describe('the CLI as a process', () => {
  it('--version, help per command, unknown flag exits 2 with a suggestion and starts nothing', async () => {
    const dir = dataDir('basics');
    const v = await cli(dir, ['--version']);
    expect(v.code).toBe(0);
    expect(v.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    const h = await cli(dir, ['help', 'task', 'results']);
    expect(h.code).toBe(0);
    expect(h.stdout).toMatch(/--format FORMAT/);
    const h2 = await cli(dir, ['agent', 'list', '--help']);
    expect(h2.stdout).toMatch(/--filter FILTER/);
    const bad = await cli(dir, ['agent', 'list', '--fitler', 'active']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/did you mean --filter\?/);
    // Refused before any connection: no daemon was started for the directory.
    expect(fs.existsSync(path.join(dir, 'concord.sock'))).toBe(false);
  });

  it('consensus leader --require on a missing swarm exits 2 and creates none', async () => {
    const dir = dataDir('require');
    const r = await cli(dir, ['consensus', 'leader', '--require']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no leader: .*does not exist/);
    const list = await cliOk(dir, ['swarm', 'list']);
    expect(list.swarms).toEqual([]);
    const named = await cli(dir, ['consensus', 'leader', '--require', '--swarm', 'nope']);
    expect(named.code).toBe(2);
    expect((await cliOk(dir, ['swarm', 'list'])).swarms).toEqual([]);
  }, 60_000);

  it('a watch started just after a failover still shows it; trigger-election on a healthy swarm answers at once', async () => {
    const dir = dataDir('watch');
    await cliOk(dir, ['swarm', 'init', '--max-agents', '3']);
    for (let i = 1; i <= 3; i++) await cliOk(dir, ['agent', 'spawn', '--name', `raft-agent-${i}`]);
    const leader = (await cliOk(dir, ['consensus', 'leader'])).leader_id as string;

    // The failure hook on a healthy swarm: no campaign, no wait for one.
    // (It used to campaign and wait 3 s for an election that pre-vote refuses.)
    const te = await cliOk(dir, ['consensus', 'trigger-election']);
    expect(te).toMatchObject({ event: 'no_change', new_leader: leader });
    expect(te.detail).toMatch(/is healthy .*no campaign was started/);

    await cliOk(dir, ['agent', 'terminate', '--agent-id', leader]);
    let next: Record<string, unknown> = {};
    for (let i = 0; i < 50 && (!next.leader_id || next.leader_id === leader); i++) next = await cliOk(dir, ['consensus', 'leader']);
    expect(next.leader_id).not.toBe(leader);
    // The winner's record lands in the log just after it wins: the watch starts once it is in.
    let last: Record<string, unknown> | undefined;
    for (let i = 0; i < 50 && last?.old_leader !== leader; i++) last = ((await cliOk(dir, ['consensus', 'election-history', '--limit', '1'])).elections as Array<Record<string, unknown>>)[0];
    expect(last).toMatchObject({ old_leader: leader, new_leader: next.leader_id });

    const w = await cli(dir, ['consensus', 'status', '--watch', '300']);
    expect(w.code).toBe(0);
    const events = lines(w.stdout);
    const failover = events.find((e) => e.event === 'leader_election' && e.old_leader === leader);
    expect(failover, w.stdout).toMatchObject({ recent: true, new_leader: next.leader_id, term: next.term, cause: 'leader crash' });
    expect((failover!.voted_by as string[]).length).toBeGreaterThanOrEqual(2);
    expect(events.some((e) => e.event === 'leader' && e.leader_id === next.leader_id)).toBe(true);

    // task status --watch: progress lines, then the final status, every line JSON.
    const orch = await cliOk(dir, ['task', 'orchestrate', '--task', 't', '--count', '20', '--executor', 'sleep', '--sleep-ms', '20']);
    const ts = await cli(dir, ['task', 'status', '--watch', '--orchestration-id', orch.orchestration_id as string]);
    expect(ts.code).toBe(0);
    const tl = lines(ts.stdout);
    const progress = tl.filter((e) => e.event === 'progress');
    expect(progress.length).toBeGreaterThanOrEqual(1);
    expect(progress.at(-1)).toMatchObject({ completed: 20, status: 'finished' });
    expect(tl.at(-1)).toMatchObject({ orchestration_id: orch.orchestration_id, status: 'finished', completed: 20 });
  }, 120_000);
});
