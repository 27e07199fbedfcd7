/**
 * Child processes that die with their parent. A SIGKILLed parent runs no cleanup, so whatever
 * it started (PS nodes, ZooKeeper, a swarm's browsers) would go on computing on a machine that
 * has two cores. On Linux, util-linux's `setpriv --pdeathsig KILL` sets the kernel's
 * parent-death signal and then execs the command, so the child keeps its PID and is SIGKILLed
 * the moment the parent exits, however the parent ended. Elsewhere (or without setpriv) the
 * child is spawned as is, and the caller's own teardown is all there is.
 *
 * The signal is tied to the thread that spawned the child; Node spawns on its main thread, which
 * lives as long as the process does.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync } from 'node:fs';

const SETPRIV = process.platform === 'linux' ? ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p)) : undefined;

/** Whether children spawned by spawnTied really die with this process. */
export const tiedToParent = SETPRIV !== undefined;

/** `spawn(command, args, options)`, with the child SIGKILLed when this process exits. */
export function spawnTied(command: string, args: readonly string[], options: SpawnOptions): ChildProcess {
  // A missing command must still fail as a spawn 'error' (ENOENT), not as setpriv's exit code.
  if (!SETPRIV || (command.startsWith('/') && !existsSync(command))) return spawn(command, args, options);
  return spawn(SETPRIV, ['--pdeathsig', 'KILL', '--', command, ...args], options);
}
