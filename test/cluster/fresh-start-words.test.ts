// checkFreshStart (membership.ts) against peers whose word is stale: a member whose data
// directory was wiped must not become a voter on the word of a peer that lags behind the
// cluster. Peers here are stand-ins that answer status probes only (what a real member would
// answer in that state), so each case is one probe conversation, without a running cluster.
//
// Scenario of both: voters a, b, w. a and w formed the cluster and committed writes (a leads);
// b fell behind early (partitioned, or down) and holds only the cluster's first entries. Then
// w's directory is wiped (disk replaced) and w restarts with the same --peers while a is down.
// If w starts, w (empty log, forgotten votes) and b are a majority: they elect b, and every
// entry a and w committed after b fell behind is lost, also on a once it returns (b's new
// term outranks a's log).

import crypto from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { checkFreshStart, checkJoin } from '../../src/cluster/membership.js';
import type { MemberStatus } from '../../src/cluster/protocol.js';
import { TcpTransport } from '../../src/transport/tcp-transport.js';
import { freePorts } from './procs.js';

const secret = crypto.randomBytes(32);
const VOTERS = ['a', 'b', 'w'];
const transports: TcpTransport[] = [];

afterEach(() => {
  for (const t of transports.splice(0)) t.close();
});

function status(over: Partial<MemberStatus>): MemberStatus {
  return {
    id: 'b',
    swarm: 's',
    role: 'follower',
    term: 1,
    leader: null,
    leader_address: null,
    commit: 0,
    applied: 0,
    last_index: 0,
    first_index: 1,
    blocked: [],
    links: {},
    auth_failures: 0,
    protocol_errors: 0,
    event_loop_delay_ms: { p50: 0, p99: 0, max: 0 },
    membership: null,
    bootstrap: { state: 'running', voters: VOTERS },
    ...over,
  };
}

/** A member's port that answers status probes with `st`. */
async function fakePeer(id: string, port: number, st: MemberStatus): Promise<void> {
  const t = new TcpTransport({ id, secret, host: '127.0.0.1', port, peers: {} });
  t.onClientRequest(async () => st);
  await t.listen();
  transports.push(t);
}

/**
 * Runs w's check for `ms`: 'started' when it let w run as a voter, 'waiting' when it was
 * still waiting (then cancelled), or the refusal's message.
 */
async function freshStart(ports: Record<string, number>, ms = 1_500): Promise<string> {
  const abort = new AbortController();
  const peers = Object.fromEntries(Object.entries(ports).map(([id, port]) => [id, { host: '127.0.0.1', port }]));
  const run = checkFreshStart({ id: 'w', swarm: 's', peers, voters: VOTERS, secret, signal: abort.signal }).then(
    () => 'started',
    (e: unknown) => (abort.signal.aborted ? 'waiting' : (e as Error).message),
  );
  const timer = setTimeout(() => abort.abort(), ms);
  try {
    return await run;
  } finally {
    clearTimeout(timer);
  }
}

const book = (incarnation: string | null) => ({ cluster_id: 'c-1', members: { a: { address: 'x:1', state: 'active' as const, incarnation: 'inc-a' }, b: { address: 'x:2', state: 'active' as const, incarnation: null }, w: { address: 'x:3', state: 'active' as const, incarnation } } });

describe('checkFreshStart: a wiped member and a peer that lags behind', () => {
  it("a follower's book that predates w's bind does not let a wiped w start (only a leader's book says 'never bound')", async () => {
    const [pa, pb, pw] = await freePorts(3);
    // b applied the cluster id (entry 2) and fell behind before w's bind (entry 3) applied.
    await fakePeer('b', pb!, status({ role: 'follower', term: 7, commit: 2, applied: 2, last_index: 2, membership: book(null) }));
    // a (the leader, which knows w is bound) is down: nothing listens on pa.
    expect(await freshStart({ a: pa!, b: pb!, w: pw! })).toBe('waiting');
  });

  it("the leader's book listing w, never bound, lets w start and catch up (a member down at the first start)", async () => {
    const [pa, pb, pw] = await freePorts(3);
    await fakePeer('b', pb!, status({ role: 'leader', leader: 'b', term: 2, commit: 40, applied: 40, last_index: 40, membership: book(null) }));
    expect(await freshStart({ a: pa!, b: pb!, w: pw! })).toBe('started');
  });

  it('a bound w is refused on any member\'s word, a follower\'s too', async () => {
    const [pa, pb, pw] = await freePorts(3);
    await fakePeer('b', pb!, status({ role: 'follower', term: 2, commit: 40, applied: 40, last_index: 40, membership: book('inc-w') }));
    expect(await freshStart({ a: pa!, b: pb!, w: pw! })).toMatch(/bound to another data directory/);
  });

  it('a running peer that holds entries is not fresh, even with no commit index known (it took part in a cluster)', async () => {
    const [pa, pb, pw] = await freePorts(3);
    // b received the first leader's entries but never learned they committed (or its
    // commit-index-only write was lost in a power cut): commit 0, entries in its log.
    await fakePeer('b', pb!, status({ role: 'follower', term: 3, commit: 0, applied: 0, last_index: 1, membership: null }));
    expect(await freshStart({ a: pa!, b: pb!, w: pw! })).toBe('waiting');
  });

  it('a running peer with an empty log is fresh: members started together still form the cluster', async () => {
    const [pa, pb, pw] = await freePorts(3);
    await fakePeer('b', pb!, status({ role: 'candidate', term: 4, commit: 0, applied: 0, last_index: 0, membership: null }));
    expect(await freshStart({ a: pa!, b: pb!, w: pw! })).toBe('started');
  });
});

