/**
 * Reused decode buffers of one size, so that the PS decodes a coded push without allocating
 * (a fresh 3.25 MB Float32Array per fashion-cnn push was zero-filled and collected each time).
 * A buffer is lent from the frame's decode until the push's handling is done; pushes in flight
 * at once each hold their own, so nothing is overwritten while still in use. At most `keep`
 * idle buffers are kept; a burst beyond that allocates and lets the extra go.
 */
export class ScratchPool {
  private readonly free: Float32Array[] = [];
  private readonly lent = new Set<Float32Array>();

  /** @param keep idle buffers kept for reuse @default 4 */
  constructor(readonly size: number, readonly keep = 4) {}

  acquire(): Float32Array {
    const b = this.free.pop() ?? new Float32Array(this.size);
    this.lent.add(b);
    return b;
  }

  /** Gives a buffer back; anything this pool did not lend (a view on a frame) is ignored. */
  release(b: Float32Array): void {
    if (!this.lent.delete(b)) return;
    if (this.free.length < this.keep) this.free.push(b);
  }

  /** Buffers lent and not yet given back (tests check this returns to 0). */
  get inUse(): number {
    return this.lent.size;
  }
}
