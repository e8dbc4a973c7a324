// The source layout keeps imports one way: tools -> service -> swarm engine -> host/machine ->
// raft core. A cycle (even a type-only one) means two files can no longer be read, tested or
// moved apart; an upward import means a lower layer depends on what is built on it.

import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '..');
const SCANNED = ['src', 'tools'];

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...tsFiles(p));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

const STATIC_IMPORT = [/(?:^|[\n;])\s*(?:import|export)\s[^;]*?\sfrom\s*['"]([^'"]+)['"]/g, /(?:^|[\n;])\s*import\s*['"]([^'"]+)['"]/g];
const DYNAMIC_IMPORT = [/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g];

/** Relative imports of one file matching `patterns`, as repo-relative .ts paths. */
function importsOf(file: string, patterns: RegExp[]): string[] {
  const text = fs.readFileSync(file, 'utf8');
  const specs = new Set<string>();
  for (const re of patterns) for (const m of text.matchAll(re)) specs.add(m[1]!);
  const out: string[] = [];
  for (const spec of specs) {
    if (!spec.startsWith('.')) continue;
    const target = path.resolve(path.dirname(file), spec).replace(/\.js$/, '.ts');
    out.push(path.relative(ROOT, target));
  }
  return out;
}

/** File -> files it imports. static: import/export ... from (type-only included); else also import(). */
function importGraph(which: 'static' | 'all'): Map<string, string[]> {
  const patterns = which === 'static' ? STATIC_IMPORT : [...STATIC_IMPORT, ...DYNAMIC_IMPORT];
  const graph = new Map<string, string[]>();
  for (const dir of SCANNED) for (const f of tsFiles(path.join(ROOT, dir))) graph.set(path.relative(ROOT, f), importsOf(f, patterns));
  return graph;
}

/** Every import cycle, each reported once as the path a -> ... -> a. */
function cycles(graph: Map<string, string[]>): string[] {
  const found: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (f: string): void => {
    state.set(f, 'open');
    stack.push(f);
    for (const next of graph.get(f) ?? []) {
      if (!graph.has(next)) continue;
      const s = state.get(next);
      if (s === 'open') found.push([...stack.slice(stack.indexOf(next)), next].join(' -> '));
      else if (s === undefined) visit(next);
    }
    stack.pop();
    state.set(f, 'done');
  };
  for (const f of [...graph.keys()].sort()) if (!state.has(f)) visit(f);
  return found;
}

/** Imports from files under `from` into any folder in `forbidden`, as "file -> target". */
function violations(graph: Map<string, string[]>, from: string, forbidden: string[]): string[] {
  const bad: string[] = [];
  for (const [f, deps] of graph) {
    if (!f.startsWith(from + '/')) continue;
    for (const d of deps) if (forbidden.some((dir) => d.startsWith(dir + '/'))) bad.push(`${f} -> ${d}`);
  }
  return bad;
}

describe('source layout', () => {
  const graph = importGraph('all');

  it('finds the files and their imports (the scanner itself works)', () => {
    expect(graph.size).toBeGreaterThan(50);
    expect(graph.get('src/swarm/swarm.ts')).toContain('src/swarm/proposer.ts');
    expect(graph.get('tools/swarm.ts')?.some((d) => d.startsWith('src/service/'))).toBe(true);
  });

  it('has no circular imports in src or tools, type-only and lazy import() included', () => {
    // The CLI's command table loads each command's handler lazily; handlers read flag specs
    // from flag-specs.ts and invocation.ts, never the table, so even lazy edges form no cycle.
    expect(cycles(graph)).toEqual([]);
  });

  it('keeps the raft core free of everything outside src/raft and src/util', () => {
    const outside = [...new Set([...graph.values()].flat().map((d) => d.split('/').slice(0, 2).join('/')))].filter(
      (dir) => dir !== 'src/raft' && dir !== 'src/util',
    );
    expect(violations(graph, 'src/raft', outside)).toEqual([]);
  });

  it('keeps the swarm engine below the tools facade and the servers that use it', () => {
    expect(violations(graph, 'src/swarm', ['src/service', 'src/server', 'src/cli', 'src/daemon', 'src/cluster', 'tools'])).toEqual([]);
  });

  it('keeps host, machine, storage, transport and util below the swarm engine and the facade', () => {
    const upper = ['src/swarm', 'src/service', 'src/server', 'src/cli', 'src/daemon', 'src/cluster', 'tools'];
    for (const lower of ['src/host', 'src/machine', 'src/storage', 'src/transport', 'src/util']) {
      expect(violations(graph, lower, upper)).toEqual([]);
    }
  });
});
