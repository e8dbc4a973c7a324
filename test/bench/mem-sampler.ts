// Memory of the bench process over time, broken down: the V8 heap (used / committed), memory
// V8 tracks outside its heap (external, of which ArrayBuffers: typed-array task columns,
// Buffers), and the rest of the RSS ("native": SQLite page caches and malloc, Node and libuv
// internals, code). process.memoryUsage() every interval; at a new RSS peak also the kernel's
// split of the RSS into anonymous and file-backed pages (/proc/self/status, Linux only).

import fs from 'node:fs';
import { round } from './stats.js';

export interface MemSample {
  /** Seconds since the sampler started. */
  t_s: number;
  rss_mib: number;
  heap_used_mib: number;
  heap_total_mib: number;
  external_mib: number;
  array_buffers_mib: number;
  /** rss - heapTotal - external: memory neither V8 heap nor V8-tracked external. */
  native_mib: number;
  /** What the caller was doing (e.g. tasks completed), if it said. */
  note?: string;
}

export interface MemReport {
  peak: MemSample & { rss_anon_mib?: number; rss_file_mib?: number };
  /** One sample every timelineS seconds (plus the peak's neighbourhood is in `peak`). */
  timeline: MemSample[];
}

const mib = (b: number): number => round(b / (1 << 20), 1);

function procStatus(): { rss_anon_mib?: number; rss_file_mib?: number } {
  try {
    const s = fs.readFileSync('/proc/self/status', 'utf8');
    const kb = (k: string): number | undefined => {
      const m = new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s);
      return m ? round(Number(m[1]) / 1024, 1) : undefined;
    };
    return { rss_anon_mib: kb('RssAnon'), rss_file_mib: kb('RssFile') };
  } catch {
    return {};
  }
}

/** Samples every intervalMs until stop(); `note` is asked for a label at each timeline point. */
export function memSampler(opts: { intervalMs?: number; timelineS?: number; note?: () => string; rssOnly?: boolean } = {}): { stop: () => MemReport } {
  const intervalMs = opts.intervalMs ?? 50;
  const timelineS = opts.timelineS ?? 5;
  const t0 = Date.now();
  const timeline: MemSample[] = [];
  let peak: MemReport['peak'] | null = null;
  let nextTimeline = 0;
  const sample = (): void => {
    // rssOnly: the cheap call alone (the idle scenario measures the process's own CPU).
    const m = opts.rssOnly ? { rss: process.memoryUsage.rss(), heapUsed: Number.NaN, heapTotal: Number.NaN, external: Number.NaN, arrayBuffers: Number.NaN } : process.memoryUsage();
    const t = (Date.now() - t0) / 1000;
    const s: MemSample = {
      t_s: round(t, 1),
      rss_mib: mib(m.rss),
      heap_used_mib: mib(m.heapUsed),
      heap_total_mib: mib(m.heapTotal),
      external_mib: mib(m.external),
      array_buffers_mib: mib(m.arrayBuffers),
      native_mib: mib(m.rss - m.heapTotal - m.external),
    };
    if (peak === null || s.rss_mib > peak.rss_mib) peak = { ...s, ...(opts.note ? { note: opts.note() } : {}), ...(opts.rssOnly ? {} : procStatus()) };
    if (t >= nextTimeline) {
      timeline.push(opts.note ? { ...s, note: opts.note() } : s);
      nextTimeline += timelineS;
    }
  };
  sample();
  // Unref'd: a run that throws before stop() must still let the process exit (a sampler
  // left running held the scale bench open after a failed 1M crash run).
  const timer = setInterval(sample, intervalMs).unref();
  return {
    stop: () => {
      clearInterval(timer);
      sample();
      return { peak: peak as MemReport['peak'], timeline };
    },
  };
}
