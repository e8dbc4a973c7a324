// `concord snapshot save|status|restore` as a user runs them (the built CLI, one process per
// command): save through the data directory's daemon and --embedded, verify, refuse a damaged
// file with a non-zero exit naming it, restore into a new data directory and read the data back.

import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, cliOk, killDaemons } from '../daemon/daemon-helpers.js';
import { cleanupTempDirs, requireBuild, tempDataDir } from '../mcp/helpers.js';

const dirs: string[] = [];
beforeAll(() => requireBuild());
afterAll(async () => {
  for (const d of dirs) await killDaemons(d);
  cleanupTempDirs();
});

function dir(tag: string): string {
  const d = tempDataDir(tag);
  dirs.push(d);
  return d;
}

describe('concord snapshot', () => {
  it('saves through the daemon, verifies, refuses a damaged file, restores into a new directory', async () => {
    const src = dir('snap-src');
    // Parts of at most 64 Ki characters (the daemon this first command starts keeps them):
    // 30,000 tasks travel as task block rows, about half a megabyte of state, so many parts.
    const small = { CONCORD_SNAPSHOT_PART_CHARS: String(64 << 10) };
    await cliOk(src, ['swarm', 'init', '--name', 'prod', '--max-agents', '3'], small);
    for (let i = 1; i <= 3; i++) await cliOk(src, ['agent', 'spawn', '--swarm', 'prod', '--name', `raft-agent-${i}`]);
    await cliOk(src, ['memory', 'store', '--swarm', 'prod', '--key', 'release/plan', '--value', '{"step":7}']);
    await cliOk(src, ['task', 'orchestrate', '--swarm', 'prod', '--task', 'x', '--count', '30000', '--wait']);

    const file = path.join(src, 'prod.snapshot');
    const saved = await cliOk(src, ['snapshot', 'save', file, '--swarm', 'prod'], small);
    expect(saved).toMatchObject({ swarm: 'prod', path: file });
    expect(saved.via).toMatch(/concord daemon/);
    expect(saved.bytes).toBe(fs.statSync(file).size);
    expect(saved.bytes).toBeGreaterThan(300 << 10);
    expect((saved.counts as Record<string, number>).tasks_completed).toBe(30000);
    expect((saved.counts as Record<string, number>).memory_keys).toBe(1);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    // No temporary file left beside it, nor the daemon's copy in its backups directory.
    expect(fs.readdirSync(src).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expect(fs.readdirSync(path.join(src, 'backups'))).toEqual([]);

    const st = await cliOk(src, ['snapshot', 'status', file]);
    expect(st).toMatchObject({ verified: true, sha256: saved.sha256, swarm: 'prod', index: saved.index, term: saved.term });
    expect((st.members as { voters: string[] }).voters).toEqual(['raft-agent-1', 'raft-agent-2', 'raft-agent-3']);
    // Format 2: the state in parts of at most 64 Ki characters here, each hash checked.
    expect(st.format_version).toBe(2);
    expect(st.parts).toBeGreaterThan(4);
    expect(saved.parts).toBe(st.parts);

    // An existing FILE is not replaced unasked.
    const again = await cli(src, ['snapshot', 'save', file, '--swarm', 'prod']);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain(`${file} already exists`);

    // One flipped byte: refused, naming the file and the check; a truncated copy too.
    const bytes = fs.readFileSync(file);
    const bad = path.join(src, 'bad.snapshot');
    const flipped = Buffer.from(bytes);
    flipped[Math.floor(bytes.length / 3)] = flipped[Math.floor(bytes.length / 3)]! ^ 0x04;
    fs.writeFileSync(bad, flipped);
    const refused = await cli(src, ['snapshot', 'status', bad]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`snapshot ${bad} refused: hash mismatch`);
    const cut = path.join(src, 'cut.snapshot');
    fs.writeFileSync(cut, bytes.subarray(0, bytes.length - 200));
    const dst = dir('snap-dst');
    const r1 = await cli(dst, ['snapshot', 'restore', cut, '--data-dir', dst]);
    expect(r1.code).toBe(2);
    expect(r1.stderr).toContain(`snapshot ${cut} refused: truncated`);
    expect(fs.existsSync(path.join(dst, 'swarms'))).toBe(false);

    // Restore into a new directory under a new name; the daemon there serves it.
    const restored = await cliOk(dst, ['snapshot', 'restore', file, '--data-dir', dst, '--swarm', 'prod-copy']);
    expect(restored).toMatchObject({ restored: true, swarm: 'prod-copy', from_swarm: 'prod', index: saved.index, state_sha256: saved.state_sha256 });
    const twice = await cli(dst, ['snapshot', 'restore', file, '--data-dir', dst, '--swarm', 'prod-copy']);
    expect(twice.code).toBe(2);
    expect(twice.stderr).toContain('swarm prod-copy already exists');
    const got = await cliOk(dst, ['memory', 'retrieve', '--swarm', 'prod-copy', '--key', 'release/plan']);
    expect(got.value).toEqual({ step: 7 });
    const results = await cliOk(dst, ['task', 'results', '--swarm', 'prod-copy']);
    expect(results).toMatchObject({ total_tasks: 30000, completed: 30000, duplicates: 0 });
    // While the daemon owns the directory a restore is refused (it would not see the swarm).
    const busy = await cli(dst, ['snapshot', 'restore', file, '--data-dir', dst, '--swarm', 'third']);
    expect(busy.code).toBe(2);
    expect(busy.stderr).toMatch(/is in use by pid \d+/);
  }, 180_000);

  it('saves --embedded, in the process that opens the data directory', async () => {
    const src = dir('snap-emb');
    const emb = { CONCORD_EMBEDDED: '1' };
    await cliOk(src, ['swarm', 'init', '--max-agents', '1'], emb);
    await cliOk(src, ['agent', 'spawn'], emb);
    await cliOk(src, ['memory', 'store', '--key', 'a', '--value', '1'], emb);
    const file = path.join(src, 'e.snapshot');
    const saved = await cliOk(src, ['snapshot', 'save', file], emb);
    expect(saved.via).toMatch(/data directory/);
    const st = await cliOk(src, ['snapshot', 'status', file], emb);
    expect(st).toMatchObject({ verified: true, sha256: saved.sha256, swarm: 'default' });
    expect((await cli(src, ['snapshot', 'save'], emb)).stderr).toMatch(/takes one FILE/);
    expect((await cli(src, ['snapshot', 'status', file, '--swarm', 'x'], emb)).stderr).toMatch(/--swarm is not a flag of "snapshot status"/);
  }, 120_000);
});
