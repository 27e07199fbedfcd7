/**
 * Cross-process test tools: real PS and worker processes started through the CLI, each the
 * leader of its own process group and tied to the test process (server/spawn.ts), killed by
 * group, and `until(check, description)` instead of sleeps.
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { spawnTied } from '../server/spawn.ts';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = fileURLToPath(new URL('../bin/tabswarm.mjs', import.meta.url));

/** Polls `check` until it returns a truthy value; fails with `description` after `timeoutMs`. */
export async function until<T>(check: () => T | Promise<T>, description: string, timeoutMs = 30000, everyMs = 100): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`until: timed out after ${timeoutMs} ms waiting for ${description}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export interface Proc {
  readonly child: ChildProcess;
  /** Everything the process printed so far. */
  output(): string;
  /**
   * Signals the process's whole group and waits for the leader to exit; after `timeoutMs` the
   * group is SIGKILLed, and a leader that survives even that fails the call. Members still
   * alive when the leader exits (however it ends) are SIGKILLed.
   */
  kill(signal?: NodeJS.Signals, timeoutMs?: number): Promise<void>;
}

/** Signals every process of the group `pgid`; false when none is left. */
export function killGroup(pgid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false; // ESRCH: the group is gone
  }
}

/** Resolves true once `child` has exited, false after `ms`. */
export async function exitWithin(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)));
  try {
    return await Promise.race([once(child, 'exit').then(() => true), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs `tabswarm ARGS` in a process group of its own (its children join it), SIGKILLed by the
 * kernel if the test process dies first, so a crashed test file leaves nothing computing.
 */
export function spawnCli(args: string[], env: NodeJS.ProcessEnv = {}, nodeFlags: string[] = []): Proc {
  const child = spawnTied(process.execPath, [...nodeFlags, BIN, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const pgid = child.pid!;
  // Whatever is left in the group once its leader is gone is an orphan: kill it then, while
  // the group's id cannot have been reused (later, a new group could own that number).
  child.once('exit', () => killGroup(pgid, 'SIGKILL'));
  return {
    child,
    output: () => out,
    async kill(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 30000) {
      const running = child.exitCode === null && child.signalCode === null;
      if (running) {
        killGroup(pgid, signal);
        if (!(await exitWithin(child, timeoutMs))) {
          killGroup(pgid, 'SIGKILL');
          if (!(await exitWithin(child, 10000))) throw new Error(`tabswarm ${args[0]} (pid ${pgid}) did not exit within ${timeoutMs} ms of ${signal}, nor 10 s after SIGKILL`);
        }
      }
    },
  };
}

export interface PsProc extends Proc {
  readonly url: string;
  get<T = unknown>(path: string): Promise<T>;
}

/** Waits for a PS process (`start` or `node`) to print its join URL; SIGKILLs it if it never does. */
export async function joinUrl(proc: Proc): Promise<string> {
  return until(() => {
    if (proc.child.exitCode !== null) throw new Error(`PS exited with ${proc.child.exitCode}: ${proc.output()}`);
    return /join at (http:\/\/\S+)/.exec(proc.output())?.[1];
  }, 'the PS to print its join URL', 60000).catch(async (err) => {
    await proc.kill('SIGKILL');
    throw err;
  });
}

/** Starts `tabswarm start --port 0 ...` (a later `--port` wins) and waits for its join URL. */
export async function startPs(args: string[], env: NodeJS.ProcessEnv = {}): Promise<PsProc> {
  const proc = spawnCli(['start', '--port', '0', '--workers', '0', '--log-level', 'warn', ...args], env);
  const url = await joinUrl(proc);
  return {
    ...proc,
    url,
    async get<T>(path: string): Promise<T> {
      const res = await fetch(new URL(path, url));
      if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`);
      return (await res.json()) as T;
    },
  };
}

export interface SeriesPoint {
  t: number;
  version: number;
  accuracy: number;
  loss: number;
}

export async function latestAccuracy(ps: PsProc): Promise<SeriesPoint | undefined> {
  const { points } = await ps.get<{ points: SeriesPoint[] }>('/api/series');
  return points[points.length - 1];
}

export interface StatusWorker {
  id: number;
  state: string;
  shards: number[];
  pushes: number;
  backend?: string;
  numTensors?: number;
  buffered?: number;
  lastFlush?: { count: number; version: number; duplicate: boolean; at: number };
}
export interface Status {
  version: number;
  updatesApplied: number;
  workers: StatusWorker[];
  strategy: { name: string; phase?: string; adopted?: { version: number; from: number } | null; fresh?: boolean; offers?: { verified: number; rejected: number; late: number } };
}

export interface FlushRecord {
  workerId: number;
  seq: number;
  count: number;
  baseVersion: number;
  version: number;
  duplicate: boolean;
}

/** The JSON status lines a `tabswarm worker` process printed, parsed. */
export function workerLines(proc: Proc): Record<string, unknown>[] {
  return proc
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{"worker"') || l.startsWith('{"done"'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}
