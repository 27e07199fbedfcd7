/**
 * `centered-clip` (Karimireddy, He, Jaggi, ICML 2021, "Learning from History for Byzantine
 * Robust Optimization"): the push's deviation from a running center is clipped, not the push.
 *
 *   x = m + min(1, tau / |g - m|) (g - m)       the step applied
 *   m <- beta m + (1 - beta) x                  the center: momentum of the applied steps
 *
 * In the paper the center is the previous aggregate of worker momenta; asynchronously there is
 * one push at a time, so the center is the exponential average of recent steps (beta = 0.9), and
 * tau is c times the median recent deviation norm (RunningScale). Honest pushes scatter around
 * the center and pass almost unchanged; a push far from it moves the step by at most tau.
 */
import { RunningScale } from './scale.ts';
import type { Aggregator, AggregatorOptions } from './types.ts';

/** Weight of the old center in the running center. */
export const CENTER_BETA = 0.9;

export function centeredClip(opts: AggregatorOptions, size: number): Aggregator {
  const scale = new RunningScale(opts);
  const center = new Float32Array(size);
  let clipped = 0;
  let admitted = 0;
  return {
    name: 'centered-clip',
    scales: true,
    admit(grad, s) {
      admitted += 1;
      let sq = 0;
      for (let i = 0; i < size; i++) {
        const d = s * grad[i]! - center[i]!;
        sq += d * d;
      }
      const dev = Math.sqrt(sq);
      const tau = scale.radius();
      let k = 1;
      if (dev > tau) {
        k = tau / dev;
        clipped += 1;
      }
      scale.record(dev);
      // A fresh vector: the step outlives this call (the chain forwards it).
      const step = new Float32Array(size);
      for (let i = 0; i < size; i++) {
        const m = center[i]!;
        const x = m + k * (s * grad[i]! - m);
        step[i] = x;
        center[i] = CENTER_BETA * m + (1 - CENTER_BETA) * step[i]!;
      }
      return step;
    },
    reset() {
      scale.reset();
      center.fill(0);
    },
    stats: () => ({ clipped, admitted, radius: scale.radius() }),
  };
}
