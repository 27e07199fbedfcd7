/**
 * Push codecs: how a worker's gradient travels in a PUSH frame's payload. The frame's `dtype`
 * byte names the codec; `payloadLength` stays the number of values the payload decodes to (the
 * layout's size), and each codec's payload grammar fixes its byte length (docs/PROTOCOL.md,
 * "Push codecs"). Only PUSH frames are coded: weights always travel as float32, signed.
 *
 * A decoder refuses anything malformed with PROTO_BAD_CODEC (lengths, index range, order and
 * uniqueness, finite scales and values) before a single value is applied.
 */
export const Codec = { float32: 0, f16: 1, int8: 2, topk: 3 } as const;
export type CodecName = keyof typeof Codec;
export type Dtype = (typeof Codec)[CodecName];

export const CODEC_NAMES = Object.keys(Codec) as CodecName[];

export interface EncodeOptions {
  /** topk: values kept, as a fraction of the layout (at least 1, at most half). @default 0.01 */
  readonly topkRatio?: number;
  /** int8: values per scale. @default 256 */
  readonly blockSize?: number;
}

export interface CodecImpl {
  readonly name: CodecName;
  readonly dtype: Dtype;
  /** Whether decode(encode(x)) may differ from x: the worker then keeps error feedback. */
  readonly lossy: boolean;
  /**
   * A stated bound on the round trip's error, checked by codec.test.ts: for every value,
   * |decode(encode(x))[i] - x[i]| <= bound(x, i) (topk's bound is on the whole vector instead).
   */
  readonly bound: string;
  /** The payload bytes for `x` (n = x.length values). */
  encode(x: Float32Array, opts?: EncodeOptions): Uint8Array;
  /** The n values `payload` encodes, in a new array; throws PROTO_BAD_CODEC for anything malformed. */
  decode(payload: Uint8Array, n: number): Float32Array;
  /**
   * The PS's path: decodes into `out` (n values, all overwritten; a reused buffer) and returns
   * the values' squared L2 norm, summed in float64 in index order (bit for bit what
   * aggregate/types.ts `l2` sums), in the one pass that also validates. Throws as `decode`
   * does; `out` is then garbage.
   */
  decodeInto(payload: Uint8Array, n: number, out: Float32Array): number;
}
