// `concord member list | add --id ID --address HOST:PORT | remove --id ID`: runtime membership
// of a running cluster, through its leader (the member_list, member_add and member_remove tools).

import { UserError, invalid } from '../service/errors.js';
import { clusterFrom } from './node-command.js';

type Flags = Record<string, string | boolean>;

export const MEMBER_HELP = `concord member: change the members of a running cluster (cluster mode)

  concord member list --cluster HOST:PORT,... --secret-file FILE
  concord member add --id raft-agent-4 --address 127.0.0.1:7004 --cluster ... --secret-file FILE
      then start it on an empty data directory:
      concord node --swarm NAME --id raft-agent-4 --listen 127.0.0.1:7004 --join 127.0.0.1:7001 ...
      it joins as a learner, catches up (by snapshot when needed) and is promoted to voter
  concord member remove --id raft-agent-2 --cluster ... --secret-file FILE
      a leader hands leadership over first; the removed process exits; its id is never reused

  One membership change at a time. To replace a member: remove it, then add a new one under a
  NEW id on an empty data directory.`;

export async function runMember(positional: string[], flags: Flags): Promise<number> {
  const verb = positional[1];
  if (flags.help === true || verb === undefined || verb === 'help') {
    process.stdout.write(`${MEMBER_HELP}\n`);
    return verb === undefined && flags.help !== true ? 2 : 0;
  }
  const cluster = clusterFrom(flags);
  if (!cluster) throw new UserError('invalid_argument', 'concord member needs --cluster HOST:PORT,... (or CONCORD_CLUSTER) and --secret-file: membership changes go to a running cluster', 'cluster');
  const str = (name: string): string => {
    const v = flags[name];
    if (typeof v !== 'string' || v.length === 0) throw new UserError('invalid_argument', `concord member ${verb} needs --${name} (see concord member --help)`, name);
    return v;
  };
  let tool: string;
  let args: Record<string, unknown>;
  switch (verb) {
    case 'list':
      [tool, args] = ['member_list', {}];
      break;
    case 'add':
      [tool, args] = ['member_add', { id: str('id'), address: str('address') }];
      break;
    case 'remove':
      [tool, args] = ['member_remove', { id: str('id') }];
      break;
    default:
      throw invalid('member', verb, 'list, add or remove');
  }
  if (typeof flags.swarm === 'string') args.swarm = flags.swarm;
  const { connectCluster } = await import('./tool-client.js');
  const tools = await connectCluster(cluster);
  try {
    const r = await tools.call(tool, args);
    if (!r.ok) {
      process.stderr.write(`${r.text}\n`);
      return 1;
    }
    process.stdout.write(`${JSON.stringify(r.data, null, 2)}\n`);
    return 0;
  } finally {
    await tools.close();
  }
}
