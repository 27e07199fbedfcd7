/**
 * The worker's training loop, free of DOM and of any particular socket or tfjs backend: join,
 * load the shards, then pull, sample a batch, compute the gradient, push, repeat. Hosts (the
 * page in main.ts, the Node worker in node.ts) inject tfjs, fetch, a socket factory and a cache.
 *
 * On a lost connection it reconnects with exponential backoff and jitter (never a tight loop);
 * a session the server no longer knows is replaced by a fresh join.
 */
import type { JoinResponse, ReportRequest, ReportResponse } from '../shared/api.ts';
import { TabswarmError, isRetryableClose, ERRORS } from '../shared/errors.ts';
import type { Tf } from '../shared/forward.ts';
import { mulberry32 } from '../shared/layout.ts';
import { getModel } from '../shared/models.ts';
import { ShardSet, type ShardCache } from './data.ts';
import { Trainer } from './trainer.ts';
import { WsTransport, type SocketFactory } from './transport.ts';

export type ConnectionState = 'joining' | 'loading-data' | 'connecting' | 'connected' | 'reconnecting' | 'stopped' | 'failed';

export interface WorkerStatus {
  state: ConnectionState;
  workerId: number;
  backend: string;
  model: string;
  steps: number;
  examplesPerSec: number;
  serverVersion: number;
  loss: number;
  shards: number[];
  examples: number;
  numTensors: number;
  lastError: string;
}

export interface WorkerHost {
  readonly tf: Tf;
  /** Base URL of the PS, e.g. http://127.0.0.1:8080/ */
  readonly baseUrl: string;
  /** Name of the tfjs backend in use, for reports. */
  readonly backend: string;
  readonly socket: SocketFactory;
  readonly cache: ShardCache;
  readonly fetch?: typeof fetch;
  readonly userAgent?: string;
  /** Called on every status change and after every step. */
  readonly onStatus?: (s: Readonly<WorkerStatus>) => void;
  /** Called before a step with the model name, so a host can refuse a backend (wasm + conv). */
  readonly checkModel?: (model: string) => void;
}

export interface LoopOptions {
  /** Stop after this many steps. @default Infinity */
  maxSteps?: number;
  /** Seed of batch sampling. @default random */
  seed?: number;
  /** Reconnect backoff: first delay, cap, and +-jitter fraction. @default 250, 10000, 0.5 */
  backoffMinMs?: number;
  backoffMaxMs?: number;
  backoffJitter?: number;
  /** Request timeout on the socket. @default 30000 */
  requestTimeoutMs?: number;
  /** How often to send the status report to the PS. @default 2000 */
  reportEveryMs?: number;
}

export class WorkerLoop {
  readonly status: WorkerStatus;
  private stopped = false;
  private transport: WsTransport | undefined;
  private join: JoinResponse | undefined;
  private trainer: Trainer | undefined;
  private shardSet: ShardSet | undefined;
  private seq = 0;
  private lastReport = 0;
  private pendingShards: number[] | undefined;
  private readonly random: () => number;
  private readonly fetchFn: typeof fetch;

  constructor(private readonly host: WorkerHost, private readonly opts: LoopOptions = {}) {
    this.fetchFn = host.fetch ?? ((...a) => fetch(...a));
    this.random = mulberry32(opts.seed ?? Math.floor(Math.random() * 2 ** 31));
    this.status = {
      state: 'joining', workerId: 0, backend: host.backend, model: '', steps: 0, examplesPerSec: 0,
      serverVersion: 0, loss: NaN, shards: [], examples: 0, numTensors: 0, lastError: '',
    };
  }

  stop(): void {
    this.stopped = true;
    this.transport?.close();
  }

  /** Runs until stop() or maxSteps; rejects only on a terminal error. */
  async run(): Promise<WorkerStatus> {
    let failures = 0;
    try {
      while (!this.stopped && this.status.steps < (this.opts.maxSteps ?? Infinity)) {
        try {
          if (!this.join) await this.joinServer();
          await this.connect();
          failures = 0;
          await this.train();
        } catch (err) {
          if (this.stopped) break;
          const e = err instanceof TabswarmError ? err : new TabswarmError('WORKER_DISCONNECTED', { code: 0, reason: (err as Error).message });
          this.status.lastError = e.message;
          if (isSessionGone(e)) this.join = undefined; // rejoin with a fresh session
          else if (!isRetryable(e)) throw e;
          failures += 1;
          this.setState('reconnecting');
          await sleep(this.backoff(failures));
        }
      }
      this.setState('stopped');
      return this.status;
    } catch (err) {
      this.status.lastError = (err as Error).message;
      this.setState('failed');
      throw err;
    } finally {
      this.transport?.close();
      this.trainer?.dispose();
    }
  }

  /** Exponential backoff with jitter: min * 2^(n-1), capped, then scaled by 1 +- jitter. */
  backoff(failures: number): number {
    const min = this.opts.backoffMinMs ?? 250;
    const max = this.opts.backoffMaxMs ?? 10000;
    const jitter = this.opts.backoffJitter ?? 0.5;
    const base = Math.min(max, min * 2 ** Math.min(failures - 1, 30));
    return base * (1 - jitter + 2 * jitter * Math.random());
  }

