/**
 * The worker page: opening http://HOST:PORT/ joins the PS as a worker. Shows backend, examples/s,
 * steps, server version and connection state; `window.tabswarm` exposes the same for tests.
 */
import * as tf from '@tensorflow/tfjs';
import { TabswarmError } from '../shared/errors.ts';
import { chooseBackend, cannotTrain } from './backend.ts';
import { IdbCache, IdbState } from './idb.ts';
import { WorkerLoop, type WorkerStatus } from './loop.ts';
import type { SocketLike } from './transport.ts';

interface PageState {
  status?: WorkerStatus;
  backend?: string;
  backendNotes?: readonly string[];
  error?: string;
}

declare global {
  interface Window {
    tabswarm: PageState;
  }
}

const page: PageState = {};
window.tabswarm = page;

const $ = (id: string) => document.getElementById(id)!;

function render(): void {
  const s = page.status;
  $('backend').textContent = page.backend ?? '...';
  $('backend-notes').textContent = page.backendNotes?.length ? `(passed over: ${page.backendNotes.join('; ')})` : '';
  $('state').textContent = s?.state ?? 'starting';
  $('worker').textContent = s?.workerId ? String(s.workerId) : '-';
  $('steps').textContent = String(s?.steps ?? 0);
  $('eps').textContent = (s?.examplesPerSec ?? 0).toFixed(1);
  $('version').textContent = String(s?.serverVersion ?? 0);
  $('loss').textContent = s && Number.isFinite(s.loss) ? s.loss.toFixed(4) : '-';
  $('shards').textContent = s?.shards.length ? `${s.shards.join(', ')} (${s.examples} examples)` : '-';
  $('tensors').textContent = String(s?.numTensors ?? 0);
  $('buffer').textContent = s?.buffered ? `${s.buffered} gradients since ${new Date(s.bufferedSince).toLocaleTimeString()} (${s.bufferMode})` : 'empty';
  const f = s?.lastFlush;
  $('flush').textContent = f ? `${f.count} gradients, seq ${f.seq}, ${f.duplicate ? 'already applied (acknowledged again)' : `applied at version ${f.version}`}, ${new Date(f.at).toLocaleTimeString()}` : '-';
  $('error').textContent = page.error ?? s?.lastError ?? '';
}

async function main(): Promise<void> {
  // Lets a reload during a PS outage start from the cached page (see public/sw.js).
  navigator.serviceWorker?.register('/sw.js').catch((err: unknown) => console.warn('service worker not registered:', err));
  const params = new URLSearchParams(location.search);
  const requested = params.get('backend') ?? 'auto';
  const maxSteps = params.has('steps') ? Number(params.get('steps')) : undefined;
  const bufferMode = params.get('buffer');
  const state = new IdbState();
  // A tab reloaded during an outage trains on from what it saved, without the PS.
  const saved = await state.load().catch(() => undefined);
  const modelName = saved?.baseUrl === location.origin ? saved.join.model : (await fetchModel()).model.name;
  const choice = await chooseBackend(requested, modelName);
  page.error = undefined;
  page.backend = choice.backend;
  page.backendNotes = choice.skipped;
  render();
  const loop = new WorkerLoop(
    {
      tf,
      baseUrl: location.origin,
      backend: choice.backend,
      socket: (url) => new WebSocket(url) as unknown as SocketLike,
      cache: new IdbCache(),
      state,
      userAgent: navigator.userAgent,
      onStatus: (s) => {
        page.status = s;
        render();
      },
      checkModel: (name) => {
        const reason = cannotTrain(choice.backend, name);
        if (reason) throw new TabswarmError('WORKER_BACKEND_UNSUPPORTED', { backend: choice.backend, model: name, reason });
      },
    },
    { maxSteps, logAcks: params.get('acks') === '1', ...(bufferMode === 'frozen' || bufferMode === 'local' ? { bufferMode } : {}) },
  );
  window.addEventListener('pagehide', () => loop.stop());
  await loop.run();
}

/** GET /api/model, retried with capped exponential backoff while the PS is unreachable. */
async function fetchModel(): Promise<{ model: { name: string } }> {
  for (let attempt = 0; ; attempt++) {
    try {
      const res = await fetch('/api/model');
      if (res.ok) return (await res.json()) as { model: { name: string } };
      page.error = `GET /api/model answered ${res.status}; retrying`;
    } catch (err) {
      page.error = `parameter server unreachable (${(err as Error).message}); retrying`;
    }
    render();
    await new Promise((r) => setTimeout(r, Math.min(10000, 250 * 2 ** attempt) * (0.5 + Math.random())));
  }
}

main().catch((err: unknown) => {
  page.error = err instanceof Error ? err.message : String(err);
  render();
  console.error(err);
});
