/**
 * One model replica on whatever tfjs backend the host set up: load flat weights, compute the
 * flat gradient of a batch. No DOM, no sockets: the same code trains in a tab and in Node.
 * Every step's tensors are released (tf.memory().numTensors stays flat; tested).
 */
import type * as TF from '@tensorflow/tfjs';
import { crossEntropy, forward, normalisePixels, type Tf } from '../shared/forward.ts';
import { deriveLayout, type Layout } from '../shared/layout.ts';
import type { ModelSpec } from '../shared/models.ts';

export interface StepResult {
  /** The flat gradient, in layout order. */
  readonly grad: Float32Array;
  readonly loss: number;
}

export class Trainer {
  readonly layout: Layout;
  private weights: TF.Tensor[] = [];
  private readonly xBuffer: Float32Array;
  private readonly labelBuffer: Int32Array;
  private readonly lossAndGrads: (args: TF.Tensor[]) => { value: TF.Scalar; grads: TF.Tensor[] };
  private x: TF.Tensor4D | undefined;
  private y: TF.Tensor1D | undefined;

  constructor(private readonly tf: Tf, readonly model: ModelSpec, readonly batch: number) {
    this.layout = deriveLayout(model);
    const [h, w, c] = model.input;
    this.xBuffer = new Float32Array(batch * h * w * c);
    this.labelBuffer = new Int32Array(batch);
    // The batch tensors are read through closure fields so valueAndGrads is built once.
    this.lossAndGrads = tf.valueAndGrads((...ws: TF.Tensor[]) => crossEntropy(tf, forward(tf, model, ws, this.x!, true), this.y!, model.classes)) as never;
  }

  /** Replaces the replica's weights with a flat array in layout order. */
  setWeights(flat: Float32Array): void {
    if (flat.length !== this.layout.size) throw new RangeError(`Trainer.setWeights: got ${flat.length} values, layout ${this.layout.model} has ${this.layout.size}`);
    const next = this.layout.entries.map((e) => this.tf.tensor(flat.subarray(e.offset, e.offset + e.length), [...e.shape]));
    this.tf.dispose(this.weights);
    this.weights = next;
  }

  get hasWeights(): boolean {
    return this.weights.length > 0;
  }

  /**
   * The gradient of the mean loss over one batch.
   * @param pixels batch * pixelsPerExample uint8 pixels
   * @param labels batch integer labels
   */
  async step(pixels: Uint8Array, labels: Uint8Array): Promise<StepResult> {
    const { tf } = this;
    if (!this.hasWeights) throw new Error('Trainer.step: call setWeights first');
    if (labels.length !== this.batch) throw new RangeError(`Trainer.step: ${labels.length} labels for batch ${this.batch}`);
    const [h, w, c] = this.model.input;
    normalisePixels(pixels, this.xBuffer);
    for (let i = 0; i < labels.length; i++) this.labelBuffer[i] = labels[i]!;
    const [flat, value] = tf.tidy(() => {
      this.x = tf.tensor4d(this.xBuffer, [this.batch, h, w, c]);
      this.y = tf.tensor1d(this.labelBuffer, 'int32');
      const { value, grads } = this.lossAndGrads(this.weights);
      // One concatenated tensor: one device-to-host read per step.
      return [tf.concat(grads.map((g) => tf.reshape(g, [-1]))), value] as const;
    });
    this.x = undefined;
    this.y = undefined;
    try {
      const [grad, loss] = await Promise.all([flat.data() as Promise<Float32Array>, value.data()]);
      return { grad, loss: loss[0]! };
    } finally {
      flat.dispose();
      value.dispose();
    }
  }

  dispose(): void {
    this.tf.dispose(this.weights);
    this.weights = [];
  }
}
