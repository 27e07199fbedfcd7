/**
 * The workloads of bench:rework (SCAR, Qiao et al. 2019, trained three: multinomial logistic
 * regression on MNIST, matrix factorization, LDA). Each gives a flat layout, initial weights,
 * the gradient of minibatch t (the same batch in the run and in every fork) and a loss on a
 * fixed set of examples:
 *   - a tfjs model of shared/models.ts on real data (mnist-logreg, fashion-cnn), gradients from
 *     client/trainer.ts on tfjs-cpu;
 *   - `mf-synthetic`: matrix factorization on a synthetic low-rank matrix (no rating data is
 *     available offline), R = A Bᵀ + noise observed at a seeded 10% of its entries, fitted by
 *     minibatch SGD on U Vᵀ with an L2 penalty, gradients in plain TypeScript. One checkpoint
 *     block per factor row (block size = rank), so a minibatch touches a few blocks: the uneven
 *     change SCAR's prioritization is built for.
 */
import * as tf from '@tensorflow/tfjs';
import { Trainer } from '../client/trainer.ts';
import { loadDataset, type Split } from '../server/data.ts';
import { crossEntropy, forward, normalisePixels } from '../shared/forward.ts';
import { deriveLayout, fnv1a, initWeights, mulberry32, type Layout } from '../shared/layout.ts';
import { getModel, type ModelSpec } from '../shared/models.ts';

export interface Workload {
  readonly layout: Layout;
  readonly init: Float32Array;
  /** The gradient of minibatch t at `weights` (a fresh array). */
  grad(weights: Float32Array, t: number): Promise<Float32Array>;
  /** Loss on the fixed probe set. */
  loss(weights: Float32Array): number;
  dispose(): void;
}

export interface WorkloadConfig {
  readonly model: string;
  readonly dataset: string;
  readonly batch: number;
  readonly seed: number;
  readonly evalExamples: number;
}

/** Mean loss over a fixed set of examples, no dropout. */
class LossProbe {
  private readonly x: tf.Tensor4D;
  private readonly y: tf.Tensor1D;
  constructor(private readonly model: ModelSpec, private readonly layout: Layout, split: Split, n: number) {
    const count = Math.min(n, split.count);
    const [h, w, c] = model.input;
    this.x = tf.tensor4d(normalisePixels(split.pixels.subarray(0, count * h * w * c), new Float32Array(count * h * w * c)), [count, h, w, c]);
    this.y = tf.tensor1d(Int32Array.from(split.labels.subarray(0, count)), 'int32');
  }
  loss(flat: Float32Array): number {
    return tf.tidy(() => {
      const ws = this.layout.entries.map((e) => tf.tensor(flat.subarray(e.offset, e.offset + e.length), [...e.shape]));
      return crossEntropy(tf, forward(tf, this.model, ws, this.x, false), this.y, this.model.classes).dataSync()[0]!;
    });
  }
  dispose(): void {
    this.x.dispose();
    this.y.dispose();
  }
}

async function tfjsWorkload(cfg: WorkloadConfig): Promise<Workload> {
  await tf.setBackend('cpu');
  const model = getModel(cfg.model);
  const layout = deriveLayout(model);
  const data = loadDataset(cfg.dataset as 'mnist' | 'fashion-mnist');
  const trainer = new Trainer(tf, model, cfg.batch);
  const probe = new LossProbe(model, layout, data.train, cfg.evalExamples);
  const ppe = data.pixelsPerExample;
  const pixels = new Uint8Array(cfg.batch * ppe);
  const labels = new Uint8Array(cfg.batch);
  return {
    layout,
    init: initWeights(layout, cfg.seed),
    async grad(weights, t) {
      const random = mulberry32(cfg.seed * 100003 + t);
      for (let i = 0; i < cfg.batch; i++) {
        const ex = Math.floor(random() * data.train.count);
        pixels.set(data.train.pixels.subarray(ex * ppe, (ex + 1) * ppe), i * ppe);
        labels[i] = data.train.labels[ex]!;
      }
      trainer.setWeights(weights);
      return (await trainer.step(pixels, labels)).grad;
    },
    loss: (w) => probe.loss(w),
    dispose() {
      trainer.dispose();
      probe.dispose();
    },
  };
}

/** The synthetic matrix: sizes, rank, observed fraction, noise and penalty. */
export const MF = { users: 400, items: 400, rank: 8, observed: 0.1, noise: 0.1, l2: 0.01 } as const;

function gaussian(random: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

function mfWorkload(cfg: WorkloadConfig): Workload {
  const { users: m, items: n, rank: k } = MF;
  const random = mulberry32(cfg.seed * 7919 + 1);
  const scale = 1 / Math.sqrt(Math.sqrt(k)); // entries of A Bᵀ have variance 1
  const a = Float32Array.from({ length: m * k }, () => gaussian(random) * scale);
  const b = Float32Array.from({ length: n * k }, () => gaussian(random) * scale);
  const rows: number[] = [];
  const cols: number[] = [];
  const vals: number[] = [];
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      if (random() >= MF.observed) continue;
      let dot = 0;
      for (let r = 0; r < k; r++) dot += a[i * k + r]! * b[j * k + r]!;
      rows.push(i);
      cols.push(j);
      vals.push(dot + MF.noise * gaussian(random));
    }
  }
  const entries = [{ name: 'U', shape: [m, k], offset: 0, length: m * k }, { name: 'V', shape: [n, k], offset: m * k, length: n * k }];
  const layout: Layout = { model: cfg.model, entries, size: (m + n) * k, hash: fnv1a(`${cfg.model}:U[${m},${k}],V[${n},${k}]`) };
  const init = Float32Array.from({ length: layout.size }, () => 0.1 * gaussian(random));
  const probe = Array.from({ length: Math.min(cfg.evalExamples, vals.length) }, (_, e) => e);
  const vOff = m * k;
  const err = (w: Float32Array, e: number): number => {
    const i = rows[e]!;
    const j = cols[e]!;
    let dot = 0;
    for (let r = 0; r < k; r++) dot += w[i * k + r]! * w[vOff + j * k + r]!;
    return dot - vals[e]!;
  };
  return {
    layout,
    init,
    async grad(w, t) {
      // Sum over the batch (not the mean): each factor row is touched by few entries of a batch.
      const g = new Float32Array(layout.size);
      const pick = mulberry32(cfg.seed * 100003 + t);
      for (let s = 0; s < cfg.batch; s++) {
        const e = Math.floor(pick() * vals.length);
        const i = rows[e]!;
        const j = cols[e]!;
        const d = err(w, e);
        for (let r = 0; r < k; r++) {
          const u = w[i * k + r]!;
          const v = w[vOff + j * k + r]!;
          g[i * k + r]! += d * v + MF.l2 * u;
          g[vOff + j * k + r]! += d * u + MF.l2 * v;
        }
      }
      return g;
    },
    loss(w) {
      let sum = 0;
      for (const e of probe) sum += err(w, e) ** 2;
      return sum / probe.length;
    },
    dispose() {},
  };
}

export async function makeWorkload(cfg: WorkloadConfig): Promise<Workload> {
  return cfg.model === 'mf-synthetic' ? mfWorkload(cfg) : tfjsWorkload(cfg);
}
