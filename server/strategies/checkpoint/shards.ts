/**
 * Key-range shards of the PS state. Shard k owns the flat index range [start, end) of the
 * weights and of the optimizer velocity, and is checkpointed, lost and restored on its own.
 *
 * The boundary is kept narrow on purpose (ranges, a version per shard, read and write of a
 * range) so that a later change can move each shard into a process of its own.
 */
import type { ParameterStore } from '../../ps/store.ts';

export interface ShardRange {
  readonly index: number;
  readonly start: number;
  readonly end: number;
}

/** S contiguous ranges over `size` values, as equal as possible (the first ones one larger). */
export function shardRanges(size: number, count: number): ShardRange[] {
  if (!Number.isInteger(count) || count < 1 || count > size) throw new RangeError(`shardRanges: count must be an integer in [1, ${size}], got ${count}`);
  const base = Math.floor(size / count);
  const extra = size % count;
  const out: ShardRange[] = [];
  let start = 0;
  for (let index = 0; index < count; index++) {
    const end = start + base + (index < extra ? 1 : 0);
    out.push({ index, start, end });
    start = end;
  }
  return out;
}

/** Blocks of one shard: block b covers [start + b*B, min(end, start + (b+1)*B)). */
export function blockCount(range: ShardRange, blockSize: number): number {
  return Math.ceil((range.end - range.start) / blockSize);
}

/** The values of one shard: weights, and velocity when the optimizer has momentum. */
export interface ShardValues {
  readonly weights: Float32Array;
  readonly velocity: Float32Array;
}

/**
 * The shards of one ParameterStore. Every update touches every shard, so a shard's version is
 * the store's version minus how far that shard was rolled back by a partial restore (`lag`).
 */
export class ShardMap {
  readonly ranges: readonly ShardRange[];
  private readonly lag: number[];
  private readonly lostFlags: boolean[];

  constructor(readonly store: ParameterStore, count: number) {
    this.ranges = shardRanges(store.layout.size, count);
    this.lag = this.ranges.map(() => 0);
    this.lostFlags = this.ranges.map(() => false);
  }

  get count(): number {
    return this.ranges.length;
  }

  range(k: number): ShardRange {
    const r = this.ranges[k];
    if (!r) throw new RangeError(`ShardMap.range: shard ${k} does not exist (${this.count} shards)`);
    return r;
  }

  version(k: number): number {
    return this.store.version - this.lag[k]!;
  }

  lost(k: number): boolean {
    return this.lostFlags[k]!;
  }

  /** Live views (no copy) of shard k's weights and velocity. */
  view(k: number): ShardValues {
    const { start, end } = this.range(k);
    const v = this.store.optimizer.velocity;
    return { weights: this.store.weights.subarray(start, end), velocity: v.length ? v.subarray(start, end) : v };
  }

  /**
   * The fault: shard k's in-memory state is gone (a simulated loss of its shard server). Its
   * weights and velocity become zeros and it is flagged lost until a restore.
   */
  drop(k: number): void {
    const { weights, velocity } = this.view(k);
    weights.fill(0);
    velocity.fill(0);
    this.lostFlags[k] = true;
    this.store.generation += 1; // cached WEIGHTS frames of this version are stale now
  }

  /** Writes restored values into shard k, at the shard version they were saved at. */
  set(k: number, values: ShardValues, version: number): void {
    const view = this.view(k);
    view.weights.set(values.weights);
    if (view.velocity.length) {
      if (values.velocity.length === view.velocity.length) view.velocity.set(values.velocity);
      else view.velocity.fill(0);
    }
    this.lag[k] = Math.max(0, this.store.version - version);
    this.lostFlags[k] = false;
    this.store.generation += 1;
  }

  /** After a whole-store restore: every shard at the given version. */
  resetVersions(versions: readonly number[]): void {
    for (let k = 0; k < this.count; k++) {
      this.lag[k] = Math.max(0, this.store.version - (versions[k] ?? this.store.version));
      this.lostFlags[k] = false;
    }
  }

  describe(): { index: number; start: number; end: number; version: number; lost: boolean }[] {
    return this.ranges.map((r) => ({ index: r.index, start: r.start, end: r.end, version: this.version(r.index), lost: this.lost(r.index) }));
  }
}
