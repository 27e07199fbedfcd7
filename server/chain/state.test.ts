import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { transition, writable, type ReplicaEvent, type ReplicaState } from './state.ts';

const run = (events: ReplicaEvent[], from: ReplicaState = { kind: 'joining' }): ReplicaState => events.reduce(transition, from);

describe('replica state', () => {
  test('the head of a warm chain serves at once; any other member catches up until a STATE arrives', () => {
    assert.deepEqual(run([{ type: 'view', role: 'single', warm: true }]), { kind: 'serving', role: 'single', suspect: false });
    const tail = run([{ type: 'view', role: 'tail', warm: true }]);
    assert.deepEqual(tail, { kind: 'catching-up', role: 'tail', suspect: false });
    assert.deepEqual(transition(tail, { type: 'state-applied' }), { kind: 'serving', role: 'tail', suspect: false });
  });

  test('the head of a cold chain waits: it serves only once the chain is warm', () => {
    const cold = run([{ type: 'view', role: 'head', warm: false }]);
    assert.equal(cold.kind, 'catching-up');
    assert.equal(writable(cold, false), false);
    assert.deepEqual(transition(cold, { type: 'view', role: 'head', warm: true }), { kind: 'serving', role: 'head', suspect: false });
  });

  test('a serving node keeps its state through role changes; leaving the view or diverging drops it', () => {
    const s = run([{ type: 'view', role: 'tail', warm: true }, { type: 'state-applied' }, { type: 'view', role: 'head', warm: true }]);
    assert.deepEqual(s, { kind: 'serving', role: 'head', suspect: false });
    assert.equal(transition(s, { type: 'view', role: undefined, warm: true }).kind, 'joining');
    assert.deepEqual(transition(s, { type: 'diverged' }), { kind: 'catching-up', role: 'head', suspect: false });
  });

  test('suspect only stops writes where the replication fences on it; clear lifts it', () => {
    const s = run([{ type: 'view', role: 'single', warm: true }, { type: 'suspect' }]);
    assert.deepEqual(s, { kind: 'serving', role: 'single', suspect: true });
    assert.equal(writable(s, false), true, 'sync: the chain itself fences');
    assert.equal(writable(s, true), false, 'async, snapshot: refuse');
    assert.equal(writable(transition(s, { type: 'clear' }), true), true);
    assert.deepEqual(transition({ kind: 'joining' }, { type: 'suspect' }), { kind: 'joining' });
  });

  test('fenced holds through views until a new registration', () => {
    const f = run([{ type: 'view', role: 'head', warm: true }, { type: 'fenced', reason: 'expired' }, { type: 'view', role: 'head', warm: true }]);
    assert.deepEqual(f, { kind: 'fenced', reason: 'expired' });
    assert.equal(writable(f, false), false);
    assert.deepEqual(transition(f, { type: 'registered' }), { kind: 'joining' });
  });
});
