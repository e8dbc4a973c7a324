// /metrics, /health and /readyz of `concord serve --http`: scraped over HTTP and parsed with a
// strict exposition-format parser. Figures must move with what happened (a write burst, a
// failover) and agree with the counters the tools report; /health must turn 503 once the
// swarm has lost its quorum (3 of 5 crashed).

import http from 'node:http';
import { afterAll, describe, expect, it } from 'vitest';
import { runHttp } from '../../src/server/http.js';
import { agentMetrics, spawnAgent, terminateAgent } from '../../src/service/agents.js';
import { configure, electionHistory } from '../../src/service/consensus.js';
import { memoryStore } from '../../src/service/memory.js';
import type { Swarm } from '../../src/swarm/swarm.js';
import { parsePrometheusText, samplesOf, valueOf, type Family } from '../helpers/prom-text.js';
import { CALM, removeDir, tempDataDir, waitUntil } from '../service/service-util.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach(removeDir));
function dir(tag: string): string {
  const d = tempDataDir(tag);
  dirs.push(d);
  return d;
}

async function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; type: string | null; body: string }> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`, { headers });
  return { status: r.status, type: r.headers.get('content-type'), body: await r.text() };
}

async function scrape(port: number): Promise<Map<string, Family>> {
  const r = await get(port, '/metrics');
  expect(r.status).toBe(200);
  expect(r.type).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheusText(r.body);
}

function statusWithHost(port: number, path: string, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, headers: { host } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
      .on('error', reject);
  });
}

type DiskIo = { fsync_count: number };
function fsyncCount(swarm: Swarm, id: string): number {
  return ((agentMetrics(swarm, id) as { agents: Array<{ 'disk-io': DiskIo }> }).agents[0]!['disk-io'].fsync_count);
}

describe('/metrics and /health on concord serve --http', () => {
  it('exposes etcd-style metrics that move with writes and failover, and /health turns 503 without quorum', async () => {
    const srv = await runHttp({ host: '127.0.0.1', port: 0, dataDir: dir('metrics'), durability: 'full' });
    try {
      const coord = srv.coordinator!;
      const { swarm } = coord.init({ name: 'm', max_agents: 5 });
      // Small threshold: the write burst below takes snapshots on every member. Long election
      // timeouts: on a loaded machine no spurious election moves the leader under the checks.
      // Given before any agent exists: committed as soon as the first one leads.
      await configure(swarm, { log_compaction_threshold: 10, ...CALM });
      for (let i = 0; i < 5; i++) await spawnAgent(swarm, {});
      await swarm.waitForLeader(5_000);
      const electionsAtStart = electionHistory(swarm).total_elections;
      const members = swarm.activeMembers();
      const L = (member: string) => ({ swarm: 'm', member });

      const rttSamplesNow = (id: string) => new Map([...swarm.cluster.host(id).roundTrips()].map(([peer, r]) => [peer, r.samples]));
      const rttB0 = rttSamplesNow(swarm.cluster.leader()!.id);
      const before = await scrape(srv.port);
      const rttB1 = rttSamplesNow(swarm.cluster.leader()!.id);
      for (const f of ['concord_has_leader', 'concord_leader_changes_seen_total', 'concord_proposals_committed_total', 'concord_proposals_applied_total', 'concord_proposals_pending', 'concord_proposals_failed_total', 'concord_tasks_completed_total', 'concord_tasks_failed_total', 'concord_tasks_recovered_total', 'concord_memory_keys', 'concord_memory_bytes', 'concord_snapshots_taken_total']) {
        expect(before.get(f), f).toBeDefined();
      }
      for (const f of ['concord_disk_wal_fsync_duration_seconds', 'concord_proposal_commit_duration_seconds', 'concord_network_peer_round_trip_time_seconds', 'concord_snapshot_save_duration_seconds']) {
        expect(before.get(f)?.type, f).toBe('histogram');
      }
      for (const id of members) expect(valueOf(before, 'concord_has_leader', L(id))).toBe(1);
      const leader = swarm.cluster.leader()!.id;
      expect(samplesOf(before, 'concord_is_leader').filter((s) => s.value === 1).map((s) => s.labels.member)).toEqual([leader]);

      // ---- a write burst: fsyncs, commits and memory move, and agree with agent_metrics ----
      const burst = 60;
      for (let i = 0; i < burst; i++) await memoryStore(swarm, { key: `k${i}`, value: { i, pad: 'x'.repeat(20) } });
      const commit = swarm.cluster.leader()!.status().commit;
      await waitUntil(() => members.every((id) => swarm.cluster.host(id).status().applied >= commit), 5_000, 'every member to apply the burst');
      const fsyncBefore = Object.fromEntries(members.map((id) => [id, fsyncCount(swarm, id)]));
      const rttSamples = () => new Map([...swarm.cluster.host(leader).roundTrips()].map(([peer, r]) => [peer, r.samples]));
      const rttBefore = rttSamples();
      const after = await scrape(srv.port);
      const rttAfter = rttSamples();
      for (const id of members) {
        const scraped = valueOf(after, 'concord_disk_wal_fsync_duration_seconds_count', L(id));
        // The histogram's _count is the fsync counter agent_metrics reports (no restart here).
        expect(scraped).toBeGreaterThanOrEqual(fsyncBefore[id]!);
        expect(scraped).toBeLessThanOrEqual(fsyncCount(swarm, id));
        expect(scraped - valueOf(before, 'concord_disk_wal_fsync_duration_seconds_count', L(id))).toBeGreaterThanOrEqual(burst / 2);
        expect(valueOf(after, 'concord_disk_wal_fsync_duration_seconds_sum', L(id))).toBeGreaterThan(0);
        expect(valueOf(after, 'concord_proposals_applied_total', L(id))).toBeGreaterThanOrEqual(commit);
        // Snapshots: the histogram counts exactly the snapshots the member took.
        const taken = valueOf(after, 'concord_snapshots_taken_total', L(id));
        expect(taken).toBeGreaterThan(0);
        expect(valueOf(after, 'concord_snapshot_save_duration_seconds_count', L(id))).toBe(taken);
      }
      expect(valueOf(after, 'concord_proposals_committed_total', L(leader))).toBeGreaterThanOrEqual(commit);
      // Every write committed through the leader's own proposals: one commit-latency observation each.
      expect(valueOf(after, 'concord_proposal_commit_duration_seconds_count', L(leader)) - valueOf(before, 'concord_proposal_commit_duration_seconds_count', L(leader))).toBeGreaterThanOrEqual(burst);
      // Heartbeat round trips from the leader to each of its four peers: between the two
      // scrapes the histogram counts the samples network_diagnose counts. (Compared as
      // increases: the histogram is a counter over every leadership of the member, the samples
      // start at its current one, and the leader may have been re-elected while agents joined.)
      expect(electionHistory(swarm).total_elections).toBe(electionsAtStart);
      expect(samplesOf(after, 'concord_network_peer_round_trip_time_seconds_count', L(leader)).map((s) => s.labels.peer).sort()).toEqual(members.filter((m) => m !== leader));
      for (const peer of members.filter((m) => m !== leader)) {
        const key = { ...L(leader), peer };
        const grew = valueOf(after, 'concord_network_peer_round_trip_time_seconds_count', key) - (samplesOf(before, 'concord_network_peer_round_trip_time_seconds_count', key)[0]?.value ?? 0);
        expect(grew).toBeGreaterThan(0);
        expect(grew).toBeGreaterThanOrEqual(rttBefore.get(peer)! - (rttB1.get(peer) ?? 0));
        expect(grew).toBeLessThanOrEqual(rttAfter.get(peer)! - (rttB0.get(peer) ?? 0));
      }
      expect(valueOf(after, 'concord_memory_keys', { swarm: 'm' }) - valueOf(before, 'concord_memory_keys', { swarm: 'm' })).toBe(burst);
      expect(valueOf(after, 'concord_memory_bytes', { swarm: 'm' })).toBeGreaterThan(burst * 20);

      // ---- health while the swarm is whole ----
      expect(electionHistory(swarm).total_elections).toBe(electionsAtStart); // the leader never moved
      const h = await get(srv.port, '/health?swarm=m');
      expect(h.status).toBe(200);
      expect(JSON.parse(h.body)).toMatchObject({ status: 'ok', healthy: true, leader });
      expect((await get(srv.port, '/readyz')).status).toBe(200);
      expect((await get(srv.port, '/health?swarm=nope')).status).toBe(404);

      // ---- failover: leader changes seen and the election totals move ----
      const elections = (electionHistory(swarm).total_elections as number);
      await terminateAgent(swarm, leader, 'crash');
      const next = await swarm.waitForLeader(15_000);
      expect(next.id).not.toBe(leader);
      await waitUntil(() => (electionHistory(swarm).total_elections as number) > elections, 15_000, 'the election record');
      // A follower the leader did not need for its majority learns of it a little later.
      let failover = await scrape(srv.port);
      const survivors = members.filter((m) => m !== leader);
      const seen = (f: Map<string, Family>) => survivors.every((id) => valueOf(f, 'concord_leader_changes_seen_total', L(id)) > valueOf(after, 'concord_leader_changes_seen_total', L(id)) && valueOf(f, 'concord_has_leader', L(id)) === 1);
      await waitUntil(async () => seen((failover = await scrape(srv.port))), 15_000, 'every survivor to see the new leader');
      expect(valueOf(failover, 'concord_member_up', L(leader))).toBe(0);
      expect(samplesOf(failover, 'concord_has_leader', L(leader))).toEqual([]);
      expect(valueOf(failover, 'concord_elections_total', { swarm: 'm' })).toBe(electionHistory(swarm).total_elections);
      expect(valueOf(failover, 'concord_leader_failures_total', { swarm: 'm' })).toBeGreaterThan(valueOf(after, 'concord_leader_failures_total', { swarm: 'm' }));

      // ---- lose the quorum: 3 of 5 crashed ----
      for (const id of members.filter((m) => m !== leader && m !== next.id).slice(0, 1).concat(next.id)) await terminateAgent(swarm, id, 'crash');
      expect(swarm.activeMembers().filter((a) => swarm.isRunning(a))).toHaveLength(2);
      await waitUntil(async () => (await get(srv.port, '/health?swarm=m')).status === 503, 15_000, '/health to report the lost quorum');
      const down = await get(srv.port, '/health');
      expect(down.status).toBe(503);
      const body = JSON.parse(down.body) as { status: string; reason: string; swarms: Array<{ healthy: boolean; reason: string }> };
      expect(body.status).toBe('unavailable');
      expect(body.swarms[0]!.healthy).toBe(false);
      expect(body.reason).toMatch(/^m: /);
      expect(body.swarms[0]!.reason).toMatch(/leader|majority/);
      expect((await get(srv.port, '/readyz?swarm=m')).status).toBe(503);
      const lost = await scrape(srv.port);
      expect(samplesOf(lost, 'concord_is_leader').filter((s) => s.value === 1)).toEqual([]);
    } finally {
      await srv.close();
    }
  });

  it('asks for the bearer token beyond loopback only, and refuses a foreign Host', async () => {
    const token = 't'.repeat(40);
    const local = await runHttp({ host: '127.0.0.1', port: 0, dataDir: dir('metrics-lo'), token });
    try {
      expect((await get(local.port, '/metrics')).status).toBe(200);
      expect((await get(local.port, '/health')).status).toBe(200);
      expect((await get(local.port, '/mcp')).status).toBe(401);
      // fetch() cannot set Host (a forbidden header): node:http can, as a rebinding page's browser would.
      expect(await statusWithHost(local.port, '/metrics', 'evil.example')).toBe(403);
      expect(await statusWithHost(local.port, '/metrics', `localhost:${local.port}`)).toBe(200);
      expect((await fetch(`http://127.0.0.1:${local.port}/metrics`, { method: 'POST' })).status).toBe(405);
    } finally {
      await local.close();
    }
    const wide = await runHttp({ host: '0.0.0.0', port: 0, dataDir: dir('metrics-wide'), token });
    try {
      expect((await get(wide.port, '/metrics')).status).toBe(401);
      expect((await get(wide.port, '/health')).status).toBe(401);
      expect((await get(wide.port, '/metrics', { authorization: `Bearer ${token}` })).status).toBe(200);
    } finally {
      await wide.close();
    }
  });
});
