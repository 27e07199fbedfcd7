/**
 * The tabswarm wire protocol: one binary frame format shared by server, browser and Node.
 * docs/PROTOCOL.md gives the byte grammar. All integers are little-endian.
 *
 *   offset size field
 *   0      4    magic          0x4D575354 ('TSWM' read as bytes)
 *   4      1    version        PROTOCOL_VERSION
 *   5      1    type           MsgType
 *   6      1    dtype          Dtype (0 = float32; a PUSH may be coded: shared/codec/)
 *   7      1    flags          Flag bits (ACK: DUPLICATE, ADOPTED); 0 otherwise
 *   8      4    layoutHash     hash of the model layout (layout.ts)
 *   12     4    modelVersion   PS model version the frame refers to
 *   16     4    workerId       id the server issued at join
 *   20     4    seq            per-worker sequence number
 *   24     4    count          number of gradients summed in the payload (>= 1 for pushes)
 *   28     4    payloadLength  number of payload values (decoded, for a coded PUSH)
 *   32     4*n  payload        little-endian float32, or a coded PUSH's payload (docs/PROTOCOL.md)
 *
 * WEIGHTS and OFFER frames carry a meta block between header and payload: the tag the PS
 * issued with these weights and the applied-push record they contain (see server/ps/signer.ts):
 *
 *   32     4    metaBytes      bytes of meta that follow (68 + 12 * k)
 *   36     64   tag            Ed25519 signature over layout hash, version, record, SHA-256(weights) (signing.ts)
 *   100    4    k              record entries
 *   104    12*k record         (workerId u32, seq u32, version u32) per worker
 *   104+12k 8   keyId          optional (metaBytes 76 + 12 * k): the first 8 bytes of SHA-256 of
 *                              the signing public key, in clear, so a verifier can tell a copy of
 *                              another run (another key) from a forged one (issue 13)
 *   36+metaBytes 4*n payload
 */
import { TabswarmError } from './errors.ts';
import { LITTLE_ENDIAN, f32At } from './codec/bytes.ts';
import { CODEC_NAMES, Codec, codecOf, finiteSumSq, topkSupport, type ScratchPool } from './codec/index.ts';

export const MAGIC = 0x4d575354;
export const PROTOCOL_VERSION = 1;
export const HEADER_BYTES = 32;

/**
 * Message types, in numbered ranges:
 *   0x01-0x1F worker -> PS
 *   0x20-0x3F PS -> worker
 *   0x40-0x5F PS -> PS (chain replication: ChainMsg below; server/chain/frames.ts)
 */
export const MsgType = {
  /** Worker asks for the current weights. No payload. */
  PULL: 0x01,
  /**
   * Worker pushes a gradient (sum of `count` gradients) computed against `modelVersion`.
   * A flush of gradients buffered during an outage is a PUSH with count > 1.
   */
  PUSH: 0x02,
  /** Worker offers its tagged copy of the weights to a PS that has none (stateless recovery). Meta + payload. */
  OFFER: 0x03,
  /** PS sends the weights at `modelVersion`, tagged. Meta + payload: the flat weights. */
  WEIGHTS: 0x21,
  /**
   * PS acknowledges push `seq`: applied, model now at `modelVersion` (flag DUPLICATE: it was
   * applied before and is not applied again). Also answers an OFFER (flag ADOPTED if taken).
   */
  ACK: 0x22,
} as const;
export type MsgType = (typeof MsgType)[keyof typeof MsgType];

/**
 * PS -> PS replication frames, on the node-to-node link of a chain (server/chain/frames.ts
 * encodes and decodes them; docs/PROTOCOL.md gives their grammar). Never sent to a worker.
 */
export const ChainMsg = {
  /** One update the head applied, as every replica must apply it: version, worker, seq, gradient. */
  FORWARD: 0x40,
  /** The tail has applied everything up to `version`; passed up the chain to the head. */
  CHAIN_ACK: 0x41,
  /** A whole replica state: weights, optimizer state, version, applied record, recent history. */
  STATE: 0x42,
} as const;
export type ChainMsg = (typeof ChainMsg)[keyof typeof ChainMsg];

