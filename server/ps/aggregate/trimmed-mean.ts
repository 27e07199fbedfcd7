/**
 * `trimmed-mean` over buckets (Karimireddy, He, Jaggi, ICLR 2022, "Byzantine-Robust Learning on
 * Heterogeneous Datasets via Bucketing"): pushes are collected into a window of B buckets of s
 * pushes each; when the window is full, each bucket is averaged and the update applied is the
 * coordinate-wise mean of the bucket means after dropping the `trim` largest and smallest values
 * of each coordinate (trim = (B-1)/2 gives the coordinate-wise median). Buckets are filled in a
 * seeded permutation of the window, not arrival order, so an attacker cannot pick its bucket by
 * timing; the permutation depends only on the window's index, so the decision is a pure function
 * of the push sequence.
 *
 * What an ack means here: a push is acknowledged once it is admitted into the window (its seq is
 * recorded, the version advances with no change to the weights), and it is applied exactly once,
 * as part of the window's update. A window not yet full when the head fails is lost with it.
 * The update is one step of the robust mean, as in the synchronous paper: s·B pushes buy one
 * step, which is the delay this aggregator costs.
 */
import { mulberry32 as prng } from '../../../shared/layout.ts';
import type { Aggregator, AggregatorOptions } from './types.ts';


/** The coordinate-wise trimmed mean of `rows`, dropping `trim` values at each end. */
export function trimmedMean(rows: readonly Float32Array[], trim: number, out: Float32Array): Float32Array {
  const k = rows.length;
  if (2 * trim >= k) throw new RangeError(`trimmedMean: cannot drop ${trim} of ${k} values at each end`);
  const col = new Float64Array(k);
  for (let i = 0; i < out.length; i++) {
    for (let r = 0; r < k; r++) col[r] = rows[r]![i]!;
    col.sort();
    let s = 0;
    for (let r = trim; r < k - trim; r++) s += col[r]!;
    out[i] = s / (k - 2 * trim);
  }
  return out;
}

export function trimmedMeanAggregator(opts: AggregatorOptions, size: number): Aggregator {
  const { bucketSize, buckets, trim } = opts;
  if (2 * trim >= buckets) throw new RangeError(`trimmed-mean: --trim ${trim} drops every one of ${buckets} buckets`);
  const window = bucketSize * buckets;
  const pending: Float32Array[] = [];
  let windows = 0;
  let admitted = 0;
  return {
    name: 'trimmed-mean',
    scales: true,
    admit(grad, s) {
      admitted += 1;
      const g = new Float32Array(size);
      for (let i = 0; i < size; i++) g[i] = s * grad[i]!;
      pending.push(g);
      if (pending.length < window) return null;
      // Fisher-Yates with the window's own seed.
      const rand = prng(0x9e3779b9 ^ windows);
      for (let i = window - 1; i > 0; i--) {
        const j = Math.floor(rand() * (i + 1));
        [pending[i], pending[j]] = [pending[j]!, pending[i]!];
      }
      const means: Float32Array[] = [];
      for (let b = 0; b < buckets; b++) {
        const m = new Float32Array(size);
        for (let j = 0; j < bucketSize; j++) {
          const p = pending[b * bucketSize + j]!;
          for (let i = 0; i < size; i++) m[i] = m[i]! + p[i]! / bucketSize;
        }
        means.push(m);
      }
      pending.length = 0;
      windows += 1;
      return trimmedMean(means, trim, new Float32Array(size));
    },
    reset() {
      pending.length = 0;
      windows = 0;
    },
    stats: () => ({ clipped: 0, admitted, radius: 0 }),
  };
}
