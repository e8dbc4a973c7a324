// holdIdleHeartbeats: a heartbeat that asks no answer waits on its link for its receiver's
// next read instead of a delivery of its own. These tests try what could make such a
// heartbeat act differently from one read on time: overtaking (or being overtaken by) other
// messages, faults, crashes and partitions at read time, and what the counters say.
import { describe, expect, it } from 'vitest';
import { InProcNetwork, type InProcNetworkOptions } from '../../src/host/inproc-network.js';
import { HEARTBEAT_NO_ANSWER, newMessage, type Message, type MessageType, type NodeId } from '../../src/raft/types.js';
import { Prng } from '../../src/util/prng.js';
import { VirtualClock } from '../../src/util/virtual-clock.js';

const idle = (from: NodeId, to: NodeId, commit = 0): Message => newMessage({ type: 'MsgHeartbeat', from, to, term: 1, commit, context: HEARTBEAT_NO_ANSWER });
const other = (type: MessageType, from: NodeId, to: NodeId, context = ''): Message => newMessage({ type, from, to, term: 1, context });

/** Every read logged as "type from arrivedAt@now" (arrivedAt '-' when read as it came). */
function setup(opts: Partial<InProcNetworkOptions> = {}) {
  const clock = new VirtualClock();
  const net = new InProcNetwork({ clock, prng: new Prng(1), serialize: false, holdIdleHeartbeats: true, ...opts });
  const log: string[] = [];
  const got: Message[] = [];
  const eps = Object.fromEntries(
    ['a', 'b', 'c'].map((id) => {
      const ep = net.endpoint(id);
      ep.onMessage((m, at) => {
        got.push(m);
        log.push(`${m.type}${m.context ? `/${m.context}` : ''} ${m.from} ${at ?? '-'}@${clock.now()}`);
      });
      return [id, ep];
    }),
  );
  return { clock, net, ep: (id: NodeId) => eps[id]!, log, got };
}

