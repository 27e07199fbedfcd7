/**
 * One Trainer suite for every tfjs backend, as tfjs's `describeWithFlags` (jasmine_util.ts) runs
 * one suite per backend: Node runs it on cpu and wasm (client/trainer.test.ts), Chromium on
 * webgl and webgpu (test/browser.test.ts, bundled into the page). So it imports neither node:
 * modules nor an assertion library: a case throws an Error to fail and returns a line of
 * measurements to log.
 *
 * For each registered model the backend can train (tfjs-wasm lacks Conv2DBackpropFilter, so
 * the CNN skips wasm, as client/backend.ts's cannotTrain says):
 *   - the gradient matches central finite differences of the loss, tensor by tensor;
 *   - off cpu, the gradient agrees with the cpu backend's on the same weights and batch;
 *   - a few SGD steps on real MNIST lower the loss, and tf.memory().numTensors stays flat.
 */
import { crossEntropy, forward, normalisePixels, type Tf } from '../shared/forward.ts';
import { deriveLayout, initWeights, type Layout } from '../shared/layout.ts';
import { MODEL_NAMES, getModel, type ModelSpec } from '../shared/models.ts';
import { cannotTrain } from './backend.ts';
import { Trainer } from './trainer.ts';

/** Real MNIST examples, in the shard layout: `labels.length` examples of 784 uint8 pixels. */
export interface MnistSample {
  readonly pixels: Uint8Array;
  readonly labels: Uint8Array;
}

export interface SuiteCase {
  readonly name: string;
  /** Throws to fail; resolves to the measurements, for the log. */
  run(tf: Tf, sample: MnistSample): Promise<string>;
}

/**
 * Per model: the batch of the gradient checks, and the SGD run (batch, steps, learning rate).
 * The CNN runs small batches: the cpu backend takes about 0.2 s per example for its gradient.
 * The rates are below the models' defaults: plain SGD on one repeated batch without the PS's
 * averaging diverges at 0.1 on these inputs (pixels in [-1, 1]).
 */
const PLAN: Record<string, { gradBatch: number; sgdBatch: number; steps: number; lr: number }> = {
  'mnist-logreg': { gradBatch: 32, sgdBatch: 64, steps: 8, lr: 0.01 },
  'mnist-mlp': { gradBatch: 32, sgdBatch: 64, steps: 8, lr: 0.02 },
  'fashion-cnn': { gradBatch: 4, sgdBatch: 4, steps: 4, lr: 0.05 },
};
const DEFAULT_PLAN = { gradBatch: 8, sgdBatch: 16, steps: 4, lr: 0.01 };

/**
 * Finite differences: step h along the unit direction of each tensor's gradient. Float32 losses
 * carry about 1e-6 of rounding, so the central difference is off by about 1e-6 / h; the check
 * allows FD_RELATIVE of the derivative plus FD_ABSOLUTE. Every tensor's gradient norm is 0.25
 * or more at these weights, so the absolute term is under 1% of it; measured errors are 2e-2 at
 * most (the first conv bias), most below 3e-3.
 */
const FD_STEP = 1e-2;
const FD_RELATIVE = 0.05;
const FD_ABSOLUTE = 2e-3;

/**
 * Largest relative L2 distance ||g - g_cpu|| / ||g_cpu|| allowed per backend: float32 kernels
 * that sum in other orders. Measured here (SwiftShader for webgl and webgpu): about 4e-7 on
 * every backend; the GPU bounds leave room for real GPUs' fused and reordered arithmetic.
 */
export const CPU_AGREEMENT: Readonly<Record<string, number>> = { wasm: 1e-4, webgl: 1e-3, webgpu: 1e-3 };

/** The SGD run must end at most this fraction of its first loss. */
const SGD_DROP = 0.8;

function check(ok: boolean, message: () => string): asserts ok {
  if (!ok) throw new Error(message());
}

