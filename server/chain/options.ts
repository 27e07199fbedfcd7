/** A chain node's replication knobs, with their defaults (`tabswarm node` flags, docs/chain.md). */
import type { ReplicationMode } from './policies.ts';

export interface ReplicaOptions {
  readonly mode: ReplicationMode;
  /** Cluster secret: proves links come from this cluster's nodes. */
  readonly secret: string;
  /** `snapshot` mode: the head ships its whole state every this many updates. @default 100 */
  readonly snapshotEvery: number;
  /**
   * `async` mode: most updates the head may have acknowledged but not yet seen applied at the
   * tail; at the limit, acks wait (backpressure). It bounds what a head failure can lose.
   * @default 32
   */
  readonly asyncWindow: number;
  /** History entries (worker, seq per version) kept for verification and sent with STATE. @default 131072 */
  readonly historyLimit: number;
  /**
   * When a link to a neighbour drops abnormally and its port then refuses connections (a
   * crashed process, not a slow one), remove its registration at once instead of waiting for
   * its ZooKeeper session to expire. @default true
   */
  readonly fastDetect: boolean;
}

export const REPLICA_DEFAULTS = { snapshotEvery: 100, asyncWindow: 32, historyLimit: 1 << 17, fastDetect: true } as const;
