/**
 * Picks the page's tfjs backend: the one asked for (?backend=...), or with 'auto' the fastest
 * by measurement. Assuming "webgpu first" is wrong on a machine without a GPU: there WebGPU runs
 * on a software adapter (SwiftShader), about ten times slower than WebGL for mnist-mlp. So
 * `auto` initialises each of webgpu, webgl and wasm that can train the model, times a few real
 * training steps of the run's model and batch on each (bounded: see TIMING), and keeps the most
 * examples per second; cpu is the fallback when none of them works. The choice carries a
 * one-line reason, shown on the page and reported to the PS (/api/status `backendReason`).
 * tfjs-wasm has no Conv2DBackpropFilter, so conv models never train on wasm: say so rather
 * than fail deep inside a step.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-webgpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { TabswarmError } from '../shared/errors.ts';
import { initWeights, mulberry32 } from '../shared/layout.ts';
import { getModel, hasConvolutions } from '../shared/models.ts';
import { Trainer } from './trainer.ts';

export const BACKENDS = ['webgpu', 'webgl', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];
/** The backends `auto` races; cpu only when none of them initialises. */
const RACED: readonly BackendName[] = ['webgpu', 'webgl', 'wasm'];

/** How long `auto` may time one backend, after one untimed warm-up step (shader compilation). */
export const TIMING = { minSteps: 2, maxSteps: 8, budgetMs: 600 } as const;

export interface BackendTiming {
  readonly backend: BackendName;
  readonly examplesPerSec: number;
  /** e.g. "software adapter (swiftshader)" for a WebGPU without a GPU. */
  readonly note?: string;
}

export interface BackendChoice {
  readonly backend: BackendName;
  /** Why each backend was passed over (not available, cannot train, or slower). */
  readonly skipped: readonly string[];
  /** Why this backend: asked for, or the measured race. One line, at most 300 characters. */
  readonly reason: string;
  /** With 'auto': what each raced backend measured. */
  readonly timings: readonly BackendTiming[];
}

export function cannotTrain(backend: string, model: string): string | undefined {
  if (backend === 'wasm' && hasConvolutions(getModel(model))) return 'tfjs-wasm has no Conv2DBackpropFilter kernel, so convolution gradients cannot be computed';
  return undefined;
}

export async function chooseBackend(requested: string, model: string, batch = getModel(model).defaults.batch): Promise<BackendChoice> {
  if (requested !== 'auto' && !(BACKENDS as readonly string[]).includes(requested)) {
    throw new TabswarmError('CONFIG_INVALID', { option: 'backend', detail: `'${requested}' is not one of auto, ${BACKENDS.join(', ')}` });
  }
  setWasmPaths('/wasm/');
  const skipped: string[] = [];
  if (requested !== 'auto') {
    const backend = requested as BackendName;
    const reason = cannotTrain(backend, model) ?? (await unavailable(backend)).reason;
    if (reason !== undefined) throw new TabswarmError('WORKER_BACKEND_UNSUPPORTED', { backend, model, reason });
    return { backend, skipped, reason: `${backend}: asked for (?backend=${backend})`, timings: [] };
  }
  const timings: BackendTiming[] = [];
  for (const backend of RACED) {
    const cannot = cannotTrain(backend, model);
    const { reason, note } = cannot !== undefined ? { reason: cannot, note: undefined } : await unavailable(backend);
    if (reason !== undefined) {
      skipped.push(`${backend}: ${reason}`);
      continue;
    }
    try {
      timings.push({ backend, examplesPerSec: await timeSteps(model, batch), ...(note ? { note } : {}) });
    } catch (err) {
      skipped.push(`${backend}: a training step failed (${(err as Error).message})`);
    }
  }
  const best = [...timings].sort((a, b) => b.examplesPerSec - a.examplesPerSec)[0];
  const race = timings.map((t) => `${t.backend} ${Math.round(t.examplesPerSec)}${t.note ? ` (${t.note})` : ''}`).join(', ');
  if (best) {
    for (const t of timings) if (t !== best) skipped.push(`${t.backend}: slower (${Math.round(t.examplesPerSec)} examples/s${t.note ? `, ${t.note}` : ''})`);
    if (!(await tf.setBackend(best.backend))) throw new TabswarmError('WORKER_BACKEND_UNSUPPORTED', { backend: best.backend, model, reason: 'tf.setBackend returned false on the second call' });
    await tf.ready();
    const reason = timings.length > 1 ? `auto: fastest measured, examples/s ${race}` : `auto: the only backend that trains here (${race} examples/s)`;
    return { backend: best.backend, skipped, reason: reason.slice(0, 300), timings };
  }
  const cpu = (await unavailable('cpu')).reason;
  if (cpu === undefined) return { backend: 'cpu', skipped, reason: 'auto: cpu, since no faster backend initialised', timings };
  skipped.push(`cpu: ${cpu}`);
  throw new TabswarmError('WORKER_BACKEND_UNSUPPORTED', { backend: requested, model, reason: skipped.join('; ') });
}

