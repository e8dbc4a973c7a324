import fs from 'node:fs';
import path from 'node:path';
import type { SwarmConfig } from '../machine/types.js';
import { fsyncDirectory, mkdirDurable, nodeSyncFs, type SyncFs } from '../storage/sync-fs.js';
import { UserError } from '../util/errors.js';

export interface MemberEntry {
  /**
   * One of the group's initial voters (RegistryData.bootstrap_voters; in registries written
   * before bootstrap_expect, the one first member that bootstrapped alone). Later members
   * join with no membership and learn it from the leader.
   */
  bootstrap: boolean;
  /**
   * waiting: spawned before bootstrap_expect agents existed; not started until the group forms.
   * crashed: stopped abruptly, restartable. removed: left the group for good.
   */
  state: 'waiting' | 'active' | 'crashed' | 'removed';
  /** A waiting agent's labels, registered through the log once the group has a leader. */
  pending_agent?: { type: string; capabilities: string[] };
  /**
   * Random id of this member's life, also written into its database at creation. A member
   * removed and spawned again under the same name gets a new one (and a new file): a name is
   * never reused for different state. Absent in registries written before identities.
   */
  incarnation?: string;
}

export interface RegistryData {
  name: string;
  topology: 'mesh';
  consensus: 'raft';
  max_agents: number;
  created_at: string;
  members: Record<string, MemberEntry>;
  /** Configuration given before any agent existed: committed once the first agent leads. */
  pending_config?: Partial<SwarmConfig>;
  /**
   * Agents the group forms with (Consul's bootstrap_expect): agents spawned before this many
   * exist wait. Absent in registries written before it: those swarms bootstrapped already.
   */
  bootstrap_expect?: number;
  /**
   * When the group formed. Saved durably before any initial voter starts and never unset:
   * a second bootstrap would start a second group next to the first.
   */
  bootstrapped_at?: string;
  /** The initial voters: every one of them starts from this same configuration. */
  bootstrap_voters?: string[];
}

/**
 * swarm.json: what the process needs before any Raft member can start. Written atomically and
 * durably: temp file fsynced, renamed over, then the directory fsynced (the rename is an entry
 * in the directory: without that fsync a power loss can bring back the previous file).
 */
export class SwarmRegistry {
  constructor(
    readonly dir: string,
    public data: RegistryData,
    /** Carries the fsyncs (default node:fs); injectable so tests can observe them. */
    private readonly syncFs: SyncFs = nodeSyncFs,
  ) {}

  /** Called after each save: membership changes (spawn, crash, restart, remove) are saved. */
  onSaved: (() => void) | null = null;

  static file(dir: string): string {
    return path.join(dir, 'swarm.json');
  }

  static load(dir: string, syncFs: SyncFs = nodeSyncFs): SwarmRegistry {
    const file = SwarmRegistry.file(dir);
    let data: RegistryData;
    try {
      data = JSON.parse(fs.readFileSync(file, 'utf8')) as RegistryData;
    } catch (e) {
      // Written atomically, so damage is from outside: name the file, never guess its content.
      throw new UserError('unavailable', `swarm registry ${file} cannot be read (${(e as Error).message}); restore it from a copy or move the swarm directory away`);
    }
    return new SwarmRegistry(dir, data, syncFs);
  }

  save(): void {
    const sfs = this.syncFs;
    mkdirDurable(this.dir, sfs);
    const tmp = `${SwarmRegistry.file(this.dir)}.tmp`;
    const fd = sfs.openSync(tmp, 'w');
    try {
      fs.writeFileSync(fd, JSON.stringify(this.data, null, 2)); // loops until all is written
      sfs.fsyncSync(fd);
    } finally {
      sfs.closeSync(fd);
    }
    fs.renameSync(tmp, SwarmRegistry.file(this.dir));
    fsyncDirectory(this.dir, sfs);
    this.onSaved?.();
  }

  memberFile(id: string): string {
    return path.join(this.dir, `${id}.db`);
  }
}
