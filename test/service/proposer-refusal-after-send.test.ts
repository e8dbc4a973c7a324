// A write whose first attempt was appended but not answered (it may still commit), then
// refused on the re-send (backlog full, disk short): the refusal must not read as "not
// applied". The Proposer says the outcome is unknown. Found by review: a leader whose disk
// filled after it had sent its appends answered disk_full while its followers committed.

import { describe, expect, it } from 'vitest';
import type { ClusterBackend } from '../../src/host/cluster-backend.js';
import { RequestTimeoutError, type NodeHost } from '../../src/host/node-host.js';
import type { Op } from '../../src/machine/types.js';
import { ProposalError } from '../../src/raft/types.js';
import { Proposer } from '../../src/swarm/proposer.js';
import { UserError } from '../../src/util/errors.js';

/** One leader whose answers are scripted: sessions register, writes follow `script` in order. */
function scripted(script: Array<() => Promise<unknown>>): ClusterBackend {
  const host = {
    id: 'n1',
    isRunning: true,
    diskFault: null,
    propose(data: string): Promise<unknown> {
      const op = (JSON.parse(data) as { op: Op }).op;
      if (op.t === 'session.register') return Promise.resolve({ index: 1, result: { ok: true, value: { session: 's1', timeout_ms: 3_600_000 } } });
      const next = script.shift();
      if (!next) throw new Error('no more scripted answers');
      return next();
    },
  } as unknown as NodeHost;
  return { mode: 'embedded', hosts: new Map([['n1', host]]), leader: () => host } as unknown as ClusterBackend;
}

const put: Op = { t: 'mem.put', key: 'k', namespace: 'default', value: 1, ttl_s: null, if_version: null };

describe('Proposer: a refusal after an attempt that was sent', () => {
  for (const code of ['backlog_full', 'invalid'] as const) {
    it(`${code} on the re-send says the outcome is unknown`, async () => {
      const p = new Proposer(
        scripted([
          () => Promise.reject(new RequestTimeoutError('proposal', 2_000)),
          () => {
            throw new ProposalError(code, `refused: ${code}`);
          },
        ]),
        'refusal-test',
      );
      const e = await p.propose(put, 5_000).then(() => null, (x: unknown) => x);
      expect(e).toBeInstanceOf(UserError);
      expect((e as UserError).message).toMatch(new RegExp(`refused: ${code} \\(an earlier attempt of this request was sent and may still commit: its outcome is unknown`));
    });
  }

  it('a refusal of a first attempt is answered as it is', async () => {
    const p = new Proposer(
      scripted([
        () => {
          throw new ProposalError('backlog_full', 'refused: backlog_full');
        },
      ]),
      'refusal-test',
    );
    const e = await p.propose(put, 5_000).then(() => null, (x: unknown) => x);
    expect(e).toMatchObject({ code: 'backlog_full', message: 'refused: backlog_full' });
  });
});
