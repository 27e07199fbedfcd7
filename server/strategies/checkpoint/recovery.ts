/**
 * Recovery from the checkpoint streams, in the two forms SCAR compares:
 *
 *   partial  only the lost shards are loaded from their streams; every other shard keeps its
 *            live values, version and applied record (the smaller perturbation);
 *   full     every shard is rolled back to its stream, the store's version and applied-push
 *            record with it: traditional checkpoint recovery, and what a restarted PS does.
 *
 * Callers hold the store (ParameterStore.hold) so no update lands half-way through.
 */
import { TabswarmError } from '../../../shared/errors.ts';
import type { AppliedMark } from '../../ps/store.ts';
import type { Checkpointer } from './checkpointer.ts';
import type { LoadedShard, Rejected } from './stream.ts';

export interface ShardRestore {
  readonly shard: number;
  /** Seq of the newest file used and of the full checkpoint under it. */
  readonly seq: number;
  readonly baseSeq: number;
  readonly version: number;
  readonly files: number;
}

export interface RecoveryReport {
  readonly mode: 'partial' | 'full';
  readonly shards: readonly ShardRestore[];
  /** Shards with no checkpoint that verifies: they keep their current values. */
  readonly missing: readonly number[];
  readonly rejected: readonly Rejected[];
  /** The store's version after recovery. */
  readonly version: number;
  readonly ms: number;
}

const describe = (k: number, s: LoadedShard): ShardRestore => ({ shard: k, seq: s.seq, baseSeq: s.baseSeq, version: s.version, files: s.used.length });

/** Restores the given shards from their streams; the others are not touched. */
export async function recoverPartial(ck: Checkpointer, lost: readonly number[]): Promise<RecoveryReport> {
  const started = performance.now();
  const rejected: Rejected[] = [];
  const shards: ShardRestore[] = [];
  for (const k of lost) {
    const loaded = await ck.streams[k]!.load(rejected);
    if (!loaded) throw new TabswarmError('CHECKPOINT_MISSING', { shard: k, where: ck.streams[k]!.storage.where, detail: rejected.map((r) => r.reason).join('; ') || 'no checkpoint files' });
    ck.map.set(k, loaded, loaded.version);
    ck.loaded(k, loaded.weights);
    shards.push(describe(k, loaded));
  }
  return { mode: 'partial', shards, missing: [], rejected, version: ck.map.store.version, ms: performance.now() - started };
}

/**
 * Rolls every shard back to its stream. The store's version becomes the highest shard version
 * and its applied record the union (per worker, the highest seq) of the shards' records, so a
 * push any saved shard reflects is never applied again.
 */
export async function recoverFull(ck: Checkpointer): Promise<RecoveryReport> {
  const started = performance.now();
  const { store } = ck.map;
  const rejected: Rejected[] = [];
  const loaded: (LoadedShard | undefined)[] = [];
  for (const stream of ck.streams) loaded.push(await stream.load(rejected));
  const missing = loaded.flatMap((l, k) => (l ? [] : [k]));
  if (missing.length === ck.streams.length) return { mode: 'full', shards: [], missing, rejected, version: store.version, ms: performance.now() - started };

  const weights = Float32Array.from(store.weights);
  const velocity = Float32Array.from(store.optimizer.velocity);
  const applied = new Map<number, AppliedMark>();
  let version = 0;
  loaded.forEach((l, k) => {
    if (!l) return;
    const { start, end } = ck.map.range(k);
    weights.set(l.weights, start);
    if (velocity.length) velocity.subarray(start, end).set(l.velocity.length === end - start ? l.velocity : new Float32Array(end - start));
    version = Math.max(version, l.version);
    for (const [w, seq, v] of l.applied) {
      const had = applied.get(w);
      // Worker 0 is the record's floor (store.ts): the newest forgotten version of any stream.
      if (!had || seq > had.seq || (w === 0 && v > had.version)) applied.set(w, { seq, version: v });
    }
  });
  store.restore({ layoutHash: store.layout.hash, version, weights, velocity, applied });
  ck.map.resetVersions(loaded.map((l) => l?.version ?? version));
  loaded.forEach((l, k) => ck.loaded(k, l?.weights));
  const shards = loaded.flatMap((l, k) => (l ? [describe(k, l)] : []));
  return { mode: 'full', shards, missing, rejected, version, ms: performance.now() - started };
}
