// The CLI parses with node:util parseArgs against one command table: a flag the command does
// not take is refused with a "did you mean", every flag of every command line in the spec parses
// and reaches its tool as an argument, help and version come from the table.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { COMMANDS, flagsOf } from '../../src/cli/command-table.js';
import { invocationOf, toCheckedInvocation } from '../../src/cli/commands.js';
import type { CommandContext } from '../../src/cli/context.js';
import { commandHelp, mainHelp } from '../../src/cli/help.js';
import { formatHuman, wantsJson } from '../../src/cli/output.js';
import { parseCommandLine } from '../../src/cli/parse.js';
import { specCommands } from './spec-commands.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SPEC_LINES = JSON.parse(fs.readFileSync(path.join(HERE, 'spec-commands.json'), 'utf8')) as string[][];
/** Where the spec lives in the project's workspace (absent in a plain clone). */
const SPEC_FILE = process.env.CONCORD_SPEC_FILE ?? '/work/shared/seed/000_e2a7572dfe157545.txt';

function ctxOf(argv: string[]): CommandContext {
  const p = parseCommandLine(argv);
  if (!p.spec) throw new Error(`no command in ${argv.join(' ')}`);
  return { spec: p.spec, flags: p.flags, positionals: p.positionals, embedded: false, json: true };
}

function inv(line: string) {
  return invocationOf(ctxOf(line.split(' ')));
}

/** Flags of the spec that steer the CLI itself rather than fill a tool argument, and why. */
const CLI_ONLY: Record<string, string> = {
  protocol: 'consensus config --protocol: raft is the only protocol; anything else is refused by the CLI',
  watch: 'status --watch: the CLI streams events',
};

