/**
 * Prioritized checkpoints (SCAR, Qiao et al. 2019): each checkpoint saves the fraction r of a
 * shard's blocks whose live values moved furthest from their saved copy, so for the same bytes
 * the saved copy stays closer to the live state than a full checkpoint taken 1/r times as
 * rarely.
 *
 * The tracker keeps the saved copy of one shard's weights (the values each block had when it
 * was last written), so "changed since last saved" is measured against what a restore would
 * really load. Priority is the squared L2 distance of a block from its saved copy; the velocity
 * travels with its block but does not count toward the priority.
 */
export class PriorityTracker {
  /** The saved copy: per block, the weights as of the block's last checkpoint. */
  readonly saved: Float32Array;
  readonly blocks: number;

  constructor(length: number, readonly blockSize: number) {
    this.saved = new Float32Array(length);
    this.blocks = Math.ceil(length / blockSize);
  }

  /** Squared distance of each block of `live` from its saved copy. */
  scores(live: Float32Array): Float64Array {
    if (live.length !== this.saved.length) throw new RangeError(`PriorityTracker.scores: ${live.length} values, tracker has ${this.saved.length}`);
    const out = new Float64Array(this.blocks);
    const s = this.saved;
    for (let b = 0; b < this.blocks; b++) {
      const end = Math.min(live.length, (b + 1) * this.blockSize);
      let sum = 0;
      for (let i = b * this.blockSize; i < end; i++) {
        const d = live[i]! - s[i]!;
        sum += d * d;
      }
      out[b] = sum;
    }
    return out;
  }

  /**
   * The ceil(r * blocks) blocks that changed most, in increasing index order. Blocks that did
   * not change at all are never chosen, so a quiet shard writes less.
   */
  select(live: Float32Array, fraction: number): Uint32Array {
    const scores = this.scores(live);
    const quota = Math.max(1, Math.ceil(fraction * this.blocks));
    const order = Array.from({ length: this.blocks }, (_, b) => b).filter((b) => scores[b]! > 0);
    order.sort((a, b) => scores[b]! - scores[a]! || a - b);
    return Uint32Array.from(order.slice(0, quota)).sort();
  }

  /** Records that these blocks of `live` are now saved. */
  commit(live: Float32Array, indices: Uint32Array): void {
    for (const b of indices) {
      const start = b * this.blockSize;
      this.saved.set(live.subarray(start, Math.min(live.length, start + this.blockSize)), start);
    }
  }

  /** After a full checkpoint or a restore: the saved copy is exactly `values`. */
  reset(values: Float32Array): void {
    this.saved.set(values);
  }
}