describe('checkFreshStart: a member of another swarm at a peer address', () => {
  it("another swarm's leader listing this id unbound does not let w start, nor count as fresh", async () => {
    const [pa, pb, pw] = await freePorts(3);
    await fakePeer('b', pb!, status({ swarm: 'other', role: 'leader', leader: 'b', term: 2, commit: 40, applied: 40, last_index: 40, membership: book(null) }));
    expect(await freshStart({ a: pa!, b: pb!, w: pw! })).toBe('waiting');
    const [qa, qb, qw] = await freePorts(3);
    await fakePeer('b', qb!, status({ swarm: 'other', role: 'candidate', last_index: 0, membership: null }));
    expect(await freshStart({ a: qa!, b: qb!, w: qw! })).toBe('waiting');
  });
});

// The same lag, for a member started with --join on an empty data directory (a joined member
// whose disk was replaced, restarted by its unit file's command line): a seed that applied
// its add but not its bind lists it active and unbound, as for a first join.
describe('checkJoin: a seed that lags behind the bind', () => {
  const joinBook = (incarnation: string | null) => ({ cluster_id: 'c-1', members: { a: { address: 'x:1', state: 'active' as const, incarnation: 'inc-a' }, j: { address: 'x:4', state: 'active' as const, incarnation } } });
  const join = (seeds: number[]) => checkJoin({ id: 'j', join: seeds.map((p) => `127.0.0.1:${p}`), secret, local: null, hasState: false, incarnation: undefined });

  it("a follower's view listing the id unbound is not enough when the leader it names cannot be asked", { timeout: 30_000 }, async () => {
    const [ps, pl] = await freePorts(2);
    await fakePeer('s', ps!, status({ id: 's', role: 'follower', leader: 'a', leader_address: `127.0.0.1:${pl}`, term: 5, commit: 9, applied: 9, last_index: 9, membership: joinBook(null) }));
    await expect(join([ps!])).rejects.toThrow(/unavailable|leader/);
  });

  it("the view of the leader a follower names decides: unbound, the join goes on; bound elsewhere, refused", { timeout: 30_000 }, async () => {
    const [ps, pl] = await freePorts(2);
    await fakePeer('s', ps!, status({ id: 's', role: 'follower', leader: 'a', leader_address: `127.0.0.1:${pl}`, term: 5, commit: 9, applied: 9, last_index: 9, membership: joinBook(null) }));
    await fakePeer('a', pl!, status({ id: 'a', role: 'leader', leader: 'a', leader_address: `127.0.0.1:${pl}`, term: 5, commit: 40, applied: 40, last_index: 40, membership: joinBook(null) }));
    expect((await join([ps!])).members.j).toMatchObject({ state: 'active', incarnation: null });
    const [qs, ql] = await freePorts(2);
    await fakePeer('s', qs!, status({ id: 's', role: 'follower', leader: 'a', leader_address: `127.0.0.1:${ql}`, term: 5, commit: 9, applied: 9, last_index: 9, membership: joinBook(null) }));
    await fakePeer('a', ql!, status({ id: 'a', role: 'leader', leader: 'a', leader_address: `127.0.0.1:${ql}`, term: 5, commit: 40, applied: 40, last_index: 40, membership: joinBook('inc-j') }));
    await expect(join([qs!])).rejects.toThrow(/bound to another data directory/);
  });
});

describe('checkJoin: a seed of another swarm', () => {
  it("is skipped: its leader's book listing the id does not let the member join", { timeout: 30_000 }, async () => {
    const [pl] = await freePorts(1);
    const b = { cluster_id: 'c-9', members: { j: { address: 'x:4', state: 'active' as const, incarnation: null } } };
    await fakePeer('a', pl!, status({ id: 'a', swarm: 'other', role: 'leader', leader: 'a', term: 5, commit: 40, applied: 40, last_index: 40, membership: b }));
    await expect(checkJoin({ id: 'j', swarm: 's', join: [`127.0.0.1:${pl}`], secret, local: null, hasState: false, incarnation: undefined })).rejects.toThrow(/swarm "other", not "s"/);
  });
});

describe('checkFreshStart: one member answering for two peers', () => {
  it('two ids given the same address (a typo in --peers): the fresh member there counts once, for its own id only', async () => {
    const five = ['a', 'b', 'c', 'd', 'w'];
    const [pc, pd, pw, pcOwn] = await freePorts(4);
    // c, fresh and waiting, listens at the address --peers gives both a and b; c's own address
    // and d's are silent. Counting c twice would make w + 2 = 3 of 5 fresh.
    await fakePeer('c', pc!, status({ id: 'c', role: 'waiting-to-bootstrap', term: null, commit: null, applied: null, last_index: null, first_index: null, bootstrap: { state: 'waiting', voters: five } }));
    const abort = new AbortController();
    const peers = { a: { host: '127.0.0.1', port: pc! }, b: { host: '127.0.0.1', port: pc! }, c: { host: '127.0.0.1', port: pcOwn! }, d: { host: '127.0.0.1', port: pd! }, w: { host: '127.0.0.1', port: pw! } };
    const run = checkFreshStart({ id: 'w', swarm: 's', peers, voters: five, secret, signal: abort.signal }).then(
      () => 'started',
      () => (abort.signal.aborted ? 'waiting' : 'refused'),
    );
    setTimeout(() => abort.abort(), 1_500);
    expect(await run).toBe('waiting');
  });
});
