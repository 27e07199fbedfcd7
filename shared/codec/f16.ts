/**
 * `f16`: IEEE 754 half precision, round to nearest even. Payload: n little-endian uint16.
 * Values beyond the half range (|x| > 65504) are clamped to it (error feedback carries the
 * rest); the decoder refuses infinities and NaNs, which no encoder here produces.
 * Bound: |err| <= 2^-11 |x| for |x| >= 2^-14, <= 2^-25 below it, plus max(0, |x| - 65504).
 */
import { TabswarmError } from '../errors.ts';
import { LITTLE_ENDIAN } from './bytes.ts';
import { Codec, type CodecImpl } from './types.ts';

export const F16_MAX = 65504;
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The half-precision bits nearest to `v` (ties to even); `v` must be finite and |v| <= 65504. */
export function toHalf(v: number): number {
  f32[0] = v;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const e = ((x >>> 23) & 0xff) - 127 + 15;
  let mant = x & 0x7fffff;
  if (e >= 0x1f) return sign | 0x7bff; // only reached by rounding near the clamp
  if (e <= 0) {
    if (e < -10) return sign; // below half the smallest subnormal: zero
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && half & 1)) half += 1;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent.
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half += 1;
  return sign | Math.min(half, 0x7bff);
}

let table: Float32Array | undefined;
/** Every half's float32 value (NaN for the infinities and NaNs, which decode refuses). */
function halfTable(): Float32Array {
  if (table) return table;
  table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >>> 10) & 0x1f;
    const m = h & 0x3ff;
    table[h] = e === 0 ? s * m * 2 ** -24 : e === 31 ? NaN : s * (1 + m / 1024) * 2 ** (e - 15);
  }
  return table;
}

/** The payload's n halves: a view when aligned on a little-endian host, else a copy. */
function halvesOf(payload: Uint8Array, n: number): Uint16Array {
  if (LITTLE_ENDIAN && payload.byteOffset % 2 === 0) return new Uint16Array(payload.buffer, payload.byteOffset, n);
  const out = new Uint16Array(n);
  const v = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  for (let i = 0; i < n; i++) out[i] = v.getUint16(2 * i, true);
  return out;
}

export const f16: CodecImpl = {
  name: 'f16',
  dtype: Codec.f16,
  lossy: true,
  bound: '2^-11 |x| (normal), 2^-25 (subnormal), plus |x| - 65504 beyond the range',
  encode(x) {
    const out = new Uint16Array(x.length);
    for (let i = 0; i < x.length; i++) out[i] = toHalf(Math.max(-F16_MAX, Math.min(F16_MAX, x[i]!)));
    const bytes = new Uint8Array(out.buffer);
    if (!LITTLE_ENDIAN) for (let i = 0; i < bytes.length; i += 2) [bytes[i], bytes[i + 1]] = [bytes[i + 1]!, bytes[i]!];
    return bytes;
  },
  decode(payload, n) {
    const out = new Float32Array(n);
    f16.decodeInto(payload, n, out);
    return out;
  },
  decodeInto(payload, n, out) {
    if (payload.byteLength !== 2 * n) throw new TabswarmError('PROTO_BAD_CODEC', { codec: 'f16', detail: `${payload.byteLength} payload bytes, ${2 * n} expected for ${n} values` });
    const halves = halvesOf(payload, n);
    const t = halfTable();
    // norm.ts's order; an infinity or NaN half decodes to NaN, which the sum carries.
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    let i = 0;
    for (; i + 4 <= n; i += 4) {
      const a = t[halves[i]!]!;
      const b = t[halves[i + 1]!]!;
      const c = t[halves[i + 2]!]!;
      const d = t[halves[i + 3]!]!;
      out[i] = a;
      out[i + 1] = b;
      out[i + 2] = c;
      out[i + 3] = d;
      s0 += a * a;
      s1 += b * b;
      s2 += c * c;
      s3 += d * d;
    }
    for (; i < n; i++) {
      const a = t[halves[i]!]!;
      out[i] = a;
      if (i % 4 === 0) s0 += a * a;
      else if (i % 4 === 1) s1 += a * a;
      else s2 += a * a;
    }
    const sq = s0 + s1 + (s2 + s3);
    if (Number.isFinite(sq)) return sq;
    for (let j = 0; j < n; j++) {
      const h = halves[j]!;
      if ((h & 0x7c00) === 0x7c00) throw new TabswarmError('PROTO_BAD_CODEC', { codec: 'f16', detail: `value ${j} is an infinity or NaN (0x${h.toString(16)})` });
    }
    return sq; // not reached: a non-finite sum has a non-finite term
  },
};
