import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { UserError } from '../src/util/errors.js';
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

/**
 * A tool's input schema: unknown argument names are refused (naming them) instead of being
 * silently dropped, as the advertised JSON Schema (additionalProperties: false) says.
 * A typo such as "capabilites" would otherwise be ignored without a word.
 */
export function input<T extends z.ZodRawShape>(shape: T) {
  return z.object(shape).strict();
}

/**
 * A tool's output schema: the listed fields typed, further fields allowed. A plain shape
 * becomes JSON Schema with additionalProperties: false, and clients that validate
 * structuredContent (the SDK Client does after tools/list) would reject our extra fields.
 */
export function output<T extends z.ZodRawShape>(shape: T) {
  return z.object(shape).passthrough();
}

/** Error messages that name the field, the value received and what is accepted. */
export function installZodErrorMessages(): void {
  z.setErrorMap((issue, ctx) => {
    if (issue.code === z.ZodIssueCode.unrecognized_keys) {
      const data = (ctx.data ?? {}) as Record<string, unknown>;
      const named = issue.keys.map((k) => `${[...issue.path, k].join('.')}=${short(data[k])}`).join(', ');
      return { message: `${named}: unknown argument${issue.keys.length > 1 ? 's' : ''} (not in this tool's input schema)` };
    }
    const field = issue.path.join('.') || '(arguments)';
    return { message: `${field}=${short(ctx.data)}: ${ctx.defaultError}` };
  });
}

function short(data: unknown): string {
  let value: string;
  try {
    value = data === undefined ? 'missing' : JSON.stringify(data);
  } catch {
    value = String(data);
  }
  return value && value.length > 120 ? `${value.slice(0, 117)}...` : value;
}