const TYPE_NAMES = new Map<number, string>(Object.entries(MsgType).map(([k, v]) => [v, k]));
/** Payload rule per type: 'none' (empty) or 'layout' (exactly layout.size values). */
const PAYLOAD: Record<MsgType, 'none' | 'layout'> = {
  [MsgType.PULL]: 'none',
  [MsgType.PUSH]: 'layout',
  [MsgType.OFFER]: 'layout',
  [MsgType.WEIGHTS]: 'layout',
  [MsgType.ACK]: 'none',
};
/** Types that carry a meta block (tag + applied-push record) before the payload. */
const HAS_META = new Set<number>([MsgType.OFFER, MsgType.WEIGHTS]);

/** ACK: DUPLICATE (applied before, not again), ADOPTED (offer taken). PUSH: FLUSH (gradients buffered during an outage). */
export const Flag = { DUPLICATE: 0x01, ADOPTED: 0x02, FLUSH: 0x04 } as const;

/** The meta block's `tag`: the PS's Ed25519 signature of this version (shared/signing.ts). */
export const TAG_BYTES = 64;
/** Most record entries a meta block may carry (one per worker that ever pushed). */
export const MAX_RECORD_ENTRIES = 1 << 16;

/** One worker's highest applied push, as carried with the weights. */
export interface AppliedRecordEntry {
  readonly workerId: number;
  readonly seq: number;
  readonly version: number;
}

export interface WeightsMeta {
  readonly tag: Uint8Array;
  readonly record: readonly AppliedRecordEntry[];
  /** KEY_ID_BYTES naming the key that signed (shared/signing.ts keyIdOf); absent in older frames. */
  readonly keyId?: Uint8Array;
}

/** Bytes of the meta block's optional key id. */
export const KEY_ID_BYTES = 8;

export const Dtype = { FLOAT32: 0 } as const;
export type Dtype = (typeof Dtype)[keyof typeof Dtype];

export interface FrameHeader {
  readonly type: MsgType;
  readonly layoutHash: number;
  readonly modelVersion: number;
  readonly workerId: number;
  readonly seq: number;
  readonly count: number;
  /** @default 0 */
  readonly flags?: number;
}

export interface Frame extends FrameHeader {
  readonly flags: number;
  /** A view on the frame's bytes when they are 4-byte aligned, else a copy. */
  readonly payload: Float32Array;
  /** WEIGHTS and OFFER only. */
  readonly meta?: WeightsMeta;
  /** The payload's little-endian bytes, a view on the frame (what a weights tag covers). */
  readonly payloadBytes: Uint8Array;
  /**
   * The payload's squared L2 norm (shared/codec/norm.ts's order), from the pass that validated
   * it: the PS's aggregator takes it instead of a pass of its own.
   */
  readonly normSq: number;
  /** A sparse push (topk): the indices of the only values that may be non-zero, increasing. */
  readonly support?: Uint32Array;
}

export interface DecodeOptions {
  /** The layout the frame must match. */
  readonly layoutHash: number;
  readonly layoutSize: number;
  /** Largest frame without a meta block, in bytes. @default HEADER_BYTES + 4 * layoutSize */
  readonly maxBytes?: number;
  /** Most record entries in a meta block. @default MAX_RECORD_ENTRIES */
  readonly maxRecordEntries?: number;
  /** Push codecs (dtypes, shared/codec/) accepted besides float32. @default every registered one */
  readonly codecs?: readonly number[];
  /**
   * Where a coded PUSH decodes to: a buffer lent by this pool, which the caller releases once
   * it is done with `payload` (the PS, after the push is handled). @default a new array per frame
   */
  readonly scratch?: ScratchPool;
}

/** A PUSH whose payload a codec already encoded (shared/codec/): `values` is what it decodes to. */
export interface CodedPayload {
  readonly dtype: number;
  readonly bytes: Uint8Array;
  readonly values: number;
}

