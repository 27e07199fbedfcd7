import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { shardRanges } from './shards.ts';
import { MemoryStorage } from './storage.ts';
import { ShardStream, parseName, type Rejected, type ShardCapture } from './stream.ts';

const RANGE = shardRanges(1000, 4)[2]!; // [500, 750)
const ID = { model: 'm', layoutHash: 42, layoutSize: 1000, shards: 4, blockSize: 50 };
const all = Uint32Array.from([0, 1, 2, 3, 4]);

function full(fill: number, version: number): ShardCapture {
  return { kind: 'full', indices: all, weights: new Float32Array(250).fill(fill), velocity: new Float32Array(0), version, storeVersion: version, applied: [[1, version, version]] };
}
function delta(blocks: number[], fill: number, version: number): ShardCapture {
  return { kind: 'delta', indices: Uint32Array.from(blocks), weights: new Float32Array(50 * blocks.length).fill(fill), velocity: new Float32Array(0), version, storeVersion: version, applied: [[1, version, version]] };
}

describe('ShardStream', () => {
  test('names: one folder per shard, seq and kind in the file name', async () => {
    const s = new ShardStream(new MemoryStorage(), RANGE, ID);
    assert.equal((await s.write(full(1, 10))).name, 'shard-002/00000001.full.ckpt');
    assert.equal((await s.write(delta([1], 2, 11))).name, 'shard-002/00000002.delta.ckpt');
    assert.deepEqual(parseName('shard-002/00000002.delta.ckpt'), { name: 'shard-002/00000002.delta.ckpt', seq: 2, kind: 'delta' });
    assert.equal(parseName('shard-002/.tmp-00000003.full.ckpt'), undefined);
  });

  test('load composes the newest full checkpoint with the deltas after it', async () => {
    const storage = new MemoryStorage();
    const s = new ShardStream(storage, RANGE, ID);
    await s.write(full(1, 10));
    await s.write(delta([0, 4], 2, 11));
    await s.write(delta([4], 3, 12));
    const loaded = (await new ShardStream(storage, RANGE, ID).load())!;
    assert.equal(loaded.version, 12);
    assert.equal(loaded.seq, 3);
    assert.equal(loaded.baseSeq, 1);
    assert.deepEqual(loaded.applied, [[1, 12, 12]]);
    const expect = (i: number) => (i < 50 ? 2 : i >= 200 ? 3 : 1);
    for (let i = 0; i < 250; i++) assert.equal(loaded.weights[i], expect(i), `value ${i}`);
  });

  test('a corrupt newest full checkpoint is reported and skipped; the one before is used', async () => {
    const storage = new MemoryStorage();
    const s = new ShardStream(storage, RANGE, ID);
    await s.write(full(1, 10));
    await s.write(full(2, 20));
    storage.files.get('shard-002/00000002.full.ckpt')![100]! ^= 1;
    const rejected: Rejected[] = [];
    const loaded = (await new ShardStream(storage, RANGE, ID).load(rejected))!;
    assert.equal(loaded.version, 10);
    assert.equal(loaded.weights[0], 1);
    assert.equal(rejected.length, 1);
    assert.equal(rejected[0]!.name, 'shard-002/00000002.full.ckpt');
    assert.match(rejected[0]!.reason, /CHECKPOINT_CORRUPT: Checkpoint memory\/shard-002\/00000002\.full\.ckpt is rejected: checksum mismatch/);
  });

  test('a file of another shard layout or model is refused with the reason', async () => {
    const storage = new MemoryStorage();
    await new ShardStream(storage, RANGE, ID).write(full(1, 10));
    const rejected: Rejected[] = [];
    const other = shardRanges(1000, 2)[1]!; // [500, 1000): same folder index? no: index 1
    assert.equal(await new ShardStream(storage, { ...other, index: 2 }, ID).load(rejected), undefined);
    assert.match(rejected[0]!.reason, /was --ps-shards changed\?/);
    rejected.length = 0;
    assert.equal(await new ShardStream(storage, RANGE, { ...ID, layoutHash: 43, model: 'x' }).load(rejected), undefined);
    assert.match(rejected[0]!.reason, /saved for model m \(layout 42\), this PS trains x \(layout 43\)/);
  });

  test('prune keeps the newest N full checkpoints and the deltas after the oldest kept', async () => {
    const storage = new MemoryStorage();
    const s = new ShardStream(storage, RANGE, ID);
    await s.write(full(1, 1)); // 1
    await s.write(delta([0], 1, 2)); // 2
    await s.write(full(1, 3)); // 3
    await s.write(delta([0], 1, 4)); // 4
    await s.write(full(1, 5)); // 5
    await s.write(delta([0], 1, 6)); // 6
    assert.deepEqual(await s.prune(2), ['shard-002/00000001.full.ckpt', 'shard-002/00000002.delta.ckpt']);
    assert.deepEqual((await s.files()).map((f) => f.seq), [3, 4, 5, 6]);
    assert.deepEqual(await s.prune(2), []);
  });

  test('open continues the numbering, so nothing is overwritten', async () => {
    const storage = new MemoryStorage();
    await new ShardStream(storage, RANGE, ID).write(full(1, 1));
    const s = new ShardStream(storage, RANGE, ID);
    await s.open();
    assert.equal((await s.write(full(2, 2))).seq, 2);
  });
});
