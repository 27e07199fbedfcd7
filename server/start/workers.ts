/**
 * The workers `tabswarm start` launches itself (--workers N): headless Chromium tabs where
 * Debian's chromium is installed (as root, `start` installs it first, as `npm test` does, through
 * scripts/install-system-deps.sh), otherwise headless Node workers (client/node.ts, tfjs cpu
 * backend, one process each), announced in one line. `--worker-runtime node` or
 * TABSWARM_NO_BROWSER=1 forces the Node workers.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { chromiumAvailable, CHROMIUM_PATH, launchWorkerTabs } from '../browsers.ts';
import { spawnTied } from '../spawn.ts';

const BIN = fileURLToPath(new URL('../../bin/tabswarm.mjs', import.meta.url));
const INSTALL_SCRIPT = fileURLToPath(new URL('../../scripts/install-system-deps.sh', import.meta.url));
/** How long a stopping Node worker may take to deliver what it owes before it is killed. */
const WORKER_STOP_MS = 5000;
/** The tail of a Node worker's stderr kept to explain an early exit. */
const STDERR_TAIL = 2000;

export interface LaunchOptions {
  readonly url: string;
  readonly count: number;
  readonly backend: string;
  /** auto: Chromium tabs if there is (or, as root, can be) a Chromium, else Node workers. */
  readonly runtime: string;
  /** auto: as root, apt-get install what is missing; off: never. */
  readonly installDeps: string;
  /** One line for the person at the terminal. */
  readonly say: (line: string) => void;
  /** Something went wrong after the launch (a Node worker died). */
  readonly warn: (line: string) => void;
}

export interface LaunchedWorkers {
  readonly kind: 'chromium' | 'node' | 'none';
  close(): Promise<void>;
}

/** TABSWARM_NO_BROWSER=1 (or true/yes) forces the Node workers, as --worker-runtime node does. */
export function effectiveRuntime(runtime: string, env: NodeJS.ProcessEnv = process.env): string {
  return /^(1|true|yes)$/i.test(env.TABSWARM_NO_BROWSER ?? '') ? 'node' : runtime;
}

/**
 * As root, installs the named Debian packages if they are missing (idempotent: the script
 * returns at once when all are present). Returns whether they are now present.
 */
export function installSystemPackages(packages: readonly string[], say: (line: string) => void): boolean {
  if (process.getuid?.() !== 0) return false;
  say(`tabswarm: installing what is missing of ${packages.join(', ')} (as root, through scripts/install-system-deps.sh; --install-deps off to skip)`);
  const r = spawnSync('bash', [INSTALL_SCRIPT, ...packages], { stdio: ['ignore', 'inherit', 'inherit'] });
  return r.status === 0;
}

export async function launchWorkers(o: LaunchOptions): Promise<LaunchedWorkers> {
  const none: LaunchedWorkers = { kind: 'none', close: async () => {} };
  if (o.count === 0) {
    o.say(`tabswarm: no workers launched (--workers 0); open ${o.url} in a browser, or run \`tabswarm worker --url ${o.url}\``);
    return none;
  }
  const runtime = effectiveRuntime(o.runtime);
  if (runtime === 'node') {
    o.say(`tabswarm: launched ${o.count} headless Node worker(s) (tfjs cpu backend), as ${o.runtime === 'node' ? '--worker-runtime node' : 'TABSWARM_NO_BROWSER'} asks`);
    return nodeWorkers(o);
  }
  let why = '';
  const root = process.getuid?.() === 0;
  if (!chromiumAvailable() && o.installDeps === 'auto' && root) installSystemPackages(['chromium'], o.say);
  if (!chromiumAvailable()) {
    const because = !root ? 'not root, so not installed: sudo apt-get install -y chromium' : o.installDeps === 'auto' ? 'installing chromium did not provide it; set TABSWARM_CHROMIUM to a Chromium' : '--install-deps off: apt-get install -y chromium';
    why = `no Chromium at ${CHROMIUM_PATH} (${because})`;
  } else {
    try {
      const tabs = await launchWorkerTabs({ url: o.url, count: o.count, backend: o.backend });
      o.say(`tabswarm: launched ${o.count} headless Chromium worker tab(s) (backend ${o.backend}); watch accuracy in the log or at ${o.url}api/series`);
      return { kind: 'chromium', close: () => tabs.close().catch(() => {}) };
    } catch (err) {
      why = `Chromium did not start (${(err as Error).message.split('\n')[0]})`;
    }
  }
  if (runtime === 'chromium') throw new Error(`--worker-runtime chromium: ${why}`);
  o.say(`tabswarm: ${why}; launched ${o.count} headless Node worker(s) (tfjs cpu backend) instead`);
  return nodeWorkers(o);
}

/** `tabswarm worker --url URL` processes, tied to this one (server/spawn.ts). */
function nodeWorkers(o: LaunchOptions): LaunchedWorkers {
  let closing = false;
  const children: ChildProcess[] = [];
  for (let i = 0; i < o.count; i++) {
    const child = spawnTied(process.execPath, [BIN, 'worker', '--url', o.url, '--log-every-ms', '600000'], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    let tail = '';
    child.stderr!.on('data', (d: Buffer) => (tail = (tail + d.toString()).slice(-STDERR_TAIL)));
    child.once('exit', (code, signal) => {
      if (!closing) o.warn(`tabswarm: Node worker ${i + 1} exited (${code ?? signal}): ${tail.trim().split('\n').slice(-3).join(' | ')}`);
    });
    children.push(child);
  }
  return {
    kind: 'node',
    async close() {
      closing = true;
      await Promise.all(children.map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        // SIGTERM drains (delivers what the worker owes); SIGKILL if that takes too long. Each
        // worker leads its own process group, so a Ctrl-C at the terminal reaches it only from here.
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), WORKER_STOP_MS);
        await exited;
        clearTimeout(timer);
      }));
    },
  };
}
