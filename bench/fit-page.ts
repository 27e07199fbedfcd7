/**
 * Page script for bench/worker.ts (bundled by it with esbuild, never committed as a bundle):
 * the baseline, tfjs's own `model.fit`, on the same network as shared/models.ts builds, the
 * same backend and the same batch as the tabswarm worker loop it is compared with.
 *
 * window.benchFit(args) builds the model with tf.layers, trains it with model.fit on random
 * data until `seconds` have passed after `warmupBatches` untimed batches, and returns the
 * examples/s between the end of the last warm-up batch and the end of the last batch.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-webgpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { Trainer } from '../client/trainer.ts';
import { initWeights } from '../shared/layout.ts';
import type { ModelSpec } from '../shared/models.ts';

export interface FitArgs {
  readonly model: ModelSpec;
  readonly backend: string;
  readonly batch: number;
  readonly seconds: number;
  readonly warmupBatches: number;
}

export interface FitResult {
  readonly backend: string;
  readonly batches: number;
  readonly seconds: number;
  readonly examplesPerSec: number;
}

/** The same layers as shared/forward.ts: conv 'same' stride 1, pool size = stride, logits + softmax CE. */
function build(spec: ModelSpec, lr: number): tf.Sequential {
  const model = tf.sequential();
  let first = true;
  const input = (): { inputShape?: number[] } => (first ? ((first = false), { inputShape: [...spec.input] }) : {});
  const last = spec.layers.length - 1;
  spec.layers.forEach((l, i) => {
    switch (l.kind) {
      case 'conv2d':
        model.add(tf.layers.conv2d({ ...input(), filters: l.filters, kernelSize: l.kernel, padding: 'same', activation: l.activation }));
        break;
      case 'maxpool':
        model.add(tf.layers.maxPooling2d({ ...input(), poolSize: l.size, strides: l.size, padding: 'valid' }));
        break;
      case 'flatten':
        model.add(tf.layers.flatten(input()));
        break;
      case 'dense':
        // The last layer's logits go through softmax so that tfjs's categoricalCrossentropy
        // computes the same softmax cross-entropy as shared/forward.ts.
        model.add(tf.layers.dense({ ...input(), units: l.units, activation: i === last ? 'softmax' : l.activation }));
        break;
      case 'dropout':
        model.add(tf.layers.dropout({ ...input(), rate: l.rate }));
        break;
    }
  });
  model.compile({ optimizer: tf.train.sgd(lr), loss: 'categoricalCrossentropy' });
  return model;
}

async function benchFit(args: FitArgs): Promise<FitResult> {
  setWasmPaths('/wasm/');
  if (!(await tf.setBackend(args.backend))) throw new Error(`tf.setBackend('${args.backend}') returned false`);
  await tf.ready();
  const model = build(args.model, args.model.defaults.lr);
  // Random inputs in the worker's range [-1, 1] and random one-hot labels: eight batches that
  // fit cycles through (timing does not depend on the values).
  const n = 8 * args.batch;
  const x = tf.randomUniform([n, ...args.model.input], -1, 1);
  const y = tf.oneHot(tf.randomUniform([n], 0, args.model.classes, 'int32') as tf.Tensor1D, args.model.classes);
  let batches = 0;
  let timedFrom = 0;
  let last = 0;
  const started = performance.now();
  await model.fit(x, y, {
    batchSize: args.batch,
    epochs: 1_000_000,
    shuffle: false,
    verbose: 0,
    // 'never': no requestAnimationFrame pauses between batches, model.fit at its fastest.
    yieldEvery: 'never',
    callbacks: {
      // The logs are resolved before this runs (one device read per batch, as in our loop).
      onBatchEnd: async () => {
        batches += 1;
        last = performance.now();
        if (batches === args.warmupBatches) timedFrom = last;
        if (batches > args.warmupBatches && last - timedFrom >= args.seconds * 1000) model.stopTraining = true;
        if (batches <= args.warmupBatches && last - started > 120_000) model.stopTraining = true; // hopelessly slow
      },
    },
  });
  const timed = batches - args.warmupBatches;
  tf.dispose([x, y]);
  model.dispose();
  if (timed < 1) throw new Error(`model.fit: no timed batch on ${args.backend} (warm-up took ${((last - started) / 1000).toFixed(0)} s)`);
  const seconds = (last - timedFrom) / 1000;
  return { backend: tf.getBackend(), batches: timed, seconds, examplesPerSec: (timed * args.batch) / seconds };
}

export interface StepArgs extends FitArgs {
  /** Also upload fresh weights before every step, as the worker loop does after each pull. */
  readonly setWeights: boolean;
}

/**
 * The worker's compute alone, without the network: client/trainer.ts's Trainer.step (forward,
 * backward, one concatenated gradient read back) on random pixels, optionally preceded by
 * Trainer.setWeights (the upload that follows every pull in the loop). Timed like benchFit.
 */
async function benchStep(args: StepArgs): Promise<FitResult> {
  setWasmPaths('/wasm/');
  if (!(await tf.setBackend(args.backend))) throw new Error(`tf.setBackend('${args.backend}') returned false`);
  await tf.ready();
  const trainer = new Trainer(tf, args.model, args.batch);
  const weights = initWeights(trainer.layout, 1);
  trainer.setWeights(weights);
  const pixels = new Uint8Array(args.batch * args.model.input[0] * args.model.input[1] * args.model.input[2]);
  const labels = new Uint8Array(args.batch);
  for (let i = 0; i < pixels.length; i++) pixels[i] = (Math.random() * 256) | 0;
  for (let i = 0; i < labels.length; i++) labels[i] = (Math.random() * args.model.classes) | 0;
  let steps = 0;
  let timedFrom = 0;
  let last = performance.now();
  const started = last;
  while (steps <= args.warmupBatches || last - timedFrom < args.seconds * 1000) {
    if (args.setWeights) trainer.setWeights(weights);
    await trainer.step(pixels, labels);
    steps += 1;
    last = performance.now();
    if (steps === args.warmupBatches) timedFrom = last;
    if (steps <= args.warmupBatches && last - started > 120_000) throw new Error(`Trainer.step: warm-up took over 120 s on ${args.backend}`);
  }
  trainer.dispose();
  const timed = steps - args.warmupBatches;
  const seconds = (last - timedFrom) / 1000;
  return { backend: tf.getBackend(), batches: timed, seconds, examplesPerSec: (timed * args.batch) / seconds };
}

Object.assign(window, { benchFit, benchStep });
