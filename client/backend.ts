/**
 * Picks the page's tfjs backend: the one asked for (?backend=...), or with 'auto' the first of
 * webgpu, webgl, wasm, cpu that initialises and can train the model, recording why each
 * earlier one was passed over. tfjs-wasm has no Conv2DBackpropFilter, so conv models never
 * train on wasm: say so rather than fail deep inside a step.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-webgpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { TabswarmError } from '../shared/errors.ts';
import { getModel, hasConvolutions } from '../shared/models.ts';

export const BACKENDS = ['webgpu', 'webgl', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];

export interface BackendChoice {
  readonly backend: BackendName;
  /** Why each backend tried before it was passed over. */
  readonly skipped: readonly string[];
}

export function cannotTrain(backend: string, model: string): string | undefined {
  if (backend === 'wasm' && hasConvolutions(getModel(model))) return 'tfjs-wasm has no Conv2DBackpropFilter kernel, so convolution gradients cannot be computed';
  return undefined;
}

export async function chooseBackend(requested: string, model: string): Promise<BackendChoice> {
  if (requested !== 'auto' && !(BACKENDS as readonly string[]).includes(requested)) {
    throw new TabswarmError('CONFIG_INVALID', { option: 'backend', detail: `'${requested}' is not one of auto, ${BACKENDS.join(', ')}` });
  }
  const order: readonly BackendName[] = requested === 'auto' ? BACKENDS : [requested as BackendName];
  const skipped: string[] = [];
  setWasmPaths('/wasm/');
  for (const backend of order) {
    const reason = cannotTrain(backend, model) ?? (await unavailable(backend));
    if (reason === undefined) return { backend, skipped };
    skipped.push(`${backend}: ${reason}`);
  }
  throw new TabswarmError('WORKER_BACKEND_UNSUPPORTED', { backend: requested, model, reason: skipped.join('; ') });
}

async function unavailable(backend: BackendName): Promise<string | undefined> {
  if (backend === 'webgpu' && !('gpu' in navigator)) return 'navigator.gpu is missing (no WebGPU in this browser, or not enabled)';
  if (backend === 'webgpu') {
    const adapter = await (navigator as unknown as { gpu: { requestAdapter(): Promise<unknown> } }).gpu.requestAdapter().catch(() => null);
    if (!adapter) return 'navigator.gpu.requestAdapter() returned no adapter';
  }
  try {
    if (await tf.setBackend(backend)) {
      await tf.ready();
      return undefined;
    }
    return 'tf.setBackend returned false';
  } catch (err) {
    return `initialisation failed: ${(err as Error).message}`;
  }
}
