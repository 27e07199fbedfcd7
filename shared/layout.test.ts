import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { deriveLayout, fnv1a, initWeights, mulberry32, type Layout } from './layout.ts';
import { MODEL_NAMES, getModel, type ModelSpec } from './models.ts';

function assertContiguous(layout: Layout): void {
  let offset = 0;
  for (const e of layout.entries) {
    assert.equal(e.offset, offset, `${e.name} offset`);
    assert.equal(e.length, e.shape.reduce((a, b) => a * b, 1), `${e.name} length`);
    offset += e.length;
  }
  assert.equal(layout.size, offset);
}

describe('deriveLayout', () => {
  test('fashion-cnn: 813,258 parameters in exactly these entries', () => {
    const layout = deriveLayout(getModel('fashion-cnn'));
    assert.equal(layout.model, 'fashion-cnn');
    assert.equal(layout.size, 813_258);
    assert.deepEqual(
      layout.entries.map((e) => ({ ...e, shape: [...e.shape] })),
      [
        { name: '0.conv2d.kernel', shape: [3, 3, 1, 16], offset: 0, length: 144 },
        { name: '0.conv2d.bias', shape: [16], offset: 144, length: 16 },
        { name: '2.conv2d.kernel', shape: [3, 3, 16, 32], offset: 160, length: 4608 },
        { name: '2.conv2d.bias', shape: [32], offset: 4768, length: 32 },
        { name: '5.dense.kernel', shape: [1568, 512], offset: 4800, length: 802_816 },
        { name: '5.dense.bias', shape: [512], offset: 807_616, length: 512 },
        { name: '7.dense.kernel', shape: [512, 10], offset: 808_128, length: 5120 },
        { name: '7.dense.bias', shape: [10], offset: 813_248, length: 10 },
      ],
    );
    assertContiguous(layout);
  });

  test('mnist-mlp: 50,890 parameters', () => {
    const layout = deriveLayout(getModel('mnist-mlp'));
    assert.equal(layout.size, 50_890);
    assert.deepEqual(
      layout.entries.map((e) => [e.name, [...e.shape], e.offset, e.length]),
      [
        ['1.dense.kernel', [784, 64], 0, 50_176],
        ['1.dense.bias', [64], 50_176, 64],
        ['2.dense.kernel', [64, 10], 50_240, 640],
        ['2.dense.bias', [10], 50_880, 10],
      ],
    );
    assertContiguous(layout);
  });

  test('mnist-logreg: 7,850 parameters', () => {
    const layout = deriveLayout(getModel('mnist-logreg'));
    assert.equal(layout.size, 7850);
    assert.deepEqual(
      layout.entries.map((e) => [e.name, [...e.shape], e.offset, e.length]),
      [
        ['1.dense.kernel', [784, 10], 0, 7840],
        ['1.dense.bias', [10], 7840, 10],
      ],
    );
    assertContiguous(layout);
  });

  test('the hash is a stable uint32, and differs between models', () => {
    const hashes = MODEL_NAMES.map((name) => {
      const a = deriveLayout(getModel(name)).hash;
      const b = deriveLayout(getModel(name)).hash;
      assert.equal(a, b, `${name}: hash changes between calls`);
      assert.ok(Number.isInteger(a) && a >= 0 && a <= 0xffffffff, `${name}: ${a}`);
      return a;
    });
    assert.equal(new Set(hashes).size, hashes.length);
  });

  test('the hash depends on shapes, not only on names', () => {
    const base = getModel('mnist-mlp');
    const wider: ModelSpec = { ...base, name: 'wider', layers: [{ kind: 'flatten' }, { kind: 'dense', units: 65, activation: 'relu' }, { kind: 'dense', units: 10, activation: 'linear' }] };
    assert.notEqual(deriveLayout(wider).hash, deriveLayout(base).hash);
    // A model that differs only in non-parameter details (activation, name) has the same layout.
    const linear: ModelSpec = { ...base, name: 'other-name', layers: [{ kind: 'flatten' }, { kind: 'dense', units: 64, activation: 'linear' }, { kind: 'dense', units: 10, activation: 'linear' }] };
    assert.equal(deriveLayout(linear).hash, deriveLayout(base).hash);
  });

  test('fnv1a matches the published FNV-1a 32-bit test vectors', () => {
    assert.equal(fnv1a(''), 0x811c9dc5);
    assert.equal(fnv1a('a'), 0xe40c292c);
    assert.equal(fnv1a('foobar'), 0xbf9cf968);
  });
});

