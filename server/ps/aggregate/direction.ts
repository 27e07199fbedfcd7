/**
 * The direction check `clip` adds to its norm cut (`--direction-tolerance T`, 0 = off).
 *
 * Clipping bounds how far one push moves the weights, not where to. A worker that pushes, at the
 * clipping radius, the opposite of what it computed (sign flip) or a negative multiple of the
 * honest mean (inner-product manipulation, Xie et al., UAI 2020) moves the model backwards by up
 * to c times an honest step per push; two such workers of eight outweigh the honest ones, whose
 * noisy gradients mostly cancel (docs/benchmarks.md, "Byzantine workers").
 *
 * So each push is also judged by its worker's direction over time:
 *
 *   u      = sketch(g) / |sketch(g)|                  the push's direction, in a 512-bucket count sketch
 *   d_w   <- 0.9 d_w + 0.1 u                           the worker's running direction
 *   r      = coordinate-wise median of the d_v of the other workers v among the last K pushes,
 *            each v voting with its trust t_v       the consensus (K = --clip-window), before this push
 *   s_w   <- 0.8 s_w + 0.2 cos(d_w, r)                 the worker's score (its first: the cosine itself)
 *   factor = clamp(1 + s_w / T, 0, 1)
 *
 * A worker whose score says it agrees with the consensus or is orthogonal to it (s >= 0: honest
 * noise) is left alone; one pointing against it by T or more is cut to nothing, and between the
 * two the cut is linear. The worker's running direction, not the single push, is judged: one
 * honest push of a noisy batch may point anywhere, ten in a row do not point against the
 * consensus. And the cosine is smoothed again (COS_BETA) before it decides: late in a run honest
 * gradients are mostly noise, the consensus of a few others is noisy too, and an honest cosine
 * swings well below zero. A per-push log of test/byzantine.test's sign-flip case (mnist-logreg,
 * four honest workers left once the two flippers were gone) had honest cosines with a median of
 * +0.03 to +0.14 and a 5th percentile of -0.28 to -0.41, against -0.40 to -0.67 (median) for the
 * flippers. Judged on the cosine alone at T = 0.1, the honest workers were cut to nothing on 29%
 * of their pushes and kept a mean factor of 0.64; runs of such cuts made one of them a repeat
 * offender (disconnected mid-run) in two of two runs, and a CI run of that test fell 7 points
 * under clean. Replayed on that log, the score at T = 0.15 zeroes 6.4% of the honest pushes
 * (mean factor 0.80) and 94% of the flippers' (mean 0.04); at T = 0.2, 3.1% (0.84) and 93%
 * (0.05), but in aggregate.test's IID swarm two flippers of eight then kept up to 13% of their
 * steps (12 of 30 salts past its 5%; at 0.15 at most 1.8%). A slower score (β 0.9) let those
 * flippers through for twice as long before it caught them.
 *
 * The consensus is a median over workers, not pushes: it stays with the honest ones while fewer
 * than half of the workers recently pushing are hostile, however fast those push, and a running
 * direction is far less noisy than one push (with a per-push cosine to the true gradient of 0.1,
 * a median of single pushes barely finds it). Each other worker votes with its trust (below):
 * at the end of a run the honest workers finish one by one while attackers push on, and with two
 * of them among the last four pushing, a plain median of an honest worker's three others is the
 * attackers' (on mnist-mlp under a little is enough at f = 2, the last honest workers were cut to
 * a mean factor of 0.02-0.49 while the attackers, at a trust of 0.16-0.30, were cut to nothing).
 * Weighted by trust they no longer outvote the honest ones. A weight, not a threshold: leaving
 * out every worker whose trust fell below STRIKE_TRUST did the same for that case, but an honest
 * worker whose trust dips past it loses its whole vote at once (an honest worker of four was
 * disconnected in 2 of 5 loaded runs with it; with the plain median, and with this weight, 1 of 5:
 * small swarms' open problem, docs/benchmarks.md). When the others' trusts sum to nothing, each
 * votes once. A worker is left out of the
 * consensus it is judged against: its own noise would correlate with its running direction and
 * pull its cosine up by about as much as an attacker's is pulled down. Nothing is judged
 * until K pushes were seen, the worker has made MIN_PUSHES of its own and MIN_OTHERS others
 * have made as many (so with fewer than 4 workers, never). The others are those among the last
 * K pushes; when fewer than MIN_OTHERS are (the worker pushes alone, the others gone quiet), the
 * last LULL_OTHERS workers to push. Judging only by the window let a sign flipper that pushed
 * on alone after the honest workers finished fill it with its own pushes and go unjudged: in
 * bench:byzantine (f = 2, 40 steps) one flipper pushed its last 18 alone (still judged: the
 * window held others; 30 would have emptied it), and a run with no log of its pushes ended at
 * loss 19 right after an evaluation at 0.815 (final accuracy 0.194), as such a tail would. An
 * honest worker alone is judged against those last directions too, and is cut only if it
 * points against them.
 *
 * Those directions are frozen, and a worker alone moves the model away from where they were
 * made: a sign flipper whose pushes pass in part climbs the loss until its next gradients no
 * longer resemble the ones behind the frozen directions, and its flipped pushes come to point
 * with them. On mnist-mlp (bench:byzantine --full, n = 8) flippers left pushing at the end of a
 * run did just that (cosine -0.3 to +0.05 within 30 pushes, +0.5 for a pair) and took 4 of 10
 * runs from 86-88% to 15-80% in their last evaluations. So the check keeps each worker's trust,
 * the running mean (TRUST_BETA) of the factors it got while others pushed around it, and a worker
 * judged in a lull (fewer than MIN_OTHERS others among the window, or among its newer half)
 * gets no more than its trust, which the lull does not change: a flipper cut to nothing all run
 * stays cut; an honest worker that was rarely cut is hardly slowed.
 *
 * The end of a run goes stale before it is a lull: with the score (above) in place of the bare
 * cosine, two flippers of eight left pushing with the last few honest workers had their cosine
 * rise from -0.17 to +0.6 within 13 of their pushes, got factors up to 1 while the window still
 * held three others, and took mnist-mlp from 87.7% to 14.1% (two inner-product attackers:
 * 87.1% to 32.9%, their trust still 0.3-0.56). So a worker never gets more than its trust plus
 * TRUST_MARGIN, lull or not: its trust, fed its capped factors, climbs at most TRUST_MARGIN ×
 * (1 - TRUST_BETA) a push (a flipper at 0.1 needs some 70 honest-looking pushes to pass in
 * full), and an honest worker at a trust of 0.8 or more is not touched by it. Rerun on those
 * seeds (T = 0.2): 84.3, 86.1 and 85.9, 85.0. The price is paid by small swarms whose honest
 * workers are often cut (four on mnist-logreg: mean factor 0.55-0.84, trust 0.34-0.65), and so
 * a push cut to nothing is a strike for the offender rule only when its worker's trust is below
 * STRIKE_TRUST: a flipper cut to nothing from the start is there after 18 pushes, and no honest
 * worker of those small swarms was disconnected in six runs with both cores busy (with the cap
 * and every zeroed push a strike, two of six were).
 *
 * The count sketch (each coordinate i adds ±g_i to one of 512 buckets) keeps cosines within
 * about 1/√512 of the full-dimension ones at 2 KB per worker. A model of more than
 * SKETCH_SAMPLE coordinates is sketched on a random subset of about that many (fashion-cnn:
 * 1 in 6), so the check costs about 0.5 ms a push, not 2 (docs/benchmarks.md, "Third run").
 * The subset, the buckets and the signs come from a hash salted per process: a client cannot
 * craft a push that looks aligned in the sketch and is not, nor aim a manipulation at
 * coordinates the sketch skips (one spread over m coordinates is seen on about
 * m × SKETCH_SAMPLE / n of them). Per-worker directions live in an LRU map of at most
 * MAX_WORKERS entries (8 MB).
 */
