import { describe, expect, it } from 'vitest';
import { InProcNetwork, type InProcNetworkOptions } from '../src/host/inproc-network.js';
import type { Message, NodeId } from '../src/raft/types.js';
import { Prng } from '../src/util/prng.js';
import { VirtualClock } from '../src/util/virtual-clock.js';

function msg(from: NodeId, to: NodeId, index = 0, data = ''): Message {
  return {
    type: 'MsgApp', from, to, term: 1, logTerm: 1, index, commit: 0, reject: false,
    rejectHint: 0, logTermHint: 0, context: '',
    entries: data ? [{ index: index + 1, term: 1, type: 'normal', data }] : [],
  };
}

/** Network over ids with every received message logged as "from->to#index@time". */
function setup(ids: NodeId[], opts: Partial<InProcNetworkOptions> = {}, seed = 1) {
  const clock = new VirtualClock();
  const net = new InProcNetwork({ clock, prng: new Prng(seed), ...opts });
  const log: string[] = [];
  const got: Message[] = [];
  const eps = Object.fromEntries(
    ids.map((id) => {
      const ep = net.endpoint(id);
      ep.onMessage((m) => {
        got.push(m);
        log.push(`${m.from}->${m.to}#${m.index}@${clock.now()}`);
      });
      return [id, ep];
    }),
  );
  const ep = (id: NodeId) => eps[id]!;
  return { clock, net, ep, log, got };
}

