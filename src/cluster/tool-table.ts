import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { ZodTypeAny } from 'zod';
import { registerAllTools } from '../../tools/index.js';
import type { Coordinator } from '../service/coordinator.js';

type Handler = (args: unknown, extra: unknown) => Promise<CallToolResult> | CallToolResult;

/**
 * The MCP tools as plain functions, for calls forwarded to a member: the same handlers and
 * input schemas as the MCP server, without a JSON-RPC round trip through an in-process
 * client (measured: that round trip, with the SDK's message parsing, was most of the
 * leader's CPU per call).
 */
export class ToolTable {
  private readonly tools = new Map<string, { input: ZodTypeAny | undefined; handler: Handler }>();

  constructor(coord: Coordinator) {
    const collector = {
      registerTool: (name: string, config: { inputSchema?: ZodTypeAny }, handler: Handler) => {
        this.tools.set(name, { input: config.inputSchema, handler });
      },
    };
    registerAllTools(collector as unknown as McpServer, coord);
  }

  get size(): number {
    return this.tools.size;
  }

  /**
   * `ctx` carries a forwarded call's progress channel and cancellation: a tool's progress
   * notifications go to `ctx.progress` (the caller's proxy adds its client's token back).
   */
  async call(name: string, args: Record<string, unknown>, ctx?: ForwardedCallContext): Promise<CallToolResult> {
    const t = this.tools.get(name);
    if (!t) return fail(`MCP error -32602: Tool ${name} not found; tools: ${[...this.tools.keys()].sort().join(', ')}`);
    let input: unknown = args;
    if (t.input) {
      const parsed = t.input.safeParse(args);
      if (!parsed.success) {
        const why = parsed.error.issues.map((i) => `${i.message} at ${i.path.join('.') || '(arguments)'}`).join('\n');
        return fail(`MCP error -32602: Input validation error: Invalid arguments for tool ${name}: ${why}`);
      }
      input = parsed.data;
    }
    if (!ctx) return t.handler(input, FORWARDED_EXTRA);
    const extra = {
      ...FORWARDED_EXTRA,
      signal: ctx.signal,
      // A placeholder token: the member never sees the client's, only that it asked for progress.
      _meta: ctx.progress ? { progressToken: 0 } : {},
      sendNotification: async (n: { method: string; params?: Record<string, unknown> }) => {
        if (n.method !== 'notifications/progress' || !ctx.progress || !n.params) return;
        const { progressToken: _token, ...p } = n.params;
        ctx.progress(p);
      },
    };
    return t.handler(input, extra);
  }
}

export interface ForwardedCallContext {
  signal: AbortSignal;
  /** Set when the caller asked for progress. */
  progress?: (p: Record<string, unknown>) => void;
}

/** No caller context (a call made here): tools see no progress token and never abort. */
const FORWARDED_EXTRA = { signal: new AbortController().signal, _meta: {}, requestId: 0, sendNotification: async () => undefined, sendRequest: async () => ({}) };

function fail(text: string): CallToolResult {
  return { content: [{ type: 'text', text }], isError: true };
}
