/**
 * `int8`: blockwise absmax quantisation, one float32 scale per block of B values (in the spirit
 * of hivemind's blockwise 8-bit, with a linear code instead of its quantile code). Payload:
 *
 *   u32 B (1..65536) · f32 scale[ceil(n / B)] (finite, >= 0) · i8 q[n] (-127..127)
 *
 * value i = q[i] * scale[floor(i / B)]. Bound: |err| <= scale / 2 = absmax(block) / 254.
 */
import { TabswarmError } from '../errors.ts';
import { f32At, putF32, view } from './bytes.ts';
import { sumSq } from './norm.ts';
import { Codec, type CodecImpl } from './types.ts';

export const MAX_BLOCK = 65536;
const bad = (detail: string) => new TabswarmError('PROTO_BAD_CODEC', { codec: 'int8', detail });

export const int8: CodecImpl = {
  name: 'int8',
  dtype: Codec.int8,
  lossy: true,
  bound: 'absmax(block) / 254 per value',
  encode(x, opts) {
    const n = x.length;
    const B = Math.max(1, Math.min(MAX_BLOCK, Math.floor(opts?.blockSize ?? 256)));
    const blocks = Math.ceil(n / B);
    const scales = new Float32Array(blocks);
    const out = new Uint8Array(4 + 4 * blocks + n);
    view(out).setUint32(0, B, true);
    const q = new Int8Array(out.buffer, 4 + 4 * blocks, n);
    for (let b = 0; b < blocks; b++) {
      const end = Math.min(n, (b + 1) * B);
      let max = 0;
      for (let i = b * B; i < end; i++) max = Math.max(max, Math.abs(x[i]!));
      const s = Math.fround(max / 127);
      scales[b] = s;
      if (s === 0) continue;
      for (let i = b * B; i < end; i++) q[i] = Math.max(-127, Math.min(127, Math.round(x[i]! / s)));
    }
    putF32(out, 4, scales);
    return out;
  },
  decode(payload, n) {
    const out = new Float32Array(n);
    int8.decodeInto(payload, n, out);
    return out;
  },
  decodeInto(payload, n, out) {
    if (payload.byteLength < 4) throw bad(`${payload.byteLength} payload bytes: no block size`);
    const B = view(payload).getUint32(0, true);
    if (B < 1 || B > MAX_BLOCK) throw bad(`block size ${B} is outside 1..${MAX_BLOCK}`);
    const blocks = Math.ceil(n / B);
    const want = 4 + 4 * blocks + n;
    if (payload.byteLength !== want) throw bad(`${payload.byteLength} payload bytes, ${want} expected for ${n} values in blocks of ${B}`);
    const scales = f32At(payload, 4, blocks);
    const q = new Int8Array(payload.buffer, payload.byteOffset + 4 + 4 * blocks, n);
    for (let b = 0; b < blocks; b++) {
      const s = scales[b]!;
      if (!(s >= 0 && s < Infinity)) throw bad(`scale ${b} is ${s}: scales must be finite and >= 0`);
    }
    const sq = B % 4 === 0 ? decodeQuads(q, scales, B, out) : decodeAny(q, scales, B, out);
    if (sq >= 0) return sq;
    const i = q.indexOf(-128);
    throw bad(`value ${i} is -128: the code is symmetric, -127..127`);
  },
};

/**
 * out[i] <- q[i] * scale[i / B] (rounded to float32 as stored) and their squared norm in norm.ts's
 * order, in one pass, for B a multiple of 4 (every quad in one block: the shipped B is 256).
 * Returns -1 when some q[i] is -128 (found after the pass: one OR per quad, no branch).
 */
function decodeQuads(q: Int8Array, scales: Float32Array, B: number, out: Float32Array): number {
  const n = q.length;
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let low = 0;
  for (let start = 0, b = 0; start < n; start += B, b++) {
    const s = scales[b]!;
    const end = Math.min(n, start + B);
    let i = start;
    for (; i + 4 <= end; i += 4) {
      const qa = q[i]!;
      const qb = q[i + 1]!;
      const qc = q[i + 2]!;
      const qd = q[i + 3]!;
      low |= (qa === -128 ? 1 : 0) | (qb === -128 ? 1 : 0) | (qc === -128 ? 1 : 0) | (qd === -128 ? 1 : 0);
      const a = Math.fround(qa * s);
      const c1 = Math.fround(qb * s);
      const c2 = Math.fround(qc * s);
      const c3 = Math.fround(qd * s);
      out[i] = a;
      out[i + 1] = c1;
      out[i + 2] = c2;
      out[i + 3] = c3;
      s0 += a * a;
      s1 += c1 * c1;
      s2 += c2 * c2;
      s3 += c3 * c3;
    }
    // Only the last block can end off a quad (n not a multiple of 4).
    for (; i < end; i++) {
      const v = q[i]!;
      low |= v === -128 ? 1 : 0;
      const a = Math.fround(v * s);
      out[i] = a;
      if (i % 4 === 0) s0 += a * a;
      else if (i % 4 === 1) s1 += a * a;
      else s2 += a * a;
    }
  }
  return low ? -1 : s0 + s1 + (s2 + s3);
}

/** decodeQuads for any B: decode, then norm.ts's sum over what was stored (two passes). */
function decodeAny(q: Int8Array, scales: Float32Array, B: number, out: Float32Array): number {
  const n = q.length;
  let low = 0;
  for (let start = 0, b = 0; start < n; start += B, b++) {
    const s = scales[b]!;
    const end = Math.min(n, start + B);
    for (let i = start; i < end; i++) {
      const v = q[i]!;
      low |= v === -128 ? 1 : 0;
      out[i] = v * s;
    }
  }
  return low ? -1 : sumSq(out.subarray(0, n));
}
