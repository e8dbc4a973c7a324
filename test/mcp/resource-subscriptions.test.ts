// resources/subscribe on a swarm's status and election history: the SDK client is told
// (notifications/resources/updated) when an election, a leader change or a membership change
// happens, coalesced, and nothing after it unsubscribes or closes. In-process server (the
// same createServer the stdio and HTTP transports use), real swarm.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { ResourceUpdatedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { describe, expect, it } from 'vitest';
import { createServer } from '../../src/server/create-server.js';
import { RESOURCE_UPDATE_COALESCE_MS } from '../../src/server/resource-subscriptions.js';
import { restartAgent, terminateAgent } from '../../src/service/agents.js';
import { configure } from '../../src/service/consensus.js';
import { CALM, swarmWithAgents, sleep, testResources, waitUntil } from '../service/service-util.js';

const res = testResources();

async function readJson<T>(client: Client, uri: string): Promise<T> {
  const c = (await client.readResource({ uri })).contents[0] as { text: string };
  return JSON.parse(c.text) as T;
}

async function connect(coord: Parameters<typeof createServer>[0]) {
  const server = createServer(coord);
  const client = new Client({ name: 'sub-test', version: '0' });
  const [a, b] = InMemoryTransport.createLinkedPair();
  await server.connect(a);
  await client.connect(b);
  const updates: string[] = [];
  /** total_elections a subscriber reads back on each election-history update. */
  const historySeen: number[] = [];
  client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => {
    updates.push(n.params.uri);
    if (!n.params.uri.endsWith('/election-history')) return;
    void readJson<{ total_elections: number }>(client, n.params.uri).then(
      (h) => historySeen.push(h.total_elections),
      () => undefined,
    );
  });
  return { server, client, updates, historySeen };
}

describe('MCP resource subscriptions', () => {
  it('notifies subscribers of elections and membership changes, coalesced, until unsubscribe', async () => {
    const { coordinator, swarm } = await swarmWithAgents(res.dir('subs'), { name: 's', agents: 5 });
    res.keep(coordinator);
    // Long election timeouts: on a loaded machine no spurious election sends updates.
    await configure(swarm, CALM);
    const { client, updates, historySeen } = await connect(coordinator);
    try {
      expect(client.getServerCapabilities()?.resources?.subscribe).toBe(true);
      const status = 'concord://swarms/s/status';
      const history = 'concord://swarms/s/election-history';
      await client.subscribeResource({ uri: status });
      await client.subscribeResource({ uri: history });
      await sleep(RESOURCE_UPDATE_COALESCE_MS * 3);
      expect(updates).toEqual([]); // an idle swarm sends nothing

      // A leader crash: a membership change, then an election (every member changes role) and
      // its record. Coalesced: a handful of notifications, not one per member per event.
      const leader = swarm.cluster.leader()!.id;
      const elections = (await readJson<{ total_elections: number }>(client, history)).total_elections;
      await terminateAgent(swarm, leader, 'crash');
      await swarm.waitForLeader(15_000);
      await waitUntil(() => updates.includes(status) && updates.includes(history), 15_000, 'status and election-history updates');
      // A subscriber that re-reads on each update sees the new election record.
      await waitUntil(() => historySeen.some((n) => n > elections), 5_000, 'an update after which the new election record is readable');
      await sleep(RESOURCE_UPDATE_COALESCE_MS * 3);
      // Five members changing role, a crash saved, a record applied on four replicas: coalesced.
      expect(updates.length).toBeLessThanOrEqual(8);
      const statusNow = await readJson<{ leader_id: string }>(client, status);
      expect(statusNow.leader_id).not.toBe(leader);

      // A restart is a membership change: status is updated.
      updates.length = 0;
      await restartAgent(swarm, leader);
      await waitUntil(() => updates.includes(status), 5_000, 'a status update after the restart');

      // Unsubscribed: nothing more, whatever happens.
      await client.unsubscribeResource({ uri: status });
      await client.unsubscribeResource({ uri: history });
      await sleep(RESOURCE_UPDATE_COALESCE_MS * 2);
      updates.length = 0;
      const follower = swarm.activeMembers().find((a) => a !== swarm.cluster.leader()!.id)!;
      await terminateAgent(swarm, follower, 'crash');
      await sleep(RESOURCE_UPDATE_COALESCE_MS * 3);
      expect(updates).toEqual([]);

      // Unknown views and swarms are refused, naming what is accepted.
      await expect(client.subscribeResource({ uri: 'concord://swarms/s/log-status' })).rejects.toThrow(/status and concord:\/\/swarms\/\{name\}\/election-history/);
      await expect(client.subscribeResource({ uri: 'concord://swarms/nope/status' })).rejects.toThrow(/nope/);
    } finally {
      await client.close();
    }
  });

  it('stops watching the swarm when the session closes', async () => {
    const { coordinator, swarm } = await swarmWithAgents(res.dir('subs-close'), { name: 'c', agents: 3 });
    res.keep(coordinator);
    const { client, updates } = await connect(coordinator);
    await client.subscribeResource({ uri: 'concord://swarms/c/status' });
    await client.close();
    await sleep(20);
    const leader = swarm.cluster.leader()!.id;
    await terminateAgent(swarm, leader, 'crash');
    await swarm.waitForLeader(5_000);
    await sleep(RESOURCE_UPDATE_COALESCE_MS * 3);
    expect(updates).toEqual([]);
    // No listener left on the swarm: a closed session holds nothing.
    expect((swarm as unknown as { changeListeners: Set<unknown> }).changeListeners.size).toBe(0);
  });
});
