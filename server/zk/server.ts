/**
 * One ZooKeeper server process: started from its folder (zoo.cfg, log4j.properties, data/myid),
 * its output appended to zookeeper.log, ready once it answers `ruok` with `imok` and `srvr`
 * reports a mode (standalone, leader or follower: it serves clients), stopped with SIGTERM and
 * then SIGKILL after a grace period.
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, openSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { TabswarmError } from '../../shared/errors.ts';
import type { ServerPorts } from './config.ts';
import { spawnTied } from '../spawn.ts';
import { isOk, serverMode } from './four-letter.ts';
import type { ZooKeeperInstall } from './install.ts';

export interface ServerProcessOptions {
  install: ZooKeeperInstall;
  host: string;
  /** The server's folder: zoo.cfg, log4j.properties, data/, zookeeper.log. */
  dir: string;
  ports: ServerPorts;
  /** Extra JVM flags. */
  jvmArgs: readonly string[];
}

/**
 * Small heap, serial GC and the C1 compiler only: a ZooKeeper for development or tests holds a
 * few znodes, and on a 2-core machine a JVM that does not spin up C2 and GC threads starts
 * faster and leaves the cores to the tests.
 */
export const DEFAULT_JVM_ARGS = ['-Xms16m', '-Xmx256m', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', '-XX:-UsePerfData', '-Djava.awt.headless=true'];

export class ZooKeeperServerProcess {
  private child: ChildProcess | undefined;
  private exit: Promise<void> = Promise.resolve();

  constructor(private readonly o: ServerProcessOptions) {}

  get id(): number {
    return this.o.ports.id;
  }
  get ports(): ServerPorts {
    return this.o.ports;
  }
  get address(): string {
    return `${this.o.host}:${this.o.ports.clientPort}`;
  }
  get logFile(): string {
    return join(this.o.dir, 'zookeeper.log');
  }
  /** The running JVM's process id; undefined once it has exited. */
  get pid(): number | undefined {
    return this.running ? this.child?.pid : undefined;
  }
  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts the JVM; resolves once the server serves clients. */
  async start(timeoutMs: number): Promise<void> {
    if (this.running) return;
    const { install, dir, jvmArgs } = this.o;
    const logOffset = fileSize(this.logFile);
    const log = openSync(this.logFile, 'a');
    let child: ChildProcess;
    try {
      // Tied to this process: a SIGKILLed supervisor or test must not leave a JVM serving.
      child = spawnTied(install.java, [...jvmArgs, '-cp', [dir, ...install.classpath].join(':'), 'org.apache.zookeeper.server.quorum.QuorumPeerMain', join(dir, 'zoo.cfg')], {
        cwd: dir,
        stdio: ['ignore', log, log],
      });
    } finally {
      closeSync(log);
    }
    this.child = child;
    this.exit = once(child, 'exit').then(() => undefined, () => undefined);
    const spawnError = once(child, 'error').then(([err]) => err as Error);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const failed = await Promise.race([spawnError, new Promise<undefined>((r) => setTimeout(r, 100))]);
      if (failed) {
        this.child = undefined;
        throw this.startFailed(`could not run ${install.java}: ${failed.message}`, logOffset);
      }
      if (!this.running) throw this.startFailed(`the JVM exited with ${child.exitCode ?? child.signalCode}`, logOffset);
      if ((await isOk(this.o.host, this.o.ports.clientPort)) && (await serverMode(this.o.host, this.o.ports.clientPort))) return;
      if (Date.now() > deadline) {
        await this.stop(0);
        throw this.startFailed(`no imok to ruok, or not serving, within ${timeoutMs} ms`, logOffset);
      }
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process has exited. */
  async stop(graceMs = 5000, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    child.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const overdue = await Promise.race([this.exit.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), graceMs)))]);
    clearTimeout(timer);
    if (overdue && this.running) child.kill('SIGKILL');
    await this.exit;
  }

  /** Synchronous last resort for process 'exit' handlers. */
  killNow(): void {
    if (this.running) this.child!.kill('SIGKILL');
  }

  /** The last `lines` lines this server logged since `fromByte`. */
  logTail(lines = 25, fromByte = 0): string {
    try {
      const text = readFileSync(this.logFile).subarray(fromByte).toString('utf8');
      return text.trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  private startFailed(detail: string, logOffset: number): TabswarmError {
    const tail = this.logTail(25, logOffset);
    return new TabswarmError('ZK_START_FAILED', { server: this.id, port: this.o.ports.clientPort, detail: `${detail}; last lines of ${this.logFile}:\n${tail}` });
  }
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
