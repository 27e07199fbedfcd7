import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NO_BOOTSTRAP, NO_DURABILITY, OPEN_ADMISSION, compose, volatile, type Admission } from './strategy.ts';

test('compose fills every part left out with its default, once; every member is present', async () => {
  const s = volatile();
  for (const key of ['start', 'afterApply', 'durable', 'status', 'stop', 'ready', 'wantsWeights', 'offer', 'workerConnected', 'admitWrite', 'admitRead'] as const) {
    assert.equal(typeof s[key], 'function', key);
  }
  assert.equal(s.name, 'none');
  assert.equal(s.wantsWeights(), false);
  assert.equal(s.offer({ workerId: 1, version: 1, weights: new Float32Array(0), weightBytes: new Uint8Array(0), record: [], tag: new Uint8Array(0) }), false);
  assert.doesNotThrow(() => s.admitWrite());
  assert.deepEqual(s.status(), NO_DURABILITY.status());
  await s.ready();
  assert.ok(Object.isFrozen(NO_BOOTSTRAP) && Object.isFrozen(OPEN_ADMISSION) && Object.isFrozen(NO_DURABILITY), 'defaults are shared and cannot be changed');
});

test('a part given replaces its default and is called through', () => {
  const calls: string[] = [];
  const admission: Admission = {
    admitWrite: () => {
      calls.push('write');
      throw new Error('no writes');
    },
    admitRead: () => void calls.push('read'),
  };
  const s = compose('gate', { admission });
  assert.throws(() => s.admitWrite(), /no writes/);
  s.admitRead();
  assert.deepEqual(calls, ['write', 'read']);
  assert.equal(s.wantsWeights(), false, 'bootstrap still the default');
});
