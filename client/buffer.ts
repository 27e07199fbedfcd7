/**
 * What a worker accumulates while the PS is unreachable: a running sum of gradients, their
 * count, the model version they were computed from and the time span. O(model size) whatever
 * the outage length, never a list of gradients.
 */
export class GradientBuffer {
  readonly sum: Float32Array;
  count = 0;
  /** Version of the weights the first gradient was computed against. */
  baseVersion = 0;
  /** ms since the epoch of the first and the latest gradient; 0 when empty. */
  since = 0;
  lastAt = 0;

  constructor(size: number) {
    this.sum = new Float32Array(size);
  }

  add(grad: Float32Array, baseVersion: number, now = Date.now()): void {
    if (grad.length !== this.sum.length) throw new RangeError(`GradientBuffer.add: gradient has ${grad.length} values, buffer ${this.sum.length}`);
    if (this.count === 0) {
      this.baseVersion = baseVersion;
      this.since = now;
    }
    const sum = this.sum;
    for (let i = 0; i < sum.length; i++) sum[i]! += grad[i]!;
    this.count += 1;
    this.lastAt = now;
  }

  /** Adds a sum of `count` gradients (a local phase handed over to an outage). */
  merge(s: { sum: Float32Array; count: number; baseVersion: number }, now = Date.now()): void {
    if (s.sum.length !== this.sum.length) throw new RangeError(`GradientBuffer.merge: sum has ${s.sum.length} values, buffer ${this.sum.length}`);
    if (s.count === 0) return;
    if (this.count === 0) {
      this.baseVersion = s.baseVersion;
      this.since = now;
    }
    const sum = this.sum;
    for (let i = 0; i < sum.length; i++) sum[i]! += s.sum[i]!;
    this.count += s.count;
    this.lastAt = now;
  }

  /** Moves the contents out (a copy of the sum) and empties the buffer. */
  take(): { sum: Float32Array; count: number; baseVersion: number; since: number } {
    const out = { sum: Float32Array.from(this.sum), count: this.count, baseVersion: this.baseVersion, since: this.since };
    this.clear();
    return out;
  }

  load(s: { sum: Float32Array; count: number; baseVersion: number; since: number }): void {
    this.sum.set(s.sum);
    this.count = s.count;
    this.baseVersion = s.baseVersion;
    this.since = s.since;
    this.lastAt = s.since;
  }

  clear(): void {
    this.sum.fill(0);
    this.count = 0;
    this.baseVersion = 0;
    this.since = 0;
    this.lastAt = 0;
  }
}
