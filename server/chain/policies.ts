/**
 * The three replication modes as policy objects: what the head does with an applied update, and
 * what an acknowledgement waits for. The replica (replica.ts) asks its policy instead of
 * branching on the mode.
 *
 *   sync      forward; ack once the tail has applied it (nothing acknowledged is lost while one
 *             node survives)
 *   async     forward; ack at once, unless more than `asyncWindow` updates are not yet at the
 *             tail (backpressure bounds what a head failure can lose)
 *   snapshot  forward nothing; ship the whole state down the chain every `snapshotEvery` updates
 */
import type { AppliedUpdate } from '../ps/strategy.ts';

export type ReplicationMode = 'sync' | 'async' | 'snapshot';
export const REPLICATION_MODES: readonly ReplicationMode[] = ['sync', 'async', 'snapshot'];

/** What a policy may ask of the replica. */
export interface PolicyHost {
  /** Sends the update down the chain (kept until the tail acks); false if this node is not the head. */
  forward(u: AppliedUpdate): boolean;
  /** Ships the whole state to the successor, if linked. */
  shipState(): void;
  /** Highest version known applied at the tail. */
  committed(): number;
  /** Resolves once the tail has applied `version` (rejects when the node is fenced or stops). */
  untilCommitted(version: number): Promise<void>;
  /** Resolves once no more than `limit` forwarded updates wait for the tail. */
  untilWithin(limit: number): void | Promise<void>;
}

export interface ReplicationPolicy {
  readonly mode: ReplicationMode;
  /**
   * Whether a head that cannot reach ZooKeeper must refuse writes. Sync needs not: no ack
   * without the tail, and the tail refuses links of an old epoch, so the chain fences the head.
   */
  readonly fenceWhenSuspect: boolean;
  /** Whether every new link to a successor starts with a whole STATE (rather than the missing forwards). */
  readonly stateOnLink: boolean;
  /** The head applied `u`: resolves when the worker's ack may go. */
  afterApply(host: PolicyHost, u: AppliedUpdate): void | Promise<void>;
  /** A duplicate push is acked with `version`: resolves when that is as safe as a fresh ack. */
  durable(host: PolicyHost, version: number): void | Promise<void>;
}

export interface PolicyOptions {
  readonly snapshotEvery: number;
  readonly asyncWindow: number;
}

const sync: ReplicationPolicy = {
  mode: 'sync',
  fenceWhenSuspect: false,
  stateOnLink: false,
  afterApply: (host, u) => (host.forward(u) ? host.untilCommitted(u.version) : undefined),
  durable: (host, version) => (version <= host.committed() ? undefined : host.untilCommitted(version)),
};

function async(o: PolicyOptions): ReplicationPolicy {
  return {
    mode: 'async',
    fenceWhenSuspect: true,
    stateOnLink: false,
    afterApply: (host, u) => (host.forward(u) ? host.untilWithin(o.asyncWindow) : undefined),
    durable: () => undefined,
  };
}

function snapshot(o: PolicyOptions): ReplicationPolicy {
  return {
    mode: 'snapshot',
    fenceWhenSuspect: true,
    stateOnLink: true,
    afterApply(host, u) {
      if (u.version % o.snapshotEvery === 0) host.shipState();
    },
    durable: () => undefined,
  };
}

const POLICIES: Record<ReplicationMode, (o: PolicyOptions) => ReplicationPolicy> = { sync: () => sync, async, snapshot };

export function replicationPolicy(mode: ReplicationMode, o: PolicyOptions): ReplicationPolicy {
  return POLICIES[mode](o);
}