import { randomInt } from 'node:crypto';

export const SKETCH_BUCKETS = 512;
/** Coordinates sketched at most: a larger model is sampled (a secret, random subset). */
export const SKETCH_SAMPLE = 131072;
/** Weight of the old direction in a worker's running direction. */
export const DIRECTION_BETA = 0.9;
/** A worker's own pushes before its direction is judged. */
export const MIN_PUSHES = 4;
/**
 * Other workers, among the last K pushes, needed for a consensus: a median of two is their
 * mean, which one stale or hostile direction can turn around (n = 3: an honest worker that
 * joined late was cut against the frozen direction of an attacker just disconnected).
 */
export const MIN_OTHERS = 3;
/**
 * Others a worker pushing alone is judged against: the last workers to push, a median of five,
 * so that two hostile ones among them do not turn it (a median of MIN_OTHERS would be turned by
 * the other flipper of a pair and one stale honest direction).
 */
export const LULL_OTHERS = 5;
/** Workers whose running direction is kept (least recently pushing forgotten first). */
export const MAX_WORKERS = 4096;
/** Weight of the old value in a worker's score, the running mean of its cosines outside lulls. */
export const COS_BETA = 0.8;
/** Weight of the old value in a worker's trust, the running mean of its factors outside lulls. */
export const TRUST_BETA = 0.95;
/** A worker's factor is at most its trust plus this, lull or not. */
export const TRUST_MARGIN = 0.2;
/** A push cut to nothing is a strike (the offender rule) only while its worker's trust is below this. */
export const STRIKE_TRUST = 0.4;
/** One salt per process: two checks fed the same pushes here decide alike (a restored store, aggregate.test). */
const PROCESS_SALT = randomInt(2 ** 32 - 1);

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * The count sketch on the sampled coordinates, as a function that fills one buffer. A closure
 * over its arrays, not a function taking them: V8 then treats them as constants, and the gather
 * (131k coordinates of fashion-cnn) takes about 0.2 ms, not 0.33 (one gradient, this machine).
 */
