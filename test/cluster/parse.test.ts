// Cluster-mode inputs: flags and member-port requests are refused with the field, the value
// and what is accepted.

import { describe, expect, it } from 'vitest';
import { parseMembers } from '../../src/cluster/cluster-client.js';
import { parseClientRequest } from '../../src/cluster/protocol.js';
import { parseAddress, parsePeers } from '../../src/cli/node-command.js';

describe('concord node flags', () => {
  it('parses --peers into ids and addresses, IPv6 included', () => {
    expect(parsePeers('a=127.0.0.1:7001, b=[::1]:7002,c=host.example:7003')).toEqual({
      a: { host: '127.0.0.1', port: 7001 },
      b: { host: '::1', port: 7002 },
      c: { host: 'host.example', port: 7003 },
    });
  });

  it.each([
    ['a127.0.0.1:7001', /peers="a127.0.0.1:7001" is not valid; accepted: ID=HOST:PORT/],
    ['a=127.0.0.1', /peers="127.0.0.1" is not valid; accepted: HOST:PORT with a port 1-65535/],
    ['a=127.0.0.1:70000', /port 1-65535/],
    ['a=1.1.1.1:1,a=1.1.1.1:2', /each member once \(a appears twice\)/],
    ['-x=1.1.1.1:1', /member ids of letters/],
    ['', /1 to 15 members/],
  ])('refuses --peers %j', (spec, re) => {
    expect(() => parsePeers(spec)).toThrow(re);
  });

  it('refuses a --listen that is not HOST:PORT', () => {
    expect(() => parseAddress('listen', '7001')).toThrow(/listen="7001" is not valid/);
  });

  it('parses --cluster member lists and names a bad entry', () => {
    expect(parseMembers('127.0.0.1:1, 127.0.0.1:2,127.0.0.1:1')).toEqual(['127.0.0.1:1', '127.0.0.1:2']);
    expect(() => parseMembers('127.0.0.1')).toThrow(/cluster="127.0.0.1" is not HOST:PORT/);
    expect(() => parseMembers(' , ')).toThrow(/give member addresses/);
  });
});

describe('member-port requests', () => {
  it('accepts each kind and fills defaults', () => {
    expect(parseClientRequest({ kind: 'status' })).toEqual({ kind: 'status' });
    expect(parseClientRequest({ kind: 'tool', name: 'memory_store' })).toEqual({ kind: 'tool', name: 'memory_store', arguments: {} });
    expect(parseClientRequest({ kind: 'admin', op: 'unblock' })).toEqual({ kind: 'admin', op: 'unblock', peers: [] });
  });

  it.each([
    [{ kind: 'nope' }, /malformed request/],
    [{ kind: 'tool', name: '' }, /name/],
    [{ kind: 'tool', name: 'x', session: { client: 'c', seq: 0, ack: 0 } }, /session\.seq/],
    [{ kind: 'admin', op: 'block', peers: 'n2' }, /peers/],
    [{ kind: 'admin', op: 'explode' }, /op/],
    [null, /malformed request/],
  ])('refuses %j with a reason', (req, re) => {
    expect(() => parseClientRequest(req)).toThrow(re);
    try {
      parseClientRequest(req);
    } catch (e) {
      expect((e as { code?: string }).code).toBe('invalid_argument');
    }
  });
});
