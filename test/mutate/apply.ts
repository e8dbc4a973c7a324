// Applying a mutation to a file's text, and finding where the repository's files live.
// Shared by the runner (cli.ts) and the list's own test.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Mutation } from './mutations.js';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

function occurrences(text: string, find: string): number {
  if (find === '') return 0;
  let n = 0;
  for (let i = text.indexOf(find); i >= 0; i = text.indexOf(find, i + 1)) n++;
  return n;
}

/** The mutated text, or an error naming the edit whose find string is missing or ambiguous. */
export function applyMutation(m: Mutation, text: string): { text: string } | { error: string } {
  let out = text;
  for (const [i, e] of m.edits.entries()) {
    const n = occurrences(out, e.find);
    if (n !== 1) return { error: `${m.id}: edit ${i} find string occurs ${n} times in ${m.file} (must be exactly 1): ${JSON.stringify(e.find.slice(0, 80))}` };
    if (e.find === e.replace) return { error: `${m.id}: edit ${i} replaces its find string with itself` };
    // A function replacer: `$&` and friends in the replacement are not patterns.
    out = out.replace(e.find, () => e.replace);
  }
  return { text: out };
}

export function readRepoFile(rel: string, root = REPO_ROOT): string {
  return fs.readFileSync(path.join(root, rel), 'utf8');
}
