/**
 * The model replica a worker trains: the trainer (client/trainer.ts) for the run's model and
 * batch, the shards it samples batches from (client/data.ts), and the weights it computes on,
 * with their version and the tagged WEIGHTS frame they came in (offered to a restarted
 * stateless PS, saved during outages, relayed to mesh peers).
 */
import type { Tf } from '../shared/forward.ts';
import { getModel } from '../shared/models.ts';
import { decodeFrame } from '../shared/protocol.ts';
import { ShardSet, type ShardCache } from './data.ts';
import type { Identity } from './session.ts';
import { Trainer, type StepResult } from './trainer.ts';
import type { PullResult } from './transport.ts';

export interface ReplicaOptions {
  readonly tf: Tf;
  readonly cache: ShardCache;
  readonly fetch: typeof fetch;
  /** Where shards are fetched from (read on every fetch: it follows failover). */
  readonly shardsUrl: () => string;
  /** The Authorization header for shard downloads (client/session.ts). */
  readonly authorization?: () => string | undefined;
  /** Seeded source of batch sampling. */
  readonly random: () => number;
  /** A trainer for another model (or batch) was made: its layout has `size` values. */
  readonly onModel: (size: number) => void;
  /** TEST ONLY: rewrites each batch's labels (client/attack.ts, label-flip). */
  readonly relabel?: ((labels: Uint8Array) => void) | undefined;
}

export class Replica {
  trainer: Trainer | undefined;
  private shardSet: ShardSet | undefined;
  private dataKey = '';
  /** Version of the weights in the trainer: the base of the gradients it computes. */
  version = 0;
  /** The latest tagged WEIGHTS frame taken. */
  tagged: Uint8Array | undefined;
  private batch: { pixels: Uint8Array; labels: Uint8Array } | undefined;

  constructor(private readonly opts: ReplicaOptions) {}

  /** Weights and examples: something to train on. */
  get ready(): boolean {
    return !!this.trainer?.hasWeights && !!this.shardSet?.examples;
  }

  get examples(): number {
    return this.shardSet?.examples ?? 0;
  }

  /** A trainer for the run's model and batch (kept when they did not change). */
  ensure(info: Identity): Trainer {
    const model = getModel(info.model);
    if (this.trainer && this.trainer.model.name === model.name && this.trainer.batch === info.batch) return this.trainer;
    this.trainer?.dispose();
    this.trainer = new Trainer(this.opts.tf, model, info.batch);
    this.opts.onModel(this.trainer.layout.size);
    return this.trainer;
  }

  /** Trains on `shards` of the data set `dataKey` (a new key drops the old set: another run's data). */
  async useShards(dataKey: string, shards: number[]): Promise<void> {
    if (dataKey !== this.dataKey) this.shardSet = undefined;
    this.dataKey = dataKey;
    this.shardSet ??= new ShardSet(this.opts.shardsUrl, dataKey, this.opts.cache, this.opts.fetch, this.opts.authorization);
    await this.shardSet.use(shards);
  }

  /** One batch sampled from the shards, and its gradient on the current weights. */
  async step(): Promise<StepResult> {
    const batch = this.sample();
    return this.trainer!.step(batch.pixels, batch.labels);
  }

  /** One batch sampled from the shards, its gradient and loss kept on the backend for a local step (Trainer.computeLocal). */
  computeLocal(): void {
    const batch = this.sample();
    this.trainer!.computeLocal(batch.pixels, batch.labels);
  }

  private sample(): { pixels: Uint8Array; labels: Uint8Array } {
    const trainer = this.trainer!;
    const [h, w, c] = trainer.model.input;
    if (this.batch?.labels.length !== trainer.batch) this.batch = { pixels: new Uint8Array(trainer.batch * h * w * c), labels: new Uint8Array(trainer.batch) };
    this.shardSet!.sample(this.opts.random, this.batch.pixels, this.batch.labels);
    this.opts.relabel?.(this.batch.labels);
    return this.batch;
  }

  take(pulled: PullResult): void {
    this.trainer!.setWeights(pulled.weights);
    this.version = pulled.version;
    this.tagged = pulled.frame;
  }

  /** A tagged WEIGHTS frame as weights to take (throws if it does not decode for this layout). */
  static weightsOf(frame: Uint8Array, info: Identity): PullResult {
    const decoded = decodeFrame(frame, { layoutHash: info.layoutHash, layoutSize: info.layoutSize });
    return { version: decoded.modelVersion, weights: decoded.payload, frame };
  }

  /** weightsOf, or undefined when the frame does not decode (a damaged saved copy). */
  static weightsOrNothing(frame: Uint8Array, info: Identity): PullResult | undefined {
    try {
      return Replica.weightsOf(frame, info);
    } catch {
      return undefined;
    }
  }

  dispose(): void {
    this.trainer?.dispose();
  }
}