/** The model with dropout at rate 0: same layout, deterministic loss (finite differences need one). */
function withoutDropout(model: ModelSpec): ModelSpec {
  return { ...model, layers: model.layers.map((l) => (l.kind === 'dropout' ? { ...l, rate: 0 } : l)) };
}

async function use(tf: Tf, backend: string): Promise<void> {
  if (tf.getBackend() === backend) return;
  if (!(await tf.setBackend(backend))) throw new Error(`trainer suite: tfjs backend '${backend}' did not initialise`);
  await tf.ready();
  check(tf.getBackend() === backend, () => `trainer suite: asked for '${backend}', tfjs runs '${tf.getBackend()}'`);
}

async function gradient(tf: Tf, model: ModelSpec, weights: Float32Array, sample: MnistSample, batch: number): Promise<{ grad: Float32Array; loss: number }> {
  const trainer = new Trainer(tf, model, batch);
  try {
    trainer.setWeights(weights);
    return await trainer.step(sample.pixels.subarray(0, batch * 784), sample.labels.subarray(0, batch));
  } finally {
    trainer.dispose();
  }
}

/** The loss the Trainer differentiates (shared/forward.ts), at `weights`, without a gradient. */
async function loss(tf: Tf, model: ModelSpec, layout: Layout, weights: Float32Array, x: Float32Array, labels: Uint8Array): Promise<number> {
  const [h, w, c] = model.input;
  const value = tf.tidy(() => {
    const ws = layout.entries.map((e) => tf.tensor(weights.subarray(e.offset, e.offset + e.length), [...e.shape]));
    const xs = tf.tensor4d(x, [labels.length, h, w, c]);
    const ys = tf.tensor1d(Int32Array.from(labels), 'int32');
    return crossEntropy(tf, forward(tf, model, ws, xs, true), ys, model.classes);
  });
  try {
    // data(), not dataSync(): WebGPU has no synchronous read, and its device is lost on one.
    return (await value.data())[0]!;
  } finally {
    value.dispose();
  }
}

function norm(a: Float32Array, from = 0, to = a.length): number {
  let s = 0;
  for (let i = from; i < to; i++) s += a[i]! * a[i]!;
  return Math.sqrt(s);
}

async function finiteDifferences(tf: Tf, backend: string, name: string, sample: MnistSample): Promise<string> {
  await use(tf, backend);
  const model = withoutDropout(getModel(name));
  const layout = deriveLayout(model);
  const { gradBatch: batch } = PLAN[name] ?? DEFAULT_PLAN;
  const weights = initWeights(layout, 11);
  const { grad } = await gradient(tf, model, weights, sample, batch);
  const x = normalisePixels(sample.pixels.subarray(0, batch * 784), new Float32Array(batch * 784));
  const labels = sample.labels.subarray(0, batch);
  const worst: string[] = [];
  for (const e of layout.entries) {
    const g = norm(grad, e.offset, e.offset + e.length);
    if (g < 1e-6) continue; // a tensor with no gradient on this batch has no direction to test
    const moved = weights.slice();
    for (let i = e.offset; i < e.offset + e.length; i++) moved[i] = weights[i]! + (FD_STEP * grad[i]!) / g;
    const up = await loss(tf, model, layout, moved, x, labels);
    for (let i = e.offset; i < e.offset + e.length; i++) moved[i] = weights[i]! - (FD_STEP * grad[i]!) / g;
    const down = await loss(tf, model, layout, moved, x, labels);
    // Along the unit gradient direction the derivative is the gradient's norm.
    const fd = (up - down) / (2 * FD_STEP);
    check(Math.abs(fd - g) <= FD_RELATIVE * g + FD_ABSOLUTE, () => `${backend} ${name} ${e.name}: finite difference ${fd.toExponential(4)}, gradient norm ${g.toExponential(4)}`);
    worst.push(`${e.name} ${(Math.abs(fd - g) / g).toExponential(1)}`);
  }
  check(worst.length > 0, () => `${backend} ${name}: the gradient is zero everywhere`);
  return `relative error per tensor: ${worst.join(', ')}`;
}

