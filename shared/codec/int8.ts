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
      const end = Math.min(n, (b + 1) * B);
      let low = 0;
      for (let i = b * B; i < end; i++) {
        const v = q[i]!;
        low |= v === -128 ? 1 : 0;
        out[i] = v * s;
      }
      if (low) throw bad(`value ${q.subarray(b * B, end).indexOf(-128) + b * B} is -128: the code is symmetric, -127..127`);
    }
    // The norm of the values as stored (rounded to float32), in norm.ts's order.
    return sumSq(out.subarray(0, n));
  },
};
