import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TabswarmError } from '../../../shared/errors.ts';
import type { ParameterStore } from '../../ps/store.ts';
import { ShardMap } from './shards.ts';
import { MemoryStorage } from './storage.ts';
import { CheckpointStrategy, isCheckpointControl } from './strategy.ts';
import { options, recordingLogger, same, smallStore, update, type LogLine } from './testing.ts';
import type { CheckpointOptions } from './options.ts';

/** Memory storage whose writes wait until released, or fail. */
class SlowStorage extends MemoryStorage {
  pending: (() => void)[] = [];
  fail = false;
  paused = false;
  override async write(name: string, chunks: readonly Uint8Array[]): Promise<number> {
    if (this.paused) await new Promise<void>((r) => this.pending.push(r));
    if (this.fail) throw new Error('disk full');
    return super.write(name, chunks);
  }
  release(): void {
    for (const r of this.pending.splice(0)) r();
  }
}

async function started(over: Partial<CheckpointOptions>, storage = new MemoryStorage(), store = smallStore(), lines: LogLine[] = []) {
  const strategy = new CheckpointStrategy(options(over), { storage });
  await strategy.start({ store, log: recordingLogger(lines), reportDurable: () => {} });
  return { strategy, store, storage, lines };
}

/** Applies updates the way the PS loop does: wait while held, apply, afterApply. */
async function apply(store: ParameterStore, strategy: CheckpointStrategy, n: number, worker = 1): Promise<void> {
  for (let i = 0; i < n; i++) {
    while (store.held) await store.held;
    const seq = (store.appliedMark(worker)?.seq ?? 0) + 1;
    const r = store.apply(update(worker, seq, store.version));
    assert.equal(r.applied, true);
    await strategy.afterApply({ ...update(worker, seq), version: r.version });
  }
}

const fileNames = (s: MemoryStorage) => [...s.files.keys()].sort();

