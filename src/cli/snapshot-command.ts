// `concord snapshot save|status|restore`: backups of a swarm's replicated state.
//   save FILE [--swarm S] [--overwrite]   through the leader (daemon, --embedded, --server or
//                                         --cluster); the file is written on this machine
//   status FILE                           the header, after verifying the hash
//   restore FILE --data-dir DIR [--swarm NAME] [--id ID --peers ID=HOST:PORT,...]
//                                         a NEW swarm with fresh member identities

import { UserError } from '../util/errors.js';
import type { Flags } from './context.js';
import { clusterFrom, parsePeers } from './node-command.js';

/** `concord snapshot VERB FILE`: the command table checked the flags and the verb. */
export async function runSnapshotCommand(verb: 'save' | 'status' | 'restore', positionals: string[], flags: Flags, o: { embedded: boolean }): Promise<number> {
  const file = positionals[0];
  if (file === undefined || positionals.length > 1) throw new UserError('invalid_argument', `snapshot ${verb} takes one FILE (got ${positionals.length} arguments)`, 'file');
  const str = (k: string): string | undefined => {
    const v = flags[k];
    if (v === true) throw new UserError('invalid_argument', `--${k.replace(/_/g, '-')} needs a value`, k);
    return typeof v === 'string' ? v : undefined;
  };
  switch (verb) {
    case 'status': {
      const { readSnapshotFile } = await import('../service/snapshot-file.js');
      const s = readSnapshotFile(file);
      // The per-part hashes were checked; the count is what a reader needs.
      print({ file, verified: true, sha256: s.sha256, bytes: s.bytes, ...s.header, ...(s.header.parts ? { parts: s.header.parts.length } : {}) });
      return 0;
    }
    case 'save':
      print(await save(file, str('swarm'), flags.overwrite === true || flags.overwrite === 'true', flags, o.embedded));
      return 0;
    case 'restore': {
      const dataDir = str('data_dir');
      if (!dataDir) throw new UserError('invalid_argument', 'snapshot restore needs --data-dir DIR (the data directory to create the new swarm in)', 'data_dir');
      const id = str('id');
      const peers = str('peers');
      if ((id === undefined) !== (peers === undefined)) throw new UserError('invalid_argument', 'cluster-mode restore needs both --id ID and --peers ID=HOST:PORT,... (as for concord node)', id === undefined ? 'id' : 'peers');
      const { restoreSnapshot } = await import('../service/restore.js');
      const r = restoreSnapshot(file, { dataDir, swarm: str('swarm'), member: id, members: peers ? Object.keys(parsePeers(peers)) : undefined });
      print({
        restored: true,
        ...r,
        next: id
          ? `start this member: concord node --swarm ${r.swarm} --id ${id} --peers ${peers} --data-dir ${dataDir} --secret-file FILE (restore every member from the same file first)`
          : `the swarm starts with the next command on ${dataDir}, e.g. concord swarm status --swarm ${r.swarm} --data-dir ${dataDir}`,
      });
      return 0;
    }
  }
  return 2;
}

async function save(file: string, swarm: string | undefined, overwrite: boolean, flags: Flags, embedded: boolean): Promise<Record<string, unknown>> {
  const sf = await import('../service/snapshot-file.js');
  const sw = await import('../service/snapshot-write.js');
  // Before asking the swarm for anything: a refused FILE costs no snapshot.
  if (!overwrite) sw.refuseExisting(file);
  const cluster = clusterFrom(flags);
  const tc = await import('./tool-client.js');
  const dataDir = typeof flags.data_dir === 'string' ? flags.data_dir : undefined;
  const tools = cluster ? await tc.connectCluster(cluster) : await tc.connectTools(dataDir, typeof flags.server === 'string' ? flags.server : undefined, { embedded });
  try {
    if (tools.coordinator) {
      // In this process: no copy of the state through a tool result.
      const { saveSnapshotFile } = await import('../service/backup.js');
      return { ...(await saveSnapshotFile(tools.coordinator.swarm(swarm), file, { overwrite })), via: tools.where };
    }
    if (tools.where.startsWith('concord daemon')) return { ...(await viaDaemonBackups(tools, file, swarm, overwrite, dataDir)), via: tools.where };
    const r = await tools.call('swarm_snapshot', { ...(swarm ? { swarm } : {}), inline: true });
    if (!r.ok) throw new UserError('unavailable', `snapshot save via ${tools.where}: ${r.text}`);
    const bytes = Buffer.from(String(r.data.content_base64 ?? ''), 'base64');
    // Verified before it is written: what reaches FILE is what the leader hashed.
    const s = sf.decodeSnapshotFile(bytes, `received from ${tools.where}`);
    sw.writeFileAtomic(file, bytes, { overwrite });
    const { content_base64: _omit, ...summary } = r.data;
    return { ...summary, path: (await import('node:path')).resolve(file), sha256: s.sha256, bytes: s.bytes, via: tools.where };
  } finally {
    await tools.close();
  }
}

/**
 * The daemon shares this machine and data directory: it writes the file into its backups
 * directory (no size limit, unlike a tool result on the socket, whose lines are capped at
 * 10 MiB), and we move it to FILE after verifying it.
 */
async function viaDaemonBackups(tools: import('./tool-client.js').ToolClient, file: string, swarm: string | undefined, overwrite: boolean, dataDir: string | undefined): Promise<Record<string, unknown>> {
  const [{ randomBytes }, path, fs, { resolveDataDir }, { backupsDir }, sf, sw] = await Promise.all([
    import('node:crypto'),
    import('node:path'),
    import('node:fs'),
    import('../service/data-dir.js'),
    import('../service/backup.js'),
    import('../service/snapshot-file.js'),
    import('../service/snapshot-write.js'),
  ]);
  const name = `cli-save-${process.pid}-${randomBytes(4).toString('hex')}.snapshot`;
  const r = await tools.call('swarm_snapshot', { ...(swarm ? { swarm } : {}), path: name });
  if (!r.ok) throw new UserError('unavailable', `snapshot save via ${tools.where}: ${r.text}`);
  const written = String(r.data.path);
  const expected = path.join(backupsDir(resolveDataDir(dataDir)), name);
  if (written !== expected) throw new UserError('unavailable', `the daemon wrote ${written}, expected ${expected}; not moving it`);
  try {
    // Read part by part (the file may hold a state larger than one string), every hash checked;
    // the content is checked again by status and restore.
    const s = sf.readSnapshotFile(written, { content: false });
    if (s.sha256 !== r.data.sha256) throw new UserError('unavailable', `${written} hashes to ${s.sha256}, the daemon reported ${String(r.data.sha256)}`);
    sw.copyFileAtomic(written, file, { overwrite });
    return { ...r.data, path: path.resolve(file), sha256: s.sha256, bytes: s.bytes };
  } finally {
    fs.rmSync(written, { force: true });
  }
}

function print(o: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(o, null, 2)}\n`);
}
