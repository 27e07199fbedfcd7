/**
 * The PS's one-pass ingest: each codec's decodeInto writes what decode returns, bit for bit,
 * into a reused buffer and returns the squared norm `l2` would compute (norm.ts's order); decodeFrame lends and
 * takes back pool buffers (also when a payload is refused); the guarded one-pass optimizer step
 * writes exactly what the plain step writes (what a chain replica applies).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CODECS, CODEC_NAMES, Codec, ScratchPool, sumSq, topkSupport } from '../../shared/codec/index.ts';
import { mulberry32 } from '../../shared/layout.ts';
import { MsgType, decodeFrame, encodeCodedPush, encodeFrame } from '../../shared/protocol.ts';
import { l2 } from './aggregate/types.ts';
import { Sgd } from './optimizer.ts';

const N = 4099; // odd, and not a multiple of an int8 block
const rand = mulberry32(7);
const X = Float32Array.from({ length: N }, () => (rand() - 0.5) * 1e-2);
const bits = (a: Float32Array): number[] => [...new Uint32Array(a.buffer, a.byteOffset, a.length)];

describe('decodeInto', () => {
  for (const name of CODEC_NAMES) {
    test(`${name}: the values decode returns, and l2's squared norm, into a dirty reused buffer`, () => {
      const payload = CODECS[name].encode(X, { topkRatio: 0.05, blockSize: 64 });
      const want = CODECS[name].decode(payload, N);
      const out = new Float32Array(N).fill(123); // garbage from an earlier push
      const sq = CODECS[name].decodeInto(payload, N, out);
      assert.deepEqual(bits(out), bits(want));
      assert.equal(sq, sumSq(want), "summed in norm.ts's order, bit for bit");
      assert.equal(Math.sqrt(sq), l2(want), 'what the clip aggregator would have computed');
      let plain = 0;
      for (const v of want) plain += v * v;
      assert.ok(Math.abs(sq - plain) <= 1e-12 * plain, 'and the squared norm, up to rounding');
    });
  }
  test('int8: one pass for blocks of a multiple of 4 values, two for any other, the same bits and norm', () => {
    for (const blockSize of [1, 7, 64, 256, 4100]) {
      const payload = CODECS.int8.encode(X, { blockSize });
      const view = new DataView(payload.buffer, payload.byteOffset);
      const blocks = Math.ceil(N / blockSize);
      const want = new Float32Array(N); // value i = q[i] * scale[i / B], as the grammar states
      for (let i = 0; i < N; i++) want[i] = view.getInt8(4 + 4 * blocks + i) * view.getFloat32(4 + 4 * Math.floor(i / blockSize), true);
      const out = new Float32Array(N).fill(123);
      const sq = CODECS.int8.decodeInto(payload, N, out);
      assert.deepEqual(bits(out), bits(want), `B = ${blockSize}`);
      assert.equal(sq, sumSq(want), `B = ${blockSize}: norm.ts's order, bit for bit`);
    }
  });
});

describe('decodeFrame with a scratch pool', () => {
  const opts = (scratch: ScratchPool) => ({ layoutHash: 1, layoutSize: N, scratch });
  const header = { type: MsgType.PUSH, layoutHash: 1, modelVersion: 0, workerId: 1, seq: 1, count: 1 } as const;

  test('a coded push decodes into a lent buffer, reused once released; a float32 push is a view and lends none', () => {
    const pool = new ScratchPool(N);
    const coded = encodeCodedPush(header, { dtype: Codec.f16, bytes: CODECS.f16.encode(X), values: N });
    const a = decodeFrame(coded, opts(pool));
    assert.equal(pool.inUse, 1);
    const b = decodeFrame(coded, opts(pool));
    assert.notEqual(a.payload, b.payload, 'two pushes in flight never share a buffer');
    pool.release(a.payload);
    pool.release(b.payload);
    assert.equal(pool.inUse, 0);
    const c = decodeFrame(coded, opts(pool));
    assert.ok(c.payload === a.payload || c.payload === b.payload, 'a released buffer is reused');
    pool.release(c.payload);
    const plain = decodeFrame(encodeFrame(header, X), opts(pool));
    assert.equal(pool.inUse, 0);
    pool.release(plain.payload); // not lent: ignored
    assert.equal(pool.inUse, 0);
  });

  test('a refused payload gives its buffer back', () => {
    const pool = new ScratchPool(N);
    const bad = encodeCodedPush(header, { dtype: Codec.f16, bytes: new Uint8Array(new Uint16Array(N).fill(0x7c00).buffer), values: N });
    assert.throws(() => decodeFrame(bad, opts(pool)), (e: { code?: string }) => e.code === 'PROTO_BAD_CODEC');
    assert.equal(pool.inUse, 0);
  });

  test('idle buffers kept are bounded', () => {
    const pool = new ScratchPool(8, 2);
    const lent = Array.from({ length: 5 }, () => pool.acquire());
    for (const b of lent) pool.release(b);
    const again = Array.from({ length: 5 }, () => pool.acquire());
    assert.equal(again.filter((b) => lent.includes(b)).length, 2);
  });
});

describe('Sgd one-pass guarded step', () => {
  for (const opts of [{ lr: 0.05, momentum: 0 }, { lr: 0.7, momentum: 0.9, nesterov: true }, { lr: 0.1, momentum: 0.5 }]) {
    test(`tryApply writes what apply writes, bit for bit, and returns its norm (${JSON.stringify(opts)})`, () => {
      const head = new Sgd(N, opts);
      const replica = new Sgd(N, opts);
      const w1 = Float32Array.from(X, (v) => v * 100);
      const w2 = Float32Array.from(w1);
      for (let step = 0; step < 3; step++) {
        const g = Float32Array.from({ length: N }, () => rand() - 0.5);
        const sq = head.tryApply(w1, g, 0.5, opts.lr, Infinity);
        const sq2 = replica.apply(w2, g, 0.5, opts.lr);
        assert.deepEqual(bits(w1), bits(w2));
        assert.deepEqual(bits(head.velocity), bits(replica.velocity));
        assert.equal(sq, sq2);
        assert.equal(sq, sumSq(w1));
      }
    });
  }

  test('a refused step changes neither weights nor velocity', () => {
    const sgd = new Sgd(N, { lr: 0.1, momentum: 0.9 });
    const w = Float32Array.from(X);
    const before = bits(w);
    assert.equal(sgd.tryApply(w, new Float32Array(N).fill(1e3), 1, 0.1, 1e-9), -2);
    const huge = new Float32Array(N).fill(3e38);
    assert.equal(sgd.tryApply(w, huge, 1e10, 1, Infinity), -1);
    assert.deepEqual(bits(w), before);
    assert.ok(sgd.velocity.every((v) => v === 0));
  });
});

describe('sparse (topk) step', () => {
  test('trySparse writes what apply writes, bit for bit; its norm follows the changed weights; a refusal changes nothing', () => {
    const payload = CODECS.topk.encode(X, { topkRatio: 0.05 });
    const grad = CODECS.topk.decode(payload, N);
    const support = topkSupport(payload);
    assert.equal(support.length, Math.ceil(0.05 * N));
    const sparse = new Sgd(N, { lr: 0.3, momentum: 0 });
    const dense = new Sgd(N, { lr: 0.3, momentum: 0 });
    const w1 = Float32Array.from({ length: N }, () => rand() - 0.5);
    const w2 = Float32Array.from(w1);
    const sq = sparse.trySparse(w1, grad, support, 0.5, 0.3, Infinity, sumSq(w1));
    const exact = dense.apply(w2, grad, 0.5, 0.3);
    assert.deepEqual(bits(w1), bits(w2));
    assert.ok(Math.abs(sq - exact) <= 1e-9 * exact, `${sq} vs ${exact}`);
    const before = bits(w1);
    assert.equal(sparse.trySparse(w1, grad, support, 1e6, 1, 1e-9, sumSq(w1)), -2);
    assert.deepEqual(bits(w1), before);
  });

  test('a store fed topk pushes with their support ends bit for bit where one fed them dense does', async () => {
    const { ParameterStore } = await import('./store.ts');
    const { createAggregator, AGGREGATOR_DEFAULTS } = await import('./aggregate/index.ts');
    const { deriveLayout } = await import('../../shared/layout.ts');
    const layout = deriveLayout({ name: 't', description: 't', input: [1, 1, 40], classes: 10, layers: [{ kind: 'flatten' }, { kind: 'dense', units: 10, activation: 'linear' }], defaults: { lr: 0.1, batch: 1 } });
    const init = Float32Array.from({ length: layout.size }, () => rand() - 0.5);
    const mk = () => {
      const s = new ParameterStore(layout, init, { lr: 0.1, momentum: 0 });
      s.aggregator = createAggregator('clip', AGGREGATOR_DEFAULTS, layout.size);
      s.maxNormJump = 2;
      return s;
    };
    const [a, b] = [mk(), mk()];
    for (let seq = 1; seq <= 30; seq++) {
      const x = Float32Array.from({ length: layout.size }, () => (rand() - 0.5) * (seq % 7 === 0 ? 50 : 1)); // some clipped
      const payload = CODECS.topk.encode(x, { topkRatio: 0.1 });
      const u = { workerId: 1, seq, baseVersion: seq - 1, count: 1 };
      const ga = CODECS.topk.decode(payload, layout.size);
      a.apply({ ...u, grad: ga, normSq: sumSq(ga), support: topkSupport(payload) });
      b.apply({ ...u, grad: CODECS.topk.decode(payload, layout.size) });
    }
    assert.ok(a.aggregator.stats().clipped > 0, 'the clipped path was taken too');
    assert.deepEqual(bits(a.weights), bits(b.weights));
    assert.equal(a.version, b.version);
  });
});
