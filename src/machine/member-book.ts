// Cluster mode's replicated address book: who the members are, where they listen, which
// incarnation (data directory) each id is bound to, and which ids were removed. It is built
// from the log alone (conf entries carry the new member's address in their context), so every
// member learns a new member's address by applying the entry that added it, and a member
// restored from a snapshot gets the whole book with it. Removed ids stay as tombstones: an id
// is never reused for different state.

import type { ConfChange, Entry } from '../raft/types.js';

export interface BookEntry {
  /** HOST:PORT its peers dial. */
  address: string;
  state: 'active' | 'removed';
  /** The data directory's incarnation bound to this id at its first contact (null: not yet). */
  incarnation: string | null;
}

/** What a conf entry's context carries (JSON). */
export interface ConfContext {
  address?: string;
}

export type BookResult = { ok: true; value?: unknown } | { ok: false; code: string; message: string };

export class MemberBook {
  /** Set once by the first leader's member.seed entry; a joiner compares it to its own. */
  clusterId: string | null = null;
  readonly members = new Map<string, BookEntry>();
  /** Bumped on every change, so a host can tell cheaply whether to re-read the book. */
  version = 0;

  /** A committed conf entry: track its member (the core changes the voters separately). */
  applyConf(entry: Entry): void {
    let cc: ConfChange;
    try {
      cc = JSON.parse(entry.data) as ConfChange;
    } catch {
      return;
    }
    let ctx: ConfContext = {};
    try {
      ctx = cc.context ? (JSON.parse(cc.context) as ConfContext) : {};
    } catch {
      // A context from before the book (free text): nothing to record.
    }
    const cur = this.members.get(cc.node);
    if (cc.type === 'removeNode') {
      this.members.set(cc.node, { address: cur?.address ?? ctx.address ?? '', state: 'removed', incarnation: cur?.incarnation ?? null });
    } else if (cc.type === 'addLearner' || cc.type === 'addVoter') {
      const address = ctx.address ?? cur?.address ?? '';
      this.members.set(cc.node, { address, state: cur?.state ?? 'active', incarnation: cur?.incarnation ?? null });
    }
    this.version++;
  }

  /** The first leader records the cluster's id and its bootstrap members' addresses. */
  seed(clusterId: string, members: Record<string, string>): BookResult {
    if (this.clusterId !== null) return { ok: true, value: { cluster_id: this.clusterId, already: true } };
    this.clusterId = clusterId;
    for (const [id, address] of Object.entries(members)) {
      if (!this.members.has(id)) this.members.set(id, { address, state: 'active', incarnation: null });
    }
    this.version++;
    return { ok: true, value: { cluster_id: clusterId } };
  }

  /** Bind an id to the incarnation of the data directory it runs on, once. */
  bind(id: string, incarnation: string): BookResult {
    const cur = this.members.get(id);
    if (!cur) return { ok: false, code: 'not_found', message: `member ${id} is not in the cluster configuration; add it first (concord member add --id ${id} --address HOST:PORT)` };
    if (cur.state === 'removed') return { ok: false, code: 'conflict', message: `member id ${id} was removed from this cluster; ids are never reused: add the member under a new id` };
    if (cur.incarnation !== null && cur.incarnation !== incarnation) {
      return { ok: false, code: 'conflict', message: `member id ${id} is bound to incarnation ${cur.incarnation}, not ${incarnation}: this data directory is not that member's` };
    }
    if (cur.incarnation === null) {
      cur.incarnation = incarnation;
      this.version++;
    }
    return { ok: true, value: { id, incarnation } };
  }

  toJSON(): unknown {
    return { cluster_id: this.clusterId, members: [...this.members.entries()] };
  }

  static fromJSON(raw: unknown): MemberBook {
    const b = new MemberBook();
    const o = raw as { cluster_id?: string | null; members?: Array<[string, BookEntry]> } | undefined;
    if (o && typeof o === 'object') {
      b.clusterId = typeof o.cluster_id === 'string' ? o.cluster_id : null;
      for (const [id, e] of o.members ?? []) b.members.set(id, { address: e.address, state: e.state, incarnation: e.incarnation ?? null });
    }
    return b;
  }

  view(): { cluster_id: string | null; members: Record<string, BookEntry> } {
    return { cluster_id: this.clusterId, members: Object.fromEntries([...this.members.entries()].map(([id, e]) => [id, { ...e }])) };
  }
}
