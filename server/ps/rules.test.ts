import assert from 'node:assert/strict';
import { test } from 'node:test';
import { deriveLayout } from '../../shared/layout.ts';
import { getModel } from '../../shared/models.ts';
import { RULES, SUM_RULE_BACKLOG, getRule } from './rules.ts';
import { ParameterStore } from './store.ts';

test('sum: the summed gradient as is, learning rate cut tenfold beyond 50 gradients', () => {
  assert.deepEqual(RULES.sum({ count: 1, staleness: 0, lr: 0.01 }), { scale: 1, lr: 0.01 });
  assert.deepEqual(RULES.sum({ count: SUM_RULE_BACKLOG, staleness: 9, lr: 0.01 }), { scale: 1, lr: 0.01 });
  assert.deepEqual(RULES.sum({ count: SUM_RULE_BACKLOG + 1, staleness: 0, lr: 0.01 }), { scale: 1, lr: 0.001 });
});

test('mean: 1/count; staleness: 1/(count * (1 + tau))', () => {
  assert.deepEqual(RULES.mean({ count: 4, staleness: 7, lr: 0.1 }), { scale: 0.25, lr: 0.1 });
  assert.deepEqual(RULES.staleness({ count: 4, staleness: 0, lr: 0.1 }), { scale: 0.25, lr: 0.1 });
  assert.deepEqual(RULES.staleness({ count: 4, staleness: 3, lr: 0.1 }), { scale: 1 / 16, lr: 0.1 });
});

test('an unknown rule is a CONFIG_INVALID error naming the known ones', () => {
  assert.throws(() => getRule('median'), /CONFIG_INVALID.*--rule.*sum, mean, staleness/);
});

test('the store applies a stale flush through its rule (hand-computed)', () => {
  const layout = deriveLayout(getModel('mnist-logreg'));
  const store = new ParameterStore(layout, new Float32Array(layout.size), { lr: 0.5, momentum: 0 });
  store.rule = RULES.staleness;
  const g = new Float32Array(layout.size).fill(1);
  for (let seq = 1; seq <= 3; seq++) store.apply({ workerId: 1, seq, baseVersion: seq - 1, count: 1, grad: g });
  assert.equal(store.weights[0], -1.5); // three fresh pushes: 3 * 0.5 * 1
  // A flush of 4 gradients summing to 8 per weight, computed at version 1 and applied at 3: tau = 2.
  const r = store.apply({ workerId: 2, seq: 1, baseVersion: 1, count: 4, grad: new Float32Array(layout.size).fill(8) });
  assert.deepEqual(r, { applied: true, version: 4, staleness: 2 });
  assert.equal(store.weights[0], Math.fround(-1.5 - 0.5 * (8 / (4 * 3))));
  store.rule = RULES.sum;
  store.apply({ workerId: 3, seq: 1, baseVersion: 4, count: 60, grad: new Float32Array(layout.size).fill(10) });
  assert.equal(store.weights[7], Math.fround(Math.fround(-1.5 - 0.5 * (8 / 12)) - 0.05 * 10));
});