/** Encodes a coded PUSH: header (with the codec's dtype) and the codec's payload bytes. */
export function encodeCodedPush(header: FrameHeader, coded: CodedPayload): Uint8Array {
  if (header.type !== MsgType.PUSH) throw new TypeError(`encodeCodedPush: only a PUSH is coded, not a ${typeName(header.type)}`);
  const bytes = new Uint8Array(HEADER_BYTES + coded.bytes.byteLength);
  writeHeader(bytes, header, coded.values, coded.dtype);
  bytes.set(coded.bytes, HEADER_BYTES);
  return bytes;
}

export function metaBytes(record: readonly unknown[], keyId?: Uint8Array): number {
  return TAG_BYTES + 4 + 12 * record.length + (keyId ? KEY_ID_BYTES : 0);
}

/** Encodes a frame into a fresh buffer. The payload is copied once. WEIGHTS and OFFER need `meta`. */
export function encodeFrame(header: FrameHeader, payload?: Float32Array, meta?: WeightsMeta): Uint8Array {
  const n = payload?.length ?? 0;
  if (HAS_META.has(header.type) !== (meta !== undefined)) throw new TypeError(`encodeFrame: a ${typeName(header.type)} frame ${meta ? 'has no' : 'needs a'} meta block`);
  const metaLength = meta ? 4 + metaBytes(meta.record, meta.keyId) : 0;
  const start = HEADER_BYTES + metaLength;
  const bytes = new Uint8Array(start + 4 * n);
  writeHeader(bytes, header, n);
  if (meta) writeMeta(bytes, meta);
  if (payload && n > 0) {
    if (LITTLE_ENDIAN) new Float32Array(bytes.buffer, start, n).set(payload);
    else {
      const view = new DataView(bytes.buffer);
      for (let i = 0; i < n; i++) view.setFloat32(start + 4 * i, payload[i]!, true);
    }
  }
  return bytes;
}

