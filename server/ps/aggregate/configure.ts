/**
 * Threads the run's robustness options into a PS: the aggregator in front of the optimizer,
 * the output guard, the limits on what pushes claim, the pace and the repeat-offender limits
 * (ps/pace.ts). Called once by buildServer.
 */
import type { ServerOptions } from '../../config.ts';
import type { ParameterServer } from '../service.ts';
import { createAggregator } from './index.ts';

export function configureRobustness(ps: ParameterServer, o: ServerOptions): void {
  const { clipFactor, clipWindow, clipWarmup, bucketSize, buckets, trim, directionTolerance, clipMemory } = o;
  ps.store.aggregator = createAggregator(o.aggregator, { clipFactor, clipWindow, clipWarmup, bucketSize, buckets, trim, directionTolerance, clipMemory }, ps.layout.size);
  ps.store.maxNormJump = o.maxNormJump;
  // Relay workers take weights from peers, chain workers may read from the tail: a session's
  // own replies do not bound their claims, the PS's current version does.
  const sharedReads = o.relay === 'on' || ps.strategy.name.startsWith('chain');
  ps.claims.limits = { maxCount: o.maxCount, sessionBound: !sharedReads, maxRate: o.maxCountRate };
  ps.pace.limits = { pushRate: o.pushRate, pushesInFlight: o.pushesInFlight };
  ps.offenders.limits = { strikes: o.offenderStrikes, window: o.offenderWindow, keepOutMs: o.keepOutMs };
  ps.warmupPushes = o.clipWindow;
}
