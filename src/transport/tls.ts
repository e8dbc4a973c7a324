// Mutual TLS for cluster mode (optional; the HMAC handshake of auth.ts runs inside it either
// way). Every connection is TLS 1.3, and both ends verify the other's certificate against the
// configured CA. A certificate's Subject CN is its identity:
// - a member's certificate names its member id (CN=raft-agent-1), exactly as in --peers;
// - a client's certificate names a client (CN=client:<name>).
// Hostnames are not matched against the certificate: members are dialled at whatever address
// --peers or --cluster gives (an IP, a NAT address, loopback), and what must be verified is
// which member answers, not which address. So the dialling side's checkServerIdentity accepts
// only a member certificate (never a client's), the one of the member it dialled when it knows
// it (a member's peer links), and SecureConn then binds the CN to the id proven in the HMAC
// handshake, on both ends. A member id therefore needs both its member key (from the cluster
// secret) and a certificate naming it: a client certificate cannot speak Raft, and one
// member's certificate cannot act as another member.
//
// node:tls is loaded on first use: a member or client without TLS never loads it.

import { X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import type { ConnectionOptions, PeerCertificate, Server as TlsServer, TLSSocket } from 'node:tls';
import { CLIENT_PREFIX, MEMBER_REQUEST_PREFIX } from './auth.js';

export const TLS_VERSION = 'TLSv1.3';
/** The first byte of every TLS record that opens a connection (a handshake record). */
export const TLS_HANDSHAKE_RECORD = 0x16;

const requireBuiltin = createRequire(import.meta.url);
let tlsModule: typeof import('node:tls') | undefined;
const tlsLib = (): typeof import('node:tls') => (tlsModule ??= requireBuiltin('node:tls') as typeof import('node:tls'));

/** PEM contents of the three files, and the name (CN) this process's certificate carries. */
export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
  /** CN of `cert`: this process's identity towards peers. */
  name: string;
}

export interface TlsFiles {
  cert?: string;
  key?: string;
  ca?: string;
}

/** Which TLS file a problem is about (the CLI names the flag). */
export class TlsConfigError extends Error {
  constructor(
    readonly field: 'cert' | 'key' | 'ca',
    message: string,
  ) {
    super(message);
  }
}

/** The single Subject CN of a certificate's subject text ("CN=x\nO=y"), or null. */
function subjectCn(subject: string): string | null {
  const cns = subject
    .split('\n')
    .filter((l) => l.startsWith('CN='))
    .map((l) => l.slice(3));
  return cns.length === 1 ? cns[0]! : null;
}

/** CN of a peer certificate (as node:tls reports it), or null when absent or repeated. */
export function certCn(cert: PeerCertificate | null | undefined): string | null {
  const cn = cert?.subject?.CN as unknown;
  return typeof cn === 'string' && cn.length > 0 ? cn : null;
}

/** The verified peer certificate's CN of a TLS socket; undefined for a plaintext socket. */
export function peerCertName(socket: Socket): string | null | undefined {
  const s = socket as Partial<TLSSocket>;
  if (s.encrypted !== true || typeof s.getPeerCertificate !== 'function') return undefined;
  return certCn(s.getPeerCertificate());
}

/** A CN that may stand for a member (clients' certificates are named client:<name>). */
export const isMemberCertName = (cn: string | null): cn is string => cn !== null && !cn.startsWith(CLIENT_PREFIX) && !cn.startsWith(MEMBER_REQUEST_PREFIX);

/**
 * Why a connection claiming `claimedId` (HMAC identity: a member id, member:<id> or
 * client:<name>) may not use a certificate named `cn`, or null when it may.
 */
export function certMismatch(claimedId: string, cn: string | null): string | null {
  if (claimedId.startsWith(CLIENT_PREFIX)) {
    return cn !== null && cn.startsWith(CLIENT_PREFIX) ? null : `a client must present a client certificate (CN=${CLIENT_PREFIX}<name>), not CN=${cn ?? '(none)'}`;
  }
  const id = claimedId.startsWith(MEMBER_REQUEST_PREFIX) ? claimedId.slice(MEMBER_REQUEST_PREFIX.length) : claimedId;
  return cn === id ? null : `member ${id} must present a certificate with CN=${id}, not CN=${cn ?? '(none)'}`;
}

function readPem(field: 'cert' | 'key' | 'ca', file: string): Buffer {
  let b: Buffer;
  try {
    b = readFileSync(file);
  } catch (e) {
    throw new TlsConfigError(field, `--${field} file ${file} cannot be read: ${(e as Error).message}`);
  }
  if (!b.includes('-----BEGIN ')) throw new TlsConfigError(field, `--${field} file ${file} is not PEM (no -----BEGIN line)`);
  return b;
}

