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

  /** @param lr this update's learning rate (a stale-update rule may lower it) @default this.lr */
  apply(weights: Float32Array, grad: Float32Array, scale = 1, lr = this.lr): void {
    const n = weights.length;
    if (grad.length !== n) throw new RangeError(`Sgd.apply: gradient has ${grad.length} values, weights ${n}`);
    if (this.momentum === 0) {
      const step = lr * scale;
      for (let i = 0; i < n; i++) weights[i]! -= step * grad[i]!;
      return;
    }
    const v = this.velocity;
    const mu = this.momentum;
    const nest = this.nesterov;
    for (let i = 0; i < n; i++) {
      const g = scale * grad[i]!;
      const vi = mu * v[i]! + g;
      v[i] = vi;
      weights[i]! -= lr * (nest ? g + mu * vi : vi);
    }
  }

  /**
   * `apply`, guarded: the new weights are computed twice, once to check and once to write, so a
   * refused update leaves weights and velocity untouched (no copy of either is kept). Returns
   * the new weights' squared L2 norm; or, changing nothing, -1 when a new value (or velocity)
   * would not be finite and -2 when the squared norm would exceed `maxNormSq`.
   */
  tryApply(weights: Float32Array, grad: Float32Array, scale: number, lr: number, maxNormSq: number): number {
    const n = weights.length;
    if (grad.length !== n) throw new RangeError(`Sgd.tryApply: gradient has ${grad.length} values, weights ${n}`);
    const v = this.velocity;
    const mu = this.momentum;
    const step = lr * scale;
    let sq = 0;
    for (let i = 0; i < n; i++) {
      // The same expressions as `apply`, rounded to float32 as the write will round them.
      let w: number;
      if (mu === 0) w = Math.fround(weights[i]! - step * grad[i]!);
      else {
        const g = scale * grad[i]!;
        const vi = mu * v[i]! + g;
        if (!Number.isFinite(Math.fround(vi))) return -1; // a velocity gone infinite poisons every later update
        w = Math.fround(weights[i]! - lr * (this.nesterov ? g + mu * vi : vi));
      }
      if (!Number.isFinite(w)) return -1;
      sq += w * w;
    }
    if (!Number.isFinite(sq)) return -1;
    if (!(sq <= maxNormSq)) return -2;
    this.apply(weights, grad, scale, lr);
    return sq;
  }
}