function sketcher(index: Int32Array, code: Uint16Array): (grad: Float32Array) => Float64Array {
  const s = new Float64Array(SKETCH_BUCKETS);
  return (grad) => {
    s.fill(0);
    // Branch-free (the sign is random per coordinate, so a branch would mispredict half the time).
    for (let j = 0; j < index.length; j++) {
      const c = code[j]!;
      const b = c & 0x7fff;
      s[b] = s[b]! + grad[index[j]!]! * (1 - ((c >>> 14) & 2));
    }
    return s;
  };
}

/**
 * The weighted median of the k sorted values `col` with votes `wts` summing to `total`: the
 * first value whose cumulative vote reaches half, or, when one reaches exactly half, the mean of
 * it and the next value with a vote (so equal votes give the plain median, and a value without
 * a vote never enters it).
 */
function weightedMedian(col: Float32Array, wts: Float64Array, k: number, total: number): number {
  const half = total / 2;
  const eps = total * 1e-12;
  let cum = 0;
  for (let i = 0; i < k; i++) {
    if (!(wts[i]! > 0)) continue;
    cum += wts[i]!;
    if (cum < half - eps) continue;
    if (cum > half + eps) return col[i]!;
    for (let j = i + 1; j < k; j++) if (wts[j]! > 0) return (col[i]! + col[j]!) / 2;
    return col[i]!;
  }
  return col[k - 1]!;
}

