/**
 * The worker loop as a headless Node process (tfjs cpu backend, the `ws` socket): for tests,
 * load generation and machines without a browser. `tabswarm worker --url URL`.
 */
import * as tf from '@tensorflow/tfjs';
import WebSocket from 'ws';
import { MemoryCache } from './data.ts';
import { WorkerLoop, type LoopOptions, type WorkerStatus } from './loop.ts';
import { MemoryState, type StateStore } from './state.ts';
import type { SocketLike } from './transport.ts';

export interface NodeWorkerOptions extends LoopOptions {
  url: string;
  /** Where the worker keeps its buffer and identity. @default in memory, for this process */
  state?: StateStore;
  onStatus?: (s: Readonly<WorkerStatus>) => void;
  /** Every HTTP request the worker makes goes through it. @default the global fetch */
  fetch?: typeof fetch;
}

export async function createNodeWorker(opts: NodeWorkerOptions): Promise<WorkerLoop> {
  await tf.setBackend('cpu');
  await tf.ready();
  return new WorkerLoop(
    {
      tf,
      baseUrl: opts.url,
      backend: 'cpu',
      socket: (url) => new WebSocket(url) as unknown as SocketLike,
      cache: new MemoryCache(),
      state: opts.state ?? new MemoryState(),
      userAgent: `tabswarm-node-worker/${process.version}`,
      onStatus: opts.onStatus,
      fetch: opts.fetch,
    },
    opts,
  );
}