describe('InProcNetwork', () => {
  it('delivers on a later clock turn, never synchronously', () => {
    const { clock, ep, log } = setup(['a', 'b']);
    ep('a').send(msg('a', 'b'));
    expect(log).toEqual([]);
    clock.runUntil(0);
    expect(log).toEqual(['a->b#0@0']);
  });

  it('copies messages: sender and receiver never share objects', () => {
    const { clock, ep, got } = setup(['a', 'b']);
    const m = msg('a', 'b', 1, 'x');
    ep('a').send(m);
    m.entries[0]!.data = 'mutated';
    clock.runAll();
    expect(got[0]!.entries[0]!.data).toBe('x');
    expect(got[0]).not.toBe(m);
  });

  it('structuredClone mode copies too', () => {
    const { clock, ep, got } = setup(['a', 'b'], { serialize: false });
    const m = msg('a', 'b', 1, 'x');
    ep('a').send(m);
    m.entries[0]!.data = 'mutated';
    clock.runAll();
    expect(got[0]!.entries[0]!.data).toBe('x');
  });

  it('JSON mode rejects unserializable messages at the sender', () => {
    const { ep } = setup(['a', 'b']);
    const bad = { ...msg('a', 'b'), term: 1n } as unknown as Message;
    expect(() => ep('a').send(bad)).toThrow();
  });

  it('lossRate 1 drops all; duplicateRate 1 delivers twice, as separate objects', () => {
    const { clock, net, ep, got } = setup(['a', 'b', 'c']);
    net.setLinkFaults('a', 'b', { lossRate: 1 });
    net.setLinkFaults('a', 'c', { duplicateRate: 1 });
    for (let i = 0; i < 5; i++) {
      ep('a').send(msg('a', 'b', i));
      ep('a').send(msg('a', 'c', i));
    }
    clock.runAll();
    expect(got.filter((m) => m.to === 'b')).toHaveLength(0);
    const toC = got.filter((m) => m.to === 'c');
    expect(toC.map((m) => m.index)).toEqual([0, 0, 1, 1, 2, 2, 3, 3, 4, 4]);
    expect(toC[0]).not.toBe(toC[1]);
    expect(net.linkStats('a', 'b')).toMatchObject({ messagesOut: 5, messagesIn: 0, dropped: 5 });
    expect(net.linkStats('a', 'c')).toMatchObject({ messagesOut: 5, messagesIn: 10, dropped: 0, duplicated: 5 });
  });

  it('link faults override global faults', () => {
    const { clock, net, ep, got } = setup(['a', 'b', 'c']);
    net.setGlobalFaults({ lossRate: 1 });
    net.setLinkFaults('a', 'b', { lossRate: 0 });
    ep('a').send(msg('a', 'b'));
    ep('a').send(msg('a', 'c'));
    clock.runAll();
    expect(got.map((m) => m.to)).toEqual(['b']);
    net.clearFaults();
    ep('a').send(msg('a', 'c'));
    clock.runAll();
    expect(got.map((m) => m.to)).toEqual(['b', 'c']);
  });

  it('rejects invalid fault settings', () => {
    const { net } = setup([]);
    expect(() => net.setGlobalFaults({ lossRate: 2 })).toThrow(RangeError);
    expect(() => net.setLinkFaults('a', 'b', { delayMs: { min: 5, max: 1 } })).toThrow(RangeError);
  });

  it('partition: only within groups; unlisted nodes reach nobody; heal restores', () => {
    const { clock, net, ep, got } = setup(['a', 'b', 'c', 'd', 'e']);
    net.partition([['a', 'b'], ['c']]);
    expect(net.connected('a', 'b')).toBe(true);
    expect(net.connected('a', 'c')).toBe(false);
    expect(net.connected('d', 'a')).toBe(false);
    expect(net.connected('d', 'e')).toBe(false);
    for (const to of ['b', 'c', 'd']) ep('a').send(msg('a', to));
    ep('d').send(msg('d', 'e'));
    clock.runAll();
    expect(got.map((m) => m.to)).toEqual(['b']);
    net.heal();
    expect(net.connected('a', 'c') && net.connected('d', 'e')).toBe(true);
    expect(() => net.partition([['a'], ['a', 'b']])).toThrow(/two groups/);
  });

  it('isolate cuts a node off both ways until heal', () => {
    const { clock, net, ep, got } = setup(['a', 'b', 'c']);
    net.isolate('a');
    ep('a').send(msg('a', 'b'));
    ep('b').send(msg('b', 'a'));
    ep('b').send(msg('b', 'c'));
    clock.runAll();
    expect(got.map((m) => `${m.from}${m.to}`)).toEqual(['bc']);
    net.heal();
    ep('a').send(msg('a', 'b'));
    clock.runAll();
    expect(got).toHaveLength(2);
  });

  it('down/up drops traffic to and from a crashed node, including in-flight messages', () => {
    const { clock, net, ep, got } = setup(['a', 'b'], { defaultDelayMs: { min: 10, max: 10 } });
    ep('a').send(msg('a', 'b', 1)); // in flight when b crashes
    clock.runFor(5);
    net.down('b');
    expect(net.connected('a', 'b')).toBe(false);
    ep('b').send(msg('b', 'a', 2));
    clock.runAll();
    expect(got).toHaveLength(0);
    net.up('b');
    ep('a').send(msg('a', 'b', 3));
    clock.runAll();
    expect(got.map((m) => m.index)).toEqual([3]);
    expect(net.linkStats('a', 'b').dropped).toBe(1);
  });

  it('close stops delivery; the id may reopen (a restarted node)', () => {
    const { clock, net, ep } = setup(['a', 'b']);
    expect(() => net.endpoint('b')).toThrow(/already open/);
    ep('b').close();
    ep('a').send(msg('a', 'b'));
    clock.runAll();
    expect(net.linkStats('a', 'b')).toMatchObject({ messagesIn: 0, dropped: 1 });
    const b2 = net.endpoint('b');
    const seen: number[] = [];
    b2.onMessage((m) => seen.push(m.index));
    ep('a').send(msg('a', 'b', 7));
    clock.runAll();
    expect(seen).toEqual([7]);
  });

  it('per-link FIFO with a fixed delay, and with random delays when reorder is false', () => {
    for (const delayMs of [{ min: 3, max: 3 }, { min: 0, max: 50 }]) {
      const { clock, net, ep, got } = setup(['a', 'b']);
      net.setGlobalFaults({ delayMs });
      for (let i = 0; i < 200; i++) {
        ep('a').send(msg('a', 'b', i));
        if (i % 7 === 0) clock.runFor(1);
      }
      clock.runAll();
      expect(got.map((m) => m.index)).toEqual([...Array(200).keys()]);
    }
  });

  it('FIFO across fault changes: a message sent without delay waits behind a delayed one; once the link drains, none waits', () => {
    const { clock, net, ep, log } = setup(['a', 'b']);
    net.setLinkFaults('a', 'b', { delayMs: { min: 20, max: 20 } });
    ep('a').send(msg('a', 'b', 1)); // due at 20
    net.clearFaults();
    clock.runFor(5);
    ep('a').send(msg('a', 'b', 2)); // no delay of its own, but behind #1
    ep('a').send(msg('a', 'b', 3));
    clock.runFor(30);
    expect(log).toEqual(['a->b#1@20', 'a->b#2@20', 'a->b#3@20']);
    // Drained: the next one goes at the next turn, not behind the old delivery time.
    ep('a').send(msg('a', 'b', 4));
    clock.runFor(1);
    expect(log.at(-1)).toBe('a->b#4@35');
    // Many zero-delay messages interleaved with a delayed one keep their order too.
    for (let i = 10; i < 40; i++) {
      if (i === 20) net.setGlobalFaults({ delayMs: { min: 7, max: 7 } });
      if (i === 21) net.clearFaults();
      ep('a').send(msg('a', 'b', i));
      if (i % 4 === 0) clock.runFor(1);
    }
    clock.runAll();
    expect(log.slice(4).map((l) => Number(l.split('#')[1]!.split('@')[0]))).toEqual([...Array(30).keys()].map((i) => i + 10));
  });

  it('a partition set while messages are in flight drops them; heal lets later ones through', () => {
    const { clock, net, ep, got } = setup(['a', 'b', 'c']);
    ep('a').send(msg('a', 'b', 1));
    ep('a').send(msg('a', 'c', 2));
    net.partition([['a', 'c'], ['b']]);
    clock.runAll();
    expect(got.map((m) => m.index)).toEqual([2]);
    expect(net.linkStats('a', 'b').dropped).toBe(1);
    net.heal();
    ep('a').send(msg('a', 'b', 3));
    clock.runAll();
    expect(got.map((m) => m.index)).toEqual([2, 3]);
  });

  it('random delays with reorder true do reorder', () => {
    const { clock, net, ep, got } = setup(['a', 'b']);
    net.setGlobalFaults({ delayMs: { min: 0, max: 50 }, reorder: true });
    for (let i = 0; i < 50; i++) ep('a').send(msg('a', 'b', i));
    clock.runAll();
    const order = got.map((m) => m.index);
    expect([...order].sort((x, y) => x - y)).toEqual([...Array(50).keys()]);
    expect(order).not.toEqual([...Array(50).keys()]);
  });

  it('is deterministic: same seed, same trace; different seed, different trace', () => {
    const trace = (seed: number) => {
      const { clock, net, ep, log } = setup(['a', 'b', 'c'], {}, seed);
      net.setGlobalFaults({ lossRate: 0.2, duplicateRate: 0.2, delayMs: { min: 1, max: 20 }, reorder: true });
      for (let i = 0; i < 100; i++) {
        ep('a').send(msg('a', i % 2 ? 'b' : 'c', i));
        ep('b').send(msg('b', 'c', i));
        clock.runFor(2);
      }
      clock.runAll();
      return log;
    };
    const t1 = trace(42);
    expect(t1.length).toBeGreaterThan(100);
    expect(trace(42)).toEqual(t1);
    expect(trace(43)).not.toEqual(t1);
  });

  it('counts messages and JSON bytes per link and per endpoint', () => {
    const { clock, net, ep } = setup(['a', 'b', 'c']);
    const m1 = msg('a', 'b', 1, 'hello');
    const m2 = msg('a', 'c', 2);
    const m3 = msg('b', 'a', 3);
    [m1, m2].forEach((m) => ep('a').send(m));
    ep('b').send(m3);
    clock.runAll();
    const len = (m: Message) => JSON.stringify(m).length;
    expect(net.linkStats('a', 'b')).toEqual({
      messagesIn: 1, messagesOut: 1, bytesIn: len(m1), bytesOut: len(m1), dropped: 0, duplicated: 0,
    });
    expect(net.endpointStats('a')).toEqual({
      messagesIn: 1, messagesOut: 2, bytesIn: len(m3), bytesOut: len(m1) + len(m2),
    });
    expect(net.endpointStats('c')).toEqual({ messagesIn: 1, messagesOut: 0, bytesIn: len(m2), bytesOut: 0 });
    expect(net.linkStats('c', 'a')).toEqual({
      messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0, dropped: 0, duplicated: 0,
    });
  });

  it('a throwing handler does not stop delivery to others; errors are collected and reported', () => {
    const reported: unknown[] = [];
    const { clock, net, ep, got } = setup(['a', 'c'], { onError: (e) => reported.push(e.error) });
    const bad = net.endpoint('b');
    bad.onMessage(() => {
      throw new Error('boom');
    });
    ep('a').send(msg('a', 'b'));
    ep('a').send(msg('a', 'c'));
    ep('a').send(msg('a', 'b'));
    clock.runAll();
    expect(got.map((m) => m.to)).toEqual(['c']);
    expect(net.errors).toHaveLength(2);
    expect(net.errors[0]).toMatchObject({ msg: { from: 'a', to: 'b' }, at: 0 });
    expect((reported[0] as Error).message).toBe('boom');
  });

  it('refuses to send with a foreign from', () => {
    const { ep } = setup(['a', 'b']);
    expect(() => ep('a').send(msg('b', 'a'))).toThrow(/from=b/);
  });
});

