/**
 * The applied-push record is bounded (docs/PROTOCOL.md, "The applied-push record"): it keeps
 * the workers seen within --record-horizon versions, at most --record-max of them, and sums up
 * what it forgot in a floor entry (worker 0) that travels wherever the record does. A worker
 * returning after the horizon is refused with PS_RECORD_EXPIRED, nothing is applied twice, and
 * it joins again as a new worker.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { classify } from '../client/failures.ts';
import { TabswarmError } from '../shared/errors.ts';
import { deriveLayout, initWeights } from '../shared/layout.ts';
import { MAX_RECORD_ENTRIES } from '../shared/protocol.ts';
import { getModel } from '../shared/models.ts';
import { FLOOR_WORKER, ParameterStore } from '../server/ps/store.ts';
import { ShardAssignment } from '../server/ps/assignment.ts';
import { join, mustJoin, pullHttp, pushHttp, startTestPs, type TestPs } from './abuse-tools.ts';

const layout = deriveLayout(getModel('mnist-logreg'));
const grad = new Float32Array(layout.size).fill(1e-4);
const newStore = (bounds: { horizon: number; max: number }): ParameterStore => {
  const s = new ParameterStore(layout, initWeights(layout, 1), { lr: 0.01, momentum: 0 });
  s.recordBounds = bounds;
  return s;
};
const push = (s: ParameterStore, workerId: number, seq: number) => s.apply({ workerId, seq, baseVersion: s.version, count: 1, grad });

describe('the bounded record in the store', () => {
  test('past --record-max the oldest workers are forgotten; the floor says up to which version', () => {
    const s = newStore({ horizon: 1e9, max: 3 });
    for (let w = 1; w <= 5; w++) push(s, w, 1);
    assert.equal(s.recordSize, 3);
    assert.deepEqual(s.record().map((r) => r.workerId), [FLOOR_WORKER, 3, 4, 5]);
    assert.equal(s.recordFloor, 2, 'worker 2 held version 2');
    push(s, 3, 2); // a push refreshes a worker: now 4 is the oldest
    push(s, 6, 1);
    assert.deepEqual(s.record().map((r) => r.workerId), [FLOOR_WORKER, 3, 5, 6]);
    assert.ok(s.record().length <= 3 + 1);
  });

  test('past --record-horizon versions a silent worker is forgotten, an active one kept', () => {
    const s = newStore({ horizon: 4, max: 100 });
    push(s, 7, 1);
    for (let i = 1; i <= 6; i++) push(s, 8, i);
    assert.equal(s.appliedMark(7), undefined);
    assert.deepEqual(s.appliedMark(8), { seq: 6, version: 7 });
    assert.equal(s.recordFloor, 1);
  });

  test('the floor travels in snapshots; a restore under tighter bounds shrinks the record', () => {
    const s = newStore({ horizon: 1e9, max: 4 });
    for (let w = 1; w <= 6; w++) push(s, w, 1);
    const snap = s.snapshot();
    assert.equal(snap.applied.get(FLOOR_WORKER)?.version, 2);
    // A copy in worker-id order (as a WEIGHTS frame or a checkpoint carries it) restores the same.
    const t = newStore({ horizon: 1e9, max: 2 });
    t.restore({ ...snap, applied: new Map([...snap.applied].sort((a, b) => a[0] - b[0])) });
    assert.deepEqual(t.record().map((r) => r.workerId), [FLOOR_WORKER, 5, 6]);
    assert.equal(t.recordFloor, 4);
    const u = newStore({ horizon: 1e9, max: 10 });
    u.restore(snap);
    assert.deepEqual(u.record(), s.record(), 'a roomier store keeps the copy as it was');
  });

  test('the record never exceeds what a frame may carry', () => {
    const s = newStore({ horizon: 1e9, max: 65535 });
    assert.ok(s.recordBounds.max + 1 <= MAX_RECORD_ENTRIES);
  });
});

describe('a worker returning after the horizon', () => {
  let ps: TestPs;
  before(async () => {
    ps = await startTestPs({ recordMax: 2, joinRate: 0 });
  });
  after(() => ps?.close());

  test('is refused with PS_RECORD_EXPIRED, nothing is applied twice, and it rejoins fresh', async () => {
    const a = await mustJoin(ps.url);
    const v0 = (await pullHttp(ps.url, a)).version;
    const first = await pushHttp(ps.url, a, 1, v0);
    assert.equal(first.status, 200);
    // Two other workers push: a is forgotten (the record holds two).
    for (const w of [await mustJoin(ps.url), await mustJoin(ps.url)]) {
      const v = (await pullHttp(ps.url, w)).version;
      assert.equal((await pushHttp(ps.url, w, 1, v)).status, 200);
    }
    const { version, record } = await pullHttp(ps.url, a);
    assert.equal(record.find((r) => r.workerId === a.workerId), undefined, 'a is past the record');
    assert.ok(record.find((r) => r.workerId === 0)!.version >= first.version!, 'the floor covers a\'s last push');
    assert.ok(record.length <= 3);

    // Its live session: a retry of the push whose ack it "lost" must not be applied again.
    const retry = await pushHttp(ps.url, a, 1, version);
    assert.equal(retry.status, 409);
    assert.equal(retry.code, 'PS_RECORD_EXPIRED');
    assert.equal((await pullHttp(ps.url, a)).version, version, 'nothing applied');

    // Resuming its id (a reload with a buffered flush) is refused the same way.
    const resumed = await join(ps.url, { resume: { workerId: a.workerId, idTag: a.idTag } });
    assert.equal(resumed.status, 409);
    assert.equal(resumed.body.code, 'PS_RECORD_EXPIRED');
    const err = TabswarmError.fromJSON(resumed.body)!;
    assert.equal(classify(err), 'forget-identity', 'the worker forgets its id (and drops what it owed, client/loop.ts)');

    // Joining fresh: a new id, and its pushes apply.
    const fresh = await mustJoin(ps.url);
    assert.notEqual(fresh.workerId, a.workerId);
    assert.equal(fresh.lastSeq, 0);
    const v = (await pullHttp(ps.url, fresh)).version;
    const ok = await pushHttp(ps.url, fresh, 1, v);
    assert.equal(ok.status, 200);
    assert.equal(ok.version, v + 1);
  });

  test('a worker still in the record resumes as before', async () => {
    const b = await mustJoin(ps.url);
    const v = (await pullHttp(ps.url, b)).version;
    assert.equal((await pushHttp(ps.url, b, 1, v)).status, 200);
    const again = await mustJoin(ps.url, { resume: { workerId: b.workerId, idTag: b.idTag } });
    assert.equal(again.workerId, b.workerId);
    assert.equal(again.lastSeq, 1);
  });
});

describe('shard assignment at scale', () => {
  test('1,024 workers join and leave on 16 shards in well under a second, balanced throughout', () => {
    const a = new ShardAssignment(16);
    const started = performance.now();
    let messages = 0;
    for (let w = 1; w <= 1024; w++) messages += a.join(w).size;
    for (let w = 1; w <= 1024; w += 2) messages += a.leave(w).size;
    const ms = performance.now() - started;
    assert.ok(ms < 1000, `took ${ms.toFixed(0)} ms`);
    // A join or leave touches O(1) workers beyond the shard owners, not all of them.
    assert.ok(messages < 4 * (1024 + 512), `${messages} changed-shard notices`);
    const covered = new Set<number>();
    for (let w = 2; w <= 1024; w += 2) for (const s of a.shardsOf(w)) covered.add(s);
    assert.equal(covered.size, 16, 'every shard is trained');
  });
});
