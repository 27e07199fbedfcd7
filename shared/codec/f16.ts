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
    if (payload.byteLength !== 2 * n) throw new TabswarmError('PROTO_BAD_CODEC', { codec: 'f16', detail: `${payload.byteLength} payload bytes, ${2 * n} expected for ${n} values` });
    const t = halfTable();
    const out = new Float32Array(n);
    const aligned = LITTLE_ENDIAN && payload.byteOffset % 2 === 0;
    const halves = aligned ? new Uint16Array(payload.buffer, payload.byteOffset, n) : undefined;
    const v = aligned ? undefined : new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
    for (let i = 0; i < n; i++) {
      const h = halves ? halves[i]! : v!.getUint16(2 * i, true);
      if ((h & 0x7c00) === 0x7c00) throw new TabswarmError('PROTO_BAD_CODEC', { codec: 'f16', detail: `value ${i} is an infinity or NaN (0x${h.toString(16)})` });
      out[i] = t[h]!;
    }
    return out;
  },
};
