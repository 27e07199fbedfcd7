/**
 * Robust aggregation: what the PS does with a push before the optimizer sees it. One hostile or
 * broken volunteer must not be able to move the weights further than an honest one could.
 *
 * An aggregator takes the rule-scaled gradient of one push (rules.ts has already turned the sum
 * of `count` gradients into what this update should contribute) and returns the vector the
 * optimizer applies with scale 1, or null when nothing is applied for this push (a windowed
 * aggregator still collecting). Its state is a pure function of the sequence of pushes it was
 * given, so a head that restarts its aggregator from the same sequence decides the same steps.
 * Chain replicas do not run it: the head forwards what it decided (service.ts, Forwarded).
 */
import { sumSq } from '../../../shared/codec/norm.ts';

export interface Aggregator {
  readonly name: string;
  /**
   * Whether the step `admit` returns already includes the rule's scale (then it is applied with
   * scale 1). Only `none` says false: it hands the gradient through untouched, so a run without
   * aggregation applies bit for bit what it did before aggregators existed.
   */
  readonly scales: boolean;
  /**
   * One push, in arrival order. `grad` is the push's gradient, `scale` the rule's factor for it;
   * the aggregator may overwrite `grad` (it is the frame's own buffer). Returns the step to
   * apply (with scale 1), or null for none. `normSq`, when given, is `grad`'s squared L2 norm as
   * `l2` would sum it (the PS's decode pass computes it): an aggregator that needs the norm
   * takes it instead of making a pass of its own. `workerId` is the pushing worker (clip's
   * direction check keeps a running direction per worker).
   */
  admit(grad: Float32Array, scale: number, normSq?: number, workerId?: number): Float32Array | null;
  /** Forgets every push seen (a restore rewound the weights under it). */
  reset(): void;
  /** Counters for /metrics and /api/status. */
  stats(): AggregatorStats;
}

export interface AggregatorStats {
  /** Pushes whose size was cut (clip, centered-clip). */
  clipped: number;
  /** Pushes seen. */
  admitted: number;
  /** Current clipping radius (clip, centered-clip), 0 when none. */
  radius: number;
  /** Pushes clip cut further for their worker's record of excess over the radius (excess.ts). */
  excessLimited?: number;
  /** Pushes cut by clip's direction check (direction.ts), and of those the ones cut to nothing. */
  directionLimited?: number;
  directionZeroed?: number;
}

/** The knobs of every aggregator, declared once in server/options/server.ts. */
export interface AggregatorOptions {
  /** clip / centered-clip: the radius is this many times the median recent norm. @default 2 */
  clipFactor: number;
  /** clip / centered-clip: the median is over the last K accepted pushes. @default 32 */
  clipWindow: number;
  /** clip / centered-clip: absolute radius until K pushes were seen (the warm-up). @default 5 */
  clipWarmup: number;
  /** trimmed-mean: pushes averaged per bucket. @default 2 */
  bucketSize: number;
  /** trimmed-mean: buckets per window; one update per window. @default 8 */
  buckets: number;
  /** trimmed-mean: bucket means dropped at each end per coordinate; (buckets-1)/2 is the median. @default 2 */
  trim: number;
  /** clip: a worker whose score (running cosine of its running direction to the consensus) is -T or below is cut to nothing (direction.ts); 0 = off. @default 0.15 */
  directionTolerance: number;
  /** clip: weight of the old value in a worker's running log excess over the radius (excess.ts); 0 = off. @default 0.9 */
  clipMemory: number;
}

export const AGGREGATOR_DEFAULTS: AggregatorOptions = { clipFactor: 2, clipWindow: 32, clipWarmup: 5, bucketSize: 2, buckets: 8, trim: 2, directionTolerance: 0.15, clipMemory: 0.9 };

/** L2 norm, accumulated in float64 in shared/codec/norm.ts's order (what the PS's decode pass hands on). */
export function l2(v: Float32Array): number {
  return Math.sqrt(sumSq(v));
}
