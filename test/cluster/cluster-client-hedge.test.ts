// ClusterClient against scripted members (TcpTransport client handlers, no Raft): a call to
// the leader that hears nothing from it for the cluster's minimum election timeout is also
// sent to another member, naming the leader unreachable. Checks where the copy goes, that the
// client takes the new leader's answer when the old one stays silent (a frozen process), the
// old leader's when a follower still follows it (alive, only slow), and that a leader busy
// answering the client's other calls is not suspected.

import { afterEach, describe, expect, it } from 'vitest';
import { ClusterClient } from '../../src/cluster/cluster-client.js';
import { TcpTransport } from '../../src/transport/tcp-transport.js';
import { captureLog, SECRET, sleep } from '../transport/helpers.js';

type Req = { kind: string; name?: string; arguments?: Record<string, unknown>; hold_ms?: number; unreachable?: string[] };
type Script = (req: Req) => Promise<unknown>;

interface Fake {
  id: string;
  addr: string;
  /** Requests this member received, in order. */
  seen: Req[];
  script: Script;
}

const open: Array<{ close(): void }> = [];
afterEach(() => {
  for (const o of open.splice(0)) o.close();
});

const ELECTION_MIN_MS = 150;

/** The status fields the client reads (the rest of MemberStatus is irrelevant here). */
const status = (id: string) => ({ id, role: 'x', raft_timing: { election_timeout_min_ms: ELECTION_MIN_MS, election_timeout_max_ms: 300, heartbeat_interval_ms: 50 } });
const answer = (from: string) => ({ result: { content: [{ type: 'text', text: `from ${from}` }] } });
const notLeader = (self: string, leader: Fake) => Object.assign(new Error(`${self} is not the leader (held); the leader is ${leader.id} at ${leader.addr}`), { code: 'not_leader' });
const never = (): Promise<never> => new Promise(() => undefined);

async function fakes(ids: string[]): Promise<Fake[]> {
  const out: Fake[] = [];
  for (const id of ids) {
    const t = new TcpTransport({ id, secret: SECRET, port: 0, log: captureLog() });
    open.push(t);
    const a = await t.listen();
    const f: Fake = { id, addr: `127.0.0.1:${a.port}`, seen: [], script: async () => answer(id) };
    t.onClientRequest(async (raw) => {
      const req = raw as Req;
      if (req.kind === 'status') return status(id);
      f.seen.push(req);
      return f.script(req);
    });
    out.push(f);
  }
  return out;
}

/** A client that knows `a` as leader and has learned the election timeout from it. */
async function clientOn(all: Fake[], timeoutMs = 3_000): Promise<ClusterClient> {
  const c = new ClusterClient({ members: all.map((f) => f.addr), secret: SECRET, name: 'hedge-test', timeoutMs });
  open.push(c);
  const r = await c.callTool('warm');
  expect(r.content).toEqual([{ type: 'text', text: 'from a' }]);
  for (let i = 0; i < 200 && c.electionTimeoutMinMs === null; i++) await sleep(5);
  expect(c.electionTimeoutMinMs).toBe(ELECTION_MIN_MS);
  for (const f of all) f.seen.length = 0;
  return c;
}

const text = (r: { content?: unknown[] }) => (r.content?.[0] as { text: string }).text;

describe('ClusterClient: a silent leader', () => {
  it('a frozen leader: the call goes to another member naming it unreachable, which redirects it to the new leader', async () => {
    const [a, b, cc] = await fakes(['a', 'b', 'c']);
    const c = await clientOn([a!, b!, cc!]);
    a!.script = never; // stopped: connections open, nothing answered
    b!.script = async (req) => {
      // A member holds a request whose client cannot reach its leader until the next one is elected.
      await sleep(30);
      if (req.unreachable?.includes(a!.addr)) throw notLeader('b', cc!);
      throw notLeader('b', a!);
    };
    const t0 = performance.now();
    // 3 s: before, the attempt on the silent leader waited for its answer up to 5 s.
    const r = await c.callTool('memory_store', { key: 'k', value: 1 }, { timeoutMs: 3_000 });
    const ms = performance.now() - t0;
    expect(text(r)).toBe('from c');
    expect(c.leaderAddress).toBe(cc!.addr);
    expect(c.hedges).toBe(1);
    // Sent to the leader first, then the same call elsewhere, naming the leader unreachable.
    expect(a!.seen.map((q) => q.name)).toEqual(['memory_store']);
    expect(b!.seen).toHaveLength(1);
    expect(b!.seen[0]!.unreachable).toEqual([a!.addr]);
    expect(cc!.seen).toHaveLength(1);
    for (const q of [b!.seen[0]!, cc!.seen[0]!]) {
      expect({ name: q.name, arguments: q.arguments }).toEqual({ name: a!.seen[0]!.name, arguments: a!.seen[0]!.arguments });
    }
    // Not before the leader was silent for the election timeout.
    expect(ms).toBeGreaterThanOrEqual(ELECTION_MIN_MS - 5);
    // The next call goes straight to the new leader.
    const next = await c.callTool('memory_retrieve', { key: 'k' }, { timeoutMs: 3_000 });
    expect(text(next)).toBe('from c');
    expect(a!.seen).toHaveLength(1);
  });

  it('a slow leader its followers still follow: the copy ends there and the leader answers', async () => {
    const [a, b, cc] = await fakes(['a', 'b', 'c']);
    const c = await clientOn([a!, b!, cc!]);
    a!.script = async () => {
      await sleep(600);
      return answer('a');
    };
    b!.script = async () => {
      await sleep(30); // held, and no new leader came
      throw notLeader('b', a!);
    };
    const r = await c.callTool('memory_store', { key: 'k', value: 1 }, { timeoutMs: 3_000 });
    expect(text(r)).toBe('from a');
    expect(c.leaderAddress).toBe(a!.addr);
    expect(c.hedges).toBe(1);
    expect(b!.seen).toHaveLength(1);
    expect(cc!.seen).toHaveLength(0);
  });

  it('a leader answering the client\'s other calls is not suspected while one call is slow', async () => {
    const [a, b, cc] = await fakes(['a', 'b', 'c']);
    const c = await clientOn([a!, b!, cc!]);
    a!.script = async (req) => {
      if (req.name === 'slow') await sleep(500);
      return answer('a');
    };
    let busy = true;
    const others = (async () => {
      while (busy) {
        await c.callTool('fast');
        await sleep(20);
      }
    })();
    const r = await c.callTool('slow', {}, { timeoutMs: 3_000 });
    busy = false;
    await others;
    expect(text(r)).toBe('from a');
    expect(c.hedges).toBe(0);
    expect(b!.seen).toHaveLength(0);
    expect(cc!.seen).toHaveLength(0);
  });
});
