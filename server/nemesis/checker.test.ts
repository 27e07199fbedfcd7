/**
 * The ledger checker must be able to fail: fabricated ledgers, each breaking one promise, are
 * flagged as exactly that; a clean one passes. Also the fault matrix's schedules: counts kept,
 * order fixed by the seed.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkLedger, describeVerdict, type AckRecord, type ReplicaHistory } from './checker.ts';
import { FAULT_NAMES, downMs, fault, schedule, tally } from './faults.ts';

const replica = (node: string, entries: [number, number][], digest = 'd', start = 1): ReplicaHistory => ({ node, start, version: start + entries.length - 1, digest, entries });
const ack = (worker: number, seq: number, version: number, duplicate = false): AckRecord => ({ worker, seq, version, duplicate });
// Versions 1..4 made by worker 1 seq 1,2 and worker 2 seq 1,2, interleaved.
const HISTORY: [number, number][] = [[1, 1], [2, 1], [1, 2], [2, 2]];
const ACKS = [ack(1, 1, 1), ack(2, 1, 2), ack(1, 2, 3), ack(2, 2, 4)];

test('a clean ledger passes, a retry acked as a duplicate included', () => {
  const v = checkLedger([...ACKS, ack(1, 2, 3, true)], [replica('a', HISTORY), replica('b', HISTORY), replica('c', HISTORY.slice(2), 'd', 3)]);
  assert.equal(v.ok, true, describeVerdict(v));
  assert.equal(v.version, 4);
  assert.equal(v.acked, 4);
  assert.equal(v.unacknowledged, 0);
});

test('a lost acknowledged push, a push applied twice and a version gap are each flagged', () => {
  // Worker 2's seq 2 was acked at version 4, but the replicas end at 3: lost.
  const lost = checkLedger(ACKS, [replica('a', HISTORY.slice(0, 3)), replica('b', HISTORY.slice(0, 3))]);
  assert.equal(lost.ok, false);
  assert.deepEqual(lost.lost, [{ worker: 2, seq: 2, version: 4 }]);

  // Worker 1's seq 1 applied again at version 5.
  const twice = checkLedger(ACKS, [replica('a', [...HISTORY, [1, 1]])]);
  assert.equal(twice.ok, false);
  assert.deepEqual(twice.appliedTwice, [{ worker: 1, seq: 1, versions: [1, 5] }]);

  // The only history starts at version 3: versions 1 and 2 are unaccounted for, their acks lost.
  const gap = checkLedger(ACKS, [replica('a', HISTORY.slice(2), 'd', 3)]);
  assert.equal(gap.ok, false);
  assert.deepEqual(gap.gaps, [1, 2]);
  assert.equal(gap.lost.length, 2);
  assert.match(describeVerdict(gap), /version gaps 2/);
});

test('two pushes acked with one version, an ack naming another push\'s version, and diverging replicas are flagged', () => {
  // An async head failure: worker 2's seq 2 was acked at 4 and lost; the new head gave 4 to worker 1's seq 3.
  const repeat = checkLedger([...ACKS, ack(1, 3, 4)], [replica('a', [...HISTORY.slice(0, 3), [1, 3]])]);
  assert.deepEqual(repeat.repeats, [{ version: 4, pushes: ['2:2', '1:3'] }]);
  assert.deepEqual(repeat.lost, [{ worker: 2, seq: 2, version: 4 }]);

  const misplaced = checkLedger([ack(1, 1, 2), ack(2, 1, 1)], [replica('a', HISTORY.slice(0, 2))]);
  assert.equal(misplaced.misplaced.length, 2);

  const bytes = checkLedger(ACKS, [replica('a', HISTORY), replica('b', HISTORY, 'other')]);
  assert.deepEqual(bytes.divergent.map((d) => d.node), ['b']);
  const order = checkLedger(ACKS, [replica('a', HISTORY), replica('b', [[2, 1], [1, 1], [1, 2], [2, 2]])]);
  assert.match(order.divergent[0]!.why, /history differs at version 1/);
  const behind = checkLedger(ACKS, [replica('a', HISTORY), replica('b', HISTORY.slice(0, 3))]);
  assert.match(behind.divergent[0]!.why, /at version 3/);
  assert.equal(checkLedger(ACKS, []).ok, false, 'no replica is no proof');
});

test('schedules hold the counts asked for, in an order fixed by the seed', () => {
  const counts = { 'kill-head': 3, 'kill-tail': 2, 'pause-zk': 1 } as const;
  const a = schedule(counts, 7);
  assert.deepEqual(tally(a), counts);
  assert.deepEqual(schedule(counts, 7).map((f) => f.name), a.map((f) => f.name));
  assert.notDeepEqual(schedule({ 'kill-head': 20, 'kill-tail': 20 }, 1).map((f) => f.name), schedule({ 'kill-head': 20, 'kill-tail': 20 }, 2).map((f) => f.name));
  assert.throws(() => schedule({ 'kill-head': -1 }, 1), /non-negative/);
  for (const name of FAULT_NAMES) assert.equal(fault(name).name, name);
  assert.equal(downMs(fault('pause-tail'), 2000), 4000, 'a node pause outlasts the session timeout');
  assert.ok(downMs(fault('pause-zk'), 2000) < 2000, 'a ZooKeeper pause stays within a session');
});
