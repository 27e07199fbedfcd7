/**
 * The checkpoint file of one PS shard, as bytes:
 *
 *   0      4  magic, ASCII "TSCK"
 *   4      4  format version, u32 LE (FORMAT_VERSION)
 *   8      4  header length H, u32 LE
 *   12     H  header, UTF-8 JSON (CheckpointMeta), then zero bytes up to a multiple of 4
 *   ...       delta only: block indices, u32 LE x meta.blocks, strictly increasing (a full
 *             checkpoint holds every block in order, so it has none)
 *   ...       weights of those blocks, f32 LE x meta.values, block after block
 *   ...       velocity of those blocks, f32 LE x meta.velocity (meta.values, or 0 without momentum)
 *   end-32 32 SHA-256 of every byte before it
 *
 * A full checkpoint holds every block of the shard; a delta (prioritized checkpoint) holds the
 * blocks that changed most. Decoding verifies everything and throws CHECKPOINT_CORRUPT with the
 * reason; a file that does not verify is never loaded.
 */
import { createHash } from 'node:crypto';
import { endianness } from 'node:os';
import { TabswarmError } from '../../../shared/errors.ts';

export const MAGIC = 'TSCK';
export const FORMAT_VERSION = 1;
const PREFIX = 12;
const HASH = 32;

/** Per worker: [workerId, highest applied seq, version its ack reported]. */
export type AppliedEntry = readonly [number, number, number];

export interface CheckpointMeta {
  readonly model: string;
  readonly layoutHash: number;
  readonly layoutSize: number;
  readonly shard: number;
  readonly shards: number;
  readonly start: number;
  readonly end: number;
  /** Position in the shard's stream; increases by one per checkpoint of the shard. */
  readonly seq: number;
  readonly kind: 'full' | 'delta';
  /** Seq of the full checkpoint this one builds on (its own seq for a full one). */
  readonly base: number;
  /** The shard's version: updates reflected in its values. */
  readonly version: number;
  /** The whole store's version when the checkpoint was taken. */
  readonly storeVersion: number;
  readonly blockSize: number;
  readonly blocks: number;
  readonly values: number;
  readonly velocity: number;
  /** The record of applied pushes, so exactly-once survives a restart. */
  readonly applied: readonly AppliedEntry[];
  readonly createdAt: string;
  /**
   * The run that wrote it (--run-id, or the cluster's, fixed in ZooKeeper): a PS of another run
   * refuses to restore it (CHECKPOINT_OTHER_RUN). '' or absent (older files): a run without an id.
   */
  readonly runId?: string;
}

export interface CheckpointBody {
  readonly indices: Uint32Array;
  readonly weights: Float32Array;
  readonly velocity: Float32Array;
}

export interface DecodedCheckpoint extends CheckpointBody {
  readonly meta: CheckpointMeta;
}

if (endianness() !== 'LE') throw new Error('checkpoint format: float arrays are written as host bytes, which must be little-endian');

const bytesOf = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const pad4 = (n: number): number => (n + 3) & ~3;

/** Values in the given blocks of a shard of `length` values. */
export function blockValues(indices: Uint32Array, blockSize: number, length: number): number {
  let n = 0;
  for (const b of indices) n += Math.min(blockSize, length - b * blockSize);
  return n;
}

/**
 * The file as chunks (no copy of the arrays: the caller keeps them unchanged until written),
 * the last one the SHA-256 of the others.
 */
export function encodeCheckpoint(meta: Omit<CheckpointMeta, 'blocks' | 'values' | 'velocity'>, body: CheckpointBody): Uint8Array[] {
  const full: CheckpointMeta = { ...meta, blocks: body.indices.length, values: body.weights.length, velocity: body.velocity.length };
  if (body.velocity.length !== 0 && body.velocity.length !== body.weights.length) throw new RangeError(`encodeCheckpoint: ${body.velocity.length} velocity values for ${body.weights.length} weights`);
  const header = new TextEncoder().encode(JSON.stringify(full));
  const prefix = new Uint8Array(PREFIX + pad4(header.length));
  prefix.set(new TextEncoder().encode(MAGIC), 0);
  const view = new DataView(prefix.buffer);
  view.setUint32(4, FORMAT_VERSION, true);
  view.setUint32(8, header.length, true);
  prefix.set(header, PREFIX);
  const chunks = [prefix, bytesOf(meta.kind === 'full' ? new Uint32Array(0) : body.indices), bytesOf(body.weights), bytesOf(body.velocity)];
  const hash = createHash('sha256');
  for (const c of chunks) hash.update(c);
  chunks.push(new Uint8Array(hash.digest()));
  return chunks;
}

