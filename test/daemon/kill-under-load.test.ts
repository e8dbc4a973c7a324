// `kill -9` of the daemon while clients write and an orchestration runs: every acknowledged
// write survives with its version, a call in flight is answered "outcome unknown" and is never
// sent again by the proxy (a re-sent store would show version 2), and the orchestration
// finishes with every task completed once. daemon.test.ts kills an idle daemon only.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, requireBuild, tempDataDir, waitFor } from '../mcp/helpers.js';
import { alive, cliOk, killDaemons, stdioClient } from './daemon-helpers.js';

const dirs: string[] = [];
beforeAll(() => requireBuild());
afterAll(async () => {
  for (const d of dirs) await killDaemons(d);
  cleanupTempDirs();
});

describe('a daemon killed under load', () => {
  it('loses no acknowledged write, re-sends no call in flight, and finishes its tasks once', async () => {
    const dir = tempDataDir('d-kill-load');
    dirs.push(dir);
    await cliOk(dir, ['swarm', 'init', '--max-agents', '3']);
    for (let i = 1; i <= 3; i++) await cliOk(dir, ['agent', 'spawn', '--name', `a${i}`]);
    const s = await stdioClient(dir);
    try {
      const pid = (await cliOk(dir, ['daemon', 'status'])).pid as number;
      const id = (await s.mcp.ok('task_orchestrate', { task: 'under kill', count: 1000 })).orchestration_id as string;
      const acked = new Map<string, number>();
      const failed: Array<{ key: string; text: string }> = [];
      let stop = false;
      const writers = [0, 1, 2, 3].map(async (w) => {
        for (let n = 0; !stop; n++) {
          const key = `load/w${w}/${n}`;
          const r = await s.mcp.call('memory_store', { key, value: { w, n } }).catch((e: unknown) => ({ isError: true, text: String(e), data: {} as Record<string, unknown> }));
          if (r.isError) failed.push({ key, text: r.text });
          else acked.set(key, r.data.version as number);
        }
      });
      await waitFor('writes before the kill', async () => acked.size >= 40, 30_000);
      process.kill(pid, 'SIGKILL');
      await waitFor('the killed daemon to be gone', async () => !alive(pid));
      const atKill = acked.size;
      await waitFor('writes acknowledged by a new daemon', async () => acked.size >= atKill + 40, 60_000);
      stop = true;
      await Promise.all(writers);

      // Only calls in flight at the kill failed (one per writer at most), each saying so.
      expect(failed.length, JSON.stringify(failed)).toBeLessThanOrEqual(4);
      for (const f of failed) expect(f.text).toMatch(/outcome is unknown/);
      for (const [key, version] of acked) {
        const got = await s.mcp.ok('memory_retrieve', { key });
        expect(got, key).toMatchObject({ found: true, version });
      }
      // A failed call applied at most once: never re-sent by the proxy.
      for (const f of failed) {
        const got = await s.mcp.call('memory_retrieve', { key: f.key });
        if (!got.isError && got.data.found === true) expect(got.data.version, f.key).toBe(1);
      }
      await waitFor('the orchestration to finish', async () => (await s.mcp.ok('task_status', { orchestration_id: id })).status === 'finished', 120_000, 250);
      expect(await s.mcp.ok('task_results', { orchestration_id: id })).toMatchObject({ completed: 1000, failed: 0, duplicates: 0 });
    } finally {
      await s.client.close();
    }
  }, 240_000);
});
