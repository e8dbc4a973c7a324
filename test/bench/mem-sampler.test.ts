// The bench's memory sampler: its figures, and that a run which throws before stop() still
// lets the process exit (a 1M-task crash run failed at retention and the bench hung on its
// sampler's interval).

import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { memSampler } from './mem-sampler.js';

const ROOT = path.resolve(import.meta.dirname, '..', '..');

describe('memSampler', () => {
  it('reports a peak with its breakdown and a timeline', async () => {
    let step = 'a';
    const s = memSampler({ intervalMs: 5, timelineS: 0.01, note: () => step });
    const hold: Uint8Array[] = [];
    for (let i = 0; i < 8; i++) hold.push(new Uint8Array(1 << 20).fill(1));
    step = 'b';
    await new Promise((r) => setTimeout(r, 60));
    const r = s.stop();
    expect(hold.length).toBe(8);
    expect(r.peak.rss_mib).toBeGreaterThan(0);
    expect(r.peak.array_buffers_mib).toBeGreaterThanOrEqual(8);
    // native is what is neither V8 heap nor external
    expect(r.peak.native_mib).toBeCloseTo(r.peak.rss_mib - r.peak.heap_total_mib - r.peak.external_mib, 0);
    expect(r.timeline.length).toBeGreaterThanOrEqual(2);
    expect(r.timeline.map((t) => t.note)).toContain('b');
  });

  it('does not keep the process alive when never stopped', async () => {
    const script = `import { memSampler } from ${JSON.stringify(path.join(ROOT, 'test/bench/mem-sampler.ts'))};
memSampler({ note: () => 'x' }); memSampler({ rssOnly: true });
setTimeout(() => process.stdout.write('done\\n'), 100);`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    // Generous: only a hang (the sampler holding the loop) should reach it.
    const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    clearTimeout(killer);
    expect(out).toBe('done\n');
    expect(exit).toEqual({ code: 0, signal: null });
  });
});
