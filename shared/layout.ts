/**
 * The flat weight layout: every trainable tensor of a model as a (name, shape, offset, length)
 * slice of ONE Float32Array. Derived from the model spec by arithmetic alone, so server and
 * client agree without either loading TensorFlow.js; identified by a 32-bit hash that every
 * wire frame carries.
 */
import type { ModelSpec } from './models.ts';

export interface LayoutEntry {
  readonly name: string;
  readonly shape: readonly number[];
  readonly offset: number;
  readonly length: number;
}

export interface Layout {
  readonly model: string;
  readonly entries: readonly LayoutEntry[];
  /** Total number of float32 values. */
  readonly size: number;
  /** FNV-1a over names and shapes; carried in every frame. */
  readonly hash: number;
}

export function deriveLayout(model: ModelSpec): Layout {
  const entries: LayoutEntry[] = [];
  let [h, w, c] = model.input;
  let flat = 0; // > 0 once flattened
  let offset = 0;
  const add = (name: string, shape: number[]): void => {
    const length = shape.reduce((a, b) => a * b, 1);
    entries.push({ name, shape, offset, length });
    offset += length;
  };
  model.layers.forEach((layer, i) => {
    switch (layer.kind) {
      case 'conv2d': // padding 'same', stride 1: spatial size unchanged
        add(`${i}.conv2d.kernel`, [layer.kernel, layer.kernel, c, layer.filters]);
        add(`${i}.conv2d.bias`, [layer.filters]);
        c = layer.filters;
        break;
      case 'maxpool':
        h = Math.floor(h / layer.size);
        w = Math.floor(w / layer.size);
        break;
      case 'flatten':
        flat = h * w * c;
        break;
      case 'dense': {
        const inputs = flat || h * w * c;
        add(`${i}.dense.kernel`, [inputs, layer.units]);
        add(`${i}.dense.bias`, [layer.units]);
        flat = layer.units;
        break;
      }
      case 'dropout':
        break;
    }
  });
  const signature = entries.map((e) => `${e.name}:${e.shape.join('x')}`).join(';');
  return { model: model.name, entries, size: offset, hash: fnv1a(signature) };
}

export function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/**
 * Glorot-uniform kernels and zero biases, from a seeded generator so that a run is reproducible.
 */
export function initWeights(layout: Layout, seed = 1): Float32Array {
  const weights = new Float32Array(layout.size);
  const random = mulberry32(seed);
  for (const e of layout.entries) {
    if (e.shape.length === 1) continue; // bias: zeros
    const fanOut = e.shape[e.shape.length - 1]!;
    const fanIn = e.length / fanOut;
    const receptive = e.shape.length === 4 ? e.shape[0]! * e.shape[1]! : 1;
    const limit = Math.sqrt(6 / (fanIn + fanOut * receptive));
    for (let i = 0; i < e.length; i++) weights[e.offset + i] = (random() * 2 - 1) * limit;
  }
  return weights;
}

/** A small, fast, seedable PRNG (public domain, Tommy Ettinger). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
