// The mutation list cannot rot silently: every mutation must still apply to the code at HEAD
// (each find string exactly once in its file) and name test files that exist.

import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import ts from 'typescript';
import { REPO_ROOT, applyMutation, readRepoFile } from './apply.js';
import { MUTATIONS } from './mutations.js';

describe('npm run mutate: the mutation list', () => {
  it('has unique ids and covers raft, storage, host, machine and the proposer/scheduler', () => {
    const ids = MUTATIONS.map((m) => m.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(MUTATIONS.length).toBeGreaterThanOrEqual(25);
    const folders = new Set(MUTATIONS.map((m) => path.posix.dirname(m.file)));
    for (const f of ['src/raft', 'src/storage', 'src/host', 'src/machine', 'src/service']) expect(folders).toContain(f);
  });

  it.each(MUTATIONS.map((m) => [m.id, m] as const))('%s applies to HEAD and names existing tests', (_id, m) => {
    const before = readRepoFile(m.file);
    const r = applyMutation(m, before);
    if ('error' in r) expect.fail(r.error);
    expect(r.text).not.toBe(before);
    expect(m.tests.length).toBeGreaterThan(0);
    for (const t of m.tests) {
      expect(t).toMatch(/\.test\.ts$/);
      expect(fs.existsSync(path.join(REPO_ROOT, t)), `${m.id}: ${t}`).toBe(true);
    }
    expect(m.breaks.length).toBeGreaterThan(10);
    // A find string must start and end on identifier boundaries: 'fs.x(' found inside
    // 'this.sfs.x(' would splice the replacement into 'this.s...' and "kill" by a TypeError.
    for (const e of m.edits) {
      const at = before.indexOf(e.find);
      const prev = before[at - 1] ?? '';
      const next = before[at + e.find.length] ?? '';
      if (/^[\w$]/.test(e.find)) expect(prev, `${m.id}: find starts inside an identifier`).not.toMatch(/[\w$.]/);
      if (/[\w$]$/.test(e.find)) expect(next, `${m.id}: find ends inside an identifier`).not.toMatch(/[\w$]/);
    }
    // A mutant must still parse: a syntax error would count as a kill that proves nothing.
    const out = ts.transpileModule(r.text, { reportDiagnostics: true, fileName: m.file, compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext } });
    expect((out.diagnostics ?? []).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'))).toEqual([]);
  });

  it('refuses a find string that is missing or occurs more than once', () => {
    const m = { id: 'x', file: 'f.ts', edits: [{ find: 'a', replace: 'b' }], breaks: 'nothing at all', tests: [] };
    expect(applyMutation(m, 'xyz')).toEqual({ error: expect.stringMatching(/occurs 0 times/) });
    expect(applyMutation(m, 'a a')).toEqual({ error: expect.stringMatching(/occurs 2 times/) });
    expect(applyMutation(m, 'xay')).toEqual({ text: 'xby' });
    // A replacement is literal text, not a pattern.
    expect(applyMutation({ ...m, edits: [{ find: 'a', replace: '$&$&' }] }, 'a')).toEqual({ text: '$&$&' });
  });
});