export class DirectionCheck {
  /** The sketch of an n-coordinate push (on the sampled coordinates). Built on the first push. */
  private sample: { n: number; sketch: (grad: Float32Array) => Float64Array } | undefined;
  private readonly unit = new Float32Array(SKETCH_BUCKETS);
  /** The workers of the last K pushes, in a ring. */
  private readonly owners: number[] = [];
  private next = 0;
  private readonly reference = new Float32Array(SKETCH_BUCKETS);
  private readonly column: Float32Array;
  /** The votes (trusts) of the column's values, and of the others in the order they were found. */
  private readonly columnVotes: Float64Array;
  private readonly votes: Float64Array;
  private readonly workers = new Map<number, { dir: Float32Array; pushes: number; score: number; trust: number }>();
  /** Whether the last judgement was made in a lull (set by cosToConsensus). */
  private lull = false;
  /** Pushes whose step the check cut (factor < 1). */
  limited = 0;
  /** Of those, the ones cut to nothing (factor 0) with a trust below STRIKE_TRUST: a strike for the offender rule (service.ts). */
  zeroed = 0;

  constructor(
    private readonly tolerance: number,
    private readonly window: number,
    private readonly salt = PROCESS_SALT,
  ) {
    const most = Math.max(window, LULL_OTHERS);
    this.column = new Float32Array(most);
    this.columnVotes = new Float64Array(most);
    this.votes = new Float64Array(most);
  }

  /** The factor in [0, 1] this worker's push is scaled by; 1 while nothing can be judged. */
  factor(grad: Float32Array, workerId: number | undefined): number {
    if (!(this.tolerance > 0) || workerId === undefined) return 1;
    const s = this.sketchOf(grad.length)(grad);
    let sq = 0;
    for (let b = 0; b < SKETCH_BUCKETS; b++) sq += s[b]! * s[b]!;
    if (!(sq > 0) || !Number.isFinite(sq)) return 1; // a zero push moves nothing; non-finite is the guard's
    const inv = 1 / Math.sqrt(sq);
    const u = this.unit;
    for (let b = 0; b < SKETCH_BUCKETS; b++) u[b] = s[b]! * inv;

    let w = this.workers.get(workerId);
    if (w) {
      this.workers.delete(workerId); // re-inserted last: the map stays in recency order
      for (let b = 0; b < SKETCH_BUCKETS; b++) w.dir[b] = DIRECTION_BETA * w.dir[b]! + (1 - DIRECTION_BETA) * u[b]!;
      w.pushes += 1;
    } else {
      w = { dir: Float32Array.from(u), pushes: 1, score: NaN, trust: 1 };
      if (this.workers.size >= MAX_WORKERS) this.workers.delete(this.workers.keys().next().value!);
    }
    this.workers.set(workerId, w);

    const judged = this.owners.length === this.window && w.pushes >= MIN_PUSHES;
    let factor = 1;
    if (judged) {
      const cos = this.cosToConsensus(w.dir, workerId);
      const score = Number.isNaN(w.score) ? cos : COS_BETA * w.score + (1 - COS_BETA) * cos;
      factor = Math.min(1, Math.max(0, 1 + score / this.tolerance));
      // A distrusted worker earns its way back slowly, lull or not.
      factor = Math.min(factor, w.trust + TRUST_MARGIN);
      // In a lull the consensus is stale: no more than the record earned while it was not, and
      // neither the score nor the trust learns from it.
      if (this.lull) factor = Math.min(factor, w.trust);
      else {
        w.score = score;
        w.trust = TRUST_BETA * w.trust + (1 - TRUST_BETA) * factor;
      }
    }
    this.owners[this.next] = workerId;
    this.next = (this.next + 1) % this.window;
    if (factor < 1) this.limited += 1;
    if (factor === 0 && w.trust < STRIKE_TRUST) this.zeroed += 1;
    return factor;
  }

