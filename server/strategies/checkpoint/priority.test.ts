import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PriorityTracker } from './priority.ts';

describe('PriorityTracker', () => {
  test('selects the ceil(r * blocks) blocks that moved most, in index order', () => {
    const t = new PriorityTracker(10, 2); // 5 blocks
    const live = new Float32Array(10);
    live[0] = 1; // block 0: 1
    live[3] = 3; // block 1: 9
    live[5] = -2; // block 2: 4
    live[8] = 0.5; // block 4: 0.25
    assert.deepEqual([...t.scores(live)], [1, 9, 4, 0, 0.25]);
    assert.deepEqual([...t.select(live, 0.4)], [1, 2]);
    assert.deepEqual([...t.select(live, 0.5)], [0, 1, 2]);
  });

  test('never picks a block that did not change, so a quiet shard saves less', () => {
    const t = new PriorityTracker(10, 2);
    const live = new Float32Array(10);
    live[9] = 1;
    assert.deepEqual([...t.select(live, 1)], [4]);
    assert.deepEqual([...t.select(new Float32Array(10), 0.5)], []);
  });

  test('commit records the saved copy of the chosen blocks only; reset takes all', () => {
    const t = new PriorityTracker(5, 2); // blocks [0,1] [2,3] [4]
    const live = Float32Array.from([1, 2, 3, 4, 5]);
    t.commit(live, Uint32Array.from([0, 2]));
    assert.deepEqual([...t.saved], [1, 2, 0, 0, 5]);
    assert.deepEqual([...t.select(live, 1)], [1]);
    t.reset(live);
    assert.deepEqual([...t.select(live, 1)], []);
  });

  test('for the same bytes, the saved copy stays closer to a drifting live state', () => {
    // 64 blocks; each step moves a few "hot" blocks a lot and the rest a little.
    const n = 64 * 8;
    const live = new Float32Array(n);
    const full = new Float32Array(n); // a full checkpoint every 4 steps
    const prio = new PriorityTracker(n, 8); // a quarter of the blocks every step
    let fullErr = 0;
    let prioErr = 0;
    for (let step = 1; step <= 40; step++) {
      for (let i = 0; i < n; i++) live[i]! += (Math.floor(i / 8) % 8 === 0 ? 0.5 : 0.01) * Math.cos(step + i);
      if (step % 4 === 0) full.set(live);
      prio.commit(live, prio.select(live, 0.25));
      let f = 0;
      let p = 0;
      for (let i = 0; i < n; i++) {
        f += (live[i]! - full[i]!) ** 2;
        p += (live[i]! - prio.saved[i]!) ** 2;
      }
      fullErr += f;
      prioErr += p;
    }
    assert.ok(prioErr < fullErr / 2, `prioritized ${prioErr} vs full ${fullErr}`);
  });
});
