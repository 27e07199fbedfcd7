/** What a chain node reports of itself (replica.ts replicaStatus). */
import type { Role } from './membership.ts';
import type { ReplicaState } from './state.ts';
import type { ReplicationMode } from './policies.ts';

/** What /api/cluster and /api/status show of this node. */
export interface ReplicaStatus {
  readonly name: string;
  readonly role: Role | 'joining' | 'fenced';
  /** The tagged state (state.ts). */
  readonly state: ReplicaState['kind'];
  readonly epoch: number;
  readonly mode: ReplicationMode;
  readonly version: number;
  /** Highest version known applied at the tail (what a head failure cannot lose). */
  readonly committed: number;
  /** Forwarded, not yet acknowledged by the tail. */
  readonly inFlight: number;
  /** Holds no state the chain agrees on yet. */
  readonly fresh: boolean;
  readonly writable: boolean;
  /** Whether the configuration in force has a head holding the chain's state (false: a cold start waits). */
  readonly warm: boolean;
  readonly successorLinked: boolean;
  readonly predecessorLinked: boolean;
  readonly stateTransfers: { readonly sent: number; readonly received: number };
}