  private cosToConsensus(dir: Float32Array, workerId: number): number {
    const r = this.reference;
    const others: Float32Array[] = [];
    const votes = this.votes;
    const seen = new Set<number>([workerId]);
    /** Another worker's running direction, once, when it has made MIN_PUSHES. */
    const add = (v: number): void => {
      if (seen.has(v)) return;
      seen.add(v);
      const d = this.workers.get(v);
      if (d && d.pushes >= MIN_PUSHES) {
        votes[others.length] = d.trust;
        others.push(d.dir);
      }
    };
    for (const v of this.owners) add(v);
    // A worker pushing alone (the others gone quiet) would fill the window with its own pushes
    // and be judged by no one: the last LULL_OTHERS workers to push stand for the consensus
    // instead. The map is in recency order; walking it is O(workers), and happens only while
    // the window holds fewer than MIN_OTHERS others.
    this.lull = others.length < MIN_OTHERS || this.recentOthers(workerId) < MIN_OTHERS;
    if (others.length < MIN_OTHERS) {
      const recent = Array.from(this.workers.keys());
      for (let i = recent.length - 1; i >= 0 && others.length < LULL_OTHERS; i--) add(recent[i]!);
    }
    const k = others.length;
    if (k < MIN_OTHERS) return 1; // no consensus of others to judge against
    let total = 0;
    for (let j = 0; j < k; j++) total += votes[j]!;
    // Nobody trusted among them (only the distrusted push on): one vote each, a plain median.
    if (!(total > 1e-6)) {
      votes.fill(1, 0, k);
      total = k;
    }
    const col = this.column;
    const wts = this.columnVotes;
    for (let b = 0; b < SKETCH_BUCKETS; b++) {
      // Insertion sort of the k values, their votes alongside (k is at most the window).
      for (let j = 0; j < k; j++) {
        const x = others[j]![b]!;
        const t = votes[j]!;
        let i = j;
        for (; i > 0 && col[i - 1]! > x; i--) {
          col[i] = col[i - 1]!;
          wts[i] = wts[i - 1]!;
        }
        col[i] = x;
        wts[i] = t;
      }
      r[b] = weightedMedian(col, wts, k, total);
    }
    let dot = 0;
    let dd = 0;
    let rr = 0;
    for (let b = 0; b < SKETCH_BUCKETS; b++) {
      dot += dir[b]! * r[b]!;
      dd += dir[b]! * dir[b]!;
      rr += r[b]! * r[b]!;
    }
    return dd > 0 && rr > 0 ? dot / Math.sqrt(dd * rr) : 0;
  }

  /** Distinct workers other than `workerId` among the newer half of the window of the last K pushes. */
  private recentOthers(workerId: number): number {
    const K = this.owners.length;
    const seen = new Set<number>();
    for (let j = 1; j <= K >> 1; j++) {
      const v = this.owners[(this.next - j + K) % K]!;
      if (v !== workerId) seen.add(v);
    }
    return seen.size;
  }

  /** The sketch of n-coordinate pushes, over the sampled coordinates, each with its bucket (low 15 bits) and sign (bit 15). Built on the first push of that size. */
  private sketchOf(n: number): (grad: Float32Array) => Float64Array {
    if (this.sample?.n === n) return this.sample.sketch;
    // Coordinate i is sketched when a second hash of it falls in the lowest SKETCH_SAMPLE / n of its range.
    const keep = n <= SKETCH_SAMPLE ? 2 ** 32 : Math.floor((SKETCH_SAMPLE / n) * 2 ** 32);
    const index: number[] = [];
    const codes: number[] = [];
    for (let i = 0; i < n; i++) {
      if (fmix32((i ^ this.salt) + 0x7f4a7c15) >= keep) continue;
      const h = fmix32((i ^ this.salt) + 0x9e3779b9);
      index.push(i);
      codes.push((h % SKETCH_BUCKETS) | (h & 0x80000000 ? 0x8000 : 0));
    }
    this.sample = { n, sketch: sketcher(Int32Array.from(index), Uint16Array.from(codes)) };
    return this.sample.sketch;
  }

  reset(): void {
    this.owners.length = 0;
    this.next = 0;
    this.workers.clear();
  }
}
