// ClusterClient retries a call whose answer was lost under the same session (client, seq), so
// the member answers it from the session table instead of applying it again. If the session
// expired meanwhile, the member refuses the retry (session_expired), and the client must NOT
// register a new session and re-send: the first attempt may have applied (here it did), and a
// re-send under a new session would apply it twice. It answers session_expired, outcome
// unknown. (The Proposer's equivalent is in test/service/proposer-sessions.test.ts.)
// One member in this process; its answer to the first attempt is withheld, so the client
// times out (ANSWER_TIMEOUT_MS, 5 s) and retries after its 1 s session expired.

import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ClusterClient } from '../../src/cluster/cluster-client.js';
import { MemberNode } from '../../src/cluster/member-node.js';
import { freePorts } from './procs.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('ClusterClient retry after its session expired', () => {
  let dir = '';
  let node: MemberNode | null = null;
  afterAll(async () => {
    await node?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a call applied but unanswered, retried after the session expired, is answered session_expired and not applied twice', { timeout: 60_000 }, async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-client-retry-'));
    const secret = crypto.randomBytes(32);
    const [port] = await freePorts(1);
    node = await MemberNode.start({ swarm: 's', id: 'a', peers: { a: { host: '127.0.0.1', port: port! } }, dataDir: dir, secret, durability: 'normal' });
    const n = node;
    // Withhold the answer of the first tool call that carries a session: it runs (applies), the client never hears.
    let withheld = 0;
    let toolCalls = 0;
    n.cluster.transport.onClientRequest(async (body, from, credential, ctx) => {
      const b = body as { kind?: string; name?: string; session?: unknown };
      const store = b.kind === 'tool' && b.name === 'memory_store' && b.session !== undefined;
      if (store) toolCalls++;
      const r = await n.handle(body, from, credential, ctx);
      if (store && withheld === 0) {
        withheld++;
        return new Promise(() => undefined);
      }
      return r;
    });
    const client = new ClusterClient({ members: [`127.0.0.1:${port}`], secret, name: 'retry', sessionTimeoutMs: 1_000, timeoutMs: 30_000 });
    try {
      // Wait for the member to lead (a read needs no session).
      for (let i = 0; i < 200; i++) {
        const r = await client.callTool('memory_retrieve', { key: 'nothing' }).catch(() => null);
        if (r && !r.isError) break;
        await sleep(50);
      }
      const t0 = Date.now();
      const r = await client.callTool('memory_store', { key: 'once', value: 'v' });
      console.log(`client-retry: answered after ${Date.now() - t0} ms: ${JSON.stringify(r.content).slice(0, 200)}`);
      const text = String((r.content?.[0] as { text?: unknown } | undefined)?.text ?? '');
      expect(withheld).toBe(1);
      // The first attempt applied (version 1); whatever the client answers, nothing applied it again.
      const read = await client.callTool('memory_retrieve', { key: 'once' });
      expect(read.isError).toBeFalsy();
      expect((read.structuredContent as { version?: number }).version).toBe(1);
      expect(r.isError, text).toBe(true);
      expect(text).toMatch(/^session_expired: session=\S+ expired .*may or may not have been applied, so it was not sent again/);
      // Two attempts of the one call reached the member: the withheld one and the refused retry.
      expect(toolCalls).toBe(2);
    } finally {
      client.close();
    }
  });
});
