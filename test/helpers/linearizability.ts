// Linearizability checker for key-value register histories, in the style of Porcupine:
// Wing & Gong's search with Lowe's memoisation (a cache of (linearized set, state) pairs
// already explored), run separately per key since a KV store is linearizable iff each key
// is (P-compositionality).
//
// A history is a set of operations with invoke and response times. An operation whose
// outcome is unknown (crashed or timed out) has no response: it may have taken effect at
// any point after its invocation, or never.

export type KvInput =
  /** put; a compare-and-set when ifVersion is a number (0 = "key must not exist"). */
  | { op: 'put'; key: string; value: unknown; ifVersion?: number | null }
  | { op: 'get'; key: string }
  | { op: 'delete'; key: string; ifVersion?: number | null };

export type KvOutput =
  /** put: stored as this version. */
  | { ok: true; version: number }
  /** delete: whether a live key was removed. */
  | { ok: true; deleted: boolean }
  /** put or delete refused by its version condition (no effect). */
  | { ok: false }
  /** get */
  | { found: false }
  | { found: true; value: unknown; version: number };

export interface KvOperation {
  client: string | number;
  input: KvInput;
  /** Invocation time. */
  call: number;
  /** Response time; ignored when output is null. */
  ret: number;
  /** Observed outcome; null when unknown (the operation may or may not have taken effect). */
  output: KvOutput | null;
}

/** State of one key: absent, or a value with its version (versions restart after a delete). */
export type KvState = { value: unknown; version: number } | null;

/**
 * The sequential specification (it mirrors MemoryStore: put bumps the version, CAS compares
 * it, delete of an absent key reports deleted=false). Returns the next state, or undefined if
 * `output` is not what this operation returns in `state`. A null output accepts the outcome.
 */
export function kvStep(state: KvState, input: KvInput, output: KvOutput | null): KvState | undefined {
  const version = state?.version ?? 0;
  switch (input.op) {
    case 'get': {
      if (output === null) return state;
      if (!('found' in output)) return undefined;
      if (!state) return output.found ? undefined : state;
      return output.found && output.version === state.version && sameValue(output.value, state.value) ? state : undefined;
    }
    case 'put': {
      const refused = input.ifVersion !== undefined && input.ifVersion !== null && input.ifVersion !== version;
      if (refused) return output === null || (!('found' in output) && output.ok === false) ? state : undefined;
      const next = { value: input.value, version: version + 1 };
      if (output === null) return next;
      return 'version' in output && !('found' in output) && output.ok === true && output.version === next.version ? next : undefined;
    }
    case 'delete': {
      if (!state) return output === null || ('deleted' in output && output.deleted === false) ? state : undefined;
      const refused = input.ifVersion !== undefined && input.ifVersion !== null && input.ifVersion !== state.version;
      if (refused) return output === null || (!('found' in output) && output.ok === false) ? state : undefined;
      return output === null || ('deleted' in output && output.deleted === true) ? null : undefined;
    }
  }
}

function sameValue(a: unknown, b: unknown): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}

export interface CheckResult {
  linearizable: boolean;
  /** Per key: a linearization (indices into the key's operations) or where the search got stuck. */
  keys: Record<string, KeyResult>;
  /** The first key found not linearizable, if any. */
  failingKey?: string;
  /** Human-readable account of the failure. */
  explanation?: string;
}

export interface KeyResult {
  linearizable: boolean;
  operations: KvOperation[];
  /** Success: the order operations took effect (unknown ones never taken are left out). */
  order?: number[];
  /** Failure: the longest partial linearization found, and the operations left at that point. */
  longestPrefix?: number[];
  stuckOn?: number[];
  explored: number;
}

export interface CheckOptions {
  /** Give up (throw) after this many search steps per key; protects a test from hanging. */
  maxSteps?: number;
}

/** Check a whole history: partitioned by key, each key checked on its own. */
export function checkKvHistory(history: readonly KvOperation[], opts: CheckOptions = {}): CheckResult {
  const byKey = new Map<string, KvOperation[]>();
  for (const op of history) {
    if (op.output !== null && !(op.ret >= op.call)) throw new Error(`operation of client ${op.client} returns (${op.ret}) before it is invoked (${op.call})`);
    const list = byKey.get(op.input.key) ?? [];
    list.push(op);
    byKey.set(op.input.key, list);
  }
  const out: CheckResult = { linearizable: true, keys: {} };
  for (const key of [...byKey.keys()].sort()) {
    const r = checkKey(byKey.get(key)!, opts.maxSteps ?? 5_000_000);
    out.keys[key] = r;
    if (!r.linearizable && out.linearizable) {
      out.linearizable = false;
      out.failingKey = key;
      out.explanation = explain(key, r);
    }
  }
  return out;
}

interface Node {
  kind: 'call' | 'ret';
  op: number;
  time: number;
  /** For a call: its return node (null for an unknown outcome). */
  match: Node | null;
  prev: Node | null;
  next: Node | null;
}

