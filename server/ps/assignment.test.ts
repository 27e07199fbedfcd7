import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { mulberry32 } from '../../shared/layout.ts';
import { ShardAssignment } from './assignment.ts';

type Shards = Map<number, number[]>;

function view(a: ShardAssignment, workers: Iterable<number>): Shards {
  return new Map([...workers].map((w) => [w, a.shardsOf(w)]));
}

/** Workers whose shard list differs between two views (only those present in `after`). */
function diff(before: Shards, after: Shards): Set<number> {
  const out = new Set<number>();
  for (const [w, s] of after) if (before.get(w)?.join(',') !== s.join(',')) out.add(w);
  return out;
}

/** With W <= S: every shard belongs to exactly one worker, and loads differ by at most one. */
function assertPartition(a: ShardAssignment, workers: number[]): void {
  const seen = new Map<number, number>();
  const loads: number[] = [];
  for (const w of workers) {
    const shards = a.shardsOf(w);
    loads.push(shards.length);
    assert.ok(shards.length > 0, `worker ${w} has no shard`);
    for (const s of shards) {
      assert.ok(Number.isInteger(s) && s >= 0 && s < a.shardCount, `shard ${s}`);
      assert.ok(!seen.has(s), `shard ${s} belongs to both ${seen.get(s)} and ${w}`);
      seen.set(s, w);
    }
  }
  assert.equal(seen.size, a.shardCount, 'some shard has no worker');
  assert.ok(Math.max(...loads) - Math.min(...loads) <= 1, `loads ${loads.join(',')}`);
}

