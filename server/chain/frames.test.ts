import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TabswarmError } from '../../shared/errors.ts';
import { ChainMsg } from '../../shared/protocol.ts';
import { CHAIN_HEADER_BYTES, decodeChainFrame, encodeAck, encodeForward, encodeState, frameEpoch, restampEpoch } from './frames.ts';

const opts = { layoutHash: 0xabcdef01, layoutSize: 5 };
const grad = Float32Array.from([0.5, -1, 2.25, 0, 1e-7]);
/** A control block whose lr has no exact float32: it must travel as a float64. */
const C = { version: 3, rule: 1, lr: 0.1 + 1e-12 };

function refused(bytes: Uint8Array, detail: RegExp): void {
  assert.throws(() => decodeChainFrame(bytes, opts), (e: unknown) => e instanceof TabswarmError && e.code === 'CHAIN_BAD_FRAME' && detail.test(e.message));
}

describe('chain frames', () => {
  test('FORWARD round trip keeps every field and the gradient bit for bit', () => {
    const bytes = encodeForward(opts.layoutHash, { control: C, epoch: 7, version: 123, workerId: 0xfffffffe, seq: 99, count: 3, baseVersion: 120, flags: 4, grad });
    const f = decodeChainFrame(bytes, opts);
    assert.equal(f.type, ChainMsg.FORWARD);
    if (f.type !== ChainMsg.FORWARD) return;
    assert.deepEqual({ ...f, grad: [...f.grad] }, { type: ChainMsg.FORWARD, epoch: 7, version: 123, workerId: 0xfffffffe, seq: 99, count: 3, baseVersion: 120, flags: 4, control: C, grad: [...grad] });
  });

  test('CHAIN_ACK round trip', () => {
    assert.deepEqual(decodeChainFrame(encodeAck(opts.layoutHash, 3, 42), opts), { type: ChainMsg.CHAIN_ACK, epoch: 3, version: 42 });
  });

  test('STATE round trip: weights, velocity, record, history', () => {
    const s = { control: C, epoch: 2, version: 10, weights: grad, velocity: Float32Array.from([1, 2, 3, 4, 5]), record: [{ workerId: 5, seq: 9, version: 10 }], historyStart: 8, history: [{ workerId: 5, seq: 7 }, { workerId: 6, seq: 1 }, { workerId: 5, seq: 9 }] };
    const f = decodeChainFrame(encodeState(opts.layoutHash, s), opts);
    assert.equal(f.type, ChainMsg.STATE);
    if (f.type !== ChainMsg.STATE) return;
    assert.deepEqual([...f.weights], [...s.weights]);
    assert.deepEqual([...f.velocity], [...s.velocity]);
    assert.deepEqual(f.record, s.record);
    assert.deepEqual(f.history, s.history);
    assert.equal(f.historyStart, 8);
    assert.deepEqual(f.control, C, 'a node that joins later takes the run\'s lr and rule');
    const noVelocity = decodeChainFrame(encodeState(opts.layoutHash, { ...s, velocity: new Float32Array(0) }), opts);
    assert.equal(noVelocity.type === ChainMsg.STATE && noVelocity.velocity.length, 0);
  });

  test('malformed frames are CHAIN_BAD_FRAME', () => {
    const good = encodeForward(opts.layoutHash, { control: C, epoch: 1, version: 1, workerId: 1, seq: 1, count: 1, baseVersion: 0, flags: 0, grad });
    refused(good.subarray(0, 20), /shorter than the 40-byte header/);
    const magic = Uint8Array.from(good);
    magic[0] = 0;
    refused(magic, /bad magic/);
    refused(encodeForward(0x1234, { control: C, epoch: 1, version: 1, workerId: 1, seq: 1, count: 1, baseVersion: 0, flags: 0, grad }), /layout hash/);
    refused(good.subarray(0, good.byteLength - 4), /forward of 5 values/);
    refused(encodeForward(opts.layoutHash, { control: C, epoch: 1, version: 1, workerId: 1, seq: 1, count: 0, baseVersion: 0, flags: 0, grad }), /count 0/);
    refused(encodeForward(opts.layoutHash, { control: C, epoch: 1, version: 1, workerId: 1, seq: 1, count: 1, baseVersion: 0, flags: 0, grad: Float32Array.from([0, 0, NaN, 0, 0]) }), /non-finite gradient value at 2/);
    const unknown = Uint8Array.from(good);
    unknown[5] = 0x5f;
    refused(unknown, /not a chain frame/);
    const state = encodeState(opts.layoutHash, { control: C, epoch: 1, version: 1, weights: grad, velocity: grad, record: [], historyStart: 1, history: [{ workerId: 1, seq: 1 }] });
    refused(state.subarray(0, state.byteLength - 3), /state truncated in history/);
    refused(Uint8Array.from([...state, 0, 0, 0, 0]), /stray bytes/);
    refused(Uint8Array.from([...encodeAck(opts.layoutHash, 1, 1), 0]), /no payload/);
    assert.equal(CHAIN_HEADER_BYTES, 40);
    refused(encodeForward(opts.layoutHash, { control: { ...C, lr: 0 }, epoch: 1, version: 1, workerId: 1, seq: 1, count: 1, baseVersion: 0, flags: 0, grad }), /control block with lr 0/);
    refused(encodeForward(opts.layoutHash, { control: { ...C, lr: Infinity }, epoch: 1, version: 1, workerId: 1, seq: 1, count: 1, baseVersion: 0, flags: 0, grad }), /control block with lr Infinity/);
    assert.throws(() => decodeChainFrame(encodeState(opts.layoutHash, { control: { ...C, rule: 7 }, epoch: 1, version: 1, weights: grad, velocity: grad, record: [], historyStart: 1, history: [] }), { ...opts, rules: 3 }), /control block with rule 7/);
  });

  test('restampEpoch rewrites the epoch of a FORWARD and a STATE in place and nothing else', () => {
    const fwd = encodeForward(opts.layoutHash, { control: C, epoch: 1, version: 9, workerId: 2, seq: 3, count: 1, baseVersion: 8, flags: 0, grad });
    const before = Uint8Array.from(fwd);
    restampEpoch(fwd, 0xfffffff0);
    assert.equal(frameEpoch(fwd), 0xfffffff0);
    const f = decodeChainFrame(fwd, opts);
    assert.equal(f.epoch, 0xfffffff0);
    assert.deepEqual([...fwd.subarray(0, 12), ...fwd.subarray(16)], [...before.subarray(0, 12), ...before.subarray(16)], 'only the epoch bytes change');
    // A frame inside a larger buffer (a received WebSocket message): the offset is the view's.
    const state = encodeState(opts.layoutHash, { control: C, epoch: 4, version: 1, weights: grad, velocity: grad, record: [], historyStart: 1, history: [] });
    const host = new Uint8Array(state.byteLength + 8);
    host.set(state, 8);
    const view = host.subarray(8);
    restampEpoch(view, 5);
    assert.equal(decodeChainFrame(view, opts).epoch, 5);
    assert.deepEqual([...host.subarray(0, 8)], [0, 0, 0, 0, 0, 0, 0, 0], 'nothing before the view is touched');
    assert.throws(() => restampEpoch(new Uint8Array(10), 1), RangeError);
  });
});
