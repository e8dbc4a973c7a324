// Rate-limited logging for what unauthenticated sources can trigger at will (refused
// connections, failed handshakes): 1,000 half-open sockets once wrote 18 MB of identical
// warnings. The first line of a kind is logged; repeats within the window are counted and the
// next line logged carries the count.

import type { TransportLog } from './conn.js';

type Level = 'warn' | 'info';

export class LogLimiter {
  private readonly state = new Map<string, { since: number; suppressed: number }>();

  constructor(
    private readonly log: TransportLog,
    private readonly windowMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Log `msg` under `key` at most once per window; returns whether it was written. */
  write(level: Level, key: string, obj: object, msg: string): boolean {
    const t = this.now();
    const s = this.state.get(key);
    if (s && t - s.since < this.windowMs) {
      s.suppressed++;
      return false;
    }
    const suppressed = s?.suppressed ?? 0;
    this.state.set(key, { since: t, suppressed: 0 });
    // Keys are a handful of kinds; forget quiet ones so the map stays small.
    if (this.state.size > 64) for (const [k, v] of this.state) if (t - v.since >= this.windowMs && v.suppressed === 0) this.state.delete(k);
    if (this.state.size > 1024) this.state.clear();
    this.log[level](suppressed > 0 ? { ...obj, suppressed, suppressed_window_ms: this.windowMs } : obj, suppressed > 0 ? `${msg} (and ${suppressed} more like it in the previous ${this.windowMs} ms)` : msg);
    return true;
  }

  /** A TransportLog whose warn and info lines are limited per `keyOf` (null: not limited; debug and error pass). */
  wrap(keyOf: (obj: object, msg: string) => string | null): TransportLog {
    const limited = (level: Level) => (o: object, m: string) => {
      const k = keyOf(o, m);
      if (k === null) this.log[level](o, m);
      else this.write(level, `${level}:${k}`, o, m);
    };
    return { debug: (o, m) => this.log.debug(o, m), error: (o, m) => this.log.error(o, m), warn: limited('warn'), info: limited('info') };
  }
}
