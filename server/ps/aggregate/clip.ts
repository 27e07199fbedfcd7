/**
 * `clip`: each push's (rule-scaled) L2 norm is cut to the radius of a RunningScale, c times the
 * median accepted norm of the last K pushes. An honest push is left as it is when its norm is
 * within c medians; a ×1e30 push moves the weights as far as an honest push of norm c·median.
 * A worker whose pushes keep arriving past the radius gets a smaller one (--clip-memory,
 * excess.ts). With --direction-tolerance, a worker whose pushes keep pointing against the
 * consensus is cut further, to nothing (direction.ts): the norm bounds how far a push moves, not
 * where to.
 */
import { DirectionCheck } from './direction.ts';
import { WorkerExcess } from './excess.ts';
import { RunningScale } from './scale.ts';
import { l2, type Aggregator, type AggregatorOptions } from './types.ts';

export function clip(opts: AggregatorOptions): Aggregator {
  const scale = new RunningScale(opts);
  const excess = new WorkerExcess(opts.clipMemory);
  const direction = new DirectionCheck(opts.directionTolerance, opts.clipWindow);
  let clipped = 0;
  let admitted = 0;
  return {
    name: 'clip',
    scales: true,
    admit(grad, s, normSq, workerId) {
      admitted += 1;
      const norm = Math.abs(s) * (normSq === undefined ? l2(grad) : Math.sqrt(normSq));
      const radius = scale.radius();
      const warm = scale.warm;
      let factor = s;
      if (norm > radius) {
        factor = (s * radius) / norm;
        clipped += 1;
      }
      scale.record(norm, workerId);
      // A worker that is past the radius push after push gets less of it (excess.ts).
      factor *= excess.factor(warm ? norm : 0, radius, workerId);
      // Then where to: a worker pushing against the consensus is cut further (direction.ts).
      factor *= direction.factor(grad, workerId);
      // In place: the frame's buffer is ours, and the step must be one materialized vector so
      // that the head and its replicas apply the same float32 values.
      if (factor !== 1) for (let i = 0; i < grad.length; i++) grad[i] = grad[i]! * factor;
      return grad;
    },
    reset() {
      scale.reset();
      excess.reset();
      direction.reset();
    },
    stats: () => ({ clipped, admitted, radius: scale.radius(), excessLimited: excess.limited, directionLimited: direction.limited, directionZeroed: direction.zeroed }),
  };
}
