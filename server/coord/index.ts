/**
 * Coordination for the PS cluster: make one with `zookeeperCoordination('host:port,...')` in
 * production, or `memoryCoordination(server)` over an in-memory twin in tests. See types.ts for
 * the interface and docs/zookeeper.md for running ZooKeeper and choosing the session timeout.
 *
 *   const coord = zookeeperCoordination('127.0.0.1:2181', { sessionTimeoutMs: 1500 });
 *   coord.onSession((e) => e.state !== 'connected' && node.fence());
 *   await coord.connect();
 *   const me = await coord.register('/tabswarm/chain/members', JSON.stringify({ url }));
 */
import { CoordinationClient } from './client.ts';
import { memoryConnector } from './memory.ts';
import type { MemoryZooKeeper } from './memory-server.ts';
import type { CoordinationOptions } from './types.ts';
import { zookeeperConnector, type ZooKeeperConnectorOptions } from './zookeeper.ts';

export type { Coordination, CoordinationAuth, CoordinationOptions, Member, SessionEvent, SessionInfo, SessionState, Versioned, WatchEvent, Watcher } from './types.ts';
export { CoordinationClient } from './client.ts';
export { MemoryZooKeeper, type MemoryZooKeeperOptions } from './memory-server.ts';

/** A client of the ZooKeeper ensemble at `connectionString` ('host:port,host:port,...'). */
export function zookeeperCoordination(connectionString: string, options: CoordinationOptions & ZooKeeperConnectorOptions = {}): CoordinationClient {
  return new CoordinationClient(zookeeperConnector(connectionString, options), options);
}

/** A client of an in-memory ZooKeeper; clients of the same `server` see the same znodes. */
export function memoryCoordination(server: MemoryZooKeeper, options: CoordinationOptions & { spinDelayMs?: number } = {}): CoordinationClient {
  return new CoordinationClient(memoryConnector(server, options), options);
}
