// Where the http executor may connect. A task's URL comes from whoever can call
// task_orchestrate; without this check a task pointed at 127.0.0.1, a cloud metadata address
// or a LAN service returned that service's answer in task_results (SSRF). Public addresses
// are allowed; loopback, private, link-local and other internal ranges only when the
// operator lists the host: --allow-http-host or CONCORD_HTTP_ALLOW ("host[:port],...").
// The address is checked when the connection is made (the lookup the socket uses), so a
// name that resolves differently on the second lookup (DNS rebinding) is checked too.

import dns from 'node:dns';
import net from 'node:net';

export const HTTP_ALLOW_ENV = 'CONCORD_HTTP_ALLOW';

export interface AllowedHost {
  host: string;
  /** Undefined: any port. */
  port?: number;
}

/** Parse "host[:port],..." ("[::1]:8080" for IPv6). Throws naming the bad entry. */
export function parseAllowList(spec: string | undefined): AllowedHost[] {
  const out: AllowedHost[] = [];
  for (const raw of (spec ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    const bracketed = /^\[([0-9a-fA-F:.]+)\](?::(\d{1,5}))?$/.exec(raw);
    const withPort = /^([^:\s[\]]+):(\d{1,5})$/.exec(raw);
    let host: string | undefined;
    let port: number | undefined;
    if (bracketed) [host, port] = [bracketed[1], bracketed[2] !== undefined ? Number(bracketed[2]) : undefined];
    else if (net.isIPv6(raw)) host = raw;
    else if (withPort) [host, port] = [withPort[1], Number(withPort[2])];
    else if (/^[^:\s[\]]+$/.test(raw)) host = raw;
    if (!host || (port !== undefined && (port < 1 || port > 65535))) {
      throw new Error(`${HTTP_ALLOW_ENV} / --allow-http-host entry ${JSON.stringify(raw)} is not host or host:port (e.g. 127.0.0.1:9000, internal.example, [::1]:8080)`);
    }
    out.push({ host: host.toLowerCase(), port });
  }
  return out;
}

/** The allow-list in effect now (read at each request, so an operator or a test can set it). */
export function currentAllowList(): AllowedHost[] {
  return parseAllowList(process.env[HTTP_ALLOW_ENV]);
}

const internal = new net.BlockList();
for (const [net4, bits] of [
  ['0.0.0.0', 8], // "this network"
  ['10.0.0.0', 8],
  ['100.64.0.0', 10], // carrier-grade NAT
  ['127.0.0.0', 8],
  ['169.254.0.0', 16], // link-local, cloud metadata (169.254.169.254)
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
] as const) internal.addSubnet(net4, bits, 'ipv4');
for (const [net6, bits] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['ff00::', 8], // multicast
  ['64:ff9b::', 96], // NAT64 of any IPv4 address, internal ones included
] as const) internal.addSubnet(net6, bits, 'ipv6');

/** True for loopback, private, link-local, multicast and other non-public addresses. */
export function isInternalAddress(address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return isInternalAddress(mapped[1]!);
  const family = net.isIPv4(address) ? 'ipv4' : net.isIPv6(address) ? 'ipv6' : null;
  if (!family) return true; // not an address at all: refuse rather than guess
  return internal.check(address, family);
}

function explicitlyAllowed(host: string, port: number, allow: readonly AllowedHost[]): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return allow.some((a) => a.host === h && (a.port === undefined || a.port === port));
}

export class HttpPolicyError extends Error {}

const hint = (what: string) =>
  `${what} is an internal address; the http executor reaches loopback, private and link-local addresses only for hosts the operator allows (--allow-http-host HOST[:PORT] or ${HTTP_ALLOW_ENV}=HOST[:PORT],...)`;

export interface Checked {
  /** Pass as the request's `lookup`: refuses internal addresses at connect time. */
  lookup?: net.LookupFunction;
}

/**
 * Check a URL before connecting. Throws HttpPolicyError for a refused IP literal or scheme;
 * for a name, returns a lookup that refuses internal addresses when the socket resolves it.
 */
export function checkHttpTarget(url: URL, allow: readonly AllowedHost[] = currentAllowList()): Checked {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new HttpPolicyError(`url scheme ${url.protocol} refused: http: or https: only`);
  const port = url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (explicitlyAllowed(host, port, allow)) return {};
  if (net.isIP(host)) {
    if (isInternalAddress(host)) throw new HttpPolicyError(hint(host));
    return {};
  }
  const lookup = ((hostname: string, options: dns.LookupOptions, callback: (err: NodeJS.ErrnoException | null, address: string | dns.LookupAddress[], family?: number) => void) => {
    dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, '', 0);
      const list = addresses as dns.LookupAddress[];
      const bad = list.find((a) => isInternalAddress(a.address));
      if (bad) return callback(Object.assign(new HttpPolicyError(hint(`${hostname} (${bad.address})`)), { code: 'EACCES' }), '', 0);
      if (options.all) return callback(null, list);
      const first = list[0];
      if (!first) return callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), '', 0);
      callback(null, first.address, first.family);
    });
  }) as unknown as net.LookupFunction;
  return { lookup };
}
