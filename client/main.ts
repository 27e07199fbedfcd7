/**
 * The worker page: opening http://HOST:PORT/ joins the PS as a worker. Shows the run's test
 * accuracy as a live chart (client/page/accuracy.ts), what this tab contributed (steps,
 * examples/s, gradients buffered during an outage), the backend and why it was chosen, server
 * version and connection state; `window.tabswarm` exposes the same for tests.
 */
import * as tf from '@tensorflow/tfjs';
import { ModelInfoSchema, type ModelInfo } from '../shared/api.ts';
import { Backoff, sleep } from '../shared/backoff.ts';
import { isCodecName } from '../shared/codec/index.ts';
import { TabswarmError } from '../shared/errors.ts';
import { parseAs } from '../shared/validate.ts';
import { chooseBackend, cannotTrain } from './backend.ts';
import { AccuracyChart } from './page/accuracy.ts';
import { IdbCache, IdbState } from './idb.ts';
import { WorkerLoop, type WorkerStatus } from './loop.ts';
import type { LoopOptions } from './options.ts';
import type { WorkerLedger } from './status.ts';
import type { MeshStatus } from './mesh/index.ts';
import { createPeerJsMesh, type PeerJsMesh } from './mesh/peerjs.ts';
import { meshTools } from './mesh/tools.ts';
import type { SocketLike } from './transport.ts';

interface PageState {
  status?: WorkerStatus;
  /** Acknowledged flushes, and with `?acks=1` every acknowledged push (tests compare them with the PS's records). */
  ledger?: Pick<WorkerLedger, 'acks' | 'flushes'>;
  backend?: string;
  backendNotes?: readonly string[];
  /** Why `backend`: asked for, or what `auto` measured (client/backend.ts). */
  backendReason?: string;
  /** The accuracy chart's points (GET /api/series). */
  accuracy?: () => readonly { t: number; accuracy: number }[];
  error?: string;
  /** The worker mesh, when the PS runs one (client/mesh/). */
  mesh?: MeshStatus;
  /** Base64 of the float32 weights the worker computes on now (tests measure the workers' spread). */
  weights?: () => string | undefined;
  /** Base64 of the signed WEIGHTS frame the worker holds and would relay, with its version. */
  heldFrame?: () => { version: number; frame: string } | undefined;
  /** Base64 of the last WEIGHTS frame taken from a peer, as received. */
  lastRelayed?: () => string | undefined;
  /** ?overlap=1: upload and compute overlap. */
  overlap?: boolean;
}

declare global {
  interface Window {
    tabswarm: PageState;
    /** PeerJS and the mesh codec, for tests that play a (hostile) peer from a page. */
    tabswarmMesh: typeof meshTools;
  }
}

const page: PageState = {};
window.tabswarm = page;
window.tabswarmMesh = meshTools;

const $ = (id: string) => document.getElementById(id)!;

function render(): void {
  const s = page.status;
  $('backend').textContent = page.backend ?? '...';
  $('backend-reason').textContent = page.backendReason ?? (page.backend ? '' : 'measuring the backends...');
  $('backend-notes').textContent = page.backendNotes?.length ? `passed over: ${page.backendNotes.join('; ')}` : '';
  $('c-steps').textContent = String(s?.steps ?? 0);
  $('c-eps').textContent = (s?.examplesPerSec ?? 0).toFixed(0);
  $('c-buffered').textContent = String(s?.buffered ?? 0);
  $('c-buffered-box').dataset.active = s?.buffered ? 'true' : 'false';
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
  const m = page.mesh;
  const meshLine = document.getElementById('mesh');
  if (meshLine) {
    const refused = Object.entries(m?.rejected ?? {}).map(([code, n]) => `${code} x${n}`).join(', ');
    meshLine.textContent = m ? `${m.peers.length} peers${m.dialing.length ? ` (+${m.dialing.length} dialling)` : ''}${m.signaling ? '' : ' (signaling down)'}; gossip ${m.gossipStarted + m.gossipAnswered}; relayed in ${m.relayReceived}, out ${m.relayServed}${refused ? `; refused: ${refused}` : ''}` : 'off';
  }
  $('upload').textContent = s ? `${s.codec ?? 'float32'}${(s.localSteps ?? 1) > 1 ? `, ${s.localSteps} local steps a push` : ''}${page.overlap ? ', overlapped with compute' : ''}; ${((s.pushBytes ?? 0) / 1e6).toFixed(1)} MB sent` : '-';
  $('error').textContent = page.error ?? s?.lastError ?? '';
}

