/**
 * Periodic test-set evaluation in a worker_thread, so the PS event loop never waits on it.
 * At most one evaluation is in flight; a tick that finds one running is skipped, not queued.
 * Results form the run's time series (served at /api/series).
 */
import { Worker } from 'node:worker_threads';
import type { SeriesPoint } from '../../shared/api.ts';
import type { Split } from '../data.ts';

export interface EvalInit {
  readonly model: string;
  readonly backend: 'wasm' | 'cpu';
  readonly pixelsPerExample: number;
  readonly count: number;
  readonly labels: Uint8Array;
  readonly pixels: Uint8Array;
}

export interface EvalRequest {
  readonly version: number;
  readonly weights: Float32Array;
}

export interface EvalResult {
  readonly version: number;
  readonly accuracy: number;
  readonly loss: number;
  readonly examples: number;
  /** Wall time of the evaluation in the thread. */
  readonly ms: number;
}

/** One evaluation as GET /api/series serves it: declared once, in shared/api.ts. */
export type { SeriesPoint } from '../../shared/api.ts';

export interface EvaluatorOptions {
  model: string;
  test: Split;
  pixelsPerExample: number;
  /** Evaluate on the first N test examples. @default all */
  examples?: number;
  /** tfjs backend in the thread. @default 'wasm' */
  backend?: 'wasm' | 'cpu';
}

export class Evaluator {
  private readonly worker: Worker;
  private pending: { resolve: (r: EvalResult) => void; reject: (e: Error) => void } | undefined;
  private closed = false;

  constructor(opts: EvaluatorOptions) {
    const count = Math.min(opts.examples ?? opts.test.count, opts.test.count);
    const init: EvalInit = {
      model: opts.model,
      backend: opts.backend ?? 'wasm',
      pixelsPerExample: opts.pixelsPerExample,
      count,
      labels: opts.test.labels.slice(0, count),
      pixels: opts.test.pixels.slice(0, count * opts.pixelsPerExample),
    };
    this.worker = new Worker(new URL('./thread.mjs', import.meta.url), { workerData: init });
    this.worker.on('message', (msg: { ok: true; result: EvalResult } | { ok: false; error: string }) => {
      const p = this.pending;
      this.pending = undefined;
      if (!p) return;
      if (msg.ok) p.resolve(msg.result);
      else p.reject(new Error(msg.error));
    });
    this.worker.on('error', (err) => {
      this.pending?.reject(err);
      this.pending = undefined;
    });
    this.worker.unref();
  }

  get busy(): boolean {
    return this.pending !== undefined;
  }

  /** Evaluates a copy of the weights. Rejects if an evaluation is already running. */
  evaluate(version: number, weights: Float32Array): Promise<EvalResult> {
    if (this.closed) return Promise.reject(new Error('Evaluator.evaluate: the evaluator is closed'));
    if (this.pending) return Promise.reject(new Error('Evaluator.evaluate: an evaluation is already in flight'));
    const copy = Float32Array.from(weights);
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.worker.postMessage({ version, weights: copy } satisfies EvalRequest, [copy.buffer]);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.pending?.reject(new Error('Evaluator closed'));
    this.pending = undefined;
    await this.worker.terminate();
  }
}
