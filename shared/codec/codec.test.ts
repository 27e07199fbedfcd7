/**
 * Push codecs: every registered codec round-trips within its stated bound, every decoder refuses
 * malformed payloads with PROTO_BAD_CODEC (hand-made cases plus a seeded fuzz of mutations), and
 * error feedback delivers the true sum of many gradients within one residual.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TabswarmError } from '../errors.ts';
import { mulberry32 } from '../layout.ts';
import { CODECS, CODEC_NAMES, Codec, ErrorFeedback, codecOf } from './index.ts';
import { F16_MAX, toHalf } from './f16.ts';
import { topkCount } from './topk.ts';
import { MsgType, decodeFrame, encodeCodedPush, encodeFrame } from '../protocol.ts';

/** A seeded PRNG, so a failure names a reproducible case. */
const rng = mulberry32;

/** Gradient-like values: mostly small, a few large, some exact zeros, one subnormal-range value. */
function gradient(n: number, seed: number, scale = 0.01): Float32Array {
  const r = rng(seed);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = r();
    x[i] = u < 0.05 ? 0 : (r() - 0.5) * scale * (u > 0.99 ? 1000 : 1);
  }
  if (n > 3) x[3] = 1e-7;
  return x;
}

function refuses(fn: () => unknown, what: string): void {
  assert.throws(fn, (err: unknown) => err instanceof TabswarmError && err.code === 'PROTO_BAD_CODEC', what);
}

test('the registry covers every codec name, with matching dtypes', () => {
  for (const name of CODEC_NAMES) {
    assert.equal(CODECS[name].name, name);
    assert.equal(codecOf(Codec[name]), CODECS[name]);
  }
  assert.equal(codecOf(99), undefined);
});

test('float32 is exact; f16 within 2^-11 relative (2^-25 absolute below the normal range)', () => {
  const x = gradient(10_001, 1);
  assert.deepEqual(CODECS.float32.decode(CODECS.float32.encode(x), x.length), x);
  const y = CODECS.f16.decode(CODECS.f16.encode(x), x.length);
  for (let i = 0; i < x.length; i++) {
    const bound = Math.abs(x[i]!) >= 2 ** -14 ? 2 ** -11 * Math.abs(x[i]!) : 2 ** -25;
    assert.ok(Math.abs(y[i]! - x[i]!) <= bound, `f16 value ${i}: ${x[i]} -> ${y[i]}`);
  }
  // Exactly representable values come back bitwise; the range is clamped, never infinite.
  const exact = Float32Array.of(0, -0, 1, -2, 0.5, 65504, 2 ** -24, 1.5);
  assert.deepEqual(CODECS.f16.decode(CODECS.f16.encode(exact), exact.length), exact);
  assert.deepEqual(CODECS.f16.decode(CODECS.f16.encode(Float32Array.of(1e6, -1e9)), 2), Float32Array.of(F16_MAX, -F16_MAX));
  // Ties go to even: 1 + 2^-11 is halfway between 1 and 1 + 2^-10.
  assert.equal(toHalf(1 + 2 ** -11), 0x3c00);
  assert.equal(toHalf(1 + 3 * 2 ** -11), 0x3c02);
});

test('int8 within absmax(block) / 254 per value, for several block sizes', () => {
  const x = gradient(5_000, 2);
  for (const blockSize of [1, 7, 256, 4096, 65536]) {
    const payload = CODECS.int8.encode(x, { blockSize });
    assert.equal(payload.byteLength, 4 + 4 * Math.ceil(x.length / blockSize) + x.length);
    const y = CODECS.int8.decode(payload, x.length);
    for (let b = 0; b * blockSize < x.length; b++) {
      const block = x.subarray(b * blockSize, (b + 1) * blockSize);
      const max = block.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      for (let i = b * blockSize; i < Math.min(x.length, (b + 1) * blockSize); i++) {
        assert.ok(Math.abs(y[i]! - x[i]!) <= (max / 254) * (1 + 1e-6), `int8 B=${blockSize} value ${i}: ${x[i]} -> ${y[i]} (absmax ${max})`);
      }
    }
  }
});

test('topk keeps the k largest magnitudes exactly and nothing else; k is at most half the layout', () => {
  const x = gradient(20_000, 3);
  for (const ratio of [0.001, 0.01, 0.3, 0.9]) {
    const k = topkCount(x.length, ratio);
    assert.ok(k >= 1 && k <= x.length / 2);
    const y = CODECS.topk.decode(CODECS.topk.encode(x, { topkRatio: ratio }), x.length);
    const kept = [...y.keys()].filter((i) => y[i] !== 0);
    assert.ok(kept.length <= k);
    for (const i of kept) assert.equal(y[i], x[i]);
    const smallestKept = Math.min(...kept.map((i) => Math.abs(x[i]!)));
    let dropped = 0;
    for (let i = 0; i < x.length; i++) if (y[i] === 0 && x[i] !== 0) dropped = Math.max(dropped, Math.abs(x[i]!));
    assert.ok(dropped <= smallestKept, `ratio ${ratio}: a dropped value (${dropped}) is larger than a kept one (${smallestKept})`);
  }
  // Ties and constant input: exactly k values, indices increasing.
  const flat = new Float32Array(100).fill(0.5);
  const y = CODECS.topk.decode(CODECS.topk.encode(flat, { topkRatio: 0.1 }), 100);
  assert.equal(y.filter((v) => v === 0.5).length, 10);
});