/** ?codec=f16|int8|topk, ?topk=R, ?overlap=1 (README, "Slow uplinks"); anything else is ignored. */
function uploadOptions(params: URLSearchParams): Pick<LoopOptions, 'codec' | 'topkRatio' | 'overlap'> {
  const codec = params.get('codec') ?? 'float32';
  const ratio = Number(params.get('topk'));
  page.overlap = params.get('overlap') === '1';
  return {
    ...(isCodecName(codec) ? { codec } : {}),
    ...(ratio > 0 && ratio <= 0.5 ? { topkRatio: ratio } : {}),
    overlap: page.overlap,
  };
}

async function main(): Promise<void> {
  // Lets a reload during a PS outage start from the cached page (see public/sw.js).
  navigator.serviceWorker?.register('/sw.js').catch((err: unknown) => console.warn('service worker not registered:', err));
  const params = new URLSearchParams(location.search);
  const requested = params.get('backend') ?? 'auto';
  const maxSteps = params.has('steps') ? Number(params.get('steps')) : undefined;
  const bufferMode = params.get('buffer');
  if (params.get('worker') === 'off') return; // a page for tests that play a peer (window.tabswarmMesh)
  const state = new IdbState();
  // A tab reloaded during an outage trains on from what it saved, without the PS.
  const saved = await state.load().catch(() => undefined);
  startChart();
  const info = saved?.baseUrl === location.origin ? { model: saved.join.model, batch: saved.join.batch } : await fetchModel().then((m) => ({ model: m.model.name, batch: m.hyperparameters.batch }));
  const modelName = info.model;
  const choice = await chooseBackend(requested, modelName, info.batch);
  page.error = undefined;
  page.backend = choice.backend;
  page.backendNotes = choice.skipped;
  page.backendReason = choice.reason;
  render();
  const mesh = await startMesh(params.get('mesh') !== 'off');
  const loop = new WorkerLoop(
    {
      tf,
      ...(mesh ? { mesh } : {}),
      baseUrl: location.origin,
      backend: choice.backend,
      backendReason: choice.reason,
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
    {
      maxSteps, logAcks: params.get('acks') === '1', ...(bufferMode === 'frozen' || bufferMode === 'local' ? { bufferMode } : {}), ...uploadOptions(params),
      // TEST ONLY (test/byzantine-tab.test.ts): ?attack=NAME[:PARAM] turns this tab hostile (client/attack.ts).
      ...(params.has('attack') ? { attack: (await import('./attack.ts')).createAttack(params.get('attack')!) } : {}),
    },
  );
  page.ledger = { acks: loop.ledger.acks, flushes: loop.ledger.flushes };
  page.weights = () => {
    const w = loop.currentWeights();
    return w && base64(new Uint8Array(w.buffer, w.byteOffset, w.byteLength));
  };
  page.lastRelayed = () => mesh?.lastRelayed && base64(mesh.lastRelayed);
  page.heldFrame = () => {
    const h = mesh?.heldFrame();
    return h && { version: h.version, frame: base64(h.frame) };
  };
  window.addEventListener('pagehide', () => {
    loop.stop();
    mesh?.close();
  });
  await loop.run();
}

/** The live accuracy chart, with the latest point in words beside it. */
function startChart(): void {
  const chart = new AccuracyChart($('chart'), {
    onPoint: (p) => {
      $('accuracy').textContent = `${(p.accuracy * 100).toFixed(1)}% at version ${p.version}, ${Math.round(p.t)} s`;
    },
  });
  page.accuracy = () => chart.points;
  chart.start();
}

/** Joins the PS's worker mesh, if it runs one; training goes on without it if that fails. */
async function startMesh(wanted: boolean): Promise<PeerJsMesh | undefined> {
  if (!wanted) return undefined;
  try {
    const mesh = await createPeerJsMesh({ baseUrl: location.origin });
    if (mesh) page.mesh = mesh.status;
    return mesh;
  } catch (err) {
    console.warn('worker mesh not started:', err);
    return undefined;
  }
}

function base64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

/** GET /api/model, checked against its schema, retried with shared/backoff.ts while the PS is unreachable. */
async function fetchModel(): Promise<ModelInfo> {
  const backoff = new Backoff({ minMs: 250, maxMs: 10000 });
  for (;;) {
    try {
      const res = await fetch('/api/model', { signal: AbortSignal.timeout(10000) });
      if (res.ok) return parseAs(ModelInfoSchema, await res.json(), 'GET /api/model');
      page.error = `GET /api/model answered ${res.status}; retrying`;
    } catch (err) {
      page.error = err instanceof TabswarmError ? `${err.message}; retrying` : `parameter server unreachable (${(err as Error).message}); retrying`;
    }
    render();
    await sleep(backoff.fail());
  }
}

main().catch((err: unknown) => {
  page.error = err instanceof Error ? err.message : String(err);
  render();
  console.error(err);
});
