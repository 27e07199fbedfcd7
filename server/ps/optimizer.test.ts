import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Sgd } from './optimizer.ts';

/** Element-wise equality within float32 rounding of the hand-computed decimals. */
function near(actual: Float32Array, expected: number[], what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i]! - expected[i]!) <= 1e-6, `${what}[${i}]: ${actual[i]} != ${expected[i]}`);
  }
}

describe('Sgd', () => {
  test('plain SGD, lr 0.1: w - lr * g', () => {
    const sgd = new Sgd(4, { lr: 0.1, momentum: 0 });
    const w = Float32Array.of(1, -2, 0.5, 3);
    const g = Float32Array.of(0.5, -1, 2, 0);
    sgd.apply(w, g);
    near(w, [0.95, -1.9, 0.3, 3], 'w');
    near(g, [0.5, -1, 2, 0], 'the gradient is not modified');
    assert.equal(sgd.velocity.length, 0, 'no velocity without momentum');
  });

  test('plain SGD, lr 0.1 with scale 0.5: w - lr * scale * g', () => {
    const sgd = new Sgd(4, { lr: 0.1, momentum: 0 });
    const w = Float32Array.of(1, -2, 0.5, 3);
    sgd.apply(w, Float32Array.of(0.5, -1, 2, 0), 0.5);
    near(w, [0.975, -1.95, 0.4, 3], 'w');
  });

  test('momentum 0.9, lr 0.1, over two steps (the second with scale 0.5)', () => {
    const sgd = new Sgd(4, { lr: 0.1, momentum: 0.9 });
    assert.equal(sgd.velocity.length, 4);
    const w = Float32Array.of(1, -2, 0.5, 3);
    // Step 1: v = g1 = [0.5, -1, 2, 0]; w = w - 0.1 v.
    sgd.apply(w, Float32Array.of(0.5, -1, 2, 0));
    near(sgd.velocity, [0.5, -1, 2, 0], 'v1');
    near(w, [0.95, -1.9, 0.3, 3], 'w1');
    // Step 2: v = 0.9 v1 + 0.5 g2 with g2 = [1, 1, -1, 2]
    //           = [0.45 + 0.5, -0.9 + 0.5, 1.8 - 0.5, 0 + 1] = [0.95, -0.4, 1.3, 1];
    //         w = w1 - 0.1 v = [0.855, -1.86, 0.17, 2.9].
    sgd.apply(w, Float32Array.of(1, 1, -1, 2), 0.5);
    near(sgd.velocity, [0.95, -0.4, 1.3, 1], 'v2');
    near(w, [0.855, -1.86, 0.17, 2.9], 'w2');
  });

  test('Nesterov momentum 0.9, lr 0.7 (DiLoCo\'s outer step), over two steps; tryApply agrees bit for bit', () => {
    const sgd = new Sgd(2, { lr: 0.7, momentum: 0.9, nesterov: true });
    const twin = new Sgd(2, { lr: 0.7, momentum: 0.9, nesterov: true });
    const w = Float32Array.of(1, -1);
    const w2 = Float32Array.of(1, -1);
    // Step 1: v = g = [1, 2]; w = w - 0.7 (g + 0.9 v) = [1 - 1.33, -1 - 2.66] = [-0.33, -3.66].
    sgd.apply(w, Float32Array.of(1, 2));
    assert.ok(twin.tryApply(w2, Float32Array.of(1, 2), 1, 0.7, Infinity) >= 0);
    near(sgd.velocity, [1, 2], 'v1');
    near(w, [-0.33, -3.66], 'w1');
    // Step 2 (scale 0.5, g = [2, 0] -> 0.5 g = [1, 0]): v = 0.9 [1, 2] + [1, 0] = [1.9, 1.8];
    //   w = w1 - 0.7 ([1, 0] + 0.9 v) = [-0.33 - 0.7 * 2.71, -3.66 - 0.7 * 1.62] = [-2.227, -4.794].
    sgd.apply(w, Float32Array.of(2, 0), 0.5);
    assert.ok(twin.tryApply(w2, Float32Array.of(2, 0), 0.5, 0.7, Infinity) >= 0);
    near(sgd.velocity, [1.9, 1.8], 'v2');
    near(w, [-2.227, -4.794], 'w2');
    assert.deepEqual(w2, w, 'the guarded path ends where apply does');
  });

  test('lr can be changed between steps', () => {
    const sgd = new Sgd(2, { lr: 0.1, momentum: 0 });
    const w = Float32Array.of(1, 1);
    sgd.lr = 0.5;
    sgd.apply(w, Float32Array.of(1, -1));
    near(w, [0.5, 1.5], 'w');
  });

  test('the constructor rejects a bad lr', () => {
    for (const lr of [0, -0.1, NaN, Infinity, -Infinity]) {
      assert.throws(() => new Sgd(4, { lr, momentum: 0 }), (e: Error) => e instanceof RangeError && /'lr'/.test(e.message), `lr ${lr}`);
    }
  });

  test('the constructor rejects a momentum outside [0, 1)', () => {
    for (const momentum of [-0.1, 1, 1.5, NaN, Infinity]) {
      assert.throws(() => new Sgd(4, { lr: 0.1, momentum }), (e: Error) => e instanceof RangeError && /'momentum'/.test(e.message), `momentum ${momentum}`);
    }
    assert.doesNotThrow(() => new Sgd(4, { lr: 0.1, momentum: 0.999 }));
  });

  test('a length mismatch throws and changes nothing', () => {
    for (const momentum of [0, 0.9]) {
      const sgd = new Sgd(3, { lr: 0.1, momentum });
      const w = Float32Array.of(1, 2, 3);
      assert.throws(() => sgd.apply(w, Float32Array.of(1, 1)), RangeError);
      assert.throws(() => sgd.apply(w, Float32Array.of(1, 1, 1, 1)), RangeError);
      assert.deepEqual(w, Float32Array.of(1, 2, 3));
      assert.ok(sgd.velocity.every((v) => v === 0));
    }
  });
});
