/**
 * Which worker trains on which data shards. Shards are owned by exactly one live worker and
 * kept balanced (loads differ by at most one), so while there are no more workers than shards
 * the workers' data is disjoint. When a worker leaves, its shards go to the least-loaded
 * workers; when one joins, it takes shards from the most loaded. Workers beyond the shard
 * count own nothing and train on a copy of the least-shared shard instead of idling.
 */
export class ShardAssignment {
  private readonly owner: (number | undefined)[];
  private readonly workers = new Set<number>();

  constructor(readonly shardCount: number) {
    this.owner = new Array(shardCount).fill(undefined);
  }

  /** Adds a worker; returns every worker whose shards changed (the joiner included). */
  join(worker: number): Set<number> {
    const before = this.current();
    this.workers.add(worker);
    return this.rebalance(before, new Set([worker]));
  }

  /** Removes a worker; its shards move to others. Returns the workers whose shards changed. */
  leave(worker: number): Set<number> {
    if (!this.workers.has(worker)) return new Set();
    const before = this.current();
    this.workers.delete(worker);
    for (let s = 0; s < this.shardCount; s++) if (this.owner[s] === worker) this.owner[s] = undefined;
    return this.rebalance(before, new Set());
  }

  /** The shards a worker trains on: the ones it owns, or one shared shard if it owns none. */
  shardsOf(worker: number): number[] {
    const owned = this.owned(worker);
    if (owned.length > 0 || !this.workers.has(worker)) return owned;
    // Spread owner-less workers over shards by their rank among owner-less workers.
    const idle = [...this.workers].filter((w) => this.owned(w).length === 0).sort((a, b) => a - b);
    return [idle.indexOf(worker) % this.shardCount];
  }

  private owned(worker: number): number[] {
    const out: number[] = [];
    for (let s = 0; s < this.shardCount; s++) if (this.owner[s] === worker) out.push(s);
    return out;
  }

  /** Every worker's shards, taken before a join or leave changes the worker set. */
  private current(): Map<number, string> {
    return new Map([...this.workers].map((w) => [w, this.shardsOf(w).join(',')]));
  }

  private rebalance(before: Map<number, string>, changed: Set<number>): Set<number> {
    if (this.workers.size === 0) return changed;
    const load = new Map([...this.workers].map((w) => [w, 0]));
    for (const o of this.owner) if (o !== undefined) load.set(o, load.get(o)! + 1);
    const least = () => [...load.entries()].reduce((a, b) => (b[1] < a[1] || (b[1] === a[1] && b[0] < a[0]) ? b : a));
    const most = () => [...load.entries()].reduce((a, b) => (b[1] > a[1] || (b[1] === a[1] && b[0] < a[0]) ? b : a));
    for (let s = 0; s < this.shardCount; s++) {
      if (this.owner[s] !== undefined) continue;
      const [w] = least();
      this.owner[s] = w;
      load.set(w, load.get(w)! + 1);
    }
    for (;;) {
      const [lo, loN] = least();
      const [hi, hiN] = most();
      if (hiN - loN <= 1) break;
      const s = this.owner.lastIndexOf(hi);
      this.owner[s] = lo;
      load.set(hi, hiN - 1);
      load.set(lo, loN + 1);
    }
    // Compare against the shards from before the worker set changed: a shared shard depends on
    // the worker's rank among the owner-less workers, which a join or leave can shift.
    for (const w of this.workers) if (this.shardsOf(w).join(',') !== before.get(w)) changed.add(w);
    return changed;
  }
}
