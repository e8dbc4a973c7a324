import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { UserError } from '../src/service/errors.js';
import { logger } from '../src/util/logger.js';

/** structuredContent plus its JSON text mirror, for clients that read only text. */
export function ok(structured: Record<string, unknown>): CallToolResult {
  return { content: [{ type: 'text', text: JSON.stringify(structured, null, 2) }], structuredContent: structured };
}

export function fail(message: string): CallToolResult {
  return { content: [{ type: 'text', text: message }], isError: true };
}

/** Run a tool body; user errors become isError results, the server keeps serving. */
export async function run(fn: () => Promise<Record<string, unknown>> | Record<string, unknown>): Promise<CallToolResult> {
  try {
    return ok(await fn());
  } catch (e) {
    if (e instanceof UserError) return fail(`${e.code}: ${e.message}`);
    logger.error({ err: (e as Error).stack }, 'tool failed');
    return fail(`internal error: ${(e as Error).message}`);
  }
}

/** Every tool that acts on a swarm takes this optional field. */
export const swarmArg = z
  .string()
  .min(1)
  .max(64)
  .optional()
  .describe('Swarm (Raft group) name; defaults to "default", created on first use');

/** Loose output shape: the main fields typed, the rest passed through. */
export const anyObject = z.record(z.string(), z.unknown());

/** Error messages that name the field, the value received and what is accepted. */
export function installZodErrorMessages(): void {
  z.setErrorMap((issue, ctx) => {
    const field = issue.path.join('.') || '(arguments)';
    let value: string;
    try {
      value = ctx.data === undefined ? 'missing' : JSON.stringify(ctx.data);
    } catch {
      value = String(ctx.data);
    }
    if (value && value.length > 120) value = `${value.slice(0, 117)}...`;
    return { message: `${field}=${value}: ${ctx.defaultError}` };
  });
}
