import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { connectDaemon, control, lockHolder } from '../daemon/client.js';
import { DASHBOARD_ADDR_ENV } from '../daemon/http-listener.js';
import { resolveDataDir } from '../service/data-dir.js';
import { UserError } from '../service/errors.js';

type Flags = Record<string, string | boolean>;

export const DASHBOARD_HELP = `concord dashboard [--data-dir DIR] [--no-open]
    Print the URL of the live dashboard of DIR's swarms, starting the daemon when none runs
    (a running \`concord serve --http\` serves it too), and open it in a browser when one and
    a display are available. The daemon listens on 127.0.0.1 on a free port (${DASHBOARD_ADDR_ENV}=HOST:PORT
    for a fixed loopback address, "off" for none).`;

/** `concord dashboard`: the URL on stdout; opening a browser is a convenience that never fails the command. */
export async function runDashboardCommand(flags: Flags): Promise<number> {
  if (flags.help === true) {
    process.stdout.write(`${DASHBOARD_HELP}\n`);
    return 0;
  }
  const dir = resolveDataDir(typeof flags.data_dir === 'string' ? flags.data_dir : undefined);
  let url = lockHolder(dir)?.dashboard;
  if (!url) {
    (await connectDaemon(dir)).end();
    const st = await control(dir, 'status');
    url = typeof st?.dashboard === 'string' ? st.dashboard : undefined;
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
    const child = spawn(opener, [url], { detached: true, stdio: 'ignore' });
    child.once('error', () => undefined);
    child.unref();
  } catch {
    // Opening is best effort: the URL is printed.
  }
  return 0;
}

/** `open` on macOS; xdg-open where a graphical session exists; otherwise none. */
function browserOpener(): string | null {
  if (process.platform === 'darwin') return 'open';
  if (process.platform === 'win32') return null;
  if (!process.env.DISPLAY && !process.env.WAYLAND_DISPLAY) return null;
  const found = (process.env.PATH ?? '').split(path.delimiter).some((d) => d && fs.existsSync(path.join(d, 'xdg-open')));
  return found ? 'xdg-open' : null;
}
