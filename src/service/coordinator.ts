import fs from 'node:fs';
import path from 'node:path';
import { DataDirLock, resolveDataDir } from './data-dir.js';
import { UserError, invalid } from '../util/errors.js';
import { SwarmRegistry } from '../swarm/registry.js';
import { Swarm, type SwarmOptions } from '../swarm/swarm.js';
import { majority } from '../raft/quorum.js';
import type { Durability } from '../storage/sqlite-storage.js';

export const DEFAULT_SWARM = 'default';
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Cluster mode: this process runs one member of one swarm; the peers run elsewhere. */
export interface MemberMode {
  swarm: string;
  /** Every member id of the swarm (static membership), this one's included. */
  members: string[];
  backend: NonNullable<SwarmOptions['backend']>;
}

export interface CoordinatorOptions {
  dataDir?: string;
  durability?: Durability;
  member?: MemberMode;
  /** Idle timeout of the swarms' client sessions (ms); the machine's default when unset. */
  sessionTimeoutMs?: number;
}

/**
 * Owns the data directory (locked) and every swarm in it. The tools, the CLI and the HTTP
 * server all call through here; nothing below knows about MCP.
 */
export class Coordinator {
  readonly dataDir: string;
  private readonly lock: DataDirLock;
  private readonly swarms = new Map<string, Swarm>();
  private readonly swarmOpts: SwarmOptions;
  private closed = false;
  private readonly member: MemberMode | undefined;

  constructor(opts: CoordinatorOptions = {}) {
    this.dataDir = resolveDataDir(opts.dataDir);
    this.lock = DataDirLock.acquire(this.dataDir);
    this.swarmOpts = { durability: opts.durability ?? 'full', sessionTimeoutMs: opts.sessionTimeoutMs };
    this.member = opts.member;
    try {
      if (this.member) this.openMember(this.member);
      else for (const name of this.listSwarmDirs()) {
        const s = new Swarm(SwarmRegistry.load(this.swarmDir(name)), this.swarmOpts);
        this.swarms.set(name, s);
        s.open();
      }
    } catch (e) {
      this.close();
      throw e;
    }
  }

  private openMember(m: MemberMode): void {
    if (!NAME_RE.test(m.swarm)) throw invalid('swarm', m.swarm, 'letters, digits, ".", "_" or "-", 1-64 characters, starting with a letter or digit');
    const dir = this.swarmDir(m.swarm);
    const reg = fs.existsSync(SwarmRegistry.file(dir))
      ? SwarmRegistry.load(dir)
      : new SwarmRegistry(dir, { name: m.swarm, topology: 'mesh', consensus: 'raft', max_agents: m.members.length, created_at: new Date().toISOString(), members: {} });
    // The command line is the membership: every listed member is an active voter. Known
    // incarnations stay: they say a member existed here and which file is its own.
    const before = reg.data.members;
    reg.data.members = Object.fromEntries(
      m.members.map((id) => {
        const incarnation = before[id]?.incarnation;
        return [id, { bootstrap: false, state: 'active' as const, ...(incarnation ? { incarnation } : {}) }];
      }),
    );
    reg.data.max_agents = m.members.length;
    reg.save();
    const s = new Swarm(reg, { ...this.swarmOpts, backend: m.backend });
    this.swarms.set(m.swarm, s);
    s.open();
  }