async function agreesWithCpu(tf: Tf, backend: string, name: string, sample: MnistSample): Promise<string> {
  const model = withoutDropout(getModel(name));
  const { gradBatch: batch } = PLAN[name] ?? DEFAULT_PLAN;
  const weights = initWeights(deriveLayout(model), 12);
  await use(tf, 'cpu');
  const reference = await gradient(tf, model, weights, sample, batch);
  await use(tf, backend);
  const got = await gradient(tf, model, weights, sample, batch);
  const diff = new Float32Array(got.grad.length);
  for (let i = 0; i < diff.length; i++) diff[i] = got.grad[i]! - reference.grad[i]!;
  const relative = norm(diff) / norm(reference.grad);
  const bound = CPU_AGREEMENT[backend] ?? 1e-3;
  check(relative <= bound, () => `${backend} ${name}: gradient differs from cpu by ${relative.toExponential(3)} (relative L2), bound ${bound}`);
  check(Math.abs(got.loss - reference.loss) <= bound * Math.abs(reference.loss), () => `${backend} ${name}: loss ${got.loss}, cpu ${reference.loss}`);
  return `relative L2 distance to cpu ${relative.toExponential(2)} (bound ${bound})`;
}

async function sgdLowersLoss(tf: Tf, backend: string, name: string, sample: MnistSample): Promise<string> {
  await use(tf, backend);
  const model = getModel(name);
  const { sgdBatch: batch, steps, lr } = PLAN[name] ?? DEFAULT_PLAN;
  const before = tf.memory().numTensors;
  const trainer = new Trainer(tf, model, batch);
  const weights = initWeights(trainer.layout, 13);
  const losses: number[] = [];
  const tensors: number[] = [];
  try {
    for (let s = 0; s < steps; s++) {
      trainer.setWeights(weights);
      const { grad, loss } = await trainer.step(sample.pixels.subarray(0, batch * 784), sample.labels.subarray(0, batch));
      check(Number.isFinite(loss), () => `${backend} ${name}: loss ${loss} at step ${s}`);
      for (let i = 0; i < weights.length; i++) weights[i] = weights[i]! - lr * grad[i]!;
      losses.push(loss);
      tensors.push(tf.memory().numTensors);
    }
  } finally {
    trainer.dispose();
  }
  const first = losses[0]!;
  const last = losses.at(-1)!;
  check(last <= SGD_DROP * first, () => `${backend} ${name}: loss ${losses.map((l) => l.toFixed(3)).join(' -> ')} did not fall to ${SGD_DROP} of its start`);
  check(tensors.every((n) => n === tensors[0]), () => `${backend} ${name}: numTensors per step ${tensors.join(', ')}`);
  check(tensors[0] === before + trainer.layout.entries.length, () => `${backend} ${name}: ${tensors[0]} tensors during training, ${before} before, ${trainer.layout.entries.length} weights`);
  check(tf.memory().numTensors === before, () => `${backend} ${name}: ${tf.memory().numTensors} tensors after dispose, ${before} before`);
  return `loss ${losses.map((l) => l.toFixed(3)).join(' -> ')}; numTensors ${tensors[0]} at every step`;
}

/**
 * Local steps on the backend (computeLocal / applyLocal / takeLocalSum, what a run with H > 1
 * takes) against the same steps on the host (step, SGD over the flat array, setWeights): the
 * gradient sum and the end weights agree within LOCAL_AGREEMENT (relative L2; float32 rounding
 * of w - lr g on the backend against on the host, carried through the later gradients), and the
 * phase leaves no tensor behind.
 */
const LOCAL_AGREEMENT = 1e-4;

