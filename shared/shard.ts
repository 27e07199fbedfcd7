/**
 * A data shard as it travels to a worker and sits in its cache: one binary blob,
 *   u32 magic 'TSSH' | u32 count | u32 pixelsPerExample | count label bytes | count*ppe pixel bytes
 * (little-endian). Decoding validates lengths so a truncated download is never trained on.
 */
export const SHARD_MAGIC = 0x48535354;

export interface ShardData {
  readonly count: number;
  readonly pixelsPerExample: number;
  readonly labels: Uint8Array;
  readonly pixels: Uint8Array;
}

export function encodeShard(labels: Uint8Array, pixels: Uint8Array, pixelsPerExample: number): Uint8Array {
  const count = labels.length;
  const out = new Uint8Array(12 + count + count * pixelsPerExample);
  const view = new DataView(out.buffer);
  view.setUint32(0, SHARD_MAGIC, true);
  view.setUint32(4, count, true);
  view.setUint32(8, pixelsPerExample, true);
  out.set(labels, 12);
  out.set(pixels.subarray(0, count * pixelsPerExample), 12 + count);
  return out;
}

export function decodeShard(bytes: Uint8Array): ShardData {
  if (bytes.byteLength < 12) throw new Error(`decodeShard: ${bytes.byteLength} bytes is shorter than the 12-byte header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== SHARD_MAGIC) throw new Error('decodeShard: bad magic, not a tabswarm shard');
  const count = view.getUint32(4, true);
  const ppe = view.getUint32(8, true);
  const want = 12 + count + count * ppe;
  if (bytes.byteLength !== want) throw new Error(`decodeShard: ${bytes.byteLength} bytes, expected ${want} for ${count} examples of ${ppe} pixels`);
  return { count, pixelsPerExample: ppe, labels: bytes.subarray(12, 12 + count), pixels: bytes.subarray(12 + count) };
}
