import { createHash, timingSafeEqual } from 'node:crypto';

/** Shortest bearer token accepted when the server listens beyond loopback. */
export const MIN_TOKEN_CHARS = 32;

/** 127.0.0.0/8, ::1 and localhost: only processes on this machine can connect. */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/**
 * The Host header values the server answers (DNS-rebinding defence: a page on evil.example
 * that re-resolves its name to 127.0.0.1 still sends `Host: evil.example`). Bound to
 * loopback: localhost / 127.0.0.1 / [::1] / the bind address, with the bound port, plus
 * `extra`. Bound beyond loopback: no check unless `extra` is given (then the bind address and
 * `extra`). Entries of `extra` without a port match any port. Null means "no check".
 */
export function allowedHosts(bindHost: string, port: number, extra: string[]): Set<string> | null {
  const bind = bindHost.includes(':') && !bindHost.startsWith('[') ? `[${bindHost}]` : bindHost;
  if (!isLoopback(bindHost) && extra.length === 0) return null;
  const names = isLoopback(bindHost) ? ['localhost', '127.0.0.1', '[::1]', bind] : [bind];
  const set = new Set(names.map((n) => `${n.toLowerCase()}:${port}`));
  for (const e of extra) set.add(e.trim().toLowerCase());
  return set;
}

export function hostAllowed(header: string | undefined, allowed: Set<string> | null): boolean {
  if (allowed === null) return true;
  if (!header) return false;
  const m = /^(\[[0-9a-f:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(header.trim().toLowerCase());
  if (!m) return false;
  const name = m[1]!;
  return allowed.has(`${name}:${m[2] ?? '80'}`) || allowed.has(name);
}

export function originAllowed(origin: string, extra: string[]): boolean {
  if (extra.includes(origin)) return true;
  try {
    return isLoopback(new URL(origin).hostname);
  } catch {
    return false;
  }
}

/** `Authorization: Bearer <token>`; the scheme name is case-insensitive (RFC 7235 / 6750). */
export function tokenMatches(header: string | undefined, token: string): boolean {
  const m = /^bearer +(\S+) *$/i.exec(header ?? '');
  // Digests: equal lengths for timingSafeEqual, and no early exit that leaks the length.
  const given = createHash('sha256').update(m ? m[1]! : '').digest();
  const want = createHash('sha256').update(token).digest();
  return m !== null && timingSafeEqual(given, want);
}
