/**
 * The evaluation worker_thread: test accuracy and loss on the tfjs wasm backend, off the PS
 * event loop. Receives the test split once, then weights to evaluate; answers one at a time.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { crossEntropy, forward, normalisePixels } from '../../shared/forward.ts';
import { deriveLayout } from '../../shared/layout.ts';
import { getModel } from '../../shared/models.ts';
import type { EvalInit, EvalRequest, EvalResult } from './evaluator.ts';

const init = workerData as EvalInit;
const model = getModel(init.model);
const layout = deriveLayout(model);
const require = createRequire(import.meta.url);
setWasmPaths(join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + '/');
const ready = tf.setBackend(init.backend).then(async (ok) => {
  if (!ok) throw new Error(`evaluator: tfjs backend '${init.backend}' failed to initialise`);
  await tf.ready();
});

const ppe = init.pixelsPerExample;
const [h, w, c] = model.input;
const batchSize = 500;
const scratch = new Float32Array(batchSize * ppe);

async function evaluate(req: EvalRequest): Promise<EvalResult> {
  await ready;
  const started = performance.now();
  const weights = layout.entries.map((e) => tf.tensor(req.weights.subarray(e.offset, e.offset + e.length), [...e.shape]));
  let correct = 0;
  let lossSum = 0;
  try {
    for (let start = 0; start < init.count; start += batchSize) {
      const n = Math.min(batchSize, init.count - start);
      const x = normalisePixels(init.pixels.subarray(start * ppe, (start + n) * ppe), scratch.subarray(0, n * ppe));
      const [lossT, hitsT] = tf.tidy(() => {
        const logits = forward(tf, model, weights, tf.tensor4d(x, [n, h, w, c]), false);
        const labels = tf.tensor1d(init.labels.subarray(start, start + n), 'int32');
        const loss = tf.mul(crossEntropy(tf, logits, labels, model.classes), n);
        const hits = tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), labels), 'int32'));
        return [loss, hits];
      });
      lossSum += (await lossT.data())[0]!;
      correct += (await hitsT.data())[0]!;
      lossT.dispose();
      hitsT.dispose();
    }
  } finally {
    tf.dispose(weights);
  }
  return { version: req.version, accuracy: correct / init.count, loss: lossSum / init.count, examples: init.count, ms: performance.now() - started };
}

parentPort!.on('message', (req: EvalRequest) => {
  evaluate(req).then(
    (result) => parentPort!.postMessage({ ok: true, result }),
    (err: unknown) => parentPort!.postMessage({ ok: false, error: err instanceof Error ? err.message : String(err) }),
  );
});