function checkKey(ops: KvOperation[], maxSteps: number): KeyResult {
  // Events in time order; at equal times calls come first (the ops are taken to overlap,
  // the permissive reading of a tie).
  const events: Node[] = [];
  ops.forEach((o, i) => {
    const call: Node = { kind: 'call', op: i, time: o.call, match: null, prev: null, next: null };
    events.push(call);
    if (o.output !== null) {
      const ret: Node = { kind: 'ret', op: i, time: o.ret, match: null, prev: null, next: null };
      call.match = ret;
      events.push(ret);
    }
  });
  events.sort((a, b) => a.time - b.time || (a.kind === b.kind ? a.op - b.op : a.kind === 'call' ? -1 : 1));
  const head: Node = { kind: 'call', op: -1, time: -Infinity, match: null, prev: null, next: null };
  let prev = head;
  for (const e of events) {
    prev.next = e;
    e.prev = prev;
    prev = e;
  }

  const lift = (call: Node): void => {
    call.prev!.next = call.next;
    if (call.next) call.next.prev = call.prev;
    const ret = call.match;
    if (ret) {
      ret.prev!.next = ret.next;
      if (ret.next) ret.next.prev = ret.prev;
    }
  };
  const unlift = (call: Node): void => {
    const ret = call.match;
    if (ret) {
      ret.prev!.next = ret;
      if (ret.next) ret.next.prev = ret;
    }
    call.prev!.next = call;
    if (call.next) call.next.prev = call;
  };

  const words = new Uint32Array(Math.ceil(ops.length / 32) || 1);
  const flip = (i: number) => (words[i >>> 5]! ^= 1 << (i & 31));
  const cache = new Map<string, Set<string>>();
  const stack: Array<{ call: Node; state: KvState }> = [];
  let state: KvState = null;
  let entry: Node | null = head.next;
  let explored = 0;
  let longest: number[] = [];
  let stuckOn: number[] = [];

  while (head.next !== null) {
    if (++explored > maxSteps) throw new Error(`linearizability check of key ${String(ops[0]?.input.key)} gave up after ${maxSteps} steps`);
    if (entry === null) break; // only calls of unknown-outcome operations remain: never took effect
    if (entry.kind === 'call') {
      const o = ops[entry.op]!;
      const next = kvStep(state, o.input, o.output);
      if (next !== undefined) {
        flip(entry.op);
        const lin = words.join(',');
        const sk = JSON.stringify(next);
        let seen = cache.get(lin);
        if (!seen) cache.set(lin, (seen = new Set()));
        if (!seen.has(sk)) {
          seen.add(sk);
          stack.push({ call: entry, state });
          state = next;
          lift(entry);
          if (stack.length >= longest.length) longest = stack.map((s) => s.call.op);
          entry = head.next;
          continue;
        }
        flip(entry.op);
      }
      entry = entry.next;
    } else {
      // An operation returned before we could place it: undo the last choice.
      if (stack.length === longest.length) {
        // At the deepest point reached: the pending calls up to this return all failed.
        stuckOn = [];
        for (let n: Node | null = head.next; n && n !== entry; n = n.next) if (n.kind === 'call') stuckOn.push(n.op);
        if (!stuckOn.includes(entry.op)) stuckOn.push(entry.op);
      }
      const top = stack.pop();
      if (!top) return { linearizable: false, operations: ops, longestPrefix: longest, stuckOn, explored };
      state = top.state;
      flip(top.call.op);
      unlift(top.call);
      entry = top.call.next;
    }
  }
  return { linearizable: true, operations: ops, order: stack.map((s) => s.call.op), explored };
}

function describe(o: KvOperation): string {
  const i = o.input;
  const what =
    i.op === 'get'
      ? `get(${i.key})`
      : i.op === 'put'
        ? `put(${i.key}, ${JSON.stringify(i.value)}${i.ifVersion != null ? `, if_version=${i.ifVersion}` : ''})`
        : `delete(${i.key}${i.ifVersion != null ? `, if_version=${i.ifVersion}` : ''})`;
  const res = o.output === null ? 'outcome unknown' : JSON.stringify(o.output);
  const span = o.output === null ? `[${o.call}, ?)` : `[${o.call}, ${o.ret}]`;
  return `client ${o.client} ${what} -> ${res} ${span}`;
}

function explain(key: string, r: KeyResult): string {
  const lines = [`key ${JSON.stringify(key)} is not linearizable (${r.operations.length} operations, ${r.explored} search steps).`];
  lines.push('Longest valid prefix found:');
  for (const i of r.longestPrefix ?? []) lines.push(`  ${describe(r.operations[i]!)}`);
  lines.push('None of these could come next:');
  for (const i of r.stuckOn ?? []) lines.push(`  ${describe(r.operations[i]!)}`);
  return lines.join('\n');
}

// ---- recording -----------------------------------------------------------------------------

/** Records a concurrent history against a real system with a monotonic clock. */
export class HistoryRecorder {
  readonly ops: KvOperation[] = [];
  private readonly t0 = performance.now();

  now(): number {
    return performance.now() - this.t0;
  }

  /**
   * Run `fn` as one operation. `classify` turns its result or error into an output, or null
   * for an unknown outcome; returning 'skip' drops the operation (e.g. a failed read, which
   * cannot have changed anything).
   */
  async record<T>(
    client: string | number,
    input: KvInput,
    fn: () => Promise<T>,
    classify: (r: { value: T } | { error: unknown }) => KvOutput | null | 'skip',
  ): Promise<KvOperation | null> {
    const call = this.now();
    let outcome: { value: T } | { error: unknown };
    try {
      outcome = { value: await fn() };
    } catch (error) {
      outcome = { error };
    }
    const ret = this.now();
    const output = classify(outcome);
    if (output === 'skip') return null;
    const op: KvOperation = { client, input, call, ret, output };
    this.ops.push(op);
    return op;
  }
}
