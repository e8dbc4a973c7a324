// A TCP relay in front of a member for tests: its peers dial the relay (the member's address
// in --peers, or setPeer) and it forwards to the member's real port. The test can slow the
// direction from the dialer to the member (so a transfer is observable while it runs), cut
// every connection at once, or cut after an exact byte count (mid-frame: a dropped link).

import net from 'node:net';

export class TcpProxy {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  /** Bytes per second from dialer to member; null: unthrottled. */
  rateBytesPerS: number | null = null;
  /** Bytes relayed from dialers to the member, and connections cut, since start. */
  bytesIn = 0;
  cuts = 0;
  /** Once this many bytes went from dialers to the member, forward no more and cut (once). */
  cutAfterBytes: number | null = null;

  constructor(private readonly target: { host: string; port: number }) {
    this.server = net.createServer((a) => this.relay(a));
  }

  /** The port it listens on (after listen). */
  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  /** Listen on 127.0.0.1:port (0: any free port). */
  listen(port = 0): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => resolve());
    });
  }

  /** Destroy every open connection (both sides see it end, as when a link drops). */
  cutAll(): void {
    this.cuts++;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private relay(a: net.Socket): void {
    const b = net.connect(this.target.port, this.target.host);
    for (const s of [a, b]) {
      this.sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => {
        this.sockets.delete(s);
        a.destroy();
        b.destroy();
      });
    }
    b.pipe(a);
    a.on('data', (chunk: Buffer) => {
      const cutAt = this.cutAfterBytes;
      if (cutAt !== null && this.bytesIn + chunk.length >= cutAt) {
        this.cutAfterBytes = null;
        const head = chunk.subarray(0, cutAt - this.bytesIn);
        this.bytesIn += head.length;
        // The bytes before the cut reach the member, then both ends see the link drop.
        b.write(head, () => this.cutAll());
        a.pause();
        return;
      }
      this.bytesIn += chunk.length;
      const rate = this.rateBytesPerS;
      if (rate === null) {
        if (!b.write(chunk)) {
          a.pause();
          b.once('drain', () => a.resume());
        }
        return;
      }
      // Hold the dialer until this chunk's share of the rate has passed.
      a.pause();
      setTimeout(() => {
        if (b.destroyed) return;
        b.write(chunk);
        a.resume();
      }, (chunk.length / rate) * 1000);
    });
  }
}