async function localStepsMatchHost(tf: Tf, backend: string, name: string, sample: MnistSample): Promise<string> {
  await use(tf, backend);
  const model = withoutDropout(getModel(name));
  const { sgdBatch: batch, steps, lr } = PLAN[name] ?? DEFAULT_PLAN;
  const start = initWeights(deriveLayout(model), 14);
  const batchOf = (s: number) => {
    const from = (s * batch) % Math.max(1, sample.labels.length - batch);
    return { pixels: sample.pixels.subarray(from * 784, (from + batch) * 784), labels: sample.labels.subarray(from, from + batch) };
  };
  const before = tf.memory().numTensors;
  const host = new Trainer(tf, model, batch);
  const device = new Trainer(tf, model, batch);
  try {
    const weights = start.slice();
    const sum = new Float32Array(weights.length);
    let hostLoss = 0;
    host.setWeights(weights);
    device.setWeights(start);
    for (let s = 0; s < steps; s++) {
      const { pixels, labels } = batchOf(s);
      const { grad, loss } = await host.step(pixels, labels);
      for (let i = 0; i < weights.length; i++) {
        weights[i] = weights[i]! - lr * grad[i]!;
        sum[i] = sum[i]! + grad[i]!;
      }
      host.setWeights(weights);
      hostLoss += loss / steps;
      device.computeLocal(pixels, labels);
      device.applyLocal(lr);
    }
    check(device.localCount === steps, () => `${backend} ${name}: ${device.localCount} local steps counted, ${steps} taken`);
    const own = await device.readWeights();
    const { sum: got, loss: meanLoss } = await device.takeLocal();
    check(device.localCount === 0, () => `${backend} ${name}: taking the sum did not end the phase`);
    check(Math.abs(meanLoss - hostLoss) <= LOCAL_AGREEMENT * Math.abs(hostLoss) + 1e-6, () => `${backend} ${name}: the phase's mean loss ${meanLoss} on the backend, ${hostLoss} on the host`);
    const rel = (a: Float32Array, b: Float32Array) => {
      let d = 0;
      for (let i = 0; i < a.length; i++) d += (a[i]! - b[i]!) ** 2;
      return Math.sqrt(d) / norm(b);
    };
    const sumError = rel(got, sum);
    const weightError = rel(own, weights);
    check(sumError <= LOCAL_AGREEMENT, () => `${backend} ${name}: local gradient sum differs from the host's by ${sumError.toExponential(3)}`);
    check(weightError <= LOCAL_AGREEMENT, () => `${backend} ${name}: local weights differ from the host's by ${weightError.toExponential(3)}`);
    const empty = await device.takeLocal();
    check(empty.sum.length === sum.length && empty.sum.every((v) => v === 0) && Number.isNaN(empty.loss), () => `${backend} ${name}: a phase of no steps sums to something`);
    return `${steps} steps: sum ${sumError.toExponential(2)}, weights ${weightError.toExponential(2)} from the host's (bound ${LOCAL_AGREEMENT})`;
  } finally {
    host.dispose();
    device.dispose();
    check(tf.memory().numTensors === before, () => `${backend} ${name}: ${tf.memory().numTensors} tensors after dispose, ${before} before`);
  }
}

/**
 * The cases for one backend, named the same wherever they run (a host lists them by name and
 * runs each as its own test). `run` needs the backend registered (and, for wasm, its paths set).
 */
export function trainerSuite(backend: string): SuiteCase[] {
  const cases: SuiteCase[] = [];
  for (const name of MODEL_NAMES) {
    if (cannotTrain(backend, name) !== undefined) continue;
    cases.push({ name: `${name}: the gradient matches finite differences of the loss, tensor by tensor`, run: (tf, sample) => finiteDifferences(tf, backend, name, sample) });
    if (backend !== 'cpu') cases.push({ name: `${name}: the gradient agrees with the cpu backend's`, run: (tf, sample) => agreesWithCpu(tf, backend, name, sample) });
    const steps = PLAN[name]?.steps ?? DEFAULT_PLAN.steps;
    cases.push({ name: `${name}: ${steps} SGD steps on MNIST lower the loss; numTensors stays flat`, run: (tf, sample) => sgdLowersLoss(tf, backend, name, sample) });
    cases.push({ name: `${name}: local steps on the backend match the same steps on the host`, run: (tf, sample) => localStepsMatchHost(tf, backend, name, sample) });
  }
  return cases;
}