describe('ShardAssignment', () => {
  test('one worker owns every shard', () => {
    const a = new ShardAssignment(5);
    assert.deepEqual([...a.join(42)], [42]);
    assert.deepEqual(a.shardsOf(42), [0, 1, 2, 3, 4]);
  });

  for (const [S, W] of [[10, 3], [10, 10], [7, 4], [1, 1], [64, 5]] as const) {
    test(`${W} workers on ${S} shards: disjoint, complete, balanced`, () => {
      const a = new ShardAssignment(S);
      const workers = Array.from({ length: W }, (_, i) => 1000 + i * 37);
      for (const w of workers) a.join(w);
      assertPartition(a, workers);
    });
  }

  test('a departed worker\'s shards go to the remaining workers; theirs stay put', () => {
    const a = new ShardAssignment(12);
    const workers = [11, 22, 33, 44];
    for (const w of workers) a.join(w);
    const before = view(a, workers);
    const lost = before.get(22)!;
    assert.equal(lost.length, 3);
    const changed = a.leave(22);
    const rest = [11, 33, 44];
    assertPartition(a, rest);
    assert.deepEqual(a.shardsOf(22), [], 'a departed worker trains on nothing');
    const after = view(a, rest);
    for (const w of rest) {
      for (const s of before.get(w)!) assert.ok(after.get(w)!.includes(s), `worker ${w} lost shard ${s}`);
    }
    const moved = rest.flatMap((w) => after.get(w)!.filter((s) => !before.get(w)!.includes(s))).sort((x, y) => x - y);
    assert.deepEqual(moved, [...lost].sort((x, y) => x - y), 'exactly the departed worker\'s shards moved');
    assert.deepEqual(changed, diff(before, after));
    assert.ok(!changed.has(22));
    assert.equal(changed.size, 3, 'three shards went to three different workers');
  });

  test('a join rebalances, taking shards only from the most loaded', () => {
    const a = new ShardAssignment(7);
    a.join(1);
    a.join(2);
    a.join(3);
    const before = view(a, [1, 2, 3]);
    assertPartition(a, [1, 2, 3]);
    const changed = a.join(4);
    const after = view(a, [1, 2, 3, 4]);
    assertPartition(a, [1, 2, 3, 4]);
    assert.equal(after.get(4)!.length, 1);
    assert.deepEqual(changed, diff(before, after));
    assert.ok(changed.has(4));
    // Only one shard moved (to the joiner): exactly one old worker lost one shard, the others kept theirs.
    const losers = [1, 2, 3].filter((w) => after.get(w)!.length < before.get(w)!.length);
    assert.equal(losers.length, 1);
    assert.deepEqual(changed, new Set([4, ...losers]));
    for (const w of [1, 2, 3]) for (const s of after.get(w)!) assert.ok(before.get(w)!.includes(s), `worker ${w} gained shard ${s}`);
  });

  test('the joiner is reported even when it is not the only change', () => {
    const a = new ShardAssignment(6);
    a.join(1);
    const changed = a.join(2);
    assert.deepEqual(changed, new Set([1, 2]));
    assert.equal(a.shardsOf(1).length, 3);
    assert.equal(a.shardsOf(2).length, 3);
  });

  test('workers beyond the shard count get one shared shard, spread over the shards', () => {
    const a = new ShardAssignment(3);
    const workers = [10, 20, 30, 40, 50, 60, 70];
    for (const w of workers) a.join(w);
    const counts = new Array(3).fill(0);
    for (const w of workers) {
      const s = a.shardsOf(w);
      assert.equal(s.length, 1, `worker ${w}: ${s}`);
      assert.ok(s[0]! >= 0 && s[0]! < 3);
      counts[s[0]!]++;
    }
    // 3 owners + 4 sharers over 3 shards: every shard is trained, none by more than 3 workers.
    assert.ok(counts.every((n) => n >= 2 && n <= 3), counts.join(','));
  });

  test('when an owner leaves, a worker that had no shard of its own takes it', () => {
    const a = new ShardAssignment(2);
    for (const w of [1, 2, 3]) a.join(w);
    const owners = [1, 2, 3].filter((w) => a.shardsOf(w).length === 1);
    assert.equal(owners.length, 3);
    a.leave(1);
    // Two workers, two shards: disjoint again.
    assertPartition(a, [2, 3]);
  });

  test('leave of an unknown worker is a no-op', () => {
    const a = new ShardAssignment(4);
    a.join(1);
    a.join(2);
    const before = view(a, [1, 2]);
    const changed = a.leave(99);
    assert.equal(changed.size, 0);
    assert.deepEqual(view(a, [1, 2]), before);
    assert.equal(a.leave(99).size, 0);
    a.leave(1);
    assert.equal(a.leave(1).size, 0, 'leaving twice is a no-op too');
  });

  test('the last worker leaving, then a new one joining, gets every shard', () => {
    const a = new ShardAssignment(3);
    a.join(1);
    assert.deepEqual(a.leave(1), new Set());
    assert.deepEqual(a.shardsOf(1), []);
    a.join(2);
    assert.deepEqual(a.shardsOf(2), [0, 1, 2]);
  });

  test('a sharer whose shared shard moves because another sharer left is reported', () => {
    // S = 2: workers 1 and 2 own the shards; 3 and 4 share. The sharers' shards depend on
    // their rank among sharers, so when 3 leaves, 4's shared shard changes.
    const a = new ShardAssignment(2);
    for (const w of [1, 2, 3, 4]) a.join(w);
    const before = view(a, [1, 2, 4]);
    const changed = a.leave(3);
    const after = view(a, [1, 2, 4]);
    assert.deepEqual(changed, diff(before, after));
  });

  test('a sharer whose shared shard moves because a lower id joined is reported', () => {
    const a = new ShardAssignment(2);
    for (const w of [10, 20, 30]) a.join(w);
    const before = view(a, [10, 20, 30]);
    const changed = a.join(5);
    const after = view(a, [5, 10, 20, 30]);
    assert.deepEqual(changed, diff(before, after));
    assert.ok(changed.has(5));
  });

  test('random joins and leaves: invariants hold and the return sets are exact', () => {
    const random = mulberry32(2024);
    for (const S of [1, 3, 8, 20]) {
      const a = new ShardAssignment(S);
      const live: number[] = [];
      for (let step = 0; step < 400; step++) {
        const before = view(a, live);
        let changed: Set<number>;
        if (live.length === 0 || (random() < 0.55 && live.length < S + 4)) {
          const w = 1 + Math.floor(random() * 1e6);
          if (live.includes(w)) continue;
          changed = a.join(w);
          live.push(w);
          assert.ok(changed.has(w));
        } else {
          const w = live.splice(Math.floor(random() * live.length), 1)[0]!;
          changed = a.leave(w);
          assert.ok(!changed.has(w));
        }
        const after = view(a, live);
        const expected = diff(before, after);
        for (const w of live) if (!before.has(w)) expected.add(w);
        assert.deepEqual(changed, expected, `S=${S} step ${step}`);
        if (live.length === 0) continue;
        if (live.length <= S) assertPartition(a, live);
        else {
          const covered = new Set(live.flatMap((w) => a.shardsOf(w)));
          assert.equal(covered.size, S, 'every shard is trained');
          for (const w of live) assert.equal(a.shardsOf(w).length, 1);
        }
      }
    }
  });
});
