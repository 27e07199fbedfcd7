/**
 * The robust running scale both clipping aggregators share: the median of the last K norms that
 * were accepted (a clipped push counts as the median, so an attacker's huge norms cannot move it).
 * Until K norms were seen the radius is also capped by an absolute warm-up bound, since a median
 * of a handful of pushes is easy for one early attacker to steer.
 */
import type { AggregatorOptions } from './types.ts';

export class RunningScale {
  private readonly ring: Float64Array;
  private seen = 0;

  constructor(private readonly opts: Pick<AggregatorOptions, 'clipFactor' | 'clipWindow' | 'clipWarmup'>) {
    this.ring = new Float64Array(opts.clipWindow);
  }

  /** The clipping radius for the next push. */
  radius(): number {
    const { clipFactor, clipWindow, clipWarmup } = this.opts;
    if (this.seen === 0) return clipWarmup;
    const r = clipFactor * this.median();
    return this.seen < clipWindow ? Math.min(clipWarmup, r) : r;
  }

  /**
   * Records a push's norm. A clipped push enters as the current median, not as the radius: a
   * fraction f of attackers entering at the radius would lift the median to the honest
   * (1+f)/2 quantile, and the radius with it; at the median they leave it where honest pushes put it.
   */
  record(norm: number, radius: number): void {
    if (norm > radius) norm = this.seen === 0 ? radius : this.median();
    this.ring[this.seen % this.ring.length] = norm;
    this.seen += 1;
  }

  median(): number {
    const n = Math.min(this.seen, this.ring.length);
    const sorted = Array.from(this.ring.subarray(0, n)).sort((a, b) => a - b);
    return n % 2 === 1 ? sorted[(n - 1) / 2]! : (sorted[n / 2 - 1]! + sorted[n / 2]!) / 2;
  }

  reset(): void {
    this.seen = 0;
  }
}
