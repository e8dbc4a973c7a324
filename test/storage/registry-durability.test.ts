// swarm.json is replaced atomically and durably: temp file fsynced before the rename, the
// directory fsynced after it (else a power loss can bring the previous registry back).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { SwarmRegistry, type RegistryData } from '../../src/swarm/registry.js';
import { ino, syncRecorder } from './sync-recorder.js';

const tempDirs: string[] = [];
afterEach(() => {
  for (const d of tempDirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

const data = (max_agents: number): RegistryData => ({
  name: 's', topology: 'mesh', consensus: 'raft', max_agents, created_at: '2026-01-01T00:00:00.000Z', members: {},
});

it('fsyncs the temp file before the rename and the directory after it', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-registry-'));
  tempDirs.push(root);
  const dir = path.join(root, 'swarm'); // created by the first save
  const file = SwarmRegistry.file(dir);
  const rec = syncRecorder();
  // What was on disk (by name) at each sync: the order of sync and rename is what matters.
  const seen: Array<{ ino: number; tmpExists: boolean; fileText: string | null }> = [];
  rec.onSync = (c) => seen.push({ ino: c.ino, tmpExists: fs.existsSync(`${file}.tmp`), fileText: fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : null });

  const reg = new SwarmRegistry(dir, data(3), rec.fs);
  reg.save();
  const dirIno = ino(dir);
  // The new directory's own entry, in its parent, is made durable too.
  expect(seen.filter((s) => s.ino === ino(root))).toHaveLength(1);
  const afterRename = seen.filter((s) => s.ino === dirIno && !s.tmpExists && s.fileText !== null && JSON.parse(s.fileText).max_agents === 3);
  expect(afterRename).toHaveLength(1);

  seen.length = 0;
  reg.data = data(7);
  reg.save();
  // The temp file (a different inode, by then renamed away) was fsynced while it still was the temp file.
  const fileIno = ino(file);
  expect(seen.filter((s) => s.ino === fileIno && s.tmpExists && JSON.parse(s.fileText ?? '{}').max_agents === 3)).toHaveLength(1);
  // Then the directory, once swarm.json already was the new file.
  const last = seen.at(-1)!;
  expect(last).toEqual({ ino: dirIno, tmpExists: false, fileText: fs.readFileSync(file, 'utf8') });
  expect(JSON.parse(last.fileText!).max_agents).toBe(7);
  expect(SwarmRegistry.load(dir).data.max_agents).toBe(7);
});
