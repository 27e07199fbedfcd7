/**
 * Local ZooKeeper for development and tests: a standalone server or an N-server ensemble, as
 * child processes of this one, from generated configs with free ports and a data folder.
 *
 *   const zk = await startZooKeeper({ servers: 3 });
 *   zk.connectionString;        // '127.0.0.1:41231,127.0.0.1:40555,127.0.0.1:39117'
 *   await zk.restartServer(1);  // same ports and data: sessions survive a quick restart
 *   await zk.stop();            // SIGTERM (SIGKILL after the grace period); data removed
 *
 * Production points `--zk host:port,...` at an ensemble run by its operators instead.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { TabswarmError } from '../../shared/errors.ts';
import { LOG4J_PROPERTIES, allocatePorts, zooCfg } from './config.ts';
import { findZooKeeper, type InstallOptions } from './install.ts';
import { DEFAULT_JVM_ARGS, ZooKeeperServerProcess } from './server.ts';

export interface ZooKeeperOptions extends InstallOptions {
  /** Servers: 1 runs standalone, 3 (or any N) a quorum ensemble. @default 1 */
  servers?: number;
  /** Client port of server 1; server i listens on port+i-1. @default free ports */
  port?: number;
  /** Address every port binds to. @default '127.0.0.1' */
  host?: string;
  /**
   * Where the servers' folders go (`server-1/`, ...). Only those folders are removed at stop, never
   * the folder itself unless it was made here. @default a new folder under the OS temp dir
   */
  dataDir?: string;
  /** Keep the servers' folders (data and logs) at stop. @default false */
  keep?: boolean;
  /** ZooKeeper's tick. @default 250 */
  tickTimeMs?: number;
  /** Shortest session timeout a client may negotiate. @default 2 ticks (500 ms) */
  minSessionTimeoutMs?: number;
  /** Longest session timeout a client may negotiate. @default 60000 */
  maxSessionTimeoutMs?: number;
  /** How long one server may take to serve clients after its JVM starts. @default 30000 */
  startTimeoutMs?: number;
  /** SIGTERM grace period before SIGKILL. @default 5000 */
  stopGraceMs?: number;
  /** JVM flags. @default small heap, serial GC, C1 only (server.ts) */
  jvmArgs?: readonly string[];
}

export interface ZooKeeperCluster {
  /** `host:port,host:port,...`: what `--zk` and the coordination client take. */
  readonly connectionString: string;
  readonly servers: readonly ZooKeeperServerProcess[];
  /** The folder holding `server-1/`, `server-2/`, .... */
  readonly dataDir: string;
  /** Server by 1-based id. */
  server(id: number): ZooKeeperServerProcess;
  /** Starts a stopped server again (same ports, same data) and waits until it serves. */
  startServer(id: number): Promise<void>;
  /** Stops one server: SIGTERM by default, or e.g. SIGKILL to crash it. */
  stopServer(id: number, signal?: NodeJS.Signals): Promise<void>;
  restartServer(id: number, signal?: NodeJS.Signals): Promise<void>;
  /** Stops every server and removes their folders unless `keep`. */
  stop(): Promise<void>;
}

export async function startZooKeeper(options: ZooKeeperOptions = {}): Promise<ZooKeeperCluster> {
  const install = findZooKeeper(options);
  const count = options.servers ?? 1;
  if (!Number.isInteger(count) || count < 1 || count > 9) throw new TabswarmError('CONFIG_INVALID', { option: 'servers', detail: `must be an integer from 1 to 9, got ${count}` });
  const host = options.host ?? '127.0.0.1';
  const tickTimeMs = options.tickTimeMs ?? 250;
  const config = { host, tickTimeMs, minSessionTimeoutMs: options.minSessionTimeoutMs ?? 2 * tickTimeMs, maxSessionTimeoutMs: options.maxSessionTimeoutMs ?? 60000 };
  const ownDir = options.dataDir === undefined;
  const dataDir = ownDir ? mkdtempSync(join(tmpdir(), 'tabswarm-zk-')) : resolve(options.dataDir!);
  mkdirSync(dataDir, { recursive: true });

  const ports = await allocatePorts(count, host, options.port);
  const servers = ports.map((p) => {
    const dir = join(dataDir, `server-${p.id}`);
    mkdirSync(join(dir, 'data'), { recursive: true });
    writeFileSync(join(dir, 'data', 'myid'), `${p.id}\n`);
    writeFileSync(join(dir, 'zoo.cfg'), zooCfg(p, ports, join(dir, 'data'), config));
    writeFileSync(join(dir, 'log4j.properties'), LOG4J_PROPERTIES);
    return new ZooKeeperServerProcess({ install, host, dir, ports: p, jvmArgs: options.jvmArgs ?? DEFAULT_JVM_ARGS });
  });

  // Should this process exit without stop(), take the JVMs along rather than leave them running.
  const killAll = () => servers.forEach((s) => s.killNow());
  process.on('exit', killAll);
  const startTimeoutMs = options.startTimeoutMs ?? 30000;
  const graceMs = options.stopGraceMs ?? 5000;
  let stopped = false;

  const cluster: ZooKeeperCluster = {
    connectionString: servers.map((s) => s.address).join(','),
    servers,
    dataDir,
    server(id) {
      const s = servers[id - 1];
      if (!s) throw new TabswarmError('CONFIG_INVALID', { option: 'server', detail: `no ZooKeeper server ${id} (there are ${servers.length})` });
      return s;
    },
    async startServer(id) {
      await cluster.server(id).start(startTimeoutMs);
    },
    async stopServer(id, signal = 'SIGTERM') {
      await cluster.server(id).stop(graceMs, signal);
    },
    async restartServer(id, signal = 'SIGTERM') {
      await cluster.stopServer(id, signal);
      await cluster.startServer(id);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await Promise.all(servers.map((s) => s.stop(graceMs)));
      process.off('exit', killAll);
      if (options.keep) return;
      if (ownDir) rmSync(dataDir, { recursive: true, force: true });
      else for (const s of ports) rmSync(join(dataDir, `server-${s.id}`), { recursive: true, force: true });
    },
  };

  try {
    // An ensemble member serves only once a quorum is up, so all start together.
    await Promise.all(servers.map((s) => s.start(startTimeoutMs)));
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}
