/**
 * The checkpoint stream of one PS shard: numbered files in the shard's own folder
 * (`shard-002/00000007.full.ckpt`, `shard-002/00000008.delta.ckpt`), written atomically, loaded
 * by composing the newest full checkpoint that verifies with every later delta that verifies,
 * and pruned to the newest N full checkpoints (plus the deltas that build on them).
 *
 * A delta holds whole blocks, each a copy of the block's values when it was written, so the
 * composition gives every block as of its last verified save: SCAR's saved copy. A file that
 * does not verify is reported (CHECKPOINT_CORRUPT) and skipped, never loaded. A file of another
 * run (CHECKPOINT_OTHER_RUN) stops the load: the PS refuses to start on it.
 */
import { TabswarmError } from '../../../shared/errors.ts';
import { decodeCheckpoint, encodeCheckpoint, scatterBlocks, type AppliedEntry, type CheckpointBody, type CheckpointMeta } from './format.ts';
import type { ShardRange } from './shards.ts';
import type { CheckpointStorage } from './storage.ts';

export interface StreamIdentity {
  readonly model: string;
  readonly layoutHash: number;
  readonly layoutSize: number;
  readonly shards: number;
  readonly blockSize: number;
  /** The run whose checkpoints this stream writes and restores ('' or absent: a run without an id). */
  readonly runId?: string;
}

/** What one checkpoint of a shard saves. */
export interface ShardCapture extends CheckpointBody {
  readonly kind: 'full' | 'delta';
  readonly version: number;
  readonly storeVersion: number;
  readonly applied: readonly AppliedEntry[];
}

export interface FileInfo {
  readonly name: string;
  readonly seq: number;
  readonly kind: 'full' | 'delta';
}

export interface Rejected {
  readonly name: string;
  readonly reason: string;
}

/** A shard as its stream saved it. */
export interface LoadedShard {
  readonly weights: Float32Array;
  readonly velocity: Float32Array;
  readonly version: number;
  readonly storeVersion: number;
  readonly applied: readonly AppliedEntry[];
  /** Seq of the newest file used, and of the full checkpoint under it. */
  readonly seq: number;
  readonly baseSeq: number;
  readonly used: readonly string[];
}

const NAME = /^(\d+)\.(full|delta)\.ckpt$/;

export function parseName(name: string): FileInfo | undefined {
  const m = NAME.exec(name.slice(name.lastIndexOf('/') + 1));
  return m ? { name, seq: Number(m[1]), kind: m[2] as 'full' | 'delta' } : undefined;
}

export class ShardStream {
  readonly folder: string;
  /** Seq the next checkpoint gets. */
  nextSeq = 1;
  /** Seq of the newest full checkpoint this stream holds (0: none yet). */
  baseSeq = 0;
  /** Deltas written since that full checkpoint. */
  deltasSinceBase = 0;

  constructor(readonly storage: CheckpointStorage, readonly range: ShardRange, readonly id: StreamIdentity) {
    this.folder = `shard-${String(range.index).padStart(3, '0')}`;
  }

  /** Finished files, oldest first. */
  async files(): Promise<FileInfo[]> {
    const infos = (await this.storage.list(this.folder)).map(parseName).filter((f): f is FileInfo => f !== undefined);
    return infos.sort((a, b) => a.seq - b.seq);
  }

  /** Picks up numbering from the files already there, so nothing is overwritten. */
  async open(): Promise<void> {
    const files = await this.files();
    this.nextSeq = (files.at(-1)?.seq ?? 0) + 1;
  }

  async write(c: ShardCapture): Promise<{ name: string; bytes: number; seq: number }> {
    const seq = this.nextSeq++;
    const base = c.kind === 'full' ? seq : this.baseSeq;
    const meta = {
      model: this.id.model, layoutHash: this.id.layoutHash, layoutSize: this.id.layoutSize,
      shard: this.range.index, shards: this.id.shards, start: this.range.start, end: this.range.end,
      seq, kind: c.kind, base, version: c.version, storeVersion: c.storeVersion, blockSize: this.id.blockSize,
      applied: c.applied, createdAt: new Date().toISOString(), runId: this.id.runId ?? '',
    };
    const name = `${this.folder}/${String(seq).padStart(8, '0')}.${c.kind}.ckpt`;
    const bytes = await this.storage.write(name, encodeCheckpoint(meta, c));
    if (c.kind === 'full') {
      this.baseSeq = seq;
      this.deltasSinceBase = 0;
    } else {
      this.deltasSinceBase += 1;
    }
    return { name, bytes, seq };
  }