describe('deriveLayout agrees with TensorFlow.js', () => {
  /** The tf.layers model the spec describes, as the workers build it. */
  function buildTf(spec: ModelSpec): tf.Sequential {
    const model = tf.sequential();
    spec.layers.forEach((layer, i) => {
      const first = i === 0 ? { inputShape: [...spec.input] } : {};
      switch (layer.kind) {
        case 'conv2d':
          model.add(tf.layers.conv2d({ ...first, filters: layer.filters, kernelSize: layer.kernel, padding: 'same', activation: layer.activation }));
          break;
        case 'maxpool':
          model.add(tf.layers.maxPooling2d({ ...first, poolSize: layer.size }));
          break;
        case 'flatten':
          model.add(tf.layers.flatten(first));
          break;
        case 'dense':
          model.add(tf.layers.dense({ ...first, units: layer.units, activation: layer.activation }));
          break;
        case 'dropout':
          model.add(tf.layers.dropout({ ...first, rate: layer.rate }));
          break;
      }
    });
    return model;
  }

  /** Odd spatial sizes (7 -> 3 after pooling) and a second pooling of a 3x3 map (-> 1x1). */
  const ODD: ModelSpec = {
    name: 'odd',
    description: 'test',
    input: [7, 7, 2],
    classes: 3,
    layers: [
      { kind: 'conv2d', filters: 4, kernel: 3, activation: 'relu' },
      { kind: 'maxpool', size: 2 },
      { kind: 'conv2d', filters: 5, kernel: 2, activation: 'linear' },
      { kind: 'maxpool', size: 2 },
      { kind: 'flatten' },
      { kind: 'dropout', rate: 0.5 },
      { kind: 'dense', units: 3, activation: 'linear' },
    ],
    defaults: { lr: 0.1, batch: 1 },
  };

  for (const name of [...MODEL_NAMES, 'odd']) {
    test(`${name}: countParams and the trainable weight shapes, in order`, async () => {
      await tf.setBackend('cpu');
      await tf.ready();
      const spec = name === 'odd' ? ODD : getModel(name);
      const layout = deriveLayout(spec);
      const model = buildTf(spec);
      try {
        assert.equal(model.countParams(), layout.size);
        assert.deepEqual(
          model.trainableWeights.map((w) => w.shape),
          layout.entries.map((e) => [...e.shape]),
        );
        assert.deepEqual(model.outputs[0]!.shape, [null, spec.classes]);
      } finally {
        model.dispose();
      }
    });
  }
});

describe('initWeights', () => {
  const layout = deriveLayout(getModel('fashion-cnn'));

  test('deterministic per seed, different across seeds', () => {
    const a = initWeights(layout, 3);
    const b = initWeights(layout, 3);
    const c = initWeights(layout, 4);
    assert.equal(a.length, layout.size);
    assert.deepEqual(new Uint32Array(a.buffer), new Uint32Array(b.buffer));
    let differ = 0;
    for (let i = 0; i < a.length; i++) if (a[i] !== c[i]) differ++;
    assert.ok(differ > a.length * 0.9, `only ${differ} values differ between seeds`);
    assert.deepEqual(initWeights(layout), initWeights(layout, 1), 'the default seed is 1');
  });

  test('biases are zero; kernels are within the Glorot limit and fill most of it', () => {
    const w = initWeights(layout, 11);
    for (const e of layout.entries) {
      const values = w.subarray(e.offset, e.offset + e.length);
      if (e.name.endsWith('.bias')) {
        assert.ok(values.every((v) => v === 0), `${e.name} is not zero`);
        continue;
      }
      // Keras' glorot_uniform: conv kernel [kh, kw, in, out] has fanIn = kh*kw*in, fanOut = kh*kw*out.
      const receptive = e.shape.length === 4 ? e.shape[0]! * e.shape[1]! : 1;
      const fanIn = receptive * e.shape[e.shape.length - 2]!;
      const fanOut = receptive * e.shape[e.shape.length - 1]!;
      const limit = Math.sqrt(6 / (fanIn + fanOut));
      let max = 0;
      let sum = 0;
      for (const v of values) {
        assert.ok(Math.abs(v) <= limit, `${e.name}: ${v} beyond ${limit}`);
        max = Math.max(max, Math.abs(v));
        sum += v;
      }
      assert.ok(max > 0.9 * limit, `${e.name}: largest |w| ${max} far below the limit ${limit}`);
      assert.ok(Math.abs(sum / values.length) < 0.1 * limit, `${e.name}: mean not near zero`);
    }
  });

  test('mulberry32 is deterministic and uniform on [0, 1)', () => {
    const r1 = mulberry32(5);
    const r2 = mulberry32(5);
    let sum = 0;
    for (let i = 0; i < 10000; i++) {
      const x = r1();
      assert.equal(x, r2());
      assert.ok(x >= 0 && x < 1);
      sum += x;
    }
    assert.ok(Math.abs(sum / 10000 - 0.5) < 0.02);
  });
});