describe('CheckpointStrategy', () => {
  test('starts with a first full checkpoint of every shard when there is none', async () => {
    const { storage, strategy } = await started({ psShards: 3 });
    assert.deepEqual(fileNames(storage), ['shard-000/00000001.full.ckpt', 'shard-001/00000001.full.ckpt', 'shard-002/00000001.full.ckpt']);
    assert.equal(isCheckpointControl(strategy), true);
    await strategy.stop();
  });

  test('sync: the K-th update waits for a durable checkpoint, and the store is held meanwhile', async () => {
    const storage = new SlowStorage();
    const { strategy, store } = await started({ checkpointMode: 'sync', checkpointEvery: 3 }, storage);
    await apply(store, strategy, 2);
    storage.paused = true;
    const r = store.apply(update(1, 3, 2));
    const ack = strategy.afterApply({ ...update(1, 3), version: r.version });
    assert.ok(ack instanceof Promise, 'the third update waits');
    assert.ok(store.held, 'applies are held while the checkpoint is written');
    let acked = false;
    void ack.then(() => (acked = true));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(acked, false);
    storage.release();
    await ack;
    assert.equal(store.held, undefined);
    assert.ok(storage.files.has('shard-000/00000002.full.ckpt'));
    await strategy.stop();
  });

  test('a restarted strategy restores weights, velocity, version and the applied record bitwise', async () => {
    const { strategy, store, storage } = await started({ checkpointMode: 'sync', checkpointEvery: 4, psShards: 3 });
    await apply(store, strategy, 8, 7);
    await apply(store, strategy, 2, 9); // after the last checkpoint: lost by the restart
    const saved = { weights: Float32Array.from(store.weights), velocity: Float32Array.from(store.optimizer.velocity) };
    // A crash: no stop(), so no final checkpoint.

    const { store: again, strategy: s2 } = await started({ checkpointMode: 'sync', checkpointEvery: 4, psShards: 3 }, storage);
    assert.equal(again.version, 8);
    assert.deepEqual(again.appliedMark(7), { seq: 8, version: 8 });
    assert.equal(again.appliedMark(9), undefined);
    assert.ok(!same(again.weights, saved.weights), 'the two later updates are not in the checkpoint');
    const direct = smallStore();
    for (let seq = 1; seq <= 8; seq++) direct.apply(update(7, seq, seq - 1));
    assert.ok(same(again.weights, direct.weights), 'weights equal the state after 8 updates');
    assert.ok(same(again.optimizer.velocity, direct.optimizer.velocity), 'velocity too');
    assert.equal((s2.status().restored as { shards: unknown[] }).shards.length, 3);
    await s2.stop();
  });

  test('partial recovery restores exactly the lost shard; the others are unchanged bitwise', async () => {
    const { strategy, store } = await started({ checkpointMode: 'sync', checkpointEvery: 5, psShards: 4 });
    await apply(store, strategy, 5);
    const atCheckpoint = Float32Array.from(store.weights);
    await apply(store, strategy, 3);
    const before = Float32Array.from(store.weights);
    const velocityBefore = Float32Array.from(store.optimizer.velocity);
    const generation = store.generation;
    const report = await strategy.dropShard(2);
    const map = new ShardMap(store, 4);
    for (let k = 0; k < 4; k++) {
      const { start, end } = map.range(k);
      const want = k === 2 ? atCheckpoint : before;
      assert.ok(same(store.weights.subarray(start, end), want.subarray(start, end)), `shard ${k}`);
      if (k !== 2) assert.ok(same(store.optimizer.velocity.subarray(start, end), velocityBefore.subarray(start, end)), `velocity of shard ${k}`);
    }
    assert.equal(store.version, 8, 'the store keeps its version');
    assert.deepEqual(store.appliedMark(1), { seq: 8, version: 8 });
    assert.ok(store.generation > generation, 'cached weights frames are invalidated');
    assert.equal(report.recovery.mode, 'partial');
    assert.deepEqual(report.recovery.shards.map((s) => [s.shard, s.version]), [[2, 5]]);
    assert.deepEqual(strategy.shardStates().map((s) => s.version), [8, 8, 5, 8]);
    await apply(store, strategy, 1);
    assert.deepEqual(strategy.shardStates().map((s) => s.version), [9, 9, 6, 9]);
    await strategy.stop();
  });

  test('full recovery rolls every shard, the version and the applied record back', async () => {
    const { strategy, store } = await started({ checkpointMode: 'sync', checkpointEvery: 5, psShards: 4, recovery: 'full' });
    await apply(store, strategy, 5);
    const atCheckpoint = Float32Array.from(store.weights);
    await apply(store, strategy, 3);
    const report = await strategy.dropShard(1);
    assert.ok(same(store.weights, atCheckpoint));
    assert.equal(store.version, 5);
    assert.deepEqual(store.appliedMark(1), { seq: 5, version: 5 });
    assert.equal(report.recovery.mode, 'full');
    assert.equal(report.recovery.shards.length, 4);
    await strategy.stop();
  });

  test('dropping a shard that does not exist is ADMIN_NO_SHARD', async () => {
    const { strategy } = await started({ psShards: 2 });
    await assert.rejects(strategy.dropShard(2), (e: unknown) => e instanceof TabswarmError && e.code === 'ADMIN_NO_SHARD');
    await assert.rejects(strategy.dropShard(-1), /ADMIN_NO_SHARD/);
    await strategy.stop();
  });

  test('async: applies go on during the write; one write in flight; a checkpoint due meanwhile is taken after', async () => {
    const storage = new SlowStorage();
    const { strategy, store } = await started({ checkpointMode: 'async', checkpointEvery: 2 }, storage);
    storage.paused = true;
    await apply(store, strategy, 2); // starts a write of version 2
    assert.equal(store.held, undefined);
    await apply(store, strategy, 5); // due again at 4 and 6: deferred, not a second write
    assert.equal(storage.pending.length, 1, 'one write in flight');
    assert.equal(strategy.status().deferredWhileWriting, 1);
    storage.paused = false;
    storage.release();
    await strategy.settle();
    await apply(store, strategy, 1); // the first apply after the write takes the deferred one
    await strategy.settle();
    const versions = [...storage.files.keys()].sort();
    assert.deepEqual(versions, ['shard-000/00000001.full.ckpt', 'shard-000/00000002.full.ckpt', 'shard-000/00000003.full.ckpt']);
    const last = strategy.status().lastCheckpoint as { storeVersion: number };
    assert.equal(last.storeVersion, 8);
  });

  test('the async copy is a snapshot: updates during the write are not in it', async () => {
    const storage = new SlowStorage();
    const { strategy, store } = await started({ checkpointMode: 'async', checkpointEvery: 3 }, storage);
    storage.paused = true;
    await apply(store, strategy, 3);
    const atCapture = Float32Array.from(store.weights);
    await apply(store, strategy, 2);
    storage.paused = false;
    storage.release();
    await strategy.settle();
    const { store: again } = await started({}, storage);
    assert.equal(again.version, 3);
    assert.ok(same(again.weights, atCapture));
  });

  test('prioritized: deltas between full checkpoints; a restore loads exactly the saved copy', async () => {
    const { strategy, store, storage } = await started({ checkpointMode: 'sync', checkpointEvery: 1, priorityFraction: 0.25, checkpointFullEvery: 4, psShards: 2 });
    await apply(store, strategy, 6);
    assert.deepEqual(fileNames(storage).filter((n) => n.startsWith('shard-000')), [
      'shard-000/00000001.full.ckpt', 'shard-000/00000002.delta.ckpt', 'shard-000/00000003.delta.ckpt',
      'shard-000/00000004.delta.ckpt', 'shard-000/00000005.full.ckpt', 'shard-000/00000006.delta.ckpt', 'shard-000/00000007.delta.ckpt',
    ]);
    const delta = storage.files.get('shard-000/00000006.delta.ckpt')!.length;
    const full = storage.files.get('shard-000/00000005.full.ckpt')!.length;
    assert.ok(delta < full * 0.4, `a delta (${delta} B) is about a quarter of a full checkpoint (${full} B)`);
    const saved = strategy.checkpointer.trackers.map((t) => Float32Array.from(t!.saved));
    await strategy.settle();
    const { store: again } = await started({ priorityFraction: 0.25, checkpointFullEvery: 4, psShards: 2 }, storage);
    const map = new ShardMap(again, 2);
    for (let k = 0; k < 2; k++) assert.ok(same(map.view(k).weights, saved[k]!), `shard ${k} is its saved copy`);
    assert.equal(again.version, 6);
  });

  test('a failed write is logged and counted, the update still acked, and the next checkpoint is full', async () => {
    const storage = new SlowStorage();
    const lines: LogLine[] = [];
    const { strategy, store } = await started({ checkpointMode: 'sync', checkpointEvery: 1, priorityFraction: 0.5 }, storage, smallStore(), lines);
    await apply(store, strategy, 1); // delta 2
    storage.fail = true;
    await apply(store, strategy, 1); // fails
    assert.equal(strategy.status().failures, 1);
    assert.ok(lines.some((l) => l.level === 'error' && /CHECKPOINT_WRITE_FAILED: Checkpoint at version 2 could not be written to memory: disk full/.test(l.msg)));
    storage.fail = false;
    await apply(store, strategy, 1);
    assert.deepEqual(fileNames(storage), ['shard-000/00000001.full.ckpt', 'shard-000/00000002.delta.ckpt', 'shard-000/00000004.full.ckpt']);
    await strategy.stop();
  });

  test('a graceful stop writes a final checkpoint of what changed, and nothing when nothing did', async () => {
    const { strategy, store, storage } = await started({ checkpointEvery: 5, checkpointMode: 'async' });
    await apply(store, strategy, 7);
    await strategy.stop();
    const { store: again, strategy: s2 } = await started({}, storage);
    assert.equal(again.version, 7);
    assert.ok(same(again.weights, store.weights));
    const files = storage.files.size;
    await s2.stop();
    assert.equal(storage.files.size, files);
  });

  test('checkpointNow writes at once and answers when durable; keep-last-N prunes', async () => {
    const { strategy, store, storage } = await started({ checkpointEvery: 0, checkpointKeep: 2 });
    await apply(store, strategy, 3);
    assert.equal(storage.files.size, 1, 'checkpointEvery 0: none by count');
    const rep = await strategy.checkpointNow();
    assert.equal(rep.storeVersion, 3);
    await strategy.checkpointNow();
    assert.deepEqual(fileNames(storage), ['shard-000/00000002.full.ckpt', 'shard-000/00000003.full.ckpt']);
  });
});
