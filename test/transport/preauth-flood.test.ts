// Pre-authentication exhaustion (issue 10): 1,000 half-open sockets filled every handshake
// slot, refused status probes and wrote 18 MB of identical warnings. Now one source holds at
// most maxPendingHandshakesPerSource slots, idle handshakes expire, and refusals and expiries
// are logged once per window with a count.

import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { LogLimiter } from '../../src/transport/log-limit.js';
import { TcpClient } from '../../src/transport/tcp-client.js';
import { TcpTransport } from '../../src/transport/tcp-transport.js';
import { captureLog, FAST, SECRET, sleep, waitFor } from './helpers.js';

const open: Socket[] = [];
const transports: TcpTransport[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.destroy();
  for (const t of transports.splice(0)) t.close();
});

describe('pre-authentication limits', () => {
  it('a flood of half-open sockets from one source takes only its share, expires, and logs a few lines', async () => {
    const log = captureLog();
    const t = new TcpTransport({
      id: 'm1',
      secret: SECRET,
      log,
      limits: { ...FAST, handshakeTimeoutMs: 2000, maxPendingHandshakes: 64, maxPendingHandshakesPerSource: 8, logWindowMs: 60_000 },
    });
    transports.push(t);
    t.onClientRequest(async () => 'pong');
    const { port } = await t.listen();
    const N = 200;
    await Promise.all(
      Array.from({ length: N }, () => new Promise<void>((resolve) => {
        const s = connect({ host: '127.0.0.1', port }, () => resolve());
        s.on('error', () => resolve());
        open.push(s);
      })),
    );
    await waitFor(() => t.stats().refusedConnections >= N - 8, 'refusals beyond the per-source share', 10_000);
    expect(t.stats().refusedConnections).toBe(N - 8);
    // 192 refusals: one line (the rest counted), not one per socket.
    const refusals = log.lines.filter((l) => /too many connections in handshake from 127\.0\.0\.1 \(limit 8\)/.test(l.msg));
    expect(refusals).toHaveLength(1);
    // The 8 admitted ones expire at the handshake deadline: one line for all of them.
    await waitFor(() => log.lines.some((l) => /handshake not completed/.test(l.msg)), 'handshake expiry');
    await sleep(500);
    expect(log.lines.filter((l) => /handshake not completed/.test(l.msg))).toHaveLength(1);
    // Slots are free again: a real client is served.
    const c = new TcpClient({ host: '127.0.0.1', port, secret: SECRET, name: 'probe', limits: FAST, log: captureLog() });
    try {
      expect(await c.request({ kind: 'status' }, 3000)).toBe('pong');
    } finally {
      c.close();
    }
    expect(log.lines.length).toBeLessThan(10);
  });

  it('the limiter logs the first line, counts repeats, and reports the count with the next line', () => {
    const log = captureLog();
    let now = 0;
    const l = new LogLimiter(log, 1000, () => now);
    for (let i = 0; i < 50; i++) l.write('warn', 'k', { i }, 'refused');
    expect(log.lines.map((x) => x.msg)).toEqual(['refused']);
    now = 1000;
    l.write('warn', 'k', { i: 50 }, 'refused');
    expect(log.lines[1]).toMatchObject({ msg: 'refused (and 49 more like it in the previous 1000 ms)', obj: { suppressed: 49 } });
    l.write('warn', 'other', {}, 'different');
    expect(log.lines).toHaveLength(3);
  });
});
