import v8 from 'node:v8';
import { UserError } from './errors.js';

/**
 * V8 flags a cluster member process sets once its member has started. A lower interrupt budget
 * makes V8 optimize hot functions after about an eighth of the bytecode it executes by
 * default (67,584 bytes in Node 20), so a member reaches its steady-state CPU per write sooner
 * after a start. Measured (test/bench/ab-write.ts, one build with and without, 5 members each,
 * 1 write in flight, rotating 3 s rounds, 2026-12-01): faster in 7 of 8, 9 of 12 and 8 of 10
 * rounds, medians +17 %, +5 % and +8 % writes/s; 2,048 was no better than 8,192.
 */
export const MEMBER_V8_FLAGS = '--interrupt-budget=8192';

/** Flags V8 takes at run time that this knob accepts: numeric tiering settings only. */
const FLAG = /^--(interrupt-budget|invocation-count-for-turbofan|invocation-count-for-maglev)=\d{1,9}$/;

/**
 * The flags to set: CONCORD_MEMBER_V8_FLAGS when set ('' sets none, for A/B runs), else
 * MEMBER_V8_FLAGS. Throws a UserError naming the variable and what it accepts.
 */
export function memberV8Flags(env: NodeJS.ProcessEnv = process.env): string[] {
  const v = env.CONCORD_MEMBER_V8_FLAGS;
  const spec = v === undefined ? MEMBER_V8_FLAGS : v;
  const flags = spec.split(/\s+/).filter((f) => f !== '');
  for (const f of flags) {
    if (!FLAG.test(f)) {
      throw new UserError('invalid_argument', `CONCORD_MEMBER_V8_FLAGS=${JSON.stringify(v)}: ${JSON.stringify(f)} is not accepted; accepted: space-separated --interrupt-budget=N, --invocation-count-for-turbofan=N or --invocation-count-for-maglev=N ('' sets none; default ${MEMBER_V8_FLAGS})`);
    }
  }
  return flags;
}

/** Sets the member's V8 flags (memberV8Flags' result). */
export function applyMemberV8Flags(flags: readonly string[]): void {
  for (const f of flags) v8.setFlagsFromString(f);
}
