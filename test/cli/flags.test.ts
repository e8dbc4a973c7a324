// The CLI refuses flags a command does not take (a typo was silently ignored) and suggests the
// one meant; every flag the spec's commands use is accepted.

import { describe, expect, it } from 'vitest';
import { parseFlags, toCheckedInvocation } from '../../src/cli/commands.js';

function inv(line: string) {
  const { positional, flags } = parseFlags(line.split(' '));
  return toCheckedInvocation(positional[0]!, positional[1]!, flags);
}

describe('CLI flags', () => {
  it('refuses an unknown flag, naming it, the likely one and the command', () => {
    expect(() => inv('agent list --fitler active')).toThrow('--fitler is not a flag of "agent list"; did you mean --filter?');
    expect(() => inv('swarm init --max-agent 3')).toThrow(/did you mean --max-agents\?/);
    expect(() => inv('memory store --key k --value 1 --colour red')).toThrow(/--colour is not a flag of "memory store" \(its flags: /);
  });

  it("accepts every flag of the spec's commands", () => {
    const spec = [
      'swarm init --topology mesh --consensus raft --max-agents 5',
      'consensus config --protocol raft --election-timeout-min 150 --election-timeout-max 300 --heartbeat-interval 50 --log-compaction-threshold 1000 --quorum-size 3 --max-log-entries 10000 --batch-size 100',
      'agent spawn --type coordinator --name raft-agent-1 --capabilities task-processing,log-replication,voting',
      'agent list --filter active',
      'consensus leader',
      'task orchestrate --task x --strategy sequential --max-agents 5 --priority high --count 1000',
      'consensus log-status',
      'consensus status --watch',
      'task status --watch',
      'agent terminate --agent-id raft-agent-1',
      'task results --format summary',
      'memory store --key coordination/raft/commit-index --value 1',
      'memory retrieve --key coordination/raft/commit-index',
      'swarm status --verbose',
      'consensus step-down --agent raft-agent-4',
      'consensus verify-quorum',
      'network diagnose',
      'agent metrics --metric disk-io',
      'consensus election-history --limit 10',
    ];
    for (const line of spec) expect(() => inv(line), line).not.toThrow();
    expect(() => inv('consensus config --protocol paxos')).toThrow(/accepted: raft/);
  });
});
