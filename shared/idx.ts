/**
 * The IDX format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/):
 *   bytes 0-1 zero, byte 2 the element type (0x08 = uint8), byte 3 the number of dimensions d,
 *   then d big-endian uint32 sizes, then the data, row-major.
 * Only uint8 data is needed here; anything else is a DATA_BAD_IDX error naming the file.
 */
import { TabswarmError } from './errors.ts';

export interface IdxTensor {
  readonly shape: readonly number[];
  /** A view on the input's bytes, not a copy. */
  readonly data: Uint8Array;
}

export function parseIdx(bytes: Uint8Array, file = '<buffer>'): IdxTensor {
  const bad = (detail: string): TabswarmError => new TabswarmError('DATA_BAD_IDX', { file, detail });
  if (bytes.byteLength < 4) throw bad(`only ${bytes.byteLength} bytes, shorter than the 4-byte magic`);
  if (bytes[0] !== 0 || bytes[1] !== 0) throw bad('magic does not start with two zero bytes (is the file still gzipped?)');
  if (bytes[2] !== 0x08) throw bad(`element type 0x${bytes[2]!.toString(16)} is not uint8 (0x08)`);
  const dims = bytes[3]!;
  if (dims < 1 || dims > 4) throw bad(`${dims} dimensions; expected 1 to 4`);
  const headerBytes = 4 + 4 * dims;
  if (bytes.byteLength < headerBytes) throw bad(`truncated header: ${bytes.byteLength} bytes, need ${headerBytes}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const shape: number[] = [];
  for (let i = 0; i < dims; i++) shape.push(view.getUint32(4 + 4 * i, false));
  const elements = shape.reduce((a, b) => a * b, 1);
  if (bytes.byteLength !== headerBytes + elements) {
    throw bad(`shape ${shape.join('x')} needs ${elements} data bytes but the file has ${bytes.byteLength - headerBytes}`);
  }
  return { shape, data: bytes.subarray(headerBytes) };
}

/** Encodes uint8 data as IDX (used by tests and by the synthetic data set's writer). */
export function encodeIdx(shape: readonly number[], data: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + 4 * shape.length + data.length);
  out[2] = 0x08;
  out[3] = shape.length;
  const view = new DataView(out.buffer);
  shape.forEach((s, i) => view.setUint32(4 + 4 * i, s, false));
  out.set(data, 4 + 4 * shape.length);
  return out;
}