describe('CLI flags', () => {
  it('refuses an unknown flag, naming it, the likely one and the command', () => {
    expect(() => inv('agent list --fitler active')).toThrow('--fitler is not a flag of "agent list"; did you mean --filter?');
    expect(() => inv('swarm init --max-agent 3')).toThrow(/did you mean --max-agents\?/);
    expect(() => inv('memory store --key k --value 1 --colour red')).toThrow(/--colour is not a flag of "memory store" \(its flags: /);
    // The split-flags entry point keeps the same behaviour.
    expect(() => toCheckedInvocation('agent', 'list', { fitler: 'active' })).toThrow('--fitler is not a flag of "agent list"; did you mean --filter?');
    expect(toCheckedInvocation('agent', 'list', { filter: 'active' })).toMatchObject({ tool: 'agent_list', args: { filter: 'active' } });
  });

  it('refuses unknown commands and stray words, with a suggestion', () => {
    expect(() => inv('agnet list')).toThrow(/unknown command "agnet"; did you mean "agent"\?/);
    expect(() => inv('agent lsit')).toThrow(/did you mean "agent list"\?/);
    expect(() => inv('agent list active')).toThrow(/"active" is not an argument of "agent list"/);
    expect(() => inv('consensus config --protocol paxos')).toThrow(/accepted: raft/);
    expect(() => inv('swarm init --max-agents five')).toThrow(/--max-agents=five is not an integer/);
  });

  it("parses every command line of the spec, and each flag reaches its tool", () => {
    expect(SPEC_LINES.length).toBeGreaterThanOrEqual(30);
    for (const argv of SPEC_LINES) {
      const line = argv.join(' ');
      const ctx = ctxOf(argv);
      expect(ctx.spec.tool, line).toBeDefined();
      const call = invocationOf(ctx);
      for (const a of argv.filter((w) => w.startsWith('--'))) {
        const name = a.slice(2);
        if (CLI_ONLY[name]) continue;
        const f = flagsOf(ctx.spec)[name]!;
        expect(f, `${line}: ${a}`).toBeDefined();
        const arg = f.arg ?? name.replace(/-/g, '_');
        expect(call.args, `${line}: ${a} reaches ${call.tool} as ${arg}`).toHaveProperty(arg);
      }
    }
  });

  it('the checked list is what the spec says (when the spec file is at hand)', () => {
    if (!fs.existsSync(SPEC_FILE)) return; // a plain clone has the checked list only
    expect(specCommands(fs.readFileSync(SPEC_FILE, 'utf8'))).toEqual(SPEC_LINES);
  });

  it("maps the spec's flags onto tool arguments with their types", () => {
    expect(inv('swarm init --topology mesh --consensus raft --max-agents 5').args).toEqual({ topology: 'mesh', consensus: 'raft', max_agents: 5 });
    expect(inv('swarm init --name critical-group --consensus raft --max-agents 5').args).toEqual({ name: 'critical-group', consensus: 'raft', max_agents: 5 });
    expect(inv('task orchestrate --task x --swarm critical-group').args).toEqual({ task: 'x', swarm: 'critical-group' });
    expect(inv('agent spawn --capabilities a,b,c').args).toEqual({ capabilities: ['a', 'b', 'c'] });
    expect(inv('task results --format summary').args).toEqual({ format: 'summary' });
    expect(inv('task results --format detailed --limit 5 --id orch-1').args).toEqual({ format: 'detailed', limit: 5, orchestration_id: 'orch-1' });
    expect(() => inv('task results --format xml')).toThrow(/accepted: summary, detailed, json/);
    expect(inv('network partition --groups a,b;c,d').args).toEqual({ groups: [['a', 'b'], ['c', 'd']] });
    expect(inv('task orchestrate --task t --executor sleep --sleep-ms 40').args).toEqual({ task: 't', executor: { kind: 'sleep', sleep_ms: 40 } });
    expect(inv('swarm destroy --swarm s --yes').args).toEqual({ swarm: 's', confirm: true });
    expect(() => inv('swarm destroy --swarm s')).toThrow(/add --yes/);
  });

  it('switches, optional values and --embedded anywhere', () => {
    expect(parseCommandLine(['--embedded', 'swarm', 'init', '--max-agents', '1']).flags).toMatchObject({ embedded: true, max_agents: '1' });
    expect(parseCommandLine(['swarm', 'list', '--embedded=0']).flags.embedded).toBeUndefined();
    expect(parseCommandLine(['consensus', 'status', '--watch']).flags.watch).toBe('');
    expect(parseCommandLine(['consensus', 'status', '--watch', '2000']).flags.watch).toBe('2000');
    expect(parseCommandLine(['consensus', 'status', '--watch', '--swarm', 's']).flags).toMatchObject({ watch: '', swarm: 's' });
    expect(parseCommandLine(['daemon', 'stop', '--data-dir', '/tmp/x']).positionals).toEqual(['stop']);
  });

  it('every flag name has one kind across commands (the first parse pass relies on it)', () => {
    const kinds = new Map<string, string>();
    for (const c of COMMANDS) {
      for (const [n, f] of Object.entries(flagsOf(c))) {
        const k = f.kind === 'bool' ? 'boolean' : 'string';
        expect(kinds.get(n) ?? k, `--${n} of ${c.path}`).toBe(k);
        kinds.set(n, k);
      }
    }
  });

  it('help and version come from the table', () => {
    expect(parseCommandLine(['--version']).version).toBe(true);
    const p = parseCommandLine(['help', 'task', 'results']);
    expect(p.help && p.spec?.path).toBe('task results');
    expect(parseCommandLine(['agent', 'list', '--help']).help).toBe(true);
    const h = commandHelp(COMMANDS.find((c) => c.path === 'task results')!);
    expect(h).toMatch(/--format FORMAT .*one of summary, detailed, json; default summary/);
    expect(h).toMatch(/--swarm NAME/);
    for (const c of COMMANDS) expect(mainHelp()).toContain(c.path);
  });

  it('tables on a terminal, JSON when piped or asked', () => {
    expect(wantsJson({}, false)).toBe(true);
    expect(wantsJson({}, true)).toBe(false);
    expect(wantsJson({ json: true }, true)).toBe(true);
    expect(wantsJson({ format: 'json' }, true)).toBe(true);
    const spec = COMMANDS.find((c) => c.path === 'agent list')!;
    const text = formatHuman({ agents: [{ agent_id: 'raft-agent-1', type: 'coordinator', status: 'active', role: 'leader', capabilities: ['voting', 'x'] }] }, spec.tables);
    expect(text.split('\n')).toEqual(['Agent ID     | Type        | Status | Role   | Capabilities', 'raft-agent-1 | coordinator | active | leader | voting,x']);
  });
});