test('decoders refuse malformed payloads with PROTO_BAD_CODEC', () => {
  const n = 64;
  const u32 = (...v: number[]) => new Uint8Array(Uint32Array.from(v).buffer);
  const cat = (...parts: Uint8Array[]) => {
    const out = new Uint8Array(parts.reduce((s, p) => s + p.byteLength, 0));
    let o = 0;
    for (const p of parts) out.set(p, (o += p.byteLength) - p.byteLength);
    return out;
  };
  const f32 = (...v: number[]) => new Uint8Array(Float32Array.from(v).buffer);
  refuses(() => CODECS.float32.decode(new Uint8Array(4 * n - 4), n), 'float32: short');
  refuses(() => CODECS.f16.decode(new Uint8Array(2 * n + 2), n), 'f16: long');
  refuses(() => CODECS.f16.decode(new Uint8Array(new Uint16Array(n).fill(0x7c00).buffer), n), 'f16: infinity');
  refuses(() => CODECS.f16.decode(new Uint8Array(new Uint16Array(n).fill(0xfe01).buffer), n), 'f16: NaN');
  refuses(() => CODECS.int8.decode(new Uint8Array(3), n), 'int8: no block size');
  refuses(() => CODECS.int8.decode(cat(u32(0), new Uint8Array(n)), n), 'int8: block size 0');
  refuses(() => CODECS.int8.decode(cat(u32(65537), f32(1), new Uint8Array(n)), n), 'int8: block size too large');
  refuses(() => CODECS.int8.decode(cat(u32(32), f32(1, 1), new Uint8Array(n - 1)), n), 'int8: short values');
  refuses(() => CODECS.int8.decode(cat(u32(32), f32(1, NaN), new Uint8Array(n)), n), 'int8: NaN scale');
  refuses(() => CODECS.int8.decode(cat(u32(32), f32(1, -1), new Uint8Array(n)), n), 'int8: negative scale');
  refuses(() => CODECS.int8.decode(cat(u32(32), f32(1, Infinity), new Uint8Array(n)), n), 'int8: infinite scale');
  refuses(() => CODECS.int8.decode(cat(u32(32), f32(1, 1), new Uint8Array(n).fill(0x80)), n), 'int8: -128');
  refuses(() => CODECS.topk.decode(new Uint8Array(2), n), 'topk: no count');
  refuses(() => CODECS.topk.decode(cat(u32(n / 2 + 1), new Uint8Array(8 * (n / 2 + 1))), n), 'topk: k above half');
  refuses(() => CODECS.topk.decode(cat(u32(2, 1), f32(1, 1)), n), 'topk: short');
  refuses(() => CODECS.topk.decode(cat(u32(2, 5, 5), f32(1, 1)), n), 'topk: repeated index');
  refuses(() => CODECS.topk.decode(cat(u32(2, 6, 5), f32(1, 1)), n), 'topk: decreasing indices');
  refuses(() => CODECS.topk.decode(cat(u32(2, 5, n), f32(1, 1)), n), 'topk: index out of range');
  refuses(() => CODECS.topk.decode(cat(u32(2, 5, 6), f32(1, NaN)), n), 'topk: NaN value');
  refuses(() => CODECS.topk.decode(cat(u32(1, 5), f32(Infinity)), n), 'topk: infinite value');
});

test('fuzz: mutated payloads either decode to n finite values or are refused with PROTO_BAD_CODEC', () => {
  const r = rng(42);
  const n = 257;
  const x = gradient(n, 7, 1);
  let refused = 0;
  let decoded = 0;
  for (const name of CODEC_NAMES) {
    const good = CODECS[name].encode(x, { topkRatio: 0.05, blockSize: 16 });
    for (let trial = 0; trial < 2000; trial++) {
      let bytes = good.slice();
      const kind = Math.floor(r() * 4);
      if (kind === 0) for (let j = 0; j < 1 + r() * 4; j++) bytes[Math.floor(r() * bytes.length)] = Math.floor(r() * 256);
      else if (kind === 1) bytes = bytes.slice(0, Math.floor(r() * bytes.length));
      else if (kind === 2) bytes = Uint8Array.from([...bytes, ...Array.from({ length: 1 + Math.floor(r() * 9) }, () => Math.floor(r() * 256))]);
      else bytes = Uint8Array.from({ length: Math.floor(r() * 2 * good.length) }, () => Math.floor(r() * 256));
      // Unaligned views too: a payload sits at any offset of a frame.
      const shifted = new Uint8Array(bytes.length + 1);
      shifted.set(bytes, 1);
      const payload = trial % 2 ? shifted.subarray(1) : bytes;
      try {
        const y = codecOf(Codec[name])!.decode(payload, n);
        assert.equal(y.length, n);
        for (const v of y) assert.ok(Number.isFinite(v), `${name}: decoded a non-finite value`);
        decoded++;
      } catch (err) {
        const expected = name === 'float32' ? ['PROTO_BAD_CODEC', 'PROTO_NON_FINITE'] : ['PROTO_BAD_CODEC'];
        if (!(err instanceof TabswarmError && expected.includes(err.code))) throw err;
        refused++;
      }
    }
  }
  assert.ok(refused > 1000 && decoded > 100, `both outcomes exercised (${refused} refused, ${decoded} decoded)`);
});

