// Certificates made at test time with openssl (no private key is checked in): a CA, leaf
// certificates it issues (CN = member id or client:<name>), a second CA nobody trusts, and
// leaves that have expired or are not valid yet.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadTls, type TlsMaterial } from '../../src/transport/tls.js';

const OPENSSL = fs.existsSync('/usr/bin/openssl') ? '/usr/bin/openssl' : 'openssl';
const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

function openssl(args: string[], cwd: string): void {
  execFileSync(OPENSSL, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

export interface LeafFiles {
  cert: string;
  key: string;
  ca: string;
}

export class TestPki {
  readonly dir: string;
  private n = 0;

  constructor(dir = fs.mkdtempSync(path.join(os.tmpdir(), 'concord-pki-'))) {
    this.dir = dir;
    this.makeCa('ca');
    this.makeCa('wrong-ca');
  }

  /** The trusted CA's certificate file. */
  get ca(): string {
    return path.join(this.dir, 'ca.crt');
  }

  private makeCa(name: string): void {
    openssl(['req', '-x509', ...EC, '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=concord test ${name}`], this.dir);
    fs.chmodSync(path.join(this.dir, `${name}.key`), 0o600);
  }

  /**
   * A leaf certificate with Subject CN `cn`, issued by the trusted CA (or `issuer: 'wrong-ca'`);
   * `days: -1` makes one that has already expired, `notYetValid` one valid only in 5 years.
   * Files are named after a counter.
   */
  leaf(cn: string, o: { issuer?: 'ca' | 'wrong-ca'; days?: number; notYetValid?: boolean } = {}): LeafFiles {
    const base = `leaf${++this.n}`;
    const issuer = o.issuer ?? 'ca';
    openssl(['req', ...EC, '-keyout', `${base}.key`, '-out', `${base}.csr`, '-subj', `/CN=${cn}`], this.dir);
    if (o.notYetValid) {
      // `openssl x509 -req` cannot set a start date; `openssl ca` can (it wants a small database).
      const db = path.join(this.dir, `${base}-ca`);
      fs.mkdirSync(db);
      fs.writeFileSync(path.join(db, 'index.txt'), '');
      fs.writeFileSync(path.join(db, 'serial'), `${(1000 + this.n).toString(16).padStart(4, '0')}\n`);
      fs.writeFileSync(path.join(db, 'ca.cnf'), '[ca]\ndefault_ca = t\n[t]\ndatabase = index.txt\nserial = serial\nnew_certs_dir = .\ndefault_md = sha256\npolicy = any\nunique_subject = no\n[any]\ncommonName = supplied\n');
      const year = new Date().getUTCFullYear() + 5;
      openssl(['ca', '-batch', '-config', 'ca.cnf', '-cert', `../${issuer}.crt`, '-keyfile', `../${issuer}.key`, '-in', `../${base}.csr`, '-out', `../${base}.crt`, '-startdate', `${year}0101000000Z`, '-enddate', `${year}0201000000Z`, '-notext'], db);
    } else {
      openssl(['x509', '-req', '-in', `${base}.csr`, '-CA', `${issuer}.crt`, '-CAkey', `${issuer}.key`, '-set_serial', String(1000 + this.n), '-out', `${base}.crt`, '-days', String(o.days ?? 2)], this.dir);
    }
    fs.chmodSync(path.join(this.dir, `${base}.key`), 0o600);
    return { cert: path.join(this.dir, `${base}.crt`), key: path.join(this.dir, `${base}.key`), ca: this.ca };
  }

  /** Loaded material, skipping loadTls's own checks (to present certificates it would refuse). */
  raw(files: LeafFiles, name: string): TlsMaterial {
    return { cert: fs.readFileSync(files.cert), key: fs.readFileSync(files.key), ca: fs.readFileSync(files.ca), name };
  }

  /** Loaded and checked as `concord node` / a client would. */
  material(cn: string): TlsMaterial {
    return loadTls(this.leaf(cn))!;
  }

  remove(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
