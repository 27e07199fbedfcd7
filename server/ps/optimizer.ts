/**
 * Plain SGD with optional (heavy-ball) momentum, applied in place over Float32Arrays: no
 * allocation, no tensors, no JSON on the per-update path.
 *
 *   v <- momentum * v + scale * g        (v is skipped entirely when momentum = 0)
 *   w <- w - lr * v
 *
 * With `nesterov` (the outer optimizer of local-steps runs, as in DiLoCo):
 *
 *   v <- momentum * v + scale * g
 *   w <- w - lr * (scale * g + momentum * v)
 *
 * `scale` lets the caller turn a sum of `count` gradients into their mean (1/count), or
 * down-weight a stale update, without touching the gradient buffer.
 */
import { sumSq } from '../../shared/codec/norm.ts';

export interface SgdOptions {
  /** Learning rate. @default the model's (0.01 for fashion-cnn) */
  lr: number;
  /** Momentum coefficient in [0, 1). @default 0 */
  momentum: number;
  /** Nesterov momentum (needs momentum > 0 to differ). @default false */
  nesterov?: boolean;
}

export class Sgd {
  lr: number;
  readonly momentum: number;
  readonly nesterov: boolean;
  /** Velocity; empty when momentum is 0. Part of the optimizer state that snapshots keep. */
  readonly velocity: Float32Array;

  constructor(size: number, opts: SgdOptions) {
    if (!(opts.lr > 0) || !Number.isFinite(opts.lr)) throw new RangeError(`Sgd: option 'lr' must be a positive finite number, got ${opts.lr}`);
    if (!(opts.momentum >= 0 && opts.momentum < 1)) throw new RangeError(`Sgd: option 'momentum' must be in [0, 1), got ${opts.momentum}`);
    this.lr = opts.lr;
    this.momentum = opts.momentum;
    this.nesterov = opts.nesterov ?? false;
    this.velocity = new Float32Array(opts.momentum > 0 ? size : 0);
  }

  /** The guarded apply's next weights and velocity, kept between updates (no per-update allocation). */
  private nextWeights: Float32Array | undefined;
  private nextVelocity: Float32Array | undefined;

  /**
   * @param lr this update's learning rate (a stale-update rule may lower it) @default this.lr
   * @returns the new weights' squared L2 norm (shared/codec/norm.ts's order), from the same pass
   */
  apply(weights: Float32Array, grad: Float32Array, scale = 1, lr = this.lr): number {
    const n = weights.length;
    if (grad.length !== n) throw new RangeError(`Sgd.apply: gradient has ${grad.length} values, weights ${n}`);
    return this.momentum === 0 ? plainStep(weights, weights, grad, lr * scale) : this.momentumStep(weights, this.velocity, weights, grad, scale, lr);
  }

  /**
   * `apply`, guarded, in one pass: the new weights (and velocity) are computed into buffers kept
   * for the purpose, with their squared norm, and copied over the live ones only when accepted,
   * so a refused update leaves weights and velocity untouched. The values are those `apply`
   * writes, bit for bit (the same expressions, the same float32 rounding on store), so a replica
   * that applies the head's decision with `apply` ends where the head did. Returns the new
   * weights' squared L2 norm; or, changing nothing, -1 when a new value (or velocity) would not
   * be finite and -2 when the squared norm would exceed `maxNormSq`.
   */
  tryApply(weights: Float32Array, grad: Float32Array, scale: number, lr: number, maxNormSq: number): number {
    const n = weights.length;
    if (grad.length !== n) throw new RangeError(`Sgd.tryApply: gradient has ${grad.length} values, weights ${n}`);
    const next = (this.nextWeights ??= new Float32Array(n));
    let sq: number;
    if (this.momentum === 0) sq = plainStep(next, weights, grad, lr * scale);
    else {
      const nextV = (this.nextVelocity ??= new Float32Array(n));
      sq = this.momentumStep(next, nextV, weights, grad, scale, lr);
      // A velocity gone infinite poisons every later update.
      if (!Number.isFinite(sq) || !Number.isFinite(sumSq(nextV))) return -1;
    }
    // Every finite float32 squared is below 1.2e77, so a sum of them over any layout is finite:
    // a non-finite sum means a non-finite weight.
    if (!Number.isFinite(sq)) return -1;
    if (!(sq <= maxNormSq)) return -2;
    weights.set(next);
    if (this.momentum !== 0) this.velocity.set(this.nextVelocity!);
    return sq;
  }

  /**
   * `tryApply` for a sparse gradient (zero outside `support`, increasing indices) without
   * momentum: only the supported weights are computed and written, so a topk push costs O(k),
   * not O(n). A weight outside the support would be written unchanged by `apply` (w - step * 0
   * is w), so the weights end bit for bit where `apply` leaves them. The new squared norm is
   * `normSq` updated by the changed weights (the guard's reference, no longer an exact sum).
   */
  trySparse(weights: Float32Array, grad: Float32Array, support: Uint32Array, scale: number, lr: number, maxNormSq: number, normSq: number): number {
    if (this.momentum !== 0) throw new RangeError('Sgd.trySparse: momentum moves every weight');
    const step = lr * scale;
    let sq = normSq;
    for (let j = 0; j < support.length; j++) {
      const i = support[j]!;
      const w = weights[i]!;
      const x = Math.fround(w - step * grad[i]!);
      sq += x * x - w * w;
    }
    if (!Number.isFinite(sq)) return -1;
    sq = Math.max(0, sq); // rounding must not take it below 0
    if (!(sq <= maxNormSq)) return -2;
    for (let j = 0; j < support.length; j++) {
      const i = support[j]!;
      weights[i] = weights[i]! - step * grad[i]!;
    }
    return sq;
  }

  /** out <- w - lr * (momentum step); vOut <- the new velocity. `out`/`vOut` may be `w`/`velocity`. */
  private momentumStep(out: Float32Array, vOut: Float32Array, w: Float32Array, grad: Float32Array, scale: number, lr: number): number {
    const v = this.velocity;
    const mu = this.momentum;
    const nest = this.nesterov;
    for (let i = 0; i < w.length; i++) {
      const g = scale * grad[i]!;
      const vi = mu * v[i]! + g;
      vOut[i] = vi;
      out[i] = w[i]! - lr * (nest ? g + mu * vi : vi);
    }
    return sumSq(out);
  }
}

/**
 * out <- w - step * grad, rounded to float32 as stored; returns the squared norm of out, summed
 * in the same pass in shared/codec/norm.ts's order. `out` may be `w`.
 */
function plainStep(out: Float32Array, w: Float32Array, grad: Float32Array, step: number): number {
  const n = w.length;
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const a = Math.fround(w[i]! - step * grad[i]!);
    const b = Math.fround(w[i + 1]! - step * grad[i + 1]!);
    const c = Math.fround(w[i + 2]! - step * grad[i + 2]!);
    const d = Math.fround(w[i + 3]! - step * grad[i + 3]!);
    out[i] = a;
    out[i + 1] = b;
    out[i + 2] = c;
    out[i + 3] = d;
    s0 += a * a;
    s1 += b * b;
    s2 += c * c;
    s3 += d * d;
  }
  for (; i < n; i++) {
    const a = Math.fround(w[i]! - step * grad[i]!);
    out[i] = a;
    if (i % 4 === 0) s0 += a * a;
    else if (i % 4 === 1) s1 += a * a;
    else s2 += a * a;
  }
  return s0 + s1 + (s2 + s3);
}