  get clusterMode(): boolean {
    return this.member !== undefined;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.swarms.values()) s.close();
    this.lock.release();
  }

  private swarmDir(name: string): string {
    return path.join(this.dataDir, 'swarms', name);
  }

  private listSwarmDirs(): string[] {
    const root = path.join(this.dataDir, 'swarms');
    if (!fs.existsSync(root)) return [];
    return fs
      .readdirSync(root)
      .filter((n) => fs.existsSync(SwarmRegistry.file(path.join(root, n))))
      .sort();
  }

  advertise(extra: Record<string, string>): void {
    this.lock.advertise(extra);
  }

  names(): string[] {
    return [...this.swarms.keys()].sort();
  }

  /** The named swarm; with no name, `default` (created on first use with the spec's defaults). */
  swarm(name?: string): Swarm {
    const n = name ?? this.member?.swarm ?? DEFAULT_SWARM;
    const s = this.swarms.get(n);
    if (s) return s;
    if (name === undefined && !this.member) return this.init({ name: DEFAULT_SWARM }).swarm;
    throw new UserError(
      'not_found',
      `swarm=${JSON.stringify(n)} does not exist; existing swarms: ${this.names().join(', ') || '(none)'}; create it with swarm_init`,
      'swarm',
    );
  }

  init(o: { name?: string; topology?: string; consensus?: string; max_agents?: number; bootstrap_expect?: number }): { swarm: Swarm; created: boolean } {
    const name = o.name ?? this.member?.swarm ?? DEFAULT_SWARM;
    if (this.member && name !== this.member.swarm) {
      throw new UserError('unsupported', `name=${JSON.stringify(name)}: this cluster serves swarm ${JSON.stringify(this.member.swarm)} only (its members were started with --swarm ${this.member.swarm})`, 'name');
    }
    if (!NAME_RE.test(name)) throw invalid('name', name, 'letters, digits, ".", "_" or "-", 1-64 characters, starting with a letter or digit');
    const topology = o.topology ?? 'mesh';
    if (topology !== 'mesh') {
      throw invalid('topology', topology, '"mesh" (Raft members talk all-to-all; hierarchical, ring and star layouts do not apply to Raft)');
    }
    const consensus = o.consensus ?? 'raft';
    if (consensus !== 'raft') throw invalid('consensus', consensus, '"raft" (the only protocol Concord implements)');
    const maxAgents = o.max_agents ?? 5;
    if (!Number.isInteger(maxAgents) || maxAgents < 1 || maxAgents > 15) throw invalid('max_agents', maxAgents, 'an integer 1..15');
    const existing = this.swarms.get(name);
    if (existing && this.member) {
      if (o.max_agents !== undefined && o.max_agents !== existing.data.max_agents) {
        throw invalid('max_agents', o.max_agents, `${existing.data.max_agents}: in cluster mode the members are the processes listed in --peers`);
      }
      if (o.bootstrap_expect !== undefined) {
        throw invalid('bootstrap_expect', o.bootstrap_expect, 'nothing in cluster mode: the group is formed by the processes listed in --peers');
      }
      return { swarm: existing, created: false };
    }
    if (existing) {
      const expect = this.bootstrapExpectFor(existing, o.bootstrap_expect, maxAgents);
      if (existing.data.max_agents !== maxAgents || (expect !== undefined && expect !== existing.data.bootstrap_expect)) {
        existing.data.max_agents = maxAgents;
        if (expect !== undefined) existing.data.bootstrap_expect = expect;
        existing.registry.save();
      }
      return { swarm: existing, created: false };
    }
    const expect = o.bootstrap_expect ?? majority(maxAgents);
    checkBootstrapExpect(expect, maxAgents);
    const reg = new SwarmRegistry(this.swarmDir(name), {
      name,
      topology: 'mesh',
      consensus: 'raft',
      max_agents: maxAgents,
      created_at: new Date().toISOString(),
      members: {},
      bootstrap_expect: expect,
    });
    reg.save();
    const s = new Swarm(reg, this.swarmOpts);
    this.swarms.set(name, s);
    s.open();
    return { swarm: s, created: true };
  }

  /**
   * bootstrap_expect for a swarm_init of an existing swarm (undefined: leave it). It can change
   * only before the group formed; an unchanged max_agents keeps it, a new one moves the
   * default with it.
   */
  private bootstrapExpectFor(s: Swarm, given: number | undefined, maxAgents: number): number | undefined {
    if (s.bootstrapped) {
      if (given !== undefined && given !== s.bootstrapExpect) {
        const voters = s.data.bootstrap_voters?.length ?? 1;
        throw invalid('bootstrap_expect', given, `${s.bootstrapExpect} (unchanged): swarm ${s.name} already formed with ${voters} initial voter(s); add agents with agent_spawn instead`);
      }
      return undefined;
    }
    const expect = given ?? (maxAgents !== s.data.max_agents ? majority(maxAgents) : s.bootstrapExpect);
    checkBootstrapExpect(expect, maxAgents);
    // The group forms at the spawn that brings the waiting agents to bootstrap_expect: it
    // must stay above those already waiting, or no spawn would ever form it.
    const waiting = s.waitingMembers().length;
    if (waiting > 0 && expect <= waiting) {
      const why = `${waiting} agents already wait for bootstrap (agent_terminate some first)`;
      if (waiting >= maxAgents) throw invalid('max_agents', maxAgents, `an integer ${waiting + 1}..15: ${why}`);
      throw invalid('bootstrap_expect', expect, `an integer ${waiting + 1}..${maxAgents}: ${why}`);
    }
    return expect;
  }

  destroy(name: string): { destroyed: string; files_removed: number } {
    if (this.member) {
      throw new UserError('unsupported', 'swarm_destroy is not available in cluster mode: stop the member processes and delete their data directories');
    }
    const s = this.swarm(name);
    s.close();
    this.swarms.delete(name);
    const dir = this.swarmDir(name);
    const files = fs.existsSync(dir) ? fs.readdirSync(dir).length : 0;
    fs.rmSync(dir, { recursive: true, force: true });
    return { destroyed: name, files_removed: files };
  }
}

/** 1..max_agents: the group cannot wait for more agents than the swarm may have. */
function checkBootstrapExpect(expect: number, maxAgents: number): void {
  if (!Number.isInteger(expect) || expect < 1 || expect > maxAgents) {
    throw invalid('bootstrap_expect', expect, `an integer 1..${maxAgents} (max_agents); default ${majority(maxAgents)}, the quorum size`);
  }
}
