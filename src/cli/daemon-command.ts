import { control, connectDaemon, processAlive, tail } from '../daemon/client.js';
import { idleTimeoutS, logPath, socketPath } from '../daemon/paths.js';
import { resolveDataDir } from '../service/data-dir.js';
import { UserError } from '../util/errors.js';
import type { Flags } from './context.js';

export const DAEMON_HELP = `concord daemon [run] [--data-dir DIR] [--idle-timeout-s S]
    Own the data directory and serve its swarms to clients on <DIR>/concord.sock (0600).
    Clients start it on demand; it exits after S seconds with no client attached and no
    runnable task (default 300, env CONCORD_DAEMON_IDLE_S; 0 = never).
concord daemon start    start it in the background if none runs, then print its status
concord daemon status   pid, socket, uptime, attached clients, swarms, the dashboard's address
                        (its token is not shown: concord dashboard --no-open prints the URL
                        with it; exit 1 when none runs)
concord daemon stop     graceful stop (SQLite closed cleanly)
concord daemon logs [--lines N]   the tail of <DIR>/daemon.log`;

/** `concord daemon ...`; -1 keeps the process running (the daemon itself). */
export async function runDaemonCommand(verb: string | undefined, flags: Flags): Promise<number> {
  const dir = resolveDataDir(typeof flags.data_dir === 'string' ? flags.data_dir : undefined);
  const print = (v: unknown) => process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);
  switch (verb ?? 'run') {
    case 'run': {
      const { runDaemon } = await import('../daemon/daemon.js');
      return (await runDaemon({ dataDir: dir, idleTimeoutS: idleTimeoutS(flags.idle_timeout_s) })) ? -1 : 0;
    }
    case 'start': {
      (await connectDaemon(dir)).end();
      print(withoutToken(await control(dir, 'status')));
      return 0;
    }
    case 'status': {
      const st = await control(dir, 'status');
      if (!st) {
        print({ running: false, data_dir: dir, socket: socketPath(dir), log: logPath(dir) });
        return 1;
      }
      print({ running: true, ...withoutToken(st), log: logPath(dir) });
      return 0;
    }
    case 'stop': {
      const r = await control(dir, 'stop');
      if (!r) {
        print({ stopped: false, detail: `no daemon running on ${dir}` });
        return 0;
      }
      const pid = r.pid as number;
      const deadline = performance.now() + 10_000;
      while (processAlive(pid) && performance.now() < deadline) await new Promise((res) => setTimeout(res, 25));
      if (processAlive(pid)) throw new UserError('unavailable', `daemon pid ${pid} did not exit within 10 s; see ${logPath(dir)}`);
      print({ stopped: true, pid });
      return 0;
    }
    case 'logs': {
      const n = flags.lines === undefined ? 50 : Number(flags.lines);
      if (!Number.isInteger(n) || n < 1) throw new UserError('invalid_argument', `lines=${String(flags.lines)} must be a positive integer`, 'lines');
      process.stdout.write(`${tail(logPath(dir), n)}\n`);
      return 0;
    }
    case 'help':
      process.stdout.write(`${DAEMON_HELP}\n`);
      return 0;
    default:
      throw new UserError('invalid_argument', `daemon ${verb} is not a command; accepted: run, start, status, stop, logs`, 'verb');
  }
}


/**
 * Status output gets pasted into issues and chats: the dashboard's token stays out of it
 * (the terminal is the owner's, but the paste is not). `concord dashboard` prints it.
 */
function withoutToken(st: Record<string, unknown> | null): Record<string, unknown> | null {
  if (!st || !('dashboard_token' in st)) return st;
  const { dashboard_token: token, ...rest } = st;
  return token ? { ...rest, dashboard_token: 'hidden: concord dashboard --no-open prints the URL with it' } : rest;
}