  private async joinServer(): Promise<void> {
    this.setState('joining');
    const res = await this.fetchFn(new URL('/api/join', this.host.baseUrl), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ userAgent: this.host.userAgent ?? `tabswarm-worker (${this.host.backend})` }),
    });
    if (!res.ok) throw new TabswarmError('WORKER_DISCONNECTED', { code: res.status, reason: await res.text() });
    const join = (await res.json()) as JoinResponse;
    this.host.checkModel?.(join.model);
    const model = getModel(join.model);
    if (!this.trainer || this.trainer.model.name !== model.name || this.trainer.batch !== join.batch) {
      this.trainer?.dispose();
      this.trainer = new Trainer(this.host.tf, model, join.batch);
    }
    if (this.trainer.layout.hash !== join.layoutHash) {
      throw new TabswarmError('PROTO_LAYOUT_MISMATCH', { got: this.trainer.layout.hash, want: join.layoutHash });
    }
    this.join = join;
    this.seq = 0;
    Object.assign(this.status, { workerId: join.workerId, model: join.model });
    this.setState('loading-data');
    this.shardSet = new ShardSet(this.host.baseUrl, join.dataKey, this.host.cache, this.fetchFn);
    await this.useShards(join.shards);
  }

  private async useShards(shards: number[]): Promise<void> {
    await this.shardSet!.use(shards);
    this.status.shards = shards;
    this.status.examples = this.shardSet!.examples;
  }

  private async connect(): Promise<void> {
    this.setState('connecting');
    const join = this.join!;
    const url = new URL(`${join.wsPath}?token=${join.token}`, this.host.baseUrl);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    this.transport?.close();
    this.transport = new WsTransport(
      {
        url: url.toString(),
        workerId: join.workerId,
        layoutHash: join.layoutHash,
        layoutSize: join.layoutSize,
        requestTimeoutMs: this.opts.requestTimeoutMs,
        onControl: (msg) => {
          if (msg.type === 'assign' && Array.isArray(msg.shards)) this.pendingShards = msg.shards;
        },
      },
      this.host.socket,
    );
    await this.transport.connect();
    this.setState('connected');
  }

  private async train(): Promise<void> {
    const join = this.join!;
    const trainer = this.trainer!;
    const transport = this.transport!;
    const model = trainer.model;
    const ppe = model.input[0] * model.input[1] * model.input[2];
    const pixels = new Uint8Array(join.batch * ppe);
    const labels = new Uint8Array(join.batch);
    let version = 0;
    const first = await transport.pull();
    trainer.setWeights(first.weights);
    version = first.version;
    let windowStart = performance.now();
    let windowSteps = 0;
    while (!this.stopped && this.status.steps < (this.opts.maxSteps ?? Infinity)) {
      if (this.pendingShards) {
        const shards = this.pendingShards;
        this.pendingShards = undefined;
        await this.useShards(shards);
      }
      this.shardSet!.sample(this.random, pixels, labels);
      const { grad, loss } = await trainer.step(pixels, labels);
      this.seq += 1;
      const pullNow = (this.status.steps + 1) % join.pullEvery === 0;
      // Push and pull back to back: the PS handles a socket's frames in order, so the weights
      // that come back already contain this gradient. One round trip per step.
      const [ack, pulled] = await Promise.all([transport.push(grad, this.seq, version), pullNow ? transport.pull() : undefined]);
      if (pulled) {
        trainer.setWeights(pulled.weights);
        version = pulled.version;
      }
      this.status.steps += 1;
      this.status.loss = loss;
      this.status.serverVersion = Math.max(ack.version, version);
      windowSteps += 1;
      const now = performance.now();
      if (now - windowStart >= 1000) {
        this.status.examplesPerSec = (windowSteps * join.batch * 1000) / (now - windowStart);
        windowStart = now;
        windowSteps = 0;
      }
      this.status.numTensors = this.host.tf.memory().numTensors;
      this.host.onStatus?.(this.status);
      if (now - this.lastReport >= (this.opts.reportEveryMs ?? 2000)) this.report(now);
    }
  }

  private report(now: number): void {
    this.lastReport = now;
    const join = this.join;
    if (!join) return;
    const body: ReportRequest = {
      backend: this.host.backend,
      examplesPerSec: this.status.examplesPerSec,
      steps: this.status.steps,
      numTensors: this.status.numTensors,
      state: this.status.state,
      ...(Number.isFinite(this.status.loss) ? { loss: this.status.loss } : {}),
    };
    this.fetchFn(new URL('/api/report', this.host.baseUrl), {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${join.token}` },
      body: JSON.stringify(body),
    })
      .then(async (res) => {
        if (!res.ok) return;
        const { shards } = (await res.json()) as ReportResponse;
        if (shards.join(',') !== this.status.shards.join(',')) this.pendingShards = shards;
      })
      .catch(() => {
        // Reports are best effort; the socket tells us when the PS is really gone.
      });
  }

  private setState(state: ConnectionState): void {
    this.status.state = state;
    this.host.onStatus?.(this.status);
  }
}

function isSessionGone(e: TabswarmError): boolean {
  return e.code === 'PS_NO_SESSION' || e.code === 'PS_SESSION_EXPIRED';
}

function isRetryable(e: TabswarmError): boolean {
  if (e.code === 'WORKER_DISCONNECTED') return true;
  return ERRORS[e.code].retryable && isRetryableClose(ERRORS[e.code].wsClose);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