/** Examples per second of real training steps of `model` on the current backend. */
async function timeSteps(modelName: string, batch: number): Promise<number> {
  const model = getModel(modelName);
  const trainer = new Trainer(tf, model, batch);
  try {
    trainer.setWeights(initWeights(trainer.layout, 1));
    const rand = mulberry32(7);
    const pixels = Uint8Array.from({ length: batch * model.input[0] * model.input[1] * model.input[2] }, () => Math.floor(rand() * 256));
    const labels = Uint8Array.from({ length: batch }, () => Math.floor(rand() * model.classes));
    await trainer.step(pixels, labels); // warm-up: kernels and shaders compile here
    const started = performance.now();
    let steps = 0;
    while (steps < TIMING.minSteps || (steps < TIMING.maxSteps && performance.now() - started < TIMING.budgetMs)) {
      await trainer.step(pixels, labels);
      steps++;
    }
    return (steps * batch * 1000) / Math.max(1, performance.now() - started);
  } finally {
    trainer.dispose();
  }
}

interface Availability {
  readonly reason?: string;
  readonly note?: string;
}

async function unavailable(backend: BackendName): Promise<Availability> {
  let note: string | undefined;
  if (backend === 'webgpu') {
    if (!('gpu' in navigator)) return { reason: 'navigator.gpu is missing (no WebGPU in this browser, or not enabled)' };
    const adapter = await (navigator as unknown as { gpu: { requestAdapter(): Promise<GpuAdapterLike | null> } }).gpu.requestAdapter().catch(() => null);
    if (!adapter) return { reason: 'navigator.gpu.requestAdapter() returned no adapter' };
    note = await softwareAdapter(adapter);
  }
  try {
    if (await tf.setBackend(backend)) {
      await tf.ready();
      return note ? { note } : {};
    }
    return { reason: 'tf.setBackend returned false' };
  } catch (err) {
    return { reason: `initialisation failed: ${(err as Error).message}` };
  }
}

interface GpuAdapterInfoLike { vendor?: string; architecture?: string; device?: string; description?: string }
interface GpuAdapterLike { isFallbackAdapter?: boolean; info?: GpuAdapterInfoLike; requestAdapterInfo?: () => Promise<GpuAdapterInfoLike> }

/** "software adapter (...)" when WebGPU runs without a GPU (SwiftShader, llvmpipe, a fallback adapter). */
async function softwareAdapter(adapter: GpuAdapterLike): Promise<string | undefined> {
  const info = adapter.info ?? (await adapter.requestAdapterInfo?.().catch(() => undefined));
  const words = [info?.vendor, info?.architecture, info?.device, info?.description].filter(Boolean).join(' ');
  if (adapter.isFallbackAdapter || /swiftshader|llvmpipe|software|basic render/i.test(words)) return `software adapter${words ? ` (${words.trim().slice(0, 40)})` : ''}`;
  return undefined;
}
