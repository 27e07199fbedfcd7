/**
 * The worker's training data: its assigned shards, downloaded once as binary and kept in a
 * cache (IndexedDB in a tab, memory in Node) so training can go on while the PS is unreachable.
 */
import { shardPath } from '../shared/api.ts';
import { decodeShard, type ShardData } from '../shared/shard.ts';

export interface ShardCache {
  get(key: string): Promise<Uint8Array | undefined>;
  put(key: string, bytes: Uint8Array): Promise<void>;
}

export class MemoryCache implements ShardCache {
  private readonly map = new Map<string, Uint8Array>();
  async get(key: string) {
    return this.map.get(key);
  }
  async put(key: string, bytes: Uint8Array) {
    this.map.set(key, bytes);
  }
}

/** The shards a worker trains on, and uniform sampling of batches from their union. */
export class ShardSet {
  private shards: ShardData[] = [];
  private total = 0;
  /** Bytes fetched from the network (not served by the cache). */
  downloadedBytes = 0;

  constructor(
    /** Base URL of a PS that serves the shards (read on every fetch: it follows failover). */
    private readonly baseUrl: string | (() => string),
    private readonly dataKey: string,
    private readonly cache: ShardCache,
    private readonly fetchFn: typeof fetch = fetch,
    /** The Authorization header the PS wants for shards (a session's token or the worker's id tag). */
    private readonly authorization: () => string | undefined = () => undefined,
  ) {}

  get examples(): number {
    return this.total;
  }

  /** Makes `indices` the worker's shards, loading each from the cache or the server. */
  async use(indices: readonly number[]): Promise<void> {
    const loaded = await Promise.all(indices.map((i) => this.load(i)));
    this.shards = loaded;
    this.total = loaded.reduce((n, s) => n + s.count, 0);
  }

  private async load(index: number): Promise<ShardData> {
    const key = `${this.dataKey}/${index}`;
    const cached = await this.cache.get(key);
    if (cached) {
      try {
        return decodeShard(cached);
      } catch {
        // A damaged cache entry is refetched, never trained on.
      }
    }
    const url = new URL(shardPath(this.dataKey, index), typeof this.baseUrl === 'function' ? this.baseUrl() : this.baseUrl);
    // A shard is a few MB at most: a minute without it is an outage, not a slow link.
    const auth = this.authorization();
    const res = await this.fetchFn(url, { signal: AbortSignal.timeout(60_000), ...(auth ? { headers: { authorization: auth } } : {}) });
    if (!res.ok) throw new Error(`ShardSet.load: GET ${url} answered ${res.status}: ${await res.text()}`);
    const bytes = new Uint8Array(await res.arrayBuffer());
    const shard = decodeShard(bytes);
    this.downloadedBytes += bytes.byteLength;
    await this.cache.put(key, bytes);
    return shard;
  }

  /** Fills `pixels` and `labels` with a batch sampled uniformly (with replacement). */
  sample(random: () => number, pixels: Uint8Array, labels: Uint8Array): void {
    if (this.total === 0) throw new Error('ShardSet.sample: no shards loaded');
    const batch = labels.length;
    for (let b = 0; b < batch; b++) {
      let k = Math.floor(random() * this.total);
      let shard = this.shards[0]!;
      for (const s of this.shards) {
        if (k < s.count) {
          shard = s;
          break;
        }
        k -= s.count;
      }
      const ppe = shard.pixelsPerExample;
      labels[b] = shard.labels[k]!;
      pixels.set(shard.pixels.subarray(k * ppe, (k + 1) * ppe), b * ppe);
    }
  }
}
