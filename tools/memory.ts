import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import type { Coordinator } from '../src/service/coordinator.js';
import { memoryDelete, memoryList, memoryRetrieve, memoryStore } from '../src/service/memory.js';
import { input, output, run, swarmArg } from './result.js';

const ns = z.string().min(1).max(128).optional().describe('Namespace; default "default"');
const consistency = z.enum(['linearizable', 'local']).optional().describe('linearizable (default, ReadIndex round) or local (possibly stale, faster)');

export function registerMemoryTools(server: McpServer, coord: Coordinator): void {
  server.registerTool(
    'memory_store',
    {
      title: 'Store in replicated memory',
      description: 'Write a JSON value under a key through the Raft log; durable on a majority before it returns. Optional ttl_s (expiry decided through the log) and if_version (compare-and-set; 0 = must not exist).',
      inputSchema: input({
        swarm: swarmArg,
        key: z.string().min(1).max(512).describe('Key, e.g. "coordination/raft/commit-index" (<= 512 bytes). System keys (read-only): coordination/raft/election-history, coordination/raft/log-state'),
        value: z
          .unknown()
          // z.unknown() alone accepts a missing field: a write without a value is a mistake.
          .refine((v) => v !== undefined, { message: 'value=missing: Required; give any JSON value (null included)' })
          .describe('Any JSON value (<= 1 MiB). A string that parses as JSON is stored parsed.'),
        namespace: ns,
        ttl_s: z.number().int().min(1).max(31_536_000).optional().describe('Expire after this many seconds'),
        if_version: z.number().int().min(0).optional().describe('Only write if the current version equals this (0 = key absent)'),
      }),
      outputSchema: output({ stored: z.boolean(), key: z.string(), version: z.number() }),
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
    },
    (a) => run(() => memoryStore(coord.swarm(a.swarm), { ...a, value: parseMaybeJson(a.value) })),
  );

  server.registerTool(
    'memory_retrieve',
    {
      title: 'Retrieve from replicated memory',
      description: 'Read a key. Linearizable by default: the leader confirms leadership with a heartbeat round before answering.',
      inputSchema: input({ swarm: swarmArg, key: z.string().min(1).max(512).describe('Key to read'), namespace: ns, consistency }),
      outputSchema: output({ found: z.boolean(), key: z.string(), value: z.unknown(), version: z.number() }),
      annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    },
    (a) => run(() => memoryRetrieve(coord.swarm(a.swarm), a)),
  );

  server.registerTool(
    'memory_list',
    {
      title: 'List memory keys',
      description: 'Keys under a prefix, sorted, with versions and expiry.',
      inputSchema: input({
        swarm: swarmArg,
        prefix: z.string().max(512).optional().describe('Key prefix, e.g. "coordination/raft/"'),
        namespace: ns,
        limit: z.number().int().min(1).max(10_000).optional().describe('Max keys (default 100)'),
        consistency,
      }),
      outputSchema: output({ keys: z.array(z.record(z.string(), z.unknown())), truncated: z.boolean() }),
      annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    },
    (a) => run(() => memoryList(coord.swarm(a.swarm), a)),
  );

  server.registerTool(
    'memory_delete',
    {
      title: 'Delete from replicated memory',
      description: 'Delete a key through the log. Optional if_version makes it conditional.',
      inputSchema: input({ swarm: swarmArg, key: z.string().min(1).max(512).describe('Key to delete'), namespace: ns, if_version: z.number().int().min(1).optional().describe('Only delete at this version') }),
      outputSchema: output({ key: z.string(), deleted: z.boolean() }),
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
    },
    (a) => run(() => memoryDelete(coord.swarm(a.swarm), a)),
  );
}

/** CLI users pass --value '{"a":1}': store the object, not the string. */
export function parseMaybeJson(v: unknown): unknown {
  if (typeof v !== 'string') return v;
  // Only text that can be JSON: a thrown SyntaxError per plain string was measurable CPU.
  if (!/^\s*([[{"\-0-9]|true|false|null)/.test(v)) return v;
  try {
    return JSON.parse(v);
  } catch {
    return v;
  }
}