/**
 * Load and check --cert, --key and --ca (all three, or none: undefined). Refused here rather
 * than at the first connection: a private key readable by group or others, a key that does not
 * match the certificate, a certificate the CA did not issue or one outside its validity period.
 */
export function loadTls(files: TlsFiles): TlsMaterial | undefined {
  const given = (['cert', 'key', 'ca'] as const).filter((f) => files[f] !== undefined);
  if (given.length === 0) return undefined;
  const missing = (['cert', 'key', 'ca'] as const).find((f) => files[f] === undefined)!;
  if (given.length < 3) throw new TlsConfigError(missing, `--${missing} is missing: TLS needs --cert, --key and --ca together (got ${given.map((f) => `--${f}`).join(', ')})`);
  const cert = readPem('cert', files.cert!);
  const key = readPem('key', files.key!);
  const ca = readPem('ca', files.ca!);
  if (process.platform !== 'win32') {
    const mode = statSync(files.key!).mode & 0o777;
    if ((mode & 0o077) !== 0) throw new TlsConfigError('key', `--key ${files.key} has mode ${mode.toString(8).padStart(4, '0')}: group and others must have no access (chmod 600 ${files.key})`);
  }
  let x509: X509Certificate;
  let caX509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (e) {
    throw new TlsConfigError('cert', `--cert ${files.cert} is not a certificate: ${(e as Error).message}`);
  }
  try {
    caX509 = new X509Certificate(ca);
  } catch (e) {
    throw new TlsConfigError('ca', `--ca ${files.ca} is not a certificate: ${(e as Error).message}`);
  }
  try {
    tlsLib().createSecureContext({ cert, key, ca });
  } catch (e) {
    throw new TlsConfigError('key', `--key ${files.key} does not go with --cert ${files.cert}: ${(e as Error).message}`);
  }
  if (!x509.checkIssued(caX509) || !x509.verify(caX509.publicKey)) {
    throw new TlsConfigError('cert', `--cert ${files.cert} (${x509.subject.replace(/\n/g, ', ')}) was not issued by --ca ${files.ca} (${caX509.subject.replace(/\n/g, ', ')}): peers would refuse it`);
  }
  const now = Date.now();
  if (now < Date.parse(x509.validFrom) || now > Date.parse(x509.validTo)) {
    throw new TlsConfigError('cert', `--cert ${files.cert} is valid from ${x509.validFrom} to ${x509.validTo}, not now: peers would refuse it`);
  }
  const name = subjectCn(x509.subject);
  if (name === null) throw new TlsConfigError('cert', `--cert ${files.cert} must have exactly one Subject CN (the member id, or client:<name> for a client)`);
  return { cert, key, ca, name };
}

const base = (m: TlsMaterial) => ({ cert: m.cert, key: m.key, ca: m.ca, minVersion: TLS_VERSION, maxVersion: TLS_VERSION }) as const;

/**
 * A TLS server that never listens: the member's TCP listener hands it sockets (after its own
 * admission limits) with server.emit('connection', socket). Every peer must present a
 * certificate the CA issued (requestCert + rejectUnauthorized); node:tls closes any other.
 */
export function tlsServer(m: TlsMaterial, handshakeTimeoutMs: number): TlsServer {
  return tlsLib().createServer({ ...base(m), requestCert: true, rejectUnauthorized: true, handshakeTimeout: handshakeTimeoutMs });
}

/**
 * Strict replacement for the hostname check (see the top of this file): the server's
 * certificate must be a member's, and `expectMember`'s when given.
 */
export function memberIdentityCheck(expectMember: string | undefined): NonNullable<ConnectionOptions['checkServerIdentity']> {
  return (host, cert) => {
    const cn = certCn(cert);
    if (!isMemberCertName(cn)) return new Error(`${host} presented CN=${cn ?? '(none)'}, not a member's certificate`);
    if (expectMember !== undefined && cn !== expectMember) return new Error(`dialled member ${expectMember} at ${host} but its certificate names ${cn}`);
    return undefined;
  };
}

/** Dial a member over TLS 1.3, checking its certificate against the CA and its identity. */
export function dialTls(m: TlsMaterial, host: string, port: number, expectMember?: string): TLSSocket {
  return tlsLib().connect({ ...base(m), host, port, rejectUnauthorized: true, checkServerIdentity: memberIdentityCheck(expectMember) });
}

/** Error codes of a connection that broke (retry elsewhere), as opposed to a refused handshake. */
const IO_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED', 'EADDRNOTAVAIL', 'ENOTFOUND', 'EAI_AGAIN']);

/** A TLS error before the connection was up: a verification or protocol failure (not a dropped connection)? */
export function isTlsRefusal(e: Error & { code?: string }): boolean {
  return !IO_CODES.has(e.code ?? '');
}