function snap(from: NodeId, to: NodeId, index: number, data: string, term = 1): Message {
  return {
    type: 'MsgSnap', from, to, term, logTerm: 0, index: 0, commit: 0, reject: false, rejectHint: 0, logTermHint: 0, context: '', entries: [],
    snapshot: { metadata: { index, term, confState: { voters: [from, to], learners: [] } }, data },
  };
}

describe('InProcNetwork snapshot streaming (snapshotChunkChars)', () => {
  const data = 'state-é€𝄞-'.repeat(400); // multi-byte, surrogate pairs at part edges

  it('streams a snapshot in parts: a heartbeat sent after it starts arrives before it completes', () => {
    const { clock, ep, got } = setup(['a', 'b'], { snapshotChunkChars: 64, snapshotWindowParts: 2, defaultDelayMs: { min: 1, max: 1 } });
    ep('a').send(snap('a', 'b', 10, data));
    clock.runFor(5);
    expect(got).toHaveLength(0);
    ep('a').send(msg('a', 'b', 7));
    clock.runAll();
    expect(got.map((m) => m.type)).toEqual(['MsgApp', 'MsgSnap']);
    expect(got[1]!.snapshot!.data === data).toBe(true);
  });

  it('survives loss, duplication and reordering of parts and acks; the core resends, the stream resumes', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const { clock, net, ep, got } = setup(['a', 'b'], { snapshotChunkChars: 32, snapshotWindowParts: 3 }, seed);
      net.setGlobalFaults({ lossRate: 0.2, duplicateRate: 0.2, delayMs: { min: 0, max: 5 }, reorder: true });
      const m = snap('a', 'b', 20, data);
      // The core resends every 50 ms until the snapshot arrives (its election-timeout retry).
      for (let t = 0; t < 200 && got.length === 0; t++) {
        ep('a').send(m);
        clock.runFor(50);
      }
      clock.runAll();
      expect(got.length, `seed ${seed}`).toBeGreaterThanOrEqual(1);
      for (const g of got) expect(g.snapshot!.data === data).toBe(true);
      expect(net.errors).toEqual([]);
      // ~140 parts at 20% loss each: a stream that restarted from byte 0 on every loss would
      // essentially never complete (0.8^140); completing at all shows it resumed. The
      // receiver acknowledged parts (a whole-message transfer sends nothing back).
      expect(net.linkStats('b', 'a').bytesOut, `seed ${seed}`).toBeGreaterThan(0);
    }
  });

  it('a snapshot delivered whole is not streamed again when the core resends it, until the window ends or either end restarts', () => {
    const { clock, net, ep, got } = setup(['a', 'b'], { snapshotChunkChars: 64, snapshotWindowParts: 2, defaultDelayMs: { min: 1, max: 1 }, snapshotResendAfterMs: 1_000 });
    const m = snap('a', 'b', 40, data);
    ep('a').send(m);
    clock.runAll();
    expect(got).toHaveLength(1);
    const parts = net.snapshotPartsDelivered;
    // The core's resends while the receiver installs: nothing travels.
    for (let i = 0; i < 3; i++) {
      clock.runFor(200);
      ep('a').send(m);
      clock.runAll();
    }
    expect(got).toHaveLength(1);
    expect(net.snapshotPartsDelivered).toBe(parts);
    expect(net.snapshotResendsSkipped).toBe(3);
    // A different snapshot is streamed at once.
    ep('a').send(snap('a', 'b', 41, data));
    clock.runAll();
    expect(got.map((g) => g.snapshot!.metadata.index)).toEqual([40, 41]);
    // Past the window, the same one is streamed again (an answer may have been lost).
    clock.runFor(1_001);
    ep('a').send(snap('a', 'b', 41, data));
    clock.runAll();
    expect(got.map((g) => g.snapshot!.metadata.index)).toEqual([40, 41, 41]);
    // A restarted receiver lost what it had: streamed again at once.
    ep('b').close();
    const b2 = net.endpoint('b');
    b2.onMessage((g) => got.push(g));
    ep('a').send(snap('a', 'b', 41, data));
    clock.runAll();
    expect(got.map((g) => g.snapshot!.metadata.index)).toEqual([40, 41, 41, 41]);
    expect(net.snapshotResendsSkipped).toBe(3);
  });

  it('a delivered snapshot is streamed again on every resend with the window off (0)', () => {
    const { clock, net, ep, got } = setup(['a', 'b'], { snapshotChunkChars: 64, defaultDelayMs: { min: 1, max: 1 }, snapshotResendAfterMs: 0 });
    for (let i = 0; i < 3; i++) {
      ep('a').send(snap('a', 'b', 50, data));
      clock.runAll();
    }
    expect(got).toHaveLength(3);
    expect(net.snapshotResendsSkipped).toBe(0);
  });

  it('a newer snapshot replaces an unfinished one, which is never delivered', () => {
    const { clock, net, ep, got } = setup(['a', 'b'], { snapshotChunkChars: 64, snapshotWindowParts: 2, defaultDelayMs: { min: 1, max: 1 } });
    ep('a').send(snap('a', 'b', 30, data));
    clock.runFor(6);
    ep('a').send(snap('a', 'b', 31, data.toUpperCase()));
    clock.runAll();
    expect(got.map((m) => m.snapshot!.metadata.index)).toEqual([31]);
    expect(got[0]!.snapshot!.data === data.toUpperCase()).toBe(true);
    expect(net.errors).toEqual([]);
  });
});
