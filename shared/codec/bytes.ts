/** Little-endian reads and writes shared by the codecs; views only on aligned bytes. */
export const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** n float32 values at `offset` of `bytes`: a view when aligned, else a copy. */
export function f32At(bytes: Uint8Array, offset: number, n: number): Float32Array {
  const start = bytes.byteOffset + offset;
  if (LITTLE_ENDIAN && start % 4 === 0) return new Float32Array(bytes.buffer, start, n);
  const out = new Float32Array(n);
  const v = new DataView(bytes.buffer, start, 4 * n);
  for (let i = 0; i < n; i++) out[i] = v.getFloat32(4 * i, true);
  return out;
}

/** n uint32 values at `offset` of `bytes`: a view when aligned, else a copy. */
export function u32At(bytes: Uint8Array, offset: number, n: number): Uint32Array {
  const start = bytes.byteOffset + offset;
  if (LITTLE_ENDIAN && start % 4 === 0) return new Uint32Array(bytes.buffer, start, n);
  const out = new Uint32Array(n);
  const v = new DataView(bytes.buffer, start, 4 * n);
  for (let i = 0; i < n; i++) out[i] = v.getUint32(4 * i, true);
  return out;
}

/** Writes `values` as little-endian float32 at `offset`. */
export function putF32(bytes: Uint8Array, offset: number, values: Float32Array): void {
  if (LITTLE_ENDIAN) {
    new Uint8Array(bytes.buffer, bytes.byteOffset + offset, 4 * values.length).set(new Uint8Array(values.buffer, values.byteOffset, 4 * values.length));
    return;
  }
  const v = view(bytes);
  for (let i = 0; i < values.length; i++) v.setFloat32(offset + 4 * i, values[i]!, true);
}

/** Writes `values` as little-endian uint32 at `offset`. */
export function putU32(bytes: Uint8Array, offset: number, values: Uint32Array): void {
  if (LITTLE_ENDIAN) {
    new Uint8Array(bytes.buffer, bytes.byteOffset + offset, 4 * values.length).set(new Uint8Array(values.buffer, values.byteOffset, 4 * values.length));
    return;
  }
  const v = view(bytes);
  for (let i = 0; i < values.length; i++) v.setUint32(offset + 4 * i, values[i]!, true);
}
