/**
 * Recovery strategies plug into the PS loop here. The loop (service.ts) exists once: receive,
 * validate, apply, then `afterApply`, then ack. A strategy decides what survives a failure, in
 * three parts, each with every member required:
 *
 *   Durability  what survives a crash of this process: start (restore), afterApply, durable, stop
 *               (checkpointing writes snapshots; none keeps nothing)
 *   Bootstrap   how a PS that holds nothing gets state from its workers: ready, wantsWeights,
 *               offer, workerConnected (the stateless PS adopts a worker's copy)
 *   Admission   whether this PS may take writes and serve reads now: admitWrite, admitRead
 *               (a chain admits writes on its head only)
 *
 * `compose` builds a strategy from the parts it has and fills the others with the defaults
 * below, once; the loop then calls every member without asking whether it exists. Strategies
 * combine by wrapping (Flower's strategy wrappers): `chain(checkpoint)` is a strategy that holds
 * the checkpoint strategy, runs its durability on every node and adds admission and
 * replication (server/strategies/chain.ts). Strategies get the store, the PS and a logger
 * through the context, never sockets or globals.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { AppliedRecordEntry } from '../../shared/protocol.ts';
import type { ParameterServer } from './service.ts';
import type { Signer } from './signer.ts';
import type { ParameterStore, Update } from './store.ts';

export interface StrategyContext {
  readonly store: ParameterStore;
  readonly log: FastifyBaseLogger;
  /** Verifies tags on what workers carry across failures. */
  readonly signer: Signer;
  /** The PS loop whose store this strategy keeps (a chain replica applies forwarded updates through it). */
  readonly ps: ParameterServer;
  /**
   * A durability calls this when `version` became restorable after a crash (a checkpoint is on
   * disk, or was restored at start). A wrapper may listen: the chain publishes it so that a
   * cluster restarted after every node died resumes from the newest checkpoint any node holds.
   */
  readonly reportDurable: (version: number) => void;
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
  /** The signing key the meta block names, in clear (absent in older frames): see shared/signing.ts. */
  readonly keyId?: Uint8Array;
}

/** What survives a crash of this process. */
export interface Durability {
  /** Runs once before the PS accepts traffic; may restore the store. */
  start(ctx: StrategyContext): Promise<void>;
  /** Resolves when the applied update may be acknowledged to the worker. */
  afterApply(update: AppliedUpdate): void | Promise<void>;
  /**
   * Resolves when `version` may be acknowledged: a push recognised as a duplicate is acked with
   * the version of its first apply, which must be as safe as a fresh ack.
   */
  durable(version: number): void | Promise<void>;
  /** What the strategy wants shown in /api/status. */
  status(): Record<string, unknown>;
  stop(): Promise<void>;
}

/** How a PS that holds nothing gets its state from its workers (stateless recovery). */
export interface Bootstrap {
  /** Resolves when the PS may serve pulls and apply pushes (held while it adopts a copy). */
  ready(): Promise<void>;
  /** Whether a newly connected worker should offer its copy of the weights. */
  wantsWeights(): boolean;
  /** Considers a worker's offered copy; true if adopted. Throws PS_FORGED_WEIGHTS for a bad copy. */
  offer(offer: WeightsOffer): boolean;
  /** Called when a worker connects (the first one may open an adoption window). */
  workerConnected(workerId: number): void;
}

/** Whether this PS may take writes and serve reads now. */
export interface Admission {
  /**
   * Throws (a retryable TabswarmError) if this PS may not take writes now: joins, pushes and
   * offers. The chain refuses them on every node but the head, and on a fenced head.
   */
  admitWrite(): void;
  /** Throws if this PS may not serve its weights now (a chain node still joining). */
  admitRead(): void;
}

export interface RecoveryStrategy extends Durability, Bootstrap, Admission {
  readonly name: string;
}

/** Nothing survives: the state lives in memory only and dies with the process. */
export const NO_DURABILITY: Durability = Object.freeze({
  async start() {},
  afterApply() {},
  durable() {},
  status: () => ({ durable: false }),
  async stop() {},
});

/** The PS holds its own state from the start: ready at once, asks workers for nothing. */
export const NO_BOOTSTRAP: Bootstrap = Object.freeze({
  ready: () => Promise.resolve(),
  wantsWeights: () => false,
  offer: () => false,
  workerConnected() {},
});

/** Every write and read admitted. */
export const OPEN_ADMISSION: Admission = Object.freeze({
  admitWrite() {},
  admitRead() {},
});

export interface StrategyParts {
  readonly durability?: Durability;
  readonly bootstrap?: Bootstrap;
  readonly admission?: Admission;
}

/** A strategy from its parts; a part left out takes its default above (the one place defaults live). */
export function compose(name: string, parts: StrategyParts): RecoveryStrategy {
  const d = parts.durability ?? NO_DURABILITY;
  const b = parts.bootstrap ?? NO_BOOTSTRAP;
  const a = parts.admission ?? OPEN_ADMISSION;
  return {
    name,
    start: (ctx) => d.start(ctx),
    afterApply: (u) => d.afterApply(u),
    durable: (v) => d.durable(v),
    status: () => d.status(),
    stop: () => d.stop(),
    ready: () => b.ready(),
    wantsWeights: () => b.wantsWeights(),
    offer: (o) => b.offer(o),
    workerConnected: (id) => b.workerConnected(id),
    admitWrite: () => a.admitWrite(),
    admitRead: () => a.admitRead(),
  };
}

/** No recovery: the state lives in memory only and dies with the process. */
export function volatile(): RecoveryStrategy {
  return compose('none', {});
}
