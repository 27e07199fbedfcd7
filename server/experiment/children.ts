/**
 * The harness's child processes (`tabswarm cluster`, `tabswarm swarm`), registered so that an
 * error or Ctrl-C tears every one of them down: SIGTERM first (the supervisor then stops its
 * nodes and ZooKeeper, the swarm closes its browsers), SIGKILL after a grace period, and the
 * node PIDs the supervisor reported are SIGKILLed as a last resort. Each child is tied to the
 * harness (server/spawn.ts) and stays in its process group: a SIGKILLed harness takes its
 * children with it, and they take theirs (nodes, ZooKeeper, browsers).
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { spawnTied } from '../spawn.ts';

const BIN = fileURLToPath(new URL('../../bin/tabswarm.mjs', import.meta.url));

export interface Child {
  readonly name: string;
  readonly proc: ChildProcess;
  output(): string;
  lines(): string[];
  alive(): boolean;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves at exit. */
  stop(graceMs?: number): Promise<void>;
}

const live = new Set<Child>();
/** PIDs a child reported for its own children (the supervisor's nodes), killed at teardown. */
export const strayPids = new Set<number>();

export function spawnTabswarm(name: string, args: string[], onLine?: (line: string) => void): Child {
  const proc = spawnTied(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
  let out = '';
  let partial = '';
  const onData = (d: Buffer) => {
    const text = d.toString();
    // Keep the last 1 MB: a long swarm prints one JSON line a second.
    out = (out + text).slice(-(1 << 20));
    const parts = (partial + text).split('\n');
    partial = parts.pop()!;
    if (onLine) for (const l of parts) onLine(l);
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  const alive = () => proc.exitCode === null && proc.signalCode === null;
  const child: Child = {
    name,
    proc,
    output: () => out,
    lines: () => out.split('\n'),
    alive,
    async stop(graceMs = 15000) {
      if (!alive()) return;
      const exited = once(proc, 'exit');
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(t);
    },
  };
  live.add(child);
  proc.once('exit', () => live.delete(child));
  return child;
}

/** Stops every live child, then SIGKILLs any stray PID still alive. */
export async function teardownAll(graceMs = 15000): Promise<void> {
  await Promise.all([...live].map((c) => c.stop(graceMs).catch(() => {})));
  for (const pid of strayPids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  strayPids.clear();
}
