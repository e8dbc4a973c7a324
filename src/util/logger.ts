import pino from 'pino';

/** All logs go to stderr: stdout belongs to JSON-RPC in MCP mode. */
export const logger = pino(
  { level: process.env.CONCORD_LOG_LEVEL ?? 'warn', base: { app: 'concord' } },
  pino.destination({ fd: 2, sync: true }),
);

export type Logger = typeof logger;
