// `concord demo`: the spec's eight steps end to end; its "halfway" log-status is read at 50 %.

import { execFile } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { MAIN, ROOT, requireBuild } from '../mcp/helpers.js';

beforeAll(() => requireBuild());

describe('concord demo', () => {
  it('passes, and shows the log status at halfway (50 %), not after most tasks finished', async () => {
    const r = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [MAIN, 'demo'], { cwd: ROOT, timeout: 120_000, env: { ...process.env, CONCORD_LOG_LEVEL: 'warn' } }, (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
      );
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/"verdict": "PASS"/);
    const at = Number(/Step 6: consensus log-status \(halfway: taken at ([\d.]+)% done\)/.exec(r.stdout)?.[1]);
    // The first reading at or past half; completions land a batch (10 tasks, up to 4 per agent) at a time.
    expect(at).toBeGreaterThanOrEqual(50);
    expect(at).toBeLessThan(60);
  }, 150_000);
});
