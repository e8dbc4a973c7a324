// Hostile snapshot files: the trailing SHA-256 is not authentication (anyone can recompute it),
// so restore must validate what it loads. A crafted file with a valid hash must be refused,
// naming the problem, and must write nothing outside the data directory.

import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CoordinationMachine } from '../../src/machine/coordination-machine.js';
import { restoreSnapshot } from '../../src/service/restore.js';
import { countsOf, describeParts, encodeSnapshotFile, readSnapshotFile, type SnapshotHeader } from '../../src/service/snapshot-file.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-review-restore-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

/**
 * A file whose hashes are all correct, with `header` and `state` patched as an attacker likes:
 * format 1 (the state as one string) or format 2 (one part, its hash in the header).
 */
function craftedIn(version: 1 | 2, tag: string, patchHeader: Partial<SnapshotHeader>, patchState: (s: Record<string, unknown>) => void = () => {}): string {
  const m = new CoordinationMachine();
  const s = JSON.parse(m.snapshot()) as Record<string, unknown>;
  s.appliedIndex = patchHeader.index ?? 10;
  s.appliedTerm = patchHeader.term ?? 2;
  patchState(s);
  const state = JSON.stringify(s);
  const header: SnapshotHeader = {
    format_version: version,
    swarm: 'src',
    index: 10,
    term: 2,
    leader: 'a1',
    leader_term: 2,
    members: { voters: ['a1', 'a2', 'a3'], learners: [] },
    max_agents: 10,
    counts: countsOf(m),
    state_sha256: createHash('sha256').update(state).digest('hex'),
    state_bytes: Buffer.byteLength(state),
    ...(version === 2 ? { part_chars: 4 << 20, parts: describeParts(state).parts } : {}),
    created_at: new Date().toISOString(),
    ...patchHeader,
  };
  const file = path.join(root, `v${version}-${tag}.snapshot`);
  fs.writeFileSync(file, encodeSnapshotFile(header, state).bytes);
  return file;
}

describe.each([1, 2] as const)('restore of a crafted format %i snapshot with a valid hash', (version) => {
  const crafted = (tag: string, h: Partial<SnapshotHeader>, patch?: (s: Record<string, unknown>) => void): string => craftedIn(version, tag, h, patch);

  it('a good crafted file restores (the harness itself is sound)', () => {
    const r = restoreSnapshot(crafted('good', {}), { dataDir: path.join(root, `v${version}-good-dir`) });
    expect(r.members.map((m) => m.agent_id)).toEqual(['a1', 'a2', 'a3']);
  });

  it('member ids that are paths are refused and nothing is written outside the data directory', () => {
    const outside = path.join(root, `v${version}-escaped`);
    fs.mkdirSync(outside);
    const dataDir = path.join(root, `v${version}-trav-dir`);
    // staging is DATA/restore-staging/NAME.x/: three levels up is `root`.
    const evil = `../../../v${version}-escaped/pwn`;
    const file = crafted('traversal', { members: { voters: ['a1', evil], learners: [] } });
    let thrown: unknown = null;
    try {
      restoreSnapshot(file, { dataDir });
    } catch (e) {
      thrown = e;
    }
    expect(fs.readdirSync(outside)).toEqual([]);
    expect(String(thrown)).toMatch(/member/);
    expect(() => readSnapshotFile(file)).toThrow(/member/);
    expect(fs.readdirSync(outside)).toEqual([]);
    const absolute = crafted('absolute', { members: { voters: ['a1', path.join(outside, 'abs')], learners: [] } });
    expect(() => restoreSnapshot(absolute, { dataDir })).toThrow(/member/);
    expect(fs.readdirSync(outside)).toEqual([]);
  });

  it('absurd member counts and max_agents are refused', () => {
    const many = Array.from({ length: 5000 }, (_, i) => `m${i}`);
    expect(() => readSnapshotFile(crafted('many', { members: { voters: many, learners: [] } }))).toThrow(/member/);
    expect(() => readSnapshotFile(crafted('maxagents', { max_agents: 'lots' as unknown as number }))).toThrow(/max_agents/);
    expect(() => readSnapshotFile(crafted('maxagents-neg', { max_agents: -5 }))).toThrow(/max_agents/);
  });

  it('a config outside the bounds of consensus_config is refused', () => {
    const zeroHb = crafted('cfg-hb', {}, (s) => {
      s.config = { ...(s.config as object), heartbeat_interval: 0, election_timeout_min: 0 };
    });
    expect(() => readSnapshotFile(zeroHb)).toThrow(/heartbeat_interval|election_timeout_min/);
    const missing = crafted('cfg-missing', {}, (s) => {
      s.config = {};
    });
    expect(() => readSnapshotFile(missing)).toThrow(/config/);
  });

  it('a log clock that is not a time, or a state at another index than its header, is refused', () => {
    expect(() => readSnapshotFile(crafted('clock', {}, (st) => void (st.clock = 'abc')))).toThrow(/clock="abc"/);
    expect(() => readSnapshotFile(crafted('index', {}, (st) => void (st.appliedIndex = 3)))).toThrow(/state is at index 3 term 2, the header says index 10 term 2/);
  });

  it('a state that does not load back as itself is refused before anything is written, naming the file', () => {
    const dataDir = path.join(root, `v${version}-shape-dir`);
    for (const [tag, patch] of [
      ['agents-null', (st: Record<string, unknown>) => void (st.agents = [null])],
      ['sessions-bad', (st: Record<string, unknown>) => void (st.sessions = [[1, 'x', 5]])],
    ] as const) {
      const file = crafted(tag, {}, patch);
      expect(() => restoreSnapshot(file, { dataDir }), tag).toThrow(new RegExp(`snapshot ${file} refused: the state`));
      expect(fs.existsSync(path.join(dataDir, 'swarms', 'src')), tag).toBe(false);
    }
  });

  it('a swarm name or a member list that is a path is refused (the name held before; --peers ids are checked by the CLI, now by restore too)', () => {
    const dataDir = path.join(root, `v${version}-names-dir`);
    const file = crafted('names', {});
    for (const swarm of ['../x', '/tmp/x', 'a/b', '.', '..', 'x\0y', 'x'.repeat(65)]) {
      expect(() => restoreSnapshot(file, { dataDir, swarm }), swarm).toThrow(/swarm=.* is not valid/);
    }
    expect(() => restoreSnapshot(file, { dataDir, member: '../m', members: ['a1', '../m'] })).toThrow(/members="..\/m" is not valid/);
    expect(fs.existsSync(path.join(dataDir, 'swarms'))).toBe(false);
    expect(fs.readdirSync(root).filter((f) => f === 'x' || f === 'm.db')).toEqual([]);
  });
});