test('error feedback: over many pushes the PS receives the true sum within one residual', () => {
  const n = 4096;
  for (const name of ['f16', 'int8', 'topk'] as const) {
    const ef = new ErrorFeedback(CODECS[name], { topkRatio: 0.01, blockSize: 256 });
    const truth = new Float64Array(n);
    const received = new Float64Array(n);
    for (let step = 0; step < 200; step++) {
      const g = gradient(n, 100 + step);
      const { payload, sent } = ef.compress(g);
      assert.deepEqual(CODECS[name].decode(payload, n), sent, `${name}: the payload decodes to what was accounted as sent`);
      for (let i = 0; i < n; i++) {
        truth[i] = truth[i]! + g[i]!;
        received[i] = received[i]! + sent[i]!;
      }
    }
    // received + residual = truth, up to float32 rounding of the running residual.
    let worst = 0;
    let scale = 0;
    for (let i = 0; i < n; i++) {
      worst = Math.max(worst, Math.abs(received[i]! + ef.residual![i]! - truth[i]!));
      scale = Math.max(scale, Math.abs(truth[i]!));
    }
    assert.ok(worst <= 1e-5 * Math.max(1, scale), `${name}: sent + residual misses the true sum by ${worst}`);
    // And without feedback topk would have lost most of the mass; with it the gap is one residual.
    let gap = 0;
    for (let i = 0; i < n; i++) gap = Math.max(gap, Math.abs(received[i]! - truth[i]!));
    const residualMax = ef.residual!.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    assert.ok(Math.abs(gap - residualMax) <= 1e-5 * Math.max(1, scale), `${name}: the gap (${gap}) is the residual (${residualMax})`);
  }
});

test('coded PUSH frames: decodeFrame decodes each codec, refuses bad payloads, and refuses codes off a PUSH or not accepted', () => {
  const n = 1000;
  const opts = { layoutHash: 7, layoutSize: n };
  const x = gradient(n, 9);
  const header = { type: MsgType.PUSH, layoutHash: 7, modelVersion: 3, workerId: 5, seq: 2, count: 4 } as const;
  for (const name of CODEC_NAMES) {
    const bytes = encodeCodedPush(header, { dtype: Codec[name], bytes: CODECS[name].encode(x, { topkRatio: 0.1 }), values: n });
    const frame = decodeFrame(bytes, opts);
    assert.equal(frame.count, 4);
    assert.equal(frame.seq, 2);
    assert.deepEqual(frame.payload, CODECS[name].decode(CODECS[name].encode(x, { topkRatio: 0.1 }), n));
    if (name !== 'float32') {
      assert.ok(bytes.byteLength < 4 * n, `${name}: ${bytes.byteLength} bytes against ${4 * n} for float32`);
      const short = bytes.subarray(0, bytes.byteLength - 1);
      assert.throws(() => decodeFrame(short, opts), (e: unknown) => e instanceof TabswarmError && e.code === 'PROTO_BAD_CODEC', `${name}: a truncated payload`);
      assert.throws(() => decodeFrame(bytes, { ...opts, codecs: [Codec.float32] }), (e: unknown) => e instanceof TabswarmError && e.code === 'PROTO_BAD_DTYPE', `${name}: not accepted`);
    }
  }
  // A WEIGHTS frame (PS -> worker) never travels coded.
  const pull = encodeFrame({ type: MsgType.PULL, layoutHash: 7, modelVersion: 0, workerId: 5, seq: 0, count: 0 });
  pull[6] = Codec.f16;
  assert.throws(() => decodeFrame(pull, opts), (e: unknown) => e instanceof TabswarmError && e.code === 'PROTO_BAD_DTYPE');
  // count is still checked on a coded push.
  const zero = encodeCodedPush({ ...header, count: 0 }, { dtype: Codec.f16, bytes: CODECS.f16.encode(x), values: n });
  assert.throws(() => decodeFrame(zero, opts), (e: unknown) => e instanceof TabswarmError && e.code === 'PROTO_BAD_COUNT');
});
