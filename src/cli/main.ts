#!/usr/bin/env node
// The CLI's entry: parse against the command table, then load only the module that runs the
// command (a restarted `concord node` must not load the MCP SDK, zod or the HTTP server).

import { envEmbedded } from '../daemon/paths.js';
import { UserError } from '../util/errors.js';
import { logger } from '../util/logger.js';
import { VERSION } from './command-table.js';
import type { CommandContext, Flags } from './context.js';
import { commandHelp, groupHelp, mainHelp } from './help.js';
import { wantsJson } from './output.js';
import { parseCommandLine } from './parse.js';

async function main(argv: string[]): Promise<number> {
  const parsed = parseCommandLine(argv);
  if (parsed.version && !parsed.spec) {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  if (parsed.help) {
    const words = argv.filter((a) => !a.startsWith('-') && a !== 'help');
    const text = parsed.spec ? commandHelp(parsed.spec) : words[0] ? groupHelp(words[0]) : mainHelp();
    process.stdout.write(`${text ?? mainHelp()}\n`);
    return 0;
  }
  // Bare `concord`: help on a terminal, else the MCP server an MCP client started.
  const spec = parsed.implicit && process.stdin.isTTY ? undefined : parsed.spec;
  if (!spec) {
    process.stdout.write(`${mainHelp()}\n`);
    return 0;
  }
  const flags = parsed.flags;
  await allowHttpHosts(flags);
  const ctx: CommandContext = {
    spec,
    flags,
    positionals: parsed.positionals,
    embedded: flags.embedded === true || envEmbedded(),
    dataDir: typeof flags.data_dir === 'string' ? flags.data_dir : undefined,
    json: wantsJson(flags),
  };
  const mod = spec.handler ? await spec.handler() : await import('./tool-command.js').then((m) => ({ run: m.runTool }));
  return mod.run(ctx);
}

/** The variable http-policy.ts reads (the type fails to check if the two names ever differ). */
const HTTP_ALLOW_ENV: typeof import('../swarm/http-policy.js').HTTP_ALLOW_ENV = 'CONCORD_HTTP_ALLOW';

/**
 * --allow-http-host HOST[:PORT],... joins CONCORD_HTTP_ALLOW: hosts the http executor may reach
 * even at loopback, private or link-local addresses (it refuses those otherwise). Checked now
 * so a typo fails at start, not in every task. The policy module (node:dns) is loaded only when
 * there is a list to check: a restarted member does not need it to rejoin.
 */
async function allowHttpHosts(flags: Flags): Promise<void> {
  const v = flags.allow_http_host;
  if (typeof v === 'string') process.env[HTTP_ALLOW_ENV] = [process.env[HTTP_ALLOW_ENV], v].filter(Boolean).join(',');
  if (!process.env[HTTP_ALLOW_ENV]) return;
  const { parseAllowList } = await import('../swarm/http-policy.js');
  try {
    parseAllowList(process.env[HTTP_ALLOW_ENV]);
  } catch (e) {
    throw new UserError('invalid_argument', (e as Error).message, 'allow_http_host');
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    // -1: a server keeps running until stdin closes or a signal arrives.
    if (code >= 0) process.exit(code);
  },
  (e: unknown) => {
    if (e instanceof UserError) process.stderr.write(`error: ${e.message}\n`);
    else {
      logger.error({ err: (e as Error).stack }, 'fatal');
      process.stderr.write(`fatal: ${(e as Error).message}\n`);
    }
    process.exit(e instanceof UserError ? 2 : 1);
  },
);
