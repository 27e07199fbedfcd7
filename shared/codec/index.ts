/**
 * The push codec registry: one entry per name in `Codec`, checked at compile time (`satisfies
 * Record<CodecName, CodecImpl>`) and at load (each entry's name and dtype match its key), so a
 * codec named on the wire but not implemented cannot ship. Round trips, bounds and the
 * decoders' refusals: codec.test.ts.
 */
import { TabswarmError } from '../errors.ts';
import { f32At, putF32 } from './bytes.ts';
import { f16 } from './f16.ts';
import { sumSq } from './norm.ts';
import { int8 } from './int8.ts';
import { topk, topkSupport } from './topk.ts';
import { CODEC_NAMES, Codec, type CodecImpl, type CodecName, type Dtype } from './types.ts';

export { CODEC_NAMES, Codec, type CodecImpl, type CodecName, type Dtype, type EncodeOptions } from './types.ts';
export { ErrorFeedback } from './feedback.ts';
export { ScratchPool } from './scratch.ts';
export { sumSq } from './norm.ts';
export { topkSupport } from './topk.ts';

const float32: CodecImpl = {
  name: 'float32',
  dtype: Codec.float32,
  lossy: false,
  bound: '0 (exact); non-finite values refused with PROTO_NON_FINITE',
  encode(x) {
    const out = new Uint8Array(4 * x.length);
    putF32(out, 0, x);
    return out;
  },
  decode(payload, n) {
    if (payload.byteLength !== 4 * n) throw new TabswarmError('PROTO_BAD_CODEC', { codec: 'float32', detail: `${payload.byteLength} payload bytes, ${4 * n} expected` });
    const x = f32At(payload, 0, n);
    finiteSumSq(x);
    return x;
  },
  decodeInto(payload, n, out) {
    if (payload.byteLength !== 4 * n) throw new TabswarmError('PROTO_BAD_CODEC', { codec: 'float32', detail: `${payload.byteLength} payload bytes, ${4 * n} expected` });
    out.set(f32At(payload, 0, n));
    return finiteSumSq(out.subarray(0, n));
  },
};

/**
 * The squared L2 norm of `x` (norm.ts's order), refusing a NaN or infinity with
 * PROTO_NON_FINITE: the PS's scan of every float32 payload, which hands the norm on to the
 * aggregator instead of it making a pass of its own. One pass; the index of a bad value is
 * looked for only when the sum says there is one.
 */
export function finiteSumSq(x: Float32Array): number {
  const sq = sumSq(x);
  if (Number.isFinite(sq)) return sq;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    // v - v is 0 for finite v and NaN for NaN and +-Infinity.
    if (v - v !== 0) throw new TabswarmError('PROTO_NON_FINITE', { index: i, value: String(v) });
  }
  return sq; // not reached: a non-finite sum has a non-finite term
}

export const CODECS = { float32, f16, int8, topk } as const satisfies Record<CodecName, CodecImpl>;

const BY_DTYPE = new Map<number, CodecImpl>();
for (const name of CODEC_NAMES) {
  const c = CODECS[name];
  if (c.name !== name || c.dtype !== Codec[name]) throw new Error(`codec registry: entry ${name} is ${c.name} with dtype ${c.dtype}`);
  if (BY_DTYPE.has(c.dtype)) throw new Error(`codec registry: dtype ${c.dtype} registered twice`);
  BY_DTYPE.set(c.dtype, c);
}

/** The codec a frame's dtype byte names, or undefined. */
export function codecOf(dtype: number): CodecImpl | undefined {
  return BY_DTYPE.get(dtype);
}

export function isCodecName(name: string): name is CodecName {
  return Object.hasOwn(Codec, name);
}