describe('held heartbeats (InProcNetwork holdIdleHeartbeats)', () => {
  it('are not delivered by themselves: the receiver reads them at its next drainInbound, with their arrival time', () => {
    const { clock, ep, log } = setup();
    clock.runFor(10);
    ep('a').send(idle('a', 'b'));
    clock.runFor(40);
    expect(log).toEqual([]);
    ep('b').drainInbound();
    expect(log).toEqual(['MsgHeartbeat/no-answer a 10@50']);
    ep('b').drainInbound();
    expect(log).toHaveLength(1);
  });

  it('are read before anything that arrives after them, on their link (FIFO) or another (a vote is judged against the lease they renew)', () => {
    const { clock, ep, log } = setup();
    ep('a').send(idle('a', 'b'));
    clock.runFor(5);
    ep('c').send(other('MsgPreVote', 'c', 'b'));
    clock.runFor(5);
    ep('a').send(other('MsgHeartbeat', 'a', 'b'));
    clock.runAll();
    expect(log).toEqual(['MsgHeartbeat/no-answer a 0@5', 'MsgPreVote c -@5', 'MsgHeartbeat a -@10']);
  });

  it('a newer heartbeat on the same link supersedes an unread one (it resets the election clock later and says all the older did)', () => {
    const { clock, net, ep, log } = setup();
    ep('a').send(idle('a', 'b', 3));
    clock.runFor(50);
    ep('a').send(other('MsgHeartbeat', 'a', 'b'));
    clock.runAll();
    expect(log).toEqual(['MsgHeartbeat a -@50']);
    expect(net.heartbeatsCoalesced).toBe(1);
    // Not by an append (which may be refused, leaving the held commit unlearned) nor by another sender's heartbeat.
    ep('a').send(idle('a', 'b', 4));
    ep('a').send(other('MsgApp', 'a', 'b'));
    clock.runAll();
    expect(log.slice(1)).toEqual(['MsgHeartbeat/no-answer a 50@50', 'MsgApp a -@50']);
    ep('a').send(idle('a', 'b', 5));
    ep('c').send(other('MsgHeartbeat', 'c', 'b'));
    clock.runAll();
    expect(log.slice(3)).toEqual(['MsgHeartbeat/no-answer a 50@50', 'MsgHeartbeat c -@50']);
    expect(net.heartbeatsCoalesced).toBe(1);
  });

  it('are never held behind queued messages, on links with a fault set, nor when they ask an answer, nor with the option off', () => {
    // Something queued on the link: the heartbeat queues behind it.
    let t = setup({ defaultDelayMs: { min: 3, max: 3 } });
    t.ep('a').send(other('MsgApp', 'a', 'b'));
    t.ep('a').send(idle('a', 'b'));
    t.clock.runAll();
    expect(t.log).toEqual(['MsgApp a -@3', 'MsgHeartbeat/no-answer a -@3']);
    // Loss, duplication and delay on the link keep their per-message meaning.
    t = setup();
    t.net.setLinkFaults('a', 'b', { lossRate: 1 });
    t.ep('a').send(idle('a', 'b'));
    t.ep('b').drainInbound();
    t.clock.runAll();
    expect(t.log).toEqual([]);
    expect(t.net.heartbeatsHeld).toBe(0);
    t = setup();
    t.net.setGlobalFaults({ duplicateRate: 1 });
    t.ep('a').send(idle('a', 'b'));
    t.clock.runAll();
    expect(t.log).toEqual(['MsgHeartbeat/no-answer a -@0', 'MsgHeartbeat/no-answer a -@0']);
    t = setup();
    t.net.setGlobalFaults({ delayMs: { min: 0, max: 4 } });
    t.ep('a').send(idle('a', 'b'));
    t.ep('b').drainInbound();
    expect(t.log).toEqual([]);
    t.clock.runAll();
    expect(t.log).toHaveLength(1);
    expect(t.net.heartbeatsHeld).toBe(0);
    // Faults set but none in effect (the simulator's calm phases): held.
    t = setup();
    t.net.setGlobalFaults({ lossRate: 0, duplicateRate: 0, delayMs: { min: 0, max: 0 }, reorder: true });
    t.ep('a').send(idle('a', 'b'));
    t.clock.runAll();
    expect(t.log).toEqual([]);
    t.ep('b').drainInbound();
    expect(t.log).toEqual(['MsgHeartbeat/no-answer a 0@0']);
    // A heartbeat that asks an answer (a read context, or none) is delivered at once.
    t = setup();
    t.ep('a').send(other('MsgHeartbeat', 'a', 'b', 'read-1'));
    t.clock.runAll();
    expect(t.log).toEqual(['MsgHeartbeat/read-1 a -@0']);
    t = setup({ holdIdleHeartbeats: false });
    t.ep('a').send(idle('a', 'b'));
    t.clock.runAll();
    expect(t.log).toEqual(['MsgHeartbeat/no-answer a -@0']);
  });

  it('a newer one replaces an unread one (counted as coalesced); messages out count both, in counts the one read', () => {
    const { clock, net, ep, log, got } = setup();
    ep('a').send(idle('a', 'b', 3));
    clock.runFor(20);
    ep('a').send(idle('a', 'b', 4));
    clock.runFor(20);
    ep('b').drainInbound();
    expect(log).toEqual(['MsgHeartbeat/no-answer a 20@40']);
    expect(got[0]!.commit).toBe(4);
    expect(net.heartbeatsCoalesced).toBe(1);
    const s = net.linkStats('a', 'b');
    expect([s.messagesOut, s.messagesIn]).toEqual([2, 1]);
  });

  it('are lost with a receiver that crashes before reading them, and dropped when a partition cuts their link by read time', () => {
    const { clock, net, ep, log } = setup();
    ep('a').send(idle('a', 'b'));
    ep('b').close();
    const b2 = net.endpoint('b');
    const read: Message[] = [];
    b2.onMessage((m) => read.push(m));
    clock.runFor(10);
    b2.drainInbound();
    expect(read).toEqual([]);
    expect(net.linkStats('a', 'b').dropped).toBe(1);

    ep('a').send(idle('a', 'c'));
    net.partition([['a'], ['b', 'c']]);
    ep('c').drainInbound();
    expect(log).toEqual([]);
    expect(net.linkStats('a', 'c').dropped).toBe(1);
    // Healed: a new one is held and read as usual.
    net.heal();
    ep('a').send(idle('a', 'c'));
    ep('c').drainInbound();
    expect(log).toEqual([`MsgHeartbeat/no-answer a ${clock.now()}@${clock.now()}`]);
  });

  it('a copy is held: the sender changing its message afterwards changes nothing', () => {
    const { ep, got } = setup();
    const m = idle('a', 'b', 7);
    ep('a').send(m);
    m.commit = 99;
    ep('b').drainInbound();
    expect(got[0]!.commit).toBe(7);
    expect(got[0]).not.toBe(m);
  });
});
