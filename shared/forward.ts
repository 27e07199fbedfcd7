/**
 * The forward pass and loss, derived from the model spec, over weight tensors laid out as in
 * layout.ts. Written against the TensorFlow.js API only, so one definition trains in the
 * browser (webgpu/webgl/wasm/cpu), in a Node worker (cpu) and evaluates on the server (wasm).
 */
import type * as TF from '@tensorflow/tfjs';
import type { ModelSpec } from './models.ts';

export type Tf = typeof TF;

/**
 * @param weights one tensor per layout entry, in layout order
 * @param x a batch of inputs, [batch, height, width, channels], already normalised
 */
export function forward(tf: Tf, model: ModelSpec, weights: readonly TF.Tensor[], x: TF.Tensor4D, training: boolean): TF.Tensor2D {
  let h: TF.Tensor = x;
  let w = 0;
  const next = (): TF.Tensor => {
    const t = weights[w++];
    if (!t) throw new Error(`forward: model ${model.name} needs more weight tensors than the ${weights.length} given`);
    return t;
  };
  for (const layer of model.layers) {
    switch (layer.kind) {
      case 'conv2d': {
        const kernel = next() as TF.Tensor4D;
        const bias = next();
        h = tf.add(tf.conv2d(h as TF.Tensor4D, kernel, 1, 'same'), bias);
        if (layer.activation === 'relu') h = tf.relu(h);
        break;
      }
      case 'maxpool':
        h = tf.maxPool(h as TF.Tensor4D, layer.size, layer.size, 'valid');
        break;
      case 'flatten':
        h = tf.reshape(h, [h.shape[0]!, -1]);
        break;
      case 'dense': {
        const kernel = next() as TF.Tensor2D;
        const bias = next();
        h = tf.add(tf.matMul(h as TF.Tensor2D, kernel), bias);
        if (layer.activation === 'relu') h = tf.relu(h);
        break;
      }
      case 'dropout':
        if (training && layer.rate > 0) h = tf.dropout(h, layer.rate);
        break;
    }
  }
  return h as TF.Tensor2D;
}

/** Mean softmax cross-entropy of logits against integer labels. */
export function crossEntropy(tf: Tf, logits: TF.Tensor2D, labels: TF.Tensor1D, classes: number): TF.Scalar {
  const oneHot = tf.oneHot(labels, classes);
  return tf.losses.softmaxCrossEntropy(oneHot, logits) as TF.Scalar;
}

/**
 * Normalises uint8 pixels into a float batch the way the reference does (mean 0.5, std 0.5):
 * x = (p / 255 - 0.5) / 0.5. Writes into `out` so the hot loop allocates nothing.
 */
export function normalisePixels(pixels: Uint8Array, out: Float32Array): Float32Array {
  for (let i = 0; i < pixels.length; i++) out[i] = pixels[i]! / 127.5 - 1;
  return out;
}