  /** Reads and verifies one file against this stream's model, shard range and block size. */
  async verify(name: string): Promise<ReturnType<typeof decodeCheckpoint>> {
    const decoded = decodeCheckpoint(await this.storage.read(name), `${this.storage.where}/${name}`);
    const m: CheckpointMeta = decoded.meta;
    const mismatch = (detail: string) => new TabswarmError('CHECKPOINT_CORRUPT', { file: `${this.storage.where}/${name}`, detail });
    if (m.layoutHash !== this.id.layoutHash) throw mismatch(`saved for model ${m.model} (layout ${m.layoutHash}), this PS trains ${this.id.model} (layout ${this.id.layoutHash})`);
    if (m.start !== this.range.start || m.end !== this.range.end || m.shard !== this.range.index) {
      throw mismatch(`covers [${m.start}, ${m.end}) as shard ${m.shard} of ${m.shards}; this PS's shard ${this.range.index} is [${this.range.start}, ${this.range.end}) (was --ps-shards changed?)`);
    }
    if (m.blockSize !== this.id.blockSize && m.kind === 'delta') throw mismatch(`block size ${m.blockSize}, this PS uses ${this.id.blockSize}`);
    const run = this.id.runId ?? '';
    if ((m.runId ?? '') !== run) {
      throw new TabswarmError('CHECKPOINT_OTHER_RUN', { file: `${this.storage.where}/${name}`, got: m.runId || '(none)', want: run || '(none)', detail: `to resume that run on purpose, start with --run-id ${m.runId || '(none: leave --run-id out)'}` });
    }
    return decoded;
  }

  /**
   * The newest full checkpoint that verifies, overlaid with every later delta that verifies.
   * Files that fail are reported in `rejected`. Undefined when no full checkpoint verifies.
   */
  async load(rejected: Rejected[] = []): Promise<LoadedShard | undefined> {
    const files = await this.files();
    const reject = (name: string, err: unknown) => {
      // Another run's checkpoint is not damage to skip: resuming from an older file of this
      // run, or starting fresh beside the other run's files, would hide the operator's mistake.
      if (err instanceof TabswarmError && err.code === 'CHECKPOINT_OTHER_RUN') throw err;
      rejected.push({ name, reason: err instanceof Error ? err.message : String(err) });
    };
    let base: ReturnType<typeof decodeCheckpoint> | undefined;
    let baseName = '';
    for (const f of files.filter((f) => f.kind === 'full').reverse()) {
      try {
        base = await this.verify(f.name);
        baseName = f.name;
        break;
      } catch (err) {
        reject(f.name, err);
      }
    }
    if (!base) return undefined;
    const length = this.range.end - this.range.start;
    const weights = Float32Array.from(base.weights);
    const velocity = Float32Array.from(base.velocity);
    let newest = base.meta;
    const used = [baseName];
    let deltas = 0;
    for (const f of files.filter((f) => f.kind === 'delta' && f.seq > base.meta.seq)) {
      try {
        const d = await this.verify(f.name);
        scatterBlocks(weights, d.indices, d.meta.blockSize, d.weights);
        if (velocity.length === length && d.velocity.length) scatterBlocks(velocity, d.indices, d.meta.blockSize, d.velocity);
        newest = d.meta;
        used.push(f.name);
        deltas += 1;
      } catch (err) {
        reject(f.name, err);
      }
    }
    this.baseSeq = base.meta.seq;
    this.deltasSinceBase = deltas;
    return { weights, velocity, version: newest.version, storeVersion: newest.storeVersion, applied: newest.applied, seq: newest.seq, baseSeq: base.meta.seq, used };
  }

  /** Keeps the newest `keep` full checkpoints and the deltas after the oldest of them. */
  async prune(keep: number): Promise<string[]> {
    const files = await this.files();
    const fulls = files.filter((f) => f.kind === 'full');
    if (fulls.length <= keep) return [];
    const oldestKept = fulls[fulls.length - keep]!.seq;
    const doomed = files.filter((f) => f.seq < oldestKept);
    for (const f of doomed) await this.storage.remove(f.name);
    return doomed.map((f) => f.name);
  }
}
