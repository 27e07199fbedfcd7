import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Backoff, backoffDelay } from './backoff.ts';

test('backoff doubles from min, is capped at max, and jitter stays within its fraction', () => {
  const lo = { minMs: 100, maxMs: 1000, jitter: 0.5, random: () => 0 };
  const hi = { ...lo, random: () => 0.999999 };
  assert.equal(backoffDelay(1, lo), 50);
  assert.equal(backoffDelay(2, lo), 100);
  assert.equal(backoffDelay(4, lo), 400);
  assert.equal(backoffDelay(50, lo), 500, 'capped at max before jitter');
  assert.ok(Math.abs(backoffDelay(1, hi) - 150) < 0.01);
  assert.ok(Math.abs(backoffDelay(50, hi) - 1500) < 0.01);
  assert.equal(backoffDelay(0, lo), 50, 'a count below 1 is treated as the first failure');
});

test('Backoff counts failures and reset starts over', () => {
  const b = new Backoff({ minMs: 10, maxMs: 80, jitter: 0 });
  assert.deepEqual([b.fail(), b.fail(), b.fail(), b.fail(), b.fail()], [10, 20, 40, 80, 80]);
  assert.equal(b.failures, 5);
  b.reset();
  assert.equal(b.fail(), 10);
});
