/**
 * Which worker trains on which data shards. Shards are owned by exactly one live worker and
 * kept balanced (loads differ by at most one), so while there are no more workers than shards
 * the workers' data is disjoint. When a worker leaves, its shards go to the least-loaded
 * workers; when one joins, it takes shards from the most loaded. Workers beyond the shard
 * count own nothing and train on a copy of the least-shared shard instead of idling; that
 * shared shard stays theirs until they own one, so a join or leave never reshuffles them.
 *
 * Cost: a join or leave is O(S + W log W) (one sort of the workers by load) and reports only
 * the workers whose shards changed, so a swarm of W workers churning costs no O(W^2) work and
 * no storm of `assign` messages.
 */
export class ShardAssignment {
  private readonly owner: (number | undefined)[];
  /** Owned shards per live worker (empty for a worker that only shares). */
  private readonly owned = new Map<number, Set<number>>();
  /** The shared shard of each worker that owns none. */
  private readonly shared = new Map<number, number>();
  /** How many workers train on each shard: its owner plus its sharers. */
  private readonly trainers: number[];

  constructor(readonly shardCount: number) {
    this.owner = new Array(shardCount).fill(undefined);
    this.trainers = new Array(shardCount).fill(0);
  }

  /** Adds a worker; returns every worker whose shards changed (the joiner included). */
  join(worker: number): Set<number> {
    if (this.owned.has(worker)) return new Set();
    this.owned.set(worker, new Set());
    const before = new Map<number, string>([[worker, '']]);
    this.rebalance(before);
    return this.changed(before, worker);
  }

  /** Removes a worker; its shards move to others. Returns the workers whose shards changed. */
  leave(worker: number): Set<number> {
    const mine = this.owned.get(worker);
    if (!mine) return new Set();
    const before = new Map<number, string>();
    for (const s of mine) {
      this.owner[s] = undefined;
      this.trainers[s]! -= 1;
    }
    this.unshare(worker);
    this.owned.delete(worker);
    this.rebalance(before);
    return this.changed(before);
  }

  /** The shards a worker trains on: the ones it owns, or one shared shard if it owns none. */
  shardsOf(worker: number): number[] {
    const mine = this.owned.get(worker);
    if (!mine) return [];
    if (mine.size > 0) return [...mine].sort((a, b) => a - b);
    const s = this.shared.get(worker);
    return s === undefined ? [] : [s];
  }

  /**
   * Moves shards until every worker holds floor(S/W) or ceil(S/W): the ones holding most keep
   * the larger share (ties: lower id), the surplus of the rest goes to those below their
   * target. Then every worker left without a shard shares the least-trained one.
   */
  private rebalance(before: Map<number, string>): void {
    const W = this.owned.size;
    if (W === 0) return;
    const touch = (w: number): void => {
      if (!before.has(w)) before.set(w, this.shardsOf(w).join(','));
    };
    const q = Math.floor(this.shardCount / W);
    const r = this.shardCount % W;
    const order = [...this.owned.keys()].sort((a, b) => this.owned.get(b)!.size - this.owned.get(a)!.size || a - b);
    const target = (rank: number): number => q + (rank < r ? 1 : 0);
    const pool: number[] = [];
    for (let s = 0; s < this.shardCount; s++) if (this.owner[s] === undefined) pool.push(s);
    // Take the surplus first (highest shard indices), so the pool holds every shard to hand out.
    order.forEach((w, rank) => {
      const mine = this.owned.get(w)!;
      if (mine.size <= target(rank)) return;
      touch(w);
      const surplus = [...mine].sort((a, b) => b - a).slice(0, mine.size - target(rank));
      for (const s of surplus) {
        mine.delete(s);
        this.owner[s] = undefined;
        this.trainers[s]! -= 1;
        pool.push(s);
      }
    });
    order.forEach((w, rank) => {
      const mine = this.owned.get(w)!;
      if (mine.size >= target(rank)) return;
      touch(w);
      if (mine.size === 0) this.unshare(w);
      while (mine.size < target(rank)) {
        const s = pool.pop()!;
        mine.add(s);
        this.owner[s] = w;
        this.trainers[s]! += 1;
      }
    });
    for (const w of order) {
      if (this.owned.get(w)!.size > 0 || this.shared.has(w)) continue;
      touch(w);
      let best = 0;
      for (let s = 1; s < this.shardCount; s++) if (this.trainers[s]! < this.trainers[best]!) best = s;
      this.shared.set(w, best);
      this.trainers[best]! += 1;
    }
  }

  private unshare(worker: number): void {
    const s = this.shared.get(worker);
    if (s === undefined) return;
    this.shared.delete(worker);
    this.trainers[s]! -= 1;
  }

  /** The touched workers whose shard list differs from before (plus `always`). */
  private changed(before: Map<number, string>, always?: number): Set<number> {
    const out = new Set<number>(always === undefined ? [] : [always]);
    for (const [w, was] of before) if (this.owned.has(w) && this.shardsOf(w).join(',') !== was) out.add(w);
    return out;
  }
}