/** Verifies and decodes one file. @param file the name used in error messages */
export function decodeCheckpoint(bytes: Uint8Array, file: string): DecodedCheckpoint {
  const corrupt = (detail: string) => new TabswarmError('CHECKPOINT_CORRUPT', { file, detail });
  if (bytes.length < PREFIX + HASH) throw corrupt(`only ${bytes.length} bytes: truncated (a torn write?)`);
  const magic = new TextDecoder().decode(bytes.subarray(0, 4));
  if (magic !== MAGIC) throw corrupt(`magic '${magic}' is not '${MAGIC}': not a tabswarm checkpoint`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(4, true);
  if (version !== FORMAT_VERSION) throw corrupt(`format version ${version} is not ${FORMAT_VERSION}`);
  const digest = createHash('sha256').update(bytes.subarray(0, bytes.length - HASH)).digest();
  if (!digest.equals(bytes.subarray(bytes.length - HASH))) throw corrupt('checksum mismatch: the file is torn or was modified');
  const headerLength = view.getUint32(8, true);
  if (PREFIX + headerLength + HASH > bytes.length) throw corrupt(`header of ${headerLength} bytes runs past the end`);
  let meta: CheckpointMeta;
  try {
    meta = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(PREFIX, PREFIX + headerLength))) as CheckpointMeta;
  } catch (err) {
    throw corrupt(`header is not JSON: ${(err as Error).message}`);
  }
  checkMeta(meta, corrupt);
  const at = PREFIX + pad4(headerLength);
  const stored = meta.kind === 'full' ? 0 : meta.blocks;
  const want = at + 4 * (stored + meta.values + meta.velocity) + HASH;
  if (bytes.length !== want) throw corrupt(`${bytes.length} bytes where the header says ${want}`);
  // Copy out: the source buffer need not be 4-byte aligned.
  const copy = bytes.slice(at, bytes.length - HASH);
  const length = meta.end - meta.start;
  const count = Math.ceil(length / meta.blockSize);
  const indices = meta.kind === 'full' ? Uint32Array.from({ length: meta.blocks }, (_, i) => i) : new Uint32Array(copy.buffer, 0, stored);
  const weights = new Float32Array(copy.buffer, 4 * stored, meta.values);
  const velocity = new Float32Array(copy.buffer, 4 * (stored + meta.values), meta.velocity);
  for (let i = 0; i < indices.length; i++) {
    if (indices[i]! >= count || (i > 0 && indices[i]! <= indices[i - 1]!)) throw corrupt(`block index ${indices[i]} at ${i} is out of order or range`);
  }
  if (meta.kind === 'full' && meta.blocks !== count) throw corrupt(`a full checkpoint with ${meta.blocks} of ${count} blocks`);
  if (blockValues(indices, meta.blockSize, length) !== meta.values) throw corrupt(`${meta.values} values do not fill blocks ${meta.blocks}`);
  return { meta, indices, weights, velocity };
}

function checkMeta(m: CheckpointMeta, corrupt: (detail: string) => TabswarmError): void {
  const ints: (keyof CheckpointMeta)[] = ['layoutHash', 'layoutSize', 'shard', 'shards', 'start', 'end', 'seq', 'base', 'version', 'storeVersion', 'blockSize', 'blocks', 'values', 'velocity'];
  for (const k of ints) if (!Number.isInteger(m?.[k]) || (m[k] as number) < 0) throw corrupt(`header field '${k}' is ${JSON.stringify(m?.[k])}`);
  if (m.kind !== 'full' && m.kind !== 'delta') throw corrupt(`header field 'kind' is ${JSON.stringify(m.kind)}`);
  if (!(m.end > m.start && m.end <= m.layoutSize && m.blockSize > 0)) throw corrupt(`range [${m.start}, ${m.end}) of ${m.layoutSize}`);
  if (m.velocity !== 0 && m.velocity !== m.values) throw corrupt(`${m.velocity} velocity values for ${m.values} weights`);
  if (m.runId !== undefined && (typeof m.runId !== 'string' || m.runId.length > 64)) throw corrupt(`header field 'runId' is ${JSON.stringify(m.runId).slice(0, 80)}`);
  if (!Array.isArray(m.applied) || !m.applied.every((e) => Array.isArray(e) && e.length === 3 && e.every(Number.isInteger))) throw corrupt('header field \'applied\' is malformed');
}

/** Copies the given blocks of `src` (one shard's values) into one array, in block order. */
export function gatherBlocks(src: Float32Array, indices: Uint32Array, blockSize: number): Float32Array {
  const out = new Float32Array(blockValues(indices, blockSize, src.length));
  let at = 0;
  for (const b of indices) {
    const part = src.subarray(b * blockSize, Math.min(src.length, (b + 1) * blockSize));
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** Writes the values of the given blocks (as gatherBlocks lays them out) back into `dst`. */
export function scatterBlocks(dst: Float32Array, indices: Uint32Array, blockSize: number, values: Float32Array): void {
  let at = 0;
  for (const b of indices) {
    const len = Math.min(blockSize, dst.length - b * blockSize);
    dst.set(values.subarray(at, at + len), b * blockSize);
    at += len;
  }
}
