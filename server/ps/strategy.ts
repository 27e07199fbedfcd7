/**
 * Recovery strategies plug into the PS loop here. The loop (service.ts) exists once: receive,
 * validate, apply, then `afterApply`, then ack. A strategy decides what survives a failure:
 * checkpointing writes snapshots, chain replication forwards updates and resolves
 * `afterApply` only when the update is safe, the stateless PS hands weights to workers.
 * Strategies get the store and a logger through the context, never sockets or globals.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { AppliedRecordEntry } from '../../shared/protocol.ts';
import type { Signer } from './signer.ts';
import type { ParameterStore, Update } from './store.ts';

export interface StrategyContext {
  readonly store: ParameterStore;
  readonly log: FastifyBaseLogger;
  /** Verifies tags on what workers carry across failures. */
  readonly signer: Signer;
}

export interface AppliedUpdate extends Update {
  /** Model version after the update. */
  readonly version: number;
  /** Flag.FLUSH when the push was a flush of buffered gradients. @default 0 */
  readonly flags?: number;
}

/** A copy of the weights a worker offers to a PS that holds none (stateless recovery). */
export interface WeightsOffer {
  readonly workerId: number;
  readonly version: number;
  readonly weights: Float32Array;
  /** The payload bytes the tag covers. */
  readonly weightBytes: Uint8Array;
  readonly record: readonly AppliedRecordEntry[];
  readonly tag: Uint8Array;
}

export interface RecoveryStrategy {
  readonly name: string;
  /** Runs once before the PS accepts traffic; may restore the store. */
  start(ctx: StrategyContext): Promise<void>;
  /**
   * Resolves when the PS may serve pulls and apply pushes. A strategy that recovers state from
   * its workers (stateless) holds traffic here until it has adopted a copy. @default ready at once
   */
  ready?(): Promise<void>;
  /** Whether a newly connected worker should offer its copy of the weights. @default false */
  wantsWeights?(): boolean;
  /** Considers a worker's offered copy; true if adopted. Throws PS_FORGED_WEIGHTS for a bad copy. */
  offer?(offer: WeightsOffer): boolean;
  /** Called when a worker connects (the first one may open an adoption window). */
  workerConnected?(workerId: number): void;
  /** Resolves when the applied update may be acknowledged to the worker. */
  afterApply(update: AppliedUpdate): void | Promise<void>;
  /**
   * Throws (a retryable TabswarmError) if this PS may not take writes now: joins, pushes and
   * offers. The chain refuses them on every node but the head, and on a fenced head.
   * @default writes always admitted
   */
  admitWrite?(): void;
  /** Throws if this PS may not serve its weights now (a chain node still joining). @default admitted */
  admitRead?(): void;
  /**
   * Resolves when `version` may be acknowledged: a push recognised as a duplicate is acked with
   * the version of its first apply, which must be as safe as a fresh ack. @default at once
   */
  durable?(version: number): void | Promise<void>;
  /** What the strategy wants shown in /api/status. */
  status(): Record<string, unknown>;
  stop(): Promise<void>;
}

/** No recovery: the state lives in memory only and dies with the process. */
export function volatile(): RecoveryStrategy {
  return {
    name: 'none',
    async start() {},
    afterApply() {},
    status: () => ({ durable: false }),
    async stop() {},
  };
}
