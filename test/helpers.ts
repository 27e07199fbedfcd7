/**
 * Cross-process test tools: real PS and worker processes started through the CLI, reaped by PID,
 * and `until(check, description)` instead of sleeps.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

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
  /** Sends a signal and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export function spawnCli(args: string[], env: NodeJS.ProcessEnv = {}, nodeFlags: string[] = []): Proc {
  const child = spawn(process.execPath, [...nodeFlags, BIN, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  return {
    child,
    output: () => out,
    async kill(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill(signal);
      await exited;
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
