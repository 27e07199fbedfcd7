/**
 * Recovery strategies plug into the PS loop here. The loop (service.ts) exists once: receive,
 * validate, apply, then `afterApply`, then ack. A strategy decides what survives a failure:
 * checkpointing writes snapshots, chain replication forwards updates and resolves
 * `afterApply` only when the update is safe, the stateless PS hands weights to workers.
 * Strategies get the store and a logger through the context, never sockets or globals.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { ParameterStore, Update } from './store.ts';

export interface StrategyContext {
  readonly store: ParameterStore;
  readonly log: FastifyBaseLogger;
}

export interface AppliedUpdate extends Update {
  /** Model version after the update. */
  readonly version: number;
}

export interface RecoveryStrategy {
  readonly name: string;
  /** Runs once before the PS accepts traffic; may restore the store. */
  start(ctx: StrategyContext): Promise<void>;
  /** Resolves when the applied update may be acknowledged to the worker. */
  afterApply(update: AppliedUpdate): void | Promise<void>;
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
