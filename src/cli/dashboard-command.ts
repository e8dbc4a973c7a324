import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { connectDaemon, control, lockHolder } from '../daemon/client.js';
import { DASHBOARD_ADDR_ENV } from '../daemon/http-listener.js';
import { dashboardOpenPath } from '../daemon/paths.js';
import { resolveDataDir } from '../service/data-dir.js';
import { UserError } from '../util/errors.js';

type Flags = Record<string, string | boolean>;

export const DASHBOARD_HELP = `concord dashboard [--data-dir DIR] [--no-open]
    Print the URL of the live dashboard of DIR's swarms, starting the daemon when none runs
    (a running \`concord serve --http\` serves it too), and open it in a browser when one and
    a display are available. The daemon listens on 127.0.0.1 on a free port (${DASHBOARD_ADDR_ENV}=HOST:PORT
    for a fixed loopback address, "off" for none). The URL carries the daemon's dashboard token
    in its fragment (#token=...): it changes at each daemon start and is given only to the
    owner of DIR (over its 0600 socket); keep it to yourself.`;

/** `concord dashboard`: the URL on stdout; opening a browser is a convenience that never fails the command. */
export async function runDashboardCommand(flags: Flags): Promise<number> {
  if (flags.help === true) {
    process.stdout.write(`${DASHBOARD_HELP}\n`);
    return 0;
  }
  const dir = resolveDataDir(typeof flags.data_dir === 'string' ? flags.data_dir : undefined);
  let url = dashboardUrl(await control(dir, 'status'));
  if (!url) {
    // A `concord serve --http` that could not share its socket: its URL, without a token of its own here.
    url = lockHolder(dir)?.dashboard;
  }
  if (!url) {
    (await connectDaemon(dir)).end();
    url = dashboardUrl(await control(dir, 'status'));
    if (!url) throw new UserError('unavailable', `the daemon of ${dir} serves no dashboard (${DASHBOARD_ADDR_ENV}=off when it started); restart it with "concord daemon stop" and an address in ${DASHBOARD_ADDR_ENV}`, 'dashboard');
  }
  process.stdout.write(`${url}\n`);
  if (flags.no_open === true) return 0;
  const opener = browserOpener();
  if (!opener) {
    process.stderr.write('no browser display found (DISPLAY / WAYLAND_DISPLAY unset): open the URL above yourself\n');
    return 0;
  }
  try {
    const child = spawn(opener, [launchTarget(dir, url)], { detached: true, stdio: 'ignore' });
    child.once('error', () => undefined);
    child.unref();
  } catch {
    // Opening is best effort: the URL is printed.
  }
  return 0;
}

/** The owner's URL: the token in the fragment, which the browser never sends to the server. */
function dashboardUrl(st: Record<string, unknown> | null): string | undefined {
  if (typeof st?.dashboard !== 'string') return undefined;
  return typeof st.dashboard_token === 'string' ? `${st.dashboard}#token=${st.dashboard_token}` : st.dashboard;
}

/**
 * What the browser is started with. A command line is readable by every local user
 * (/proc/PID/cmdline, ps), and a browser started by the opener keeps it for its life: a URL
 * with a token goes through a 0600 page in the 0700 data directory that redirects to it.
 */
function launchTarget(dir: string, url: string): string {
  if (!url.includes('#token=')) return url;
  const file = dashboardOpenPath(dir);
  fs.rmSync(file, { force: true });
  // 'wx' with mode 0600: a fresh file, never an existing one with wider permissions.
  fs.writeFileSync(file, `<!doctype html><meta http-equiv="refresh" content="0;url=${url.replace(/[&"<>]/g, (c) => `&#${c.charCodeAt(0)};`)}"><title>concord dashboard</title>\n`, { mode: 0o600, flag: 'wx' });
  return pathToFileURL(file).href;
}

/** `open` on macOS; xdg-open where a graphical session exists; otherwise none. */
function browserOpener(): string | null {
  if (process.platform === 'darwin') return 'open';
  if (process.platform === 'win32') return null;
  if (!process.env.DISPLAY && !process.env.WAYLAND_DISPLAY) return null;
  const found = (process.env.PATH ?? '').split(path.delimiter).some((d) => d && fs.existsSync(path.join(d, 'xdg-open')));
  return found ? 'xdg-open' : null;
}
