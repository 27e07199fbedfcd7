/**
 * The robust running scale both clipping aggregators share: the median of the norms of the last K
 * pushes, whatever their size (the median is what keeps an attacker's norms from moving it).
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
   * Records a push's norm, as it came. The median needs no cap to be robust: with a fraction f
   * < 1/2 of hostile pushes, however large, it stays at or below the honest 1/(2(1-f)) quantile.
   * Recording clipped pushes at the radius or the median instead would pin the scale when honest
   * norms grow (every honest push clipped, the median never moving).
   */
  record(norm: number): void {
    // A zero push (a free rider, or a worker whose batch gave no gradient) moves nothing and says
    // nothing about the honest scale: recorded, enough of them would pull the radius to 0.
    if (!(norm > 0)) return;
    this.ring[this.seen % this.ring.length] = norm;
    this.seen += 1;
  }

  /** Whether K norms were seen: the radius is c times their median, no longer the warm-up bound. */
  get warm(): boolean {
    return this.seen >= this.opts.clipWindow;
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
