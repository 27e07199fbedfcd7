/**
 * The tabswarm wire protocol: one binary frame format shared by server, browser and Node.
 * docs/PROTOCOL.md gives the byte grammar. All integers are little-endian.
 *
 *   offset size field
 *   0      4    magic          0x4D575354 ('TSWM' read as bytes)
 *   4      1    version        PROTOCOL_VERSION
 *   5      1    type           MsgType
 *   6      1    dtype          Dtype (0 = float32)
 *   7      1    flags          reserved, 0
 *   8      4    layoutHash     hash of the model layout (layout.ts)
 *   12     4    modelVersion   PS model version the frame refers to
 *   16     4    workerId       id the server issued at join
 *   20     4    seq            per-worker sequence number
 *   24     4    count          number of gradients summed in the payload (>= 1 for pushes)
 *   28     4    payloadLength  number of payload values
 *   32     4*n  payload        little-endian float32
 */
import { TabswarmError } from './errors.ts';

export const MAGIC = 0x4d575354;
export const PROTOCOL_VERSION = 1;
export const HEADER_BYTES = 32;

/**
 * Message types, in numbered ranges:
 *   0x01-0x1F worker -> PS
 *   0x20-0x3F PS -> worker
 *   0x40-0x5F PS -> PS (replication; reserved for the chain)
 */
export const MsgType = {
  /** Worker asks for the current weights. No payload. */
  PULL: 0x01,
  /** Worker pushes a gradient (sum of `count` gradients) computed against `modelVersion`. */
  PUSH: 0x02,
  /** PS sends the weights at `modelVersion`. Payload: the flat weights. */
  WEIGHTS: 0x21,
  /** PS acknowledges push `seq`: applied, model now at `modelVersion`. No payload. */
  ACK: 0x22,
} as const;
export type MsgType = (typeof MsgType)[keyof typeof MsgType];

const TYPE_NAMES = new Map<number, string>(Object.entries(MsgType).map(([k, v]) => [v, k]));
/** Payload rule per type: 'none' (empty) or 'layout' (exactly layout.size values). */
const PAYLOAD: Record<MsgType, 'none' | 'layout'> = {
  [MsgType.PULL]: 'none',
  [MsgType.PUSH]: 'layout',
  [MsgType.WEIGHTS]: 'layout',
  [MsgType.ACK]: 'none',
};

export const Dtype = { FLOAT32: 0 } as const;
export type Dtype = (typeof Dtype)[keyof typeof Dtype];

export interface FrameHeader {
  readonly type: MsgType;
  readonly layoutHash: number;
  readonly modelVersion: number;
  readonly workerId: number;
  readonly seq: number;
  readonly count: number;
}

export interface Frame extends FrameHeader {
  /** A view on the frame's bytes when they are 4-byte aligned, else a copy. */
  readonly payload: Float32Array;
}

export interface DecodeOptions {
  /** The layout the frame must match. */
  readonly layoutHash: number;
  readonly layoutSize: number;
  /** Largest frame accepted, in bytes. @default HEADER_BYTES + 4 * layoutSize */
  readonly maxBytes?: number;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Encodes a frame into a fresh buffer. The payload is copied once. */
export function encodeFrame(header: FrameHeader, payload?: Float32Array): Uint8Array {
  const n = payload?.length ?? 0;
  const bytes = new Uint8Array(HEADER_BYTES + 4 * n);
  writeHeader(bytes, header, n);
  if (payload && n > 0) {
    if (LITTLE_ENDIAN) new Float32Array(bytes.buffer, HEADER_BYTES, n).set(payload);
    else {
      const view = new DataView(bytes.buffer);
      for (let i = 0; i < n; i++) view.setFloat32(HEADER_BYTES + 4 * i, payload[i]!, true);
    }
  }
  return bytes;
}

/** Writes a header into the first HEADER_BYTES of `bytes` (used by encoders that fill the payload in place). */
export function writeHeader(bytes: Uint8Array, h: FrameHeader, payloadLength: number): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES);
  view.setUint32(0, MAGIC, true);
  view.setUint8(4, PROTOCOL_VERSION);
  view.setUint8(5, h.type);
  view.setUint8(6, Dtype.FLOAT32);
  view.setUint8(7, 0);
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
  if (bytes.byteLength > maxBytes) throw new TabswarmError('PROTO_OVERSIZE', { bytes: bytes.byteLength, limit: maxBytes });
  if (bytes.byteLength < HEADER_BYTES) throw new TabswarmError('PROTO_TOO_SHORT', { bytes: bytes.byteLength, header: HEADER_BYTES });
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, true);
  if (magic !== MAGIC) throw new TabswarmError('PROTO_BAD_MAGIC', { got: magic.toString(16), want: MAGIC.toString(16) });
  const version = view.getUint8(4);
  if (version !== PROTOCOL_VERSION) throw new TabswarmError('PROTO_BAD_VERSION', { got: version, want: PROTOCOL_VERSION });
  const type = view.getUint8(5);
  const rule = PAYLOAD[type as MsgType];
  if (rule === undefined) throw new TabswarmError('PROTO_UNKNOWN_TYPE', { type: type.toString(16).padStart(2, '0') });
  const dtype = view.getUint8(6);
  if (dtype !== Dtype.FLOAT32) throw new TabswarmError('PROTO_BAD_DTYPE', { dtype });
  const layoutHash = view.getUint32(8, true);
  if (layoutHash !== opts.layoutHash) throw new TabswarmError('PROTO_LAYOUT_MISMATCH', { got: layoutHash, want: opts.layoutHash });
  const payloadLength = view.getUint32(28, true);
  const want = rule === 'layout' ? opts.layoutSize : 0;
  const typeName = TYPE_NAMES.get(type) ?? String(type);
  if (payloadLength !== want) throw new TabswarmError('PROTO_BAD_LENGTH', { got: payloadLength, want, type: typeName });
  if (bytes.byteLength !== HEADER_BYTES + 4 * payloadLength) {
    throw new TabswarmError('PROTO_BAD_LENGTH', { got: (bytes.byteLength - HEADER_BYTES) / 4, want, type: typeName });
  }
  const count = view.getUint32(24, true);
  if (type === MsgType.PUSH && count < 1) throw new TabswarmError('PROTO_BAD_COUNT', { count });
  const payload = readPayload(bytes, payloadLength);
  const bad = firstNonFinite(payload);
  if (bad >= 0) throw new TabswarmError('PROTO_NON_FINITE', { index: bad, value: String(payload[bad]) });
  return {
    type: type as MsgType,
    layoutHash,
    modelVersion: view.getUint32(12, true),
    workerId: view.getUint32(16, true),
    seq: view.getUint32(20, true),
    count,
    payload,
  };
}

function readPayload(bytes: Uint8Array, n: number): Float32Array {
  if (n === 0) return new Float32Array(0);
  const start = bytes.byteOffset + HEADER_BYTES;
  // A Float32Array view needs 4-byte alignment (and a little-endian host); otherwise copy.
  if (LITTLE_ENDIAN && start % 4 === 0) return new Float32Array(bytes.buffer, start, n);
  const out = new Float32Array(n);
  const view = new DataView(bytes.buffer, start, 4 * n);
  for (let i = 0; i < n; i++) out[i] = view.getFloat32(4 * i, true);
  return out;
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
