import type http from 'node:http';
import type { Coordinator } from '../../service/coordinator.js';
import { logger } from '../../util/logger.js';
import { allSwarmViews } from './snapshot.js';

/** Snapshots are computed this often while a page watches, and sent only when they changed. */
export const SNAPSHOT_INTERVAL_MS = 400;
/** One throughput point per this many ms; the chart keeps THROUGHPUT_POINTS of them. */
const THROUGHPUT_STEP_MS = 1_000;
const THROUGHPUT_POINTS = 180;
/** An SSE comment this often keeps proxies and idle timers from closing a quiet stream. */
const KEEPALIVE_MS = 15_000;

interface Series {
  /** Unix seconds of each point. */
  t: number[];
  /** Tasks finished (completed + failed) per second over the step before each point. */
  per_s: number[];
  last: { at_ms: number; finished: number } | null;
}

/**
 * The one live stream: while at least one page is connected, aggregate every swarm on the
 * server and push a compact JSON snapshot over server-sent events when it changed (at most
 * 1000 / SNAPSHOT_INTERVAL_MS per second, sooner after a leader change). With no page
 * connected nothing runs.
 */
export class DashboardHub {
  private readonly clients = new Set<http.ServerResponse>();
  private readonly series = new Map<string, Series>();
  private timer: NodeJS.Timeout | null = null;
  private keepalive: NodeJS.Timeout | null = null;
  private lastSent = '';
  private lastStep_ms = 0;

  constructor(private readonly coord: Coordinator) {}

  /** Connected pages (the daemon counts them as attached clients for its idle timer). */
  count(): number {
    return this.clients.size;
  }

  attach(req: http.IncomingMessage, res: http.ServerResponse): void {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    res.write('retry: 1000\n\n');
    this.clients.add(res);
    req.socket.setNoDelay(true);
    const drop = () => {
      this.clients.delete(res);
      if (this.clients.size === 0) this.stop();
    };
    res.once('close', drop);
    this.start();
    // A new page gets the current state at once, whatever the others last saw.
    const snap = this.safeSnapshot();
    if (snap !== null) res.write(`data: ${snap}\n\n`);
  }

  /** Push soon (an action or a role change), not waiting for the next tick. */
  poke(): void {
    if (this.clients.size > 0) setImmediate(() => this.tick());
  }

  close(): void {
    for (const c of this.clients) c.end();
    this.clients.clear();
    this.stop();
  }

  private start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), SNAPSHOT_INTERVAL_MS);
    this.keepalive = setInterval(() => {
      for (const c of this.clients) c.write(': keepalive\n\n');
    }, KEEPALIVE_MS);
    this.timer.unref();
    this.keepalive.unref();
  }

  private stop(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.keepalive) clearInterval(this.keepalive);
    this.timer = this.keepalive = null;
    this.lastSent = '';
    // A rate across the unwatched gap would be drawn as if it were one step's.
    this.series.clear();
  }

  private tick(): void {
    if (this.clients.size === 0) return;
    const snap = this.safeSnapshot();
    if (snap === null || snap === this.lastSent) return;
    this.lastSent = snap;
    for (const c of this.clients) c.write(`data: ${snap}\n\n`);
  }

  /** A snapshot, or null (logged) when building it failed: the next tick tries again. */
  private safeSnapshot(): string | null {
    try {
      return this.snapshot();
    } catch (e) {
      logger.warn({ err: (e as Error).message }, 'dashboard snapshot failed');
      return null;
    }
  }

  private snapshot(): string {
    const now = Date.now();
    const swarms = allSwarmViews(this.coord);
    const step = now - this.lastStep_ms >= THROUGHPUT_STEP_MS;
    if (step) this.lastStep_ms = now;
    const throughput: Record<string, { t: number[]; per_s: number[] }> = {};
    for (const s of swarms) {
      if (!('orchestrations' in s)) continue;
      let ser = this.series.get(s.name);
      if (!ser) this.series.set(s.name, (ser = { t: [], per_s: [], last: null }));
      const finished = s.orchestrations.totals.completed + s.orchestrations.totals.failed;
      if (step) {
        // A rate from two measured counts and the wall time between them; the first sample
        // only sets the baseline.
        if (ser.last && finished >= ser.last.finished) {
          ser.t.push(Math.round(now / 1000));
          ser.per_s.push(Math.round(((finished - ser.last.finished) * 1000) / (now - ser.last.at_ms)));
          if (ser.t.length > THROUGHPUT_POINTS) {
            ser.t.shift();
            ser.per_s.shift();
          }
        }
        ser.last = { at_ms: now, finished };
      }
      throughput[s.name] = { t: ser.t, per_s: ser.per_s };
    }
    for (const name of this.series.keys()) if (!(name in throughput)) this.series.delete(name);
    return JSON.stringify({ swarms, throughput });
  }
}
