/**
 * The robust running scale both clipping aggregators share: the median of the norms of the last K
 * pushes, whatever their size (the median is what keeps an attacker's norms from moving it).
 * Until K norms were seen the radius is also capped by an absolute warm-up bound, since a median
 * of a handful of pushes is easy for one early attacker to steer.
 *
 * A median of pushes holds while fewer than half of the recent pushes are hostile. It does not
 * when the hostile workers push most of them: at the end of a run, when the honest workers have
 * finished and the attackers push on alone, or in any lull, or when attackers simply push faster.
 * The window then holds their norms, the radius is theirs, and their pushes pass whole. In
 * bench:byzantine on mnist-mlp (n = 8, 150 steps) that ended runs at chance: two ×1e3 workers
 * took both seeds from 86% to 11-19% in the last evaluations (no version refused: each step less
 * than doubled the weights' norm), one ×1e30 worker one seed (loss 516), Gaussian noise one seed
 * (86 -> 46%). So pushes that name their worker also keep a median per worker (of its own
 * last min(K, WORKER_NORMS) norms, for the last K distinct workers to push), and the radius is
 * c times the smaller of the two medians: the median over workers holds while fewer than half
 * of the recent workers are hostile, however many pushes they make, and the median over pushes
 * still holds where the workers are too few for a median of them to mean anything (one honest
 * worker and one attacker: their mean). The smaller of the two only lowers the radius, never
 * raises it past what either alone would allow: an attacker can shrink it by a flood of tiny
 * pushes (as it could before), which clips honest pushes more and costs speed, not direction.
 */
import { MIN_OTHERS } from './direction.ts';
import type { AggregatorOptions } from './types.ts';

/** Distinct recent workers needed before their median counts: the direction check's others and the one judged. */
export const MIN_WORKERS = MIN_OTHERS + 1;
/** Norms kept per worker, at most: its median is over its last min(K, this). */
export const WORKER_NORMS = 32;

/** One worker's last norms (a ring) and their median. */
interface WorkerNorms {
  readonly ring: Float64Array;
  n: number;
  median: number;
}

export class RunningScale {
  private readonly ring: Float64Array;
  private seen = 0;
  /** The last K distinct workers to push (least recent first), each with its own norms. */
  private readonly workers = new Map<number, WorkerNorms>();

  constructor(private readonly opts: Pick<AggregatorOptions, 'clipFactor' | 'clipWindow' | 'clipWarmup'>) {
    this.ring = new Float64Array(opts.clipWindow);
  }

  /** The clipping radius for the next push. */
  radius(): number {
    const { clipFactor, clipWindow, clipWarmup } = this.opts;
    if (this.seen === 0) return clipWarmup;
    const r = clipFactor * Math.min(this.median(), this.workerMedian());
    return this.seen < clipWindow ? Math.min(clipWarmup, r) : r;
  }

  /**
   * Records a push's norm, as it came. The median needs no cap to be robust: with a fraction f
   * < 1/2 of hostile pushes, however large, it stays at or below the honest 1/(2(1-f)) quantile.
   * Recording clipped pushes at the radius or the median instead would pin the scale when honest
   * norms grow (every honest push clipped, the median never moving).
   */
  record(norm: number, workerId?: number): void {
    // A zero push (a free rider, or a worker whose batch gave no gradient) moves nothing and says
    // nothing about the honest scale: recorded, enough of them would pull the radius to 0.
    if (!(norm > 0)) return;
    this.ring[this.seen % this.ring.length] = norm;
    this.seen += 1;
    if (workerId === undefined) return;
    const K = this.ring.length;
    const R = Math.min(K, WORKER_NORMS);
    let w = this.workers.get(workerId);
    if (w) this.workers.delete(workerId); // re-inserted last: the map stays in recency order
    else {
      w = { ring: new Float64Array(R), n: 0, median: 0 };
      if (this.workers.size >= K) this.workers.delete(this.workers.keys().next().value!);
    }
    this.workers.set(workerId, w);
    w.ring[w.n % R] = norm;
    w.n += 1;
    w.median = medianOf(w.ring.subarray(0, Math.min(w.n, R)));
  }

  /** Whether K norms were seen: the radius is c times their median, no longer the warm-up bound. */
  get warm(): boolean {
    return this.seen >= this.opts.clipWindow;
  }

  /** The median norm of the last K pushes. */
  median(): number {
    return medianOf(this.ring.subarray(0, Math.min(this.seen, this.ring.length)));
  }

  /** The median over the last K distinct workers to push of each one's median norm (Infinity when none named itself). */
  workerMedian(): number {
    // Fewer than MIN_WORKERS: a median of two or three workers is one of them. With it, the run
    // of test/stateless.test (two WebGPU tabs and a topk worker) never had all three pushing;
    // a worker whose honest norms run larger is clipped every push and struck as an offender.
    if (this.workers.size < MIN_WORKERS) return Infinity;
    const medians = new Float64Array(this.workers.size);
    let i = 0;
    for (const w of this.workers.values()) medians[i++] = w.median;
    return medianOf(medians);
  }

  reset(): void {
    this.seen = 0;
    this.workers.clear();
  }
}

/** The median of `x` (at least one value); sorts a copy. */
function medianOf(x: Float64Array): number {
  const sorted = Float64Array.from(x).sort();
  const n = sorted.length;
  return n % 2 === 1 ? sorted[(n - 1) / 2]! : (sorted[n / 2 - 1]! + sorted[n / 2]!) / 2;
}
