/**
 * The coordination backends the one suite in coord.test.ts runs against: the in-memory twin
 * and a real standalone ZooKeeper (Debian's, started by server/zk with a persistent data dir,
 * so a restart keeps sessions).
 */
import { randomBytes } from 'node:crypto';
import { memoryCoordination, MemoryZooKeeper, zookeeperCoordination, type CoordinationClient, type CoordinationOptions } from './index.ts';
import { startZooKeeper, type ZooKeeperCluster } from '../zk/launcher.ts';

export interface Backend {
  readonly name: string;
  /** A new client, not yet connected. */
  client(options?: CoordinationOptions): CoordinationClient;
  /** Like a crash of the server process: connections drop; data and sessions are kept. */
  stopServer(): Promise<void>;
  startServer(): Promise<void>;
  /** Stop and start again at once. */
  restartServer(): Promise<void>;
  dispose(): Promise<void>;
}

export const BACKENDS: Record<string, () => Promise<Backend>> = {
  memory: async () => {
    const server = new MemoryZooKeeper({ minSessionTimeoutMs: 500, maxSessionTimeoutMs: 60000 });
    return {
      name: 'memory',
      client: (options) => memoryCoordination(server, options),
      stopServer: async () => server.stop(),
      startServer: async () => server.start(),
      restartServer: async () => {
        server.stop();
        // A real restart takes a while; let the clients see the connection drop first.
        await new Promise((r) => setImmediate(r));
        server.start();
      },
      dispose: async () => server.dispose(),
    };
  },
  zookeeper: async () => {
    const zk: ZooKeeperCluster = await startZooKeeper({ servers: 1 });
    return {
      name: 'zookeeper',
      client: (options) => zookeeperCoordination(zk.connectionString, options),
      stopServer: () => zk.stopServer(1, 'SIGKILL'),
      startServer: () => zk.startServer(1),
      restartServer: () => zk.restartServer(1, 'SIGKILL'),
      dispose: () => zk.stop(),
    };
  },
};

/** A fresh path per test, so tests sharing a server do not see each other's znodes. */
export function uniquePath(label: string): string {
  return `/test/${label.replace(/\W+/g, '-')}-${randomBytes(3).toString('hex')}`;
}
