// The http executor and internal addresses (issue 10, SSRF): a task pointed at loopback,
// a private or link-local address (directly, through a name, or through a redirect) gets no
// answer from it unless the operator allowed that host (CONCORD_HTTP_ALLOW / --allow-http-host).

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { execute } from '../../src/swarm/executors.js';
import { HTTP_ALLOW_ENV, isInternalAddress, parseAllowList } from '../../src/swarm/http-policy.js';

let sink: http.Server;
let port: number;
const hits: string[] = [];

beforeAll(async () => {
  sink = http.createServer((req, res) => {
    hits.push(req.url ?? '');
    if (req.url === '/redirect') {
      res.writeHead(302, { Location: `http://127.0.0.1:${port}/secret.txt` });
      return void res.end();
    }
    res.end('top secret');
  });
  await new Promise<void>((r) => sink.listen(0, '127.0.0.1', () => r()));
  port = (sink.address() as AddressInfo).port;
});
afterAll(() => new Promise<void>((r) => sink.close(() => r())));
const saved = process.env[HTTP_ALLOW_ENV];
afterEach(() => {
  if (saved === undefined) delete process.env[HTTP_ALLOW_ENV];
  else process.env[HTTP_ALLOW_ENV] = saved;
  hits.length = 0;
});

const get = (url: string) => execute({ kind: 'http', http: { method: 'GET', url } }, 'orch-1:1', 1, null);

describe('http executor: internal addresses', () => {
  it('refuses loopback by address and by name, and never connects', async () => {
    delete process.env[HTTP_ALLOW_ENV];
    for (const url of [`http://127.0.0.1:${port}/secret.txt`, `http://localhost:${port}/secret.txt`, `http://[::ffff:127.0.0.1]:${port}/secret.txt`]) {
      const r = await get(url);
      expect(r.ok).toBe(false);
      expect(r.result).toMatchObject({ executor: 'http', refused: true });
      expect(JSON.stringify(r.result)).toMatch(/internal address.*--allow-http-host/);
      expect(JSON.stringify(r.result)).not.toMatch(/top secret/);
    }
    expect(hits).toEqual([]);
  });

  it('refuses cloud metadata and private ranges without connecting', async () => {
    for (const url of ['http://169.254.169.254/latest/meta-data/', 'http://10.1.2.3/', 'http://192.168.0.1/', 'http://[fe80::1]/', 'http://[::1]/']) {
      const r = await get(url);
      expect(r.result, url).toMatchObject({ refused: true });
    }
  });

  it('reaches a host the operator allowed (the opt-in for tests with a local sink)', async () => {
    process.env[HTTP_ALLOW_ENV] = `127.0.0.1:${port}`;
    const r = await get(`http://127.0.0.1:${port}/secret.txt`);
    expect(r).toMatchObject({ ok: true, result: { status: 200, body_excerpt: 'top secret', body_bytes: 10 } });
    // Another port on the same host is not allowed by host:port.
    const other = await get(`http://127.0.0.1:${port === 65535 ? 1 : port + 1}/`);
    expect(other.result).toMatchObject({ refused: true });
    // A bare host allows every port.
    process.env[HTTP_ALLOW_ENV] = 'localhost';
    expect(await get(`http://localhost:${port}/secret.txt`)).toMatchObject({ ok: true, result: { body_excerpt: 'top secret' } });
  });

  it('does not follow redirects: an allowed host cannot bounce the request inward', async () => {
    process.env[HTTP_ALLOW_ENV] = `127.0.0.1:${port}`;
    const r = await get(`http://127.0.0.1:${port}/redirect`);
    expect(r).toMatchObject({ ok: false, result: { status: 302 } });
    expect(hits).toEqual(['/redirect']);
  });

  it('classifies addresses and parses the allow-list', () => {
    for (const a of ['127.0.0.1', '10.0.0.1', '172.16.5.4', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '::1', '::', 'fd00::1', 'fe80::1', '::ffff:10.0.0.1', '224.0.0.1']) {
      expect(isInternalAddress(a), a).toBe(true);
    }
    for (const a of ['93.184.216.34', '8.8.8.8', '2606:4700:4700::1111', '::ffff:8.8.8.8']) expect(isInternalAddress(a), a).toBe(false);
    expect(parseAllowList('127.0.0.1:9000, Internal.Example ,[::1]:8080,::1')).toEqual([
      { host: '127.0.0.1', port: 9000 },
      { host: 'internal.example', port: undefined },
      { host: '::1', port: 8080 },
      { host: '::1', port: undefined },
    ]);
    expect(() => parseAllowList('a:b:c:zz')).toThrow(/is not host or host:port/);
    expect(() => parseAllowList('host:99999')).toThrow(/is not host or host:port/);
  });
});
