/**
 * Takes one checkpoint of every PS shard: capture (what to save, and whether as live views or
 * as copies) then write (one file per shard stream, then prune). Scheduling, sync or async,
 * is the strategy's; this module only knows how.
 *
 *   capture(copy = false)  views of the live arrays: the caller holds the store until written
 *   capture(copy = true)   a detached copy of what is saved: the store may change meanwhile
 *
 * With priorityFraction r < 1 a shard's checkpoint is a delta of the r blocks that moved most
 * since they were last saved, except every fullEvery-th, the first, and the one after a
 * failed write, which are full.
 */
import type { AppliedEntry } from './format.ts';
import { gatherBlocks } from './format.ts';
import { PriorityTracker } from './priority.ts';
import type { ShardMap } from './shards.ts';
import type { CheckpointStorage } from './storage.ts';
import { ShardStream, type ShardCapture, type StreamIdentity } from './stream.ts';

export interface CheckpointerOptions {
  readonly priorityFraction: number;
  readonly blockSize: number;
  readonly fullEvery: number;
  readonly keep: number;
}

export interface Capture {
  readonly shards: readonly ShardCapture[];
  readonly storeVersion: number;
}

export interface WriteReport {
  readonly storeVersion: number;
  readonly files: readonly { name: string; seq: number; kind: 'full' | 'delta'; bytes: number }[];
  readonly bytes: number;
  readonly ms: number;
  readonly pruned: readonly string[];
}

export class Checkpointer {
  readonly streams: ShardStream[];
  /** Per shard, the saved copy that prioritized checkpoints compare against (r < 1 only). */
  readonly trackers: (PriorityTracker | undefined)[];
  /** Per shard: the next checkpoint must be full (none yet, or the last write failed). */
  private readonly needFull: boolean[];

  constructor(readonly map: ShardMap, storage: CheckpointStorage, id: Omit<StreamIdentity, 'shards' | 'blockSize'>, readonly opts: CheckpointerOptions) {
    const full: StreamIdentity = { ...id, shards: map.count, blockSize: opts.blockSize };
    this.streams = map.ranges.map((r) => new ShardStream(storage, r, full));
    this.trackers = map.ranges.map((r) => (opts.priorityFraction < 1 ? new PriorityTracker(r.end - r.start, opts.blockSize) : undefined));
    this.needFull = map.ranges.map(() => true);
  }

  /** After a restore of shard k: its stream and saved copy are what was loaded. */
  loaded(k: number, weights: Float32Array | undefined): void {
    const tracker = this.trackers[k];
    if (weights && tracker) tracker.reset(weights);
    this.needFull[k] = weights === undefined || this.streams[k]!.baseSeq === 0;
  }

  private kindFor(k: number): 'full' | 'delta' {
    if (this.needFull[k] || this.opts.priorityFraction >= 1) return 'full';
    const every = this.opts.fullEvery;
    return every > 0 && this.streams[k]!.deltasSinceBase + 1 >= every ? 'full' : 'delta';
  }

  capture(copy: boolean): Capture {
    const store = this.map.store;
    const applied: AppliedEntry[] = store.record().map((r) => [r.workerId, r.seq, r.version]);
    const shards = this.map.ranges.map((r, k): ShardCapture => {
      const live = this.map.view(k);
      const tracker = this.trackers[k];
      const kind = this.kindFor(k);
      const common = { kind, version: this.map.version(k), storeVersion: store.version, applied };
      if (kind === 'full') {
        tracker?.reset(live.weights);
        const n = Math.ceil((r.end - r.start) / this.opts.blockSize);
        const indices = Uint32Array.from({ length: n }, (_, i) => i);
        return copy
          ? { ...common, indices, weights: Float32Array.from(live.weights), velocity: Float32Array.from(live.velocity) }
          : { ...common, indices, weights: live.weights, velocity: live.velocity };
      }
      const indices = tracker!.select(live.weights, this.opts.priorityFraction);
      tracker!.commit(live.weights, indices);
      const velocity = live.velocity.length ? gatherBlocks(live.velocity, indices, this.opts.blockSize) : live.velocity;
      return { ...common, indices, weights: gatherBlocks(live.weights, indices, this.opts.blockSize), velocity };
    });
    return { shards, storeVersion: store.version };
  }

  /** Writes every shard's file, then prunes. A shard whose write fails takes a full one next. */
  async write(c: Capture): Promise<WriteReport> {
    const started = performance.now();
    const files: { name: string; seq: number; kind: 'full' | 'delta'; bytes: number }[] = [];
    const pruned: string[] = [];
    let failure: unknown;
    for (let k = 0; k < this.streams.length; k++) {
      const shard = c.shards[k]!;
      try {
        const w = await this.streams[k]!.write(shard);
        files.push({ ...w, kind: shard.kind });
        this.needFull[k] = false;
        pruned.push(...(await this.streams[k]!.prune(this.opts.keep)));
      } catch (err) {
        this.needFull[k] = true;
        failure ??= err;
      }
    }
    if (failure) throw failure;
    return { storeVersion: c.storeVersion, files, bytes: files.reduce((n, f) => n + f.bytes, 0), ms: performance.now() - started, pruned };
  }
}
