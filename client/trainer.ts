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
  /** A local step's gradient, computed and not yet applied (computeLocal, applyLocal). */
  private pending: TF.Tensor[] | undefined;
  /** The sum of the local phase's gradients, per tensor, on the backend. */
  private sums: TF.Tensor[] | undefined;
  /** The sum of the local phase's losses, on the backend. */
  private lossSum: TF.Scalar | undefined;
  /** Steps summed in `sums`. */
  localCount = 0;

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
    // One concatenated tensor: one device-to-host read per step.
    const [flat, value] = this.withGradients('step', pixels, labels, (value, grads) => [this.flatten(grads), value] as const);
    try {
      const [grad, loss] = await Promise.all([flat.data() as Promise<Float32Array>, value.data()]);
      return { grad, loss: loss[0]! };
    } finally {
      flat.dispose();
      value.dispose();
    }
  }

  /** The loss and gradients of one batch on the current weights, in one tidy: `keep` returns the tensors to keep. */
  private withGradients<T extends TF.TensorContainer>(caller: string, pixels: Uint8Array, labels: Uint8Array, keep: (value: TF.Scalar, grads: TF.Tensor[]) => T): T {
    const { tf } = this;
    if (!this.hasWeights) throw new Error(`Trainer.${caller}: call setWeights first`);
    if (labels.length !== this.batch) throw new RangeError(`Trainer.${caller}: ${labels.length} labels for batch ${this.batch}`);
    const [h, w, c] = this.model.input;
    normalisePixels(pixels, this.xBuffer);
    for (let i = 0; i < labels.length; i++) this.labelBuffer[i] = labels[i]!;
    try {
      return tf.tidy(() => {
        this.x = tf.tensor4d(this.xBuffer, [this.batch, h, w, c]);
        this.y = tf.tensor1d(this.labelBuffer, 'int32');
        const { value, grads } = this.lossAndGrads(this.weights);
        return keep(value, grads);
      });
    } finally {
      this.x = undefined;
      this.y = undefined;
    }
  }

  /** Tensors as one flat tensor, in their order (layout order for weights and gradients). */
  private flatten(tensors: TF.Tensor[]): TF.Tensor {
    return this.tf.tidy(() => this.tf.concat(tensors.map((t) => this.tf.reshape(t, [-1]))));
  }

  /**
   * A local step's first half (a run with local steps, client/local-phase.ts): the gradient of
   * one batch on the current weights, kept on the backend with its loss; nothing is read back.
   * Taking the step on the backend's own tensors is what lets H local steps cost about what
   * `model.fit` pays for H batches: no gradient read-back, no SGD over a host array, no weight
   * upload, and no wait for the device per step (a read of the loss is a pipeline stall on a GPU).
   */
  computeLocal(pixels: Uint8Array, labels: Uint8Array): void {
    const { tf } = this;
    const { value, grads } = this.withGradients('computeLocal', pixels, labels, (value, grads) => ({ value, grads }));
    if (this.pending) tf.dispose(this.pending);
    this.pending = grads;
    const lossSum = this.lossSum;
    this.lossSum = lossSum ? tf.tidy(() => tf.add(lossSum, value) as TF.Scalar) : value;
    if (lossSum) tf.dispose([lossSum, value]);
  }

  /**
   * The local step's second half: w <- w - lr * g on the current weights (which a pull may have
   * replaced since computeLocal: the step lands on those, as the host path did), and g added to
   * the phase's sum.
   */
  applyLocal(lr: number): void {
    const { tf } = this;
    const grads = this.pending;
    if (!grads) throw new Error('Trainer.applyLocal: no gradient computed (computeLocal)');
    this.pending = undefined;
    const weights = this.weights;
    const sums = this.sums;
    const next = tf.tidy(() => weights.map((w, i) => tf.keep(tf.sub(w, tf.mul(grads[i]!, lr)))));
    this.sums = sums ? tf.tidy(() => sums.map((sum, i) => tf.keep(tf.add(sum, grads[i]!)))) : grads;
    if (sums) tf.dispose([...sums, ...grads]);
    tf.dispose(weights);
    this.weights = next;
    this.localCount += 1;
  }

  /**
   * The local phase's gradient sum, in layout order, and the mean loss of the batches it
   * computed (NaN for none), read back together; a new phase begun.
   */
  async takeLocal(): Promise<{ sum: Float32Array; loss: number }> {
    const { tf } = this;
    const { sums, lossSum } = this;
    const computed = this.localCount + (this.pending ? 1 : 0);
    this.sums = this.lossSum = undefined;
    this.localCount = 0;
    const flat = sums ? this.flatten(sums) : undefined;
    if (sums) tf.dispose(sums);
    try {
      const [sum, loss] = await Promise.all([flat ? (flat.data() as Promise<Float32Array>) : new Float32Array(this.layout.size), lossSum?.data()]);
      return { sum, loss: loss ? loss[0]! / computed : Number.NaN };
    } finally {
      flat?.dispose();
      lossSum?.dispose();
    }
  }

  /** The current weights, read back in layout order (an outage carries on from a local phase's copy). */
  async readWeights(): Promise<Float32Array> {
    if (!this.hasWeights) throw new Error('Trainer.readWeights: no weights');
    const flat = this.flatten(this.weights);
    try {
      return (await flat.data()) as Float32Array;
    } finally {
      flat.dispose();
    }
  }

  dispose(): void {
    this.tf.dispose(this.weights);
    this.weights = [];
    if (this.pending) this.tf.dispose(this.pending);
    if (this.sums) this.tf.dispose(this.sums);
    this.lossSum?.dispose();
    this.pending = this.sums = this.lossSum = undefined;
    this.localCount = 0;
  }
}