function writeMeta(bytes: Uint8Array, meta: WeightsMeta): void {
  if (meta.tag.length !== TAG_BYTES) throw new TypeError(`encodeFrame: tag must be ${TAG_BYTES} bytes, got ${meta.tag.length}`);
  if (meta.keyId && meta.keyId.length !== KEY_ID_BYTES) throw new TypeError(`encodeFrame: keyId must be ${KEY_ID_BYTES} bytes, got ${meta.keyId.length}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  view.setUint32(HEADER_BYTES, metaBytes(meta.record, meta.keyId), true);
  bytes.set(meta.tag, HEADER_BYTES + 4);
  view.setUint32(HEADER_BYTES + 4 + TAG_BYTES, meta.record.length, true);
  let o = HEADER_BYTES + 8 + TAG_BYTES;
  for (const r of meta.record) {
    view.setUint32(o, r.workerId >>> 0, true);
    view.setUint32(o + 4, r.seq >>> 0, true);
    view.setUint32(o + 8, r.version >>> 0, true);
    o += 12;
  }
  if (meta.keyId) bytes.set(meta.keyId, o);
}

/** A copy of a frame with another type and worker id (a worker offers the WEIGHTS it was sent). */
export function retypeFrame(bytes: Uint8Array, type: MsgType, workerId: number): Uint8Array {
  const copy = bytes.slice();
  const view = new DataView(copy.buffer);
  view.setUint8(5, type);
  view.setUint32(16, workerId >>> 0, true);
  return copy;
}

/** Writes a header into the first HEADER_BYTES of `bytes` (used by encoders that fill the payload in place). */
export function writeHeader(bytes: Uint8Array, h: FrameHeader, payloadLength: number, dtype: number = Dtype.FLOAT32): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES);
  view.setUint32(0, MAGIC, true);
  view.setUint8(4, PROTOCOL_VERSION);
  view.setUint8(5, h.type);
  view.setUint8(6, dtype);
  view.setUint8(7, h.flags ?? 0);
  view.setUint32(8, h.layoutHash >>> 0, true);
  view.setUint32(12, h.modelVersion >>> 0, true);
  view.setUint32(16, h.workerId >>> 0, true);
  view.setUint32(20, h.seq >>> 0, true);
  view.setUint32(24, h.count >>> 0, true);
  view.setUint32(28, payloadLength >>> 0, true);
}

/**
 * Decodes and validates a frame. Throws a TabswarmError (PROTO_*) for anything wrong: the
 * caller applies nothing from a frame that did not decode.
 */
export function decodeFrame(bytes: Uint8Array, opts: DecodeOptions): Frame {
  const maxBytes = opts.maxBytes ?? HEADER_BYTES + 4 * opts.layoutSize;
  const maxEntries = opts.maxRecordEntries ?? MAX_RECORD_ENTRIES;
  const hardLimit = maxBytes + 4 + TAG_BYTES + 4 + 12 * maxEntries + KEY_ID_BYTES;
  if (bytes.byteLength > hardLimit) throw new TabswarmError('PROTO_OVERSIZE', { bytes: bytes.byteLength, limit: hardLimit });
  if (bytes.byteLength < HEADER_BYTES) throw new TabswarmError('PROTO_TOO_SHORT', { bytes: bytes.byteLength, header: HEADER_BYTES });
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // Frames without a meta block are never larger than a header plus one full payload.
  if (!HAS_META.has(view.getUint8(5)) && bytes.byteLength > maxBytes) throw new TabswarmError('PROTO_OVERSIZE', { bytes: bytes.byteLength, limit: maxBytes });
  const magic = view.getUint32(0, true);
  if (magic !== MAGIC) throw new TabswarmError('PROTO_BAD_MAGIC', { got: magic.toString(16), want: MAGIC.toString(16) });
  const version = view.getUint8(4);
  if (version !== PROTOCOL_VERSION) throw new TabswarmError('PROTO_BAD_VERSION', { got: version, want: PROTOCOL_VERSION });
  const type = view.getUint8(5);
  const rule = PAYLOAD[type as MsgType];
  if (rule === undefined) throw new TabswarmError('PROTO_UNKNOWN_TYPE', { type: type.toString(16).padStart(2, '0') });
  const hasMeta = HAS_META.has(type);
  const dtype = view.getUint8(6);
  if (dtype !== Dtype.FLOAT32) checkCodec(type, dtype, opts);
  const layoutHash = view.getUint32(8, true);
  if (layoutHash !== opts.layoutHash) throw new TabswarmError('PROTO_LAYOUT_MISMATCH', { got: layoutHash, want: opts.layoutHash });
  const payloadLength = view.getUint32(28, true);
  const want = rule === 'layout' ? opts.layoutSize : 0;
  const typeLabel = TYPE_NAMES.get(type) ?? String(type);
  if (payloadLength !== want) throw new TabswarmError('PROTO_BAD_LENGTH', { got: payloadLength, want, type: typeLabel });
  const count = view.getUint32(24, true);
  if (type === MsgType.PUSH && count < 1) throw new TabswarmError('PROTO_BAD_COUNT', { count });
  if (dtype !== Dtype.FLOAT32) {
    // A coded PUSH: the codec checks its payload's length and content (PROTO_BAD_CODEC).
    const coded = bytes.subarray(HEADER_BYTES);
    const payload = opts.scratch?.acquire() ?? new Float32Array(payloadLength);
    let normSq: number;
    try {
      normSq = codecOf(dtype)!.decodeInto(coded, payloadLength, payload);
    } catch (err) {
      opts.scratch?.release(payload);
      throw err;
    }
    const support = dtype === Codec.topk ? { support: topkSupport(coded) } : {};
    return { type: type as MsgType, flags: view.getUint8(7), layoutHash, modelVersion: view.getUint32(12, true), workerId: view.getUint32(16, true), seq: view.getUint32(20, true), count, payload, payloadBytes: coded, normSq, ...support };
  }
  const meta = hasMeta ? readMeta(bytes, view, maxEntries) : undefined;
  const start = HEADER_BYTES + (meta ? 4 + metaBytes(meta.record, meta.keyId) : 0);
  if (bytes.byteLength !== start + 4 * payloadLength) {
    throw new TabswarmError('PROTO_BAD_LENGTH', { got: (bytes.byteLength - start) / 4, want, type: typeLabel });
  }
  const payload = readFloat32(bytes, start, payloadLength);
  const normSq = finiteSumSq(payload); // the non-finite scan; the norm comes with it
  return {
    type: type as MsgType,
    flags: view.getUint8(7),
    layoutHash,
    modelVersion: view.getUint32(12, true),
    workerId: view.getUint32(16, true),
    seq: view.getUint32(20, true),
    count,
    payload,
    payloadBytes: bytes.subarray(start, start + 4 * payloadLength),
    normSq,
    ...(meta ? { meta } : {}),
  };
}

const ALL_CODECS: readonly number[] = CODEC_NAMES.map((name) => Codec[name]);

/** A coded payload is allowed on a PUSH only, with a codec this PS accepts. */
function checkCodec(type: number, dtype: number, opts: DecodeOptions): void {
  const accepted = opts.codecs ?? ALL_CODECS;
  if (type !== MsgType.PUSH || codecOf(dtype) === undefined || !accepted.includes(dtype)) {
    const names = CODEC_NAMES.filter((name) => name === 'float32' || accepted.includes(Codec[name]));
    throw new TabswarmError('PROTO_BAD_DTYPE', { dtype, accepted: type === MsgType.PUSH ? names.join(', ') : 'float32 for this frame type' });
  }
}

function readMeta(bytes: Uint8Array, view: DataView, maxEntries: number): WeightsMeta {
  const bad = (detail: string) => new TabswarmError('PROTO_BAD_META', { detail });
  if (bytes.byteLength < HEADER_BYTES + 8 + TAG_BYTES) throw bad(`frame of ${bytes.byteLength} bytes has no room for a meta block`);
  const length = view.getUint32(HEADER_BYTES, true);
  const entries = view.getUint32(HEADER_BYTES + 4 + TAG_BYTES, true);
  if (entries > maxEntries) throw bad(`${entries} record entries exceed the limit of ${maxEntries}`);
  const plain = TAG_BYTES + 4 + 12 * entries;
  if (length !== plain && length !== plain + KEY_ID_BYTES) throw bad(`meta length ${length} does not fit ${entries} record entries`);
  if (bytes.byteLength < HEADER_BYTES + 4 + length) throw bad(`meta block of ${length} bytes runs past the end of the frame`);
  const tag = bytes.slice(HEADER_BYTES + 4, HEADER_BYTES + 4 + TAG_BYTES);
  const record: AppliedRecordEntry[] = [];
  let o = HEADER_BYTES + 8 + TAG_BYTES;
  for (let i = 0; i < entries; i++, o += 12) {
    record.push({ workerId: view.getUint32(o, true), seq: view.getUint32(o + 4, true), version: view.getUint32(o + 8, true) });
  }
  return length === plain ? { tag, record } : { tag, record, keyId: bytes.slice(o, o + KEY_ID_BYTES) };
}

/** n float32 values at `offset`: a view when 4-byte aligned on a little-endian host, else a copy. */
export function readFloat32(bytes: Uint8Array, offset: number, n: number): Float32Array {
  return n === 0 ? new Float32Array(0) : f32At(bytes, offset, n);
}

/** Index of the first NaN or infinity, or -1. A plain loop: this runs on every gradient. */
export function firstNonFinite(values: Float32Array): number {
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    // v - v is 0 for finite v and NaN for NaN and +-Infinity.
    if (v - v !== 0) return i;
  }
  return -1;
}

export function typeName(type: number): string {
  return TYPE_NAMES.get(type) ?? `0x${type.toString(16)}`;
}
