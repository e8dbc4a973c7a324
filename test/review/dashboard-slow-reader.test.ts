// A dashboard stream whose reader never reads (a stalled or hostile client on loopback, or
// anyone with the token) must not make the server buffer snapshots without bound: each
// ~30 KB snapshot at up to 2.5 a second per stream, 256 such streams, is ~19 MB/s of heap.
import { EventEmitter } from 'node:events';
import type http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DashboardHub, MAX_STREAM_BUFFER_BYTES } from '../../src/server/dashboard/hub.js';
import { spawnAgent } from '../../src/service/agents.js';
import { Coordinator } from '../../src/service/coordinator.js';
import { memoryStore } from '../../src/service/memory.js';

/** A response whose peer never reads: every byte written stays buffered. */
class StalledResponse extends EventEmitter {
  writableLength = 0;
  destroyed = false;
  writeHead(): this {
    return this;
  }
  write(chunk: string): boolean {
    if (this.destroyed) return false;
    this.writableLength += Buffer.byteLength(chunk);
    return false;
  }
  end(): void {
    this.destroy();
  }
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.emit('close');
  }
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-review-hub-'));
let coord: Coordinator | null = null;
afterAll(() => {
  coord?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('dashboard hub with a client that never reads', () => {
  it('drops the stream once its unsent backlog passes the cap, instead of buffering every snapshot', async () => {
    coord = new Coordinator({ dataDir: dir, durability: 'off' });
    const swarm = coord.init({ name: 'default', max_agents: 1, bootstrap_expect: 1 }).swarm;
    await spawnAgent(swarm, {});
    const hub = new DashboardHub(coord);
    const res = new StalledResponse();
    const req = { socket: { setNoDelay: () => {} } } as unknown as http.IncomingMessage;
    hub.attach(req, res as unknown as http.ServerResponse);
    expect(hub.count()).toBe(1);
    // Each write changes the commit index, so each poke sends a new snapshot.
    let most = 0;
    for (let i = 0; i < 5000 && !res.destroyed; i++) {
      await memoryStore(swarm, { key: `k${i}`, value: 'x'.repeat(2000) });
      hub.poke();
      await new Promise((r) => setImmediate(r));
      most = Math.max(most, res.writableLength);
    }
    expect(res.destroyed).toBe(true);
    expect(hub.count()).toBe(0);
    // One snapshot past the cap at most.
    expect(most).toBeLessThan(MAX_STREAM_BUFFER_BYTES + 256 * 1024);
    hub.close();
  }, 120_000);
});
