import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { deriveLayout, type Layout } from '../../shared/layout.ts';
import type { ModelSpec } from '../../shared/models.ts';
import { ParameterStore, type Update } from './store.ts';

/** A tiny model: 3 inputs -> 2 outputs, 8 parameters. */
const TINY: ModelSpec = {
  name: 'tiny',
  description: 'test',
  input: [1, 1, 3],
  classes: 2,
  layers: [{ kind: 'flatten' }, { kind: 'dense', units: 2, activation: 'linear' }],
  defaults: { lr: 0.1, batch: 1 },
};
const LAYOUT: Layout = deriveLayout(TINY);
const INITIAL = Float32Array.from({ length: LAYOUT.size }, (_, i) => (i - 3) / 4);

function grad(seed: number): Float32Array {
  return Float32Array.from({ length: LAYOUT.size }, (_, i) => Math.sin(seed * 7 + i) * 2);
}

function update(workerId: number, seq: number, over: Partial<Update> = {}): Update {
  return { workerId, seq, baseVersion: 0, count: 1, grad: grad(workerId * 100 + seq), ...over };
}

function bytes(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength));
}

describe('ParameterStore', () => {
  test('the layout of the test model has 8 values', () => {
    assert.equal(LAYOUT.size, 8);
  });

  test('the constructor copies the initial weights and checks their length', () => {
    const initial = Float32Array.from(INITIAL);
    const store = new ParameterStore(LAYOUT, initial, { lr: 0.1, momentum: 0 });
    initial[0] = 99;
    assert.equal(store.weights[0], INITIAL[0]);
    assert.equal(store.version, 0);
    assert.throws(() => new ParameterStore(LAYOUT, new Float32Array(7), { lr: 0.1, momentum: 0 }), RangeError);
  });

  test('apply applies a push once: w - lr * g, version + 1, mark recorded', () => {
    const store = new ParameterStore(LAYOUT, INITIAL, { lr: 0.1, momentum: 0 });
    const u = update(5, 1);
    const r = store.apply(u);
    assert.deepEqual(r, { applied: true, version: 1, staleness: 0 });
    assert.equal(store.version, 1);
    for (let i = 0; i < LAYOUT.size; i++) assert.equal(store.weights[i], Math.fround(INITIAL[i]! - 0.1 * u.grad[i]!));
    assert.deepEqual(store.appliedMark(5), { seq: 1, version: 1 });
    assert.equal(store.appliedMark(6), undefined);
  });

  test('the same (worker, seq) again is a duplicate: nothing changes, and the first ack version comes back', () => {
    const store = new ParameterStore(LAYOUT, INITIAL, { lr: 0.1, momentum: 0.9 });
    const first = store.apply(update(5, 1));
    assert.equal(first.applied, true);
    // Another worker moves the model on, so "the first ack's version" differs from the current one.
    store.apply(update(6, 1));
    assert.equal(store.version, 2);
    const weights = bytes(store.weights);
    const velocity = bytes(store.optimizer.velocity);
    const again = store.apply(update(5, 1));
    assert.deepEqual(again, { applied: false, duplicate: true, version: first.version });
    assert.equal(again.version, 1);
    assert.equal(store.version, 2);
    assert.deepEqual(bytes(store.weights), weights);
    assert.deepEqual(bytes(store.optimizer.velocity), velocity);
    assert.deepEqual(store.appliedMark(5), { seq: 1, version: 1 });
    // Even with a different gradient in the retried frame, nothing is applied.
    assert.equal(store.apply(update(5, 1, { grad: grad(999) })).applied, false);
    assert.deepEqual(bytes(store.weights), weights);
  });

  test('a lower seq is a duplicate too and changes nothing', () => {
    const store = new ParameterStore(LAYOUT, INITIAL, { lr: 0.1, momentum: 0 });
    store.apply(update(5, 3));
    store.apply(update(5, 7));
    const weights = bytes(store.weights);
    for (const seq of [0, 3, 6]) {
      const r = store.apply(update(5, seq));
      assert.equal(r.applied, false, `seq ${seq}`);
      assert.equal(r.version, 2);
    }
    assert.equal(store.version, 2);
    assert.deepEqual(bytes(store.weights), weights);
    assert.deepEqual(store.appliedMark(5), { seq: 7, version: 2 });
    // Sequence numbers are per worker: another worker's seq 3 is new.
    assert.equal(store.apply(update(6, 3)).applied, true);
    // And a higher seq from worker 5 applies (gaps are fine).
    assert.deepEqual(store.apply(update(5, 9)), { applied: true, version: 4, staleness: 3 });
  });

  test('staleness is how many updates landed since the base version', () => {
    const store = new ParameterStore(LAYOUT, INITIAL, { lr: 0.1, momentum: 0 });
    for (let s = 1; s <= 4; s++) store.apply(update(1, s, { baseVersion: s - 1 }));
    const r = store.apply(update(2, 1, { baseVersion: 1 }));
    assert.deepEqual(r, { applied: true, version: 5, staleness: 3 });
  });

  test('count > 1 divides the summed gradient by count', () => {
    const summed = new ParameterStore(LAYOUT, INITIAL, { lr: 0.1, momentum: 0 });
    const g = Float32Array.from({ length: LAYOUT.size }, (_, i) => 4 * (i + 1));
    summed.apply(update(1, 1, { count: 4, grad: g }));
    for (let i = 0; i < LAYOUT.size; i++) {
      assert.ok(Math.abs(summed.weights[i]! - (INITIAL[i]! - 0.1 * (i + 1))) < 1e-6, `w[${i}] = ${summed.weights[i]}`);
    }
    // The same as pushing the mean with count 1.
    const mean = new ParameterStore(LAYOUT, INITIAL, { lr: 0.1, momentum: 0 });
    mean.apply(update(1, 1, { count: 1, grad: g.map((v) => v / 4) }));
    assert.deepEqual(bytes(summed.weights), bytes(mean.weights));
  });

  test('a push of the wrong length throws and leaves version and marks unchanged', () => {
    const store = new ParameterStore(LAYOUT, INITIAL, { lr: 0.1, momentum: 0 });
    assert.throws(() => store.apply(update(1, 1, { grad: new Float32Array(3) })), RangeError);
    assert.equal(store.version, 0);
    assert.equal(store.appliedMark(1), undefined);
    assert.deepEqual(bytes(store.weights), bytes(INITIAL));
  });

  test('snapshot / restore round trip is bitwise, with applied marks and version', () => {
    const store = new ParameterStore(LAYOUT, INITIAL, { lr: 0.1, momentum: 0.9 });
    store.apply(update(1, 1));
    store.apply(update(2, 1));
    store.apply(update(1, 2));
    const snap = store.snapshot();
    const weights = bytes(store.weights);
    const velocity = bytes(store.optimizer.velocity);
    assert.equal(snap.version, 3);
    assert.equal(snap.layoutHash, LAYOUT.hash);

    // Move on past the snapshot; the snapshot is a deep copy and does not follow.
    store.apply(update(1, 3));
    store.apply(update(3, 1));
    assert.notDeepEqual(bytes(snap.weights), bytes(store.weights));
    assert.deepEqual(bytes(snap.weights), weights);

    store.restore(snap);
    assert.equal(store.version, 3);
    assert.deepEqual(bytes(store.weights), weights);
    assert.deepEqual(bytes(store.optimizer.velocity), velocity);
    assert.deepEqual(store.appliedMark(1), { seq: 2, version: 3 });
    assert.deepEqual(store.appliedMark(2), { seq: 1, version: 2 });
    assert.equal(store.appliedMark(3), undefined, 'marks made after the snapshot are gone');

    // Exactly-once survives the restore: an old push is still a duplicate with its old ack...
    assert.deepEqual(store.apply(update(1, 2)), { applied: false, duplicate: true, version: 3 });
    // ...and a push that was lost with the rolled-back state is applied again.
    assert.equal(store.apply(update(1, 3)).applied, true);
  });

  test('restore into a fresh store reproduces the same state, and both evolve identically', () => {
    const a = new ParameterStore(LAYOUT, INITIAL, { lr: 0.1, momentum: 0.9 });
    a.apply(update(1, 1));
    a.apply(update(2, 1));
    const b = new ParameterStore(LAYOUT, new Float32Array(LAYOUT.size), { lr: 0.1, momentum: 0.9 });
    b.restore(a.snapshot());
    a.apply(update(1, 2));
    b.apply(update(1, 2));
    assert.equal(a.version, b.version);
    assert.deepEqual(bytes(a.weights), bytes(b.weights));
    assert.deepEqual(bytes(a.optimizer.velocity), bytes(b.optimizer.velocity));
  });

  test('restore bumps the generation', () => {
    const store = new ParameterStore(LAYOUT, INITIAL, { lr: 0.1, momentum: 0 });
    const g0 = store.generation;
    const snap = store.snapshot();
    store.restore(snap);
    assert.equal(store.generation, g0 + 1);
    store.restore(snap);
    assert.equal(store.generation, g0 + 2);
  });

  test('restore with a wrong layout hash throws and changes nothing', () => {
    const store = new ParameterStore(LAYOUT, INITIAL, { lr: 0.1, momentum: 0 });
    store.apply(update(1, 1));
    const snap = store.snapshot();
    const other = { ...snap, layoutHash: (LAYOUT.hash ^ 0x10) >>> 0, weights: new Float32Array(LAYOUT.size), version: 77 };
    const generation = store.generation;
    const weights = bytes(store.weights);
    assert.throws(() => store.restore(other), (e: Error) => e instanceof RangeError && /layout/.test(e.message));
    assert.equal(store.version, 1);
    assert.equal(store.generation, generation);
    assert.deepEqual(bytes(store.weights), weights);
    // A snapshot with the right hash but the wrong number of weights is refused too.
    assert.throws(() => store.restore({ ...snap, weights: new Float32Array(3) }), RangeError);
  });
});
