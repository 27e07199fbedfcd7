/**
 * Messages between workers of the mesh (client/mesh/), over WebRTC data channels. Binary only;
 * PeerJS chunks them. Every message a peer sends is untrusted and is validated here like a PS
 * frame (size, layout hash, finite values) before anything uses it; relayed WEIGHTS frames are
 * also checked against the PS's signature by the receiver (shared/signing.ts).
 *
 *   offset size field
 *   0      4    magic       0x534D5354 ('TSMS' read as bytes)
 *   4      1    version     MESH_VERSION
 *   5      1    kind        MeshKind
 *   6      2    reserved    0
 *   8      4    layoutHash  hash of the model layout
 *   12     4    ref         gossip: round id; HAVE/WANT/RELAY: model version; NONE: the ref it answers
 *   16     ...  body        GOSSIP_*: layoutSize float32 (LE); RELAY: one signed WEIGHTS frame; else empty
 */
import { TabswarmError } from './errors.ts';
import { MsgType, decodeFrame, firstNonFinite, type Frame } from './protocol.ts';

export const MESH_MAGIC = 0x534d5354;
export const MESH_VERSION = 1;
export const MESH_HEADER_BYTES = 16;

export const MeshKind = {
  /** "Average with me": the sender's weights; answered by GOSSIP_REPLY (the receiver's, before averaging) or NONE. */
  GOSSIP_REQ: 1,
  GOSSIP_REPLY: 2,
  /** The version of signed weights the sender holds and can relay. */
  HAVE: 3,
  /** "Send me signed weights of version >= ref": answered by RELAY or NONE. */
  WANT: 4,
  /** A signed WEIGHTS frame exactly as the PS sent it. */
  RELAY: 5,
  /** Declines a GOSSIP_REQ or WANT (not in an outage, nothing recent enough). */
  NONE: 6,
} as const;
export type MeshKind = (typeof MeshKind)[keyof typeof MeshKind];
const KIND_NAMES = new Map<number, string>(Object.entries(MeshKind).map(([k, v]) => [v, k]));

export type MeshMessage =
  | { kind: typeof MeshKind.GOSSIP_REQ | typeof MeshKind.GOSSIP_REPLY; ref: number; weights: Float32Array }
  | { kind: typeof MeshKind.HAVE | typeof MeshKind.WANT | typeof MeshKind.NONE; ref: number }
  | { kind: typeof MeshKind.RELAY; ref: number; frame: Frame; bytes: Uint8Array };

export interface MeshDecodeOptions {
  readonly layoutHash: number;
  readonly layoutSize: number;
  /** The sending peer, named in errors. */
  readonly peer: string;
}

export function encodeMesh(kind: MeshKind, layoutHash: number, ref: number, body?: Float32Array | Uint8Array): Uint8Array {
  const bodyBytes = body ? new Uint8Array(body.buffer, body.byteOffset, body.byteLength) : undefined;
  const out = new Uint8Array(MESH_HEADER_BYTES + (bodyBytes?.byteLength ?? 0));
  const view = new DataView(out.buffer);
  view.setUint32(0, MESH_MAGIC, true);
  view.setUint8(4, MESH_VERSION);
  view.setUint8(5, kind);
  view.setUint32(8, layoutHash >>> 0, true);
  view.setUint32(12, ref >>> 0, true);
  // Float32 bodies are written little-endian on the (little-endian) hosts that run tfjs.
  if (bodyBytes) out.set(bodyBytes, MESH_HEADER_BYTES);
  return out;
}

/** What a data channel delivered, as bytes; anything that is not binary is refused. */
export function asBytes(data: unknown, peer: string): Uint8Array {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new TabswarmError('MESH_BAD_MESSAGE', { peer, detail: `a ${data === null ? 'null' : typeof data} message, not binary` });
}

/** Decodes and validates one peer message. Throws MESH_* (or MESH_BAD_MESSAGE wrapping a PROTO_* of a relayed frame). */
export function decodeMesh(bytes: Uint8Array, opts: MeshDecodeOptions): MeshMessage {
  const { peer } = opts;
  const bad = (detail: string) => new TabswarmError('MESH_BAD_MESSAGE', { peer, detail });
  if (bytes.byteLength < MESH_HEADER_BYTES) throw bad(`${bytes.byteLength} bytes is shorter than the ${MESH_HEADER_BYTES}-byte header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== MESH_MAGIC) throw bad(`magic 0x${view.getUint32(0, true).toString(16)} is not 0x${MESH_MAGIC.toString(16)}`);
  if (view.getUint8(4) !== MESH_VERSION) throw bad(`mesh version ${view.getUint8(4)} is not ${MESH_VERSION}`);
  const kind = view.getUint8(5);
  const name = KIND_NAMES.get(kind);
  if (!name) throw bad(`unknown kind ${kind}`);
  const layoutHash = view.getUint32(8, true);
  if (layoutHash !== opts.layoutHash) throw new TabswarmError('MESH_LAYOUT_MISMATCH', { peer, got: layoutHash, want: opts.layoutHash });
  const ref = view.getUint32(12, true);
  const bodyLength = bytes.byteLength - MESH_HEADER_BYTES;
  switch (kind) {
    case MeshKind.GOSSIP_REQ:
    case MeshKind.GOSSIP_REPLY: {
      const want = MESH_HEADER_BYTES + 4 * opts.layoutSize;
      if (bytes.byteLength !== want) throw new TabswarmError('MESH_BAD_LENGTH', { peer, kind: name, got: bytes.byteLength, want });
      // Copy: the weights outlive the message, and the body may be unaligned.
      const weights = new Float32Array(opts.layoutSize);
      new Uint8Array(weights.buffer).set(bytes.subarray(MESH_HEADER_BYTES));
      const i = firstNonFinite(weights);
      if (i >= 0) throw new TabswarmError('MESH_NON_FINITE', { peer, index: i, value: String(weights[i]) });
      return { kind, ref, weights };
    }
    case MeshKind.RELAY: {
      const inner = bytes.slice(MESH_HEADER_BYTES);
      let frame: Frame;
      try {
        frame = decodeFrame(inner, { layoutHash: opts.layoutHash, layoutSize: opts.layoutSize });
      } catch (err) {
        if (err instanceof TabswarmError && err.code === 'PROTO_NON_FINITE') throw new TabswarmError('MESH_NON_FINITE', { peer, index: err.details.index, value: err.details.value });
        if (err instanceof TabswarmError && err.code === 'PROTO_BAD_LENGTH') throw new TabswarmError('MESH_BAD_LENGTH', { peer, kind: name, got: inner.byteLength, want: 'a WEIGHTS frame of the layout' });
        throw bad(`relayed frame refused: ${(err as Error).message}`);
      }
      if (frame.type !== MsgType.WEIGHTS) throw bad(`relayed frame is of type ${frame.type}, not WEIGHTS`);
      if (frame.modelVersion !== ref) throw bad(`relayed frame is at version ${frame.modelVersion}, the message says ${ref}`);
      return { kind, ref, frame, bytes: inner };
    }
    default:
      if (bodyLength !== 0) throw new TabswarmError('MESH_BAD_LENGTH', { peer, kind: name, got: bytes.byteLength, want: MESH_HEADER_BYTES });
      return { kind: kind as typeof MeshKind.HAVE, ref };
  }
}

export function meshKindName(kind: number): string {
  return KIND_NAMES.get(kind) ?? `kind ${kind}`;
}
