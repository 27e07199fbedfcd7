import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TabswarmError } from '../../../shared/errors.ts';
import { blockValues, decodeCheckpoint, encodeCheckpoint, gatherBlocks, scatterBlocks, type CheckpointMeta } from './format.ts';

const META: Omit<CheckpointMeta, 'blocks' | 'values' | 'velocity'> = {
  model: 'tiny', layoutHash: 1234, layoutSize: 100, shard: 1, shards: 2, start: 50, end: 100,
  seq: 3, kind: 'full', base: 3, version: 17, storeVersion: 17, blockSize: 16,
  applied: [[7, 4, 12], [9, 1, 3]], createdAt: '2026-01-01T00:00:00.000Z',
};

const concat = (chunks: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
};

function fullFile(): { bytes: Uint8Array; weights: Float32Array; velocity: Float32Array } {
  const weights = Float32Array.from({ length: 50 }, (_, i) => Math.sin(i) * 3);
  const velocity = Float32Array.from({ length: 50 }, (_, i) => i / 7);
  const indices = Uint32Array.from([0, 1, 2, 3]); // 16+16+16+2 values
  return { bytes: concat(encodeCheckpoint(META, { indices, weights, velocity })), weights, velocity };
}

const rejects = (bytes: Uint8Array, pattern: RegExp): void => {
  assert.throws(() => decodeCheckpoint(bytes, 'f.ckpt'), (err: unknown) => {
    assert.ok(err instanceof TabswarmError);
    assert.equal(err.code, 'CHECKPOINT_CORRUPT');
    assert.match(err.message, /Checkpoint f\.ckpt is rejected/);
    assert.match(err.message, pattern);
    return true;
  });
};

describe('checkpoint format', () => {
  test('a full checkpoint round-trips bitwise, header included', () => {
    const { bytes, weights, velocity } = fullFile();
    const d = decodeCheckpoint(bytes, 'f.ckpt');
    assert.deepEqual(d.meta, { ...META, blocks: 4, values: 50, velocity: 50 });
    assert.deepEqual([...d.indices], [0, 1, 2, 3]);
    assert.deepEqual(new Uint8Array(d.weights.buffer, d.weights.byteOffset, d.weights.byteLength), new Uint8Array(weights.buffer));
    assert.deepEqual(d.velocity, velocity);
  });

  test('a delta with some blocks and no velocity round-trips, even from an unaligned buffer', () => {
    const shard = Float32Array.from({ length: 50 }, (_, i) => i * 1.5);
    const indices = Uint32Array.from([1, 3]);
    const weights = gatherBlocks(shard, indices, 16);
    assert.equal(weights.length, 18);
    const bytes = concat(encodeCheckpoint({ ...META, kind: 'delta', base: 2 }, { indices, weights, velocity: new Float32Array(0) }));
    const unaligned = new Uint8Array(bytes.length + 1).subarray(1);
    unaligned.set(bytes);
    const d = decodeCheckpoint(unaligned, 'f.ckpt');
    assert.equal(d.meta.kind, 'delta');
    assert.deepEqual([...d.indices], [1, 3]);
    assert.deepEqual(d.weights, weights);
    assert.equal(d.velocity.length, 0);
    const back = new Float32Array(50);
    scatterBlocks(back, d.indices, 16, d.weights);
    for (let i = 0; i < 50; i++) assert.equal(back[i], (i >= 16 && i < 32) || i >= 48 ? shard[i] : 0, `index ${i}`);
  });

  test('flipping any single byte is detected', () => {
    const { bytes } = fullFile();
    for (let at = 0; at < bytes.length; at += 7) {
      const bad = Uint8Array.from(bytes);
      bad[at]! ^= 0x40;
      assert.throws(() => decodeCheckpoint(bad, 'f.ckpt'), /CHECKPOINT_CORRUPT/, `byte ${at}`);
    }
  });

  test('a torn (truncated) file is rejected at every length', () => {
    const { bytes } = fullFile();
    for (const n of [0, 10, 43, 100, bytes.length - 33, bytes.length - 1]) rejects(bytes.subarray(0, n), /truncated|checksum|magic/);
    rejects(bytes.subarray(0, 20), /truncated/);
    rejects(bytes.subarray(0, bytes.length - 1), /checksum mismatch/);
  });

  test('another file type and a future format version are named as such', () => {
    const { bytes } = fullFile();
    const other = Uint8Array.from(bytes);
    other.set(new TextEncoder().encode('PK\x03\x04'), 0);
    rejects(other, /magic 'PK/);
    const future = Uint8Array.from(bytes);
    new DataView(future.buffer).setUint32(4, 2, true);
    rejects(future, /format version 2/);
  });

  test('a well-checksummed file with an inconsistent header is still refused', () => {
    // A full checkpoint that claims fewer blocks than the shard has.
    const weights = new Float32Array(16);
    const bytes = concat(encodeCheckpoint(META, { indices: Uint32Array.from([0]), weights, velocity: new Float32Array(0) }));
    rejects(bytes, /a full checkpoint with 1 of 4 blocks/);
    const unordered = concat(encodeCheckpoint({ ...META, kind: 'delta' }, { indices: Uint32Array.from([2, 1]), weights: new Float32Array(32), velocity: new Float32Array(0) }));
    rejects(unordered, /out of order/);
  });

  test('blockValues counts the short last block', () => {
    assert.equal(blockValues(Uint32Array.from([0, 1, 2, 3]), 16, 50), 50);
    assert.equal(blockValues(Uint32Array.from([3]), 16, 50), 2);
  });
});
