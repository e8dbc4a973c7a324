import { isSystemKey, LOG_STATE_KEY, SYSTEM_NAMESPACE } from '../machine/memory-store.js';
import type { MemoryRecord } from '../machine/types.js';
import { UserError, invalid } from '../util/errors.js';
import type { Swarm } from '../swarm/swarm.js';

export type Consistency = 'linearizable' | 'local';

function view(r: MemoryRecord): Record<string, unknown> {
  return {
    key: r.key,
    namespace: r.namespace,
    value: r.value,
    version: r.version,
    created_at: new Date(r.created_at).toISOString(),
    updated_at: new Date(r.updated_at).toISOString(),
    expires_at: r.expires_at !== null ? new Date(r.expires_at).toISOString() : null,
  };
}

export async function memoryStore(
  swarm: Swarm,
  o: { key: string; value: unknown; namespace?: string; ttl_s?: number; if_version?: number },
): Promise<Record<string, unknown>> {
  if (o.ttl_s !== undefined && !(Number.isInteger(o.ttl_s) && o.ttl_s >= 1 && o.ttl_s <= 31_536_000)) {
    throw invalid('ttl_s', o.ttl_s, 'an integer 1..31536000 (one year)');
  }
  const value = (await swarm.proposeOk({
    t: 'mem.put',
    key: o.key,
    namespace: o.namespace ?? 'default',
    value: o.value,
    ttl_s: o.ttl_s ?? null,
    if_version: o.if_version ?? null,
  })) as Record<string, unknown>;
  const leader = swarm.cluster.leader();
  return { stored: true, ...value, expires_at: value.expires_at ? new Date(value.expires_at as number).toISOString() : null, commit_index: leader?.core.log.committed ?? null };
}

async function readMachine<T>(swarm: Swarm, consistency: Consistency, fn: (m: NonNullable<ReturnType<Swarm['localMachine']>>['machine'], id: string) => T): Promise<T> {
  if (consistency === 'local') {
    const lm = swarm.localMachine();
    if (!lm) throw new UserError('unavailable', `no running agent in swarm ${swarm.name}`);
    return fn(lm.machine, lm.id);
  }
  // Expiry follows log time, which moves only when an entry is applied: on an idle swarm a key
  // would outlive its TTL indefinitely. When one is due by the wall clock, move log time
  // forward through the log first (a 'clock' entry, applied alike on every replica).
  const lm = swarm.localMachine();
  if (lm && lm.machine.memory.hasDueKeys(Date.now())) await swarm.proposeOk({ t: 'clock' });
  return swarm.proposer.read((leaderId) => fn(swarm.machines.get(leaderId)!, leaderId));
}

/**
 * The log-state system key: computed when read from the serving member's Raft state (after
 * the ReadIndex round for a linearizable read), never stored. Its version is the commit index.
 */
function logStateView(swarm: Swarm, id: string): Record<string, unknown> {
  const st = swarm.cluster.host(id).status();
  const value = { commit_index: st.commit, term: st.term, leader: st.leader, last_index: st.lastIndex, applied_index: st.applied };
  return { key: LOG_STATE_KEY, namespace: SYSTEM_NAMESPACE, value, version: st.commit, system: true, computed_at: new Date().toISOString() };
}

export async function memoryRetrieve(swarm: Swarm, o: { key: string; namespace?: string; consistency?: Consistency }): Promise<Record<string, unknown>> {
  const consistency = o.consistency ?? 'linearizable';
  if (o.key === LOG_STATE_KEY && (o.namespace ?? 'default') === SYSTEM_NAMESPACE) {
    return readMachine(swarm, consistency, (_m, id) => ({ found: true, ...logStateView(swarm, id), consistency, read_from: id }));
  }
  return readMachine(swarm, consistency, (m, id) => {
    const r = m.memory.get(o.namespace ?? 'default', o.key, m.clock);
    if (!r) throw new UserError('not_found', `key=${JSON.stringify(o.key)} not found in namespace ${JSON.stringify(o.namespace ?? 'default')} (never stored, deleted, or expired)`, 'key');
    return { found: true, ...view(r), ...(isSystemKey(r.namespace, r.key) ? { system: true } : {}), consistency, read_from: id };
  });
}

export async function memoryList(swarm: Swarm, o: { prefix?: string; namespace?: string; limit?: number; consistency?: Consistency }): Promise<Record<string, unknown>> {
  const consistency = o.consistency ?? 'linearizable';
  const limit = o.limit ?? 100;
  return readMachine(swarm, consistency, (m, id) => {
    const namespace = o.namespace ?? 'default';
    const prefix = o.prefix ?? '';
    const keys: Array<Record<string, unknown>> = m.memory.list(namespace, prefix, m.clock, limit + 1).map((r) => ({
      key: r.key,
      version: r.version,
      updated_at: new Date(r.updated_at).toISOString(),
      expires_at: r.expires_at !== null ? new Date(r.expires_at).toISOString() : null,
      system: isSystemKey(r.namespace, r.key),
    }));
    if (namespace === SYSTEM_NAMESPACE && LOG_STATE_KEY.startsWith(prefix)) {
      const v = logStateView(swarm, id);
      keys.push({ key: LOG_STATE_KEY, version: v.version, updated_at: v.computed_at, expires_at: null, system: true });
      keys.sort((a, b) => ((a.key as string) < (b.key as string) ? -1 : 1));
    }
    return {
      keys: keys.slice(0, limit),
      truncated: keys.length > limit,
      consistency,
      read_from: id,
    };
  });
}

export async function memoryDelete(swarm: Swarm, o: { key: string; namespace?: string; if_version?: number }): Promise<Record<string, unknown>> {
  const value = (await swarm.proposeOk({ t: 'mem.del', key: o.key, namespace: o.namespace ?? 'default', if_version: o.if_version ?? null })) as Record<string, unknown>;
  return { key: o.key, ...value };
}
