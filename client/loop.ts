/**
 * The worker's training loop, free of DOM and of any particular socket, storage or tfjs backend:
 * hosts (the page in main.ts, the Node worker in node.ts) inject them.
 *
 * Connected: pull, sample a batch, compute the gradient, push, repeat.
 * PS unreachable: keep training on the cached shards and add every gradient to a running sum
 * (GradientBuffer: O(model size) however long the outage), persisted every few seconds; in
 * `local` mode also step the worker's own copy of the weights. Reconnect in the background with
 * exponential backoff and jitter. Once back, and after the PS's hello (offering the tagged copy
 * of the weights to a PS that wants one), deliver the undelivered push under its original
 * sequence number, then flush the buffer as one push (count = gradients summed) under a new
 * one. The PS applies each (worker, seq) at most once, so a retried flush is acknowledged
 * again and never applied twice.
 */
import type { ClusterInfo, JoinResponse, ReportRequest, ReportResponse } from '../shared/api.ts';
import { TabswarmError } from '../shared/errors.ts';
import type { Tf } from '../shared/forward.ts';
import { mulberry32 } from '../shared/layout.ts';
import { getModel } from '../shared/models.ts';
import { MsgType, decodeFrame, retypeFrame } from '../shared/protocol.ts';
import { GradientBuffer } from './buffer.ts';
import { ShardSet, type ShardCache } from './data.ts';
import { classify, type ErrorAction } from './failures.ts';
import type { WorkerMesh } from './mesh/index.ts';
import type { Outgoing, StateStore } from './state.ts';
import { Trainer } from './trainer.ts';
import { WsTransport, type PullResult, type SocketFactory } from './transport.ts';

export type ConnectionState = 'joining' | 'loading-data' | 'connecting' | 'connected' | 'buffering' | 'flushing' | 'stopped' | 'failed';

export interface FlushLogEntry {
  readonly workerId: number;
  readonly seq: number;
  readonly count: number;
  readonly baseVersion: number;
  readonly version: number;
  readonly duplicate: boolean;
  readonly at: number;
}

export interface WorkerStatus {
  state: ConnectionState;
  workerId: number;
  backend: string;
  model: string;
  bufferMode: string;
  steps: number;
  examplesPerSec: number;
  serverVersion: number;
  loss: number;
  shards: number[];
  examples: number;
  numTensors: number;
  /** Gradients in the buffer, and when buffering began (0 when not buffering). */
  buffered: number;
  bufferedSince: number;
  /** Gradients computed while the PS was unreachable, over the worker's life. */
  outageSteps: number;
  /** `local` mode: L2 distance of the worker's own weights from its last pulled copy (0 when frozen). */
  localDrift: number;
  lastFlush: FlushLogEntry | undefined;
  /** Every flush acknowledged, in order (what tests compare with the PS's records). */
  flushes: FlushLogEntry[];
  restored: boolean;
  /** Gradients restored from storage when the page was reloaded during an outage. */
  restoredBuffered: number;
  lastError: string;
  /** The PS node this worker writes to (the chain's head in a cluster). */
  psUrl: string;
  /** Times the worker moved to another node of a cluster (a new head). */
  failovers: number;
  /** With `logAcks`: every acknowledged push as [seq, version, duplicate ? 1 : 0]. */
  acks: [number, number, number][];
}

export interface WorkerHost {
  readonly tf: Tf;
  /** Base URL of the PS, e.g. http://127.0.0.1:8080/ */
  readonly baseUrl: string;
  /** Name of the tfjs backend in use, for reports. */
  readonly backend: string;
  readonly socket: SocketFactory;
  readonly cache: ShardCache;
  /** Where the worker keeps what must survive a reload. @default nothing is kept */
  readonly state?: StateStore;
  readonly fetch?: typeof fetch;
  readonly userAgent?: string;
  /** Called on every status change and after every step. */
  readonly onStatus?: (s: Readonly<WorkerStatus>) => void;
  /** Throws if this host cannot train the model (wasm + convolutions). */
  readonly checkModel?: (model: string) => void;
  /** Other workers, for gossip during outages and weight relay (client/mesh/). @default none */
  readonly mesh?: WorkerMesh;
}

export interface LoopOptions {
  /** Stop after this many steps. @default Infinity */
  maxSteps?: number;
  /** Seed of batch sampling. @default random */
  seed?: number;
  /**
   * Reconnect backoff: first delay, cap, and +- jitter fraction. The cap bounds how late a
   * worker notices a restarted PS (keep the stateless PS's adoption window above cap * 1.5).
   * @default 250, 2000, 0.5
   */
  backoffMinMs?: number;
  backoffMaxMs?: number;
  backoffJitter?: number;
  /** Request timeout on the socket; no reply in time counts as an outage. @default 10000 */
  requestTimeoutMs?: number;
  /** How often to send the status report to the PS. @default 2000 */
  reportEveryMs?: number;
  /** How often the buffer is persisted during an outage (the most a reload can lose). @default 2000 */
  persistEveryMs?: number;
  /** Overrides the run's buffer mode. */
  bufferMode?: 'frozen' | 'local';
  /** Keep every acknowledged push (seq, version, duplicate) in `status.acks` (tests). @default false */
  logAcks?: boolean;
}

/** Sequence numbers are reserved in blocks this large before use (see SavedState). */
const SEQ_BLOCK = 10_000;

export class WorkerLoop {
  readonly status: WorkerStatus;
  private stopped = false;
  private fatal: Error | undefined;
  private join: JoinResponse | undefined;
  private info: Omit<JoinResponse, 'token'> | undefined;
  private transport: WsTransport | undefined;
  private failedTransport: WsTransport | undefined;
  private connected = false;
  private connecting: Promise<void> | undefined;
  private nextAttempt = 0;
  private failures = 0;
  private trainer: Trainer | undefined;
  private shardSet: ShardSet | undefined;
  private buffer: GradientBuffer | undefined;
  /** Version of the weights in the trainer: the base of the gradients it computes. */
  private version = 0;
  /** The latest tagged WEIGHTS frame, and whether the state store has it. */
  private tagged: Uint8Array | undefined;
  private taggedSaved = false;
  /** `local` mode: the worker's own copy of the weights during an outage, and the pulled copy it left. */
  private local: Float32Array | undefined;
  private localBase: Float32Array | undefined;
  private outbox: Outgoing | undefined;
  private seq = 0;
  private seqReserved = 0;
  private lastPersist = 0;
  private lastReport = 0;
  private pendingShards: number[] | undefined;
  private pixels: Uint8Array | undefined;
  private labels: Uint8Array | undefined;
  private readonly random: () => number;
  private readonly fetchFn: typeof fetch;
  /** Where writes go: the page's own PS, or the head of its cluster. */
  private psUrl: string;
  /** A chain-replicated cluster's nodes and epoch, once learnt; undefined for a single PS. */
  private cluster: { epoch: number; nodes: string[]; reads?: 'strict' | 'relaxed'; tail?: string | null } | undefined;
  /** The last failure says the write node may have changed: look for the head before reconnecting. */
  private relocate = false;
  /** Mesh gossip: when the last exchange started, whether one is in flight, a peer's weights to average in. */
  private lastGossip = 0;
  private gossiping = false;
  private peerWeights: Float32Array | undefined;

  constructor(private readonly host: WorkerHost, private readonly opts: LoopOptions = {}) {
    this.fetchFn = host.fetch ?? ((...a) => fetch(...a));
    this.random = mulberry32(opts.seed ?? Math.floor(Math.random() * 2 ** 31));
    this.psUrl = new URL(host.baseUrl).toString();
    this.status = {
      state: 'joining', workerId: 0, backend: host.backend, model: '', bufferMode: '', steps: 0, examplesPerSec: 0,
      serverVersion: 0, loss: NaN, shards: [], examples: 0, numTensors: 0, buffered: 0, bufferedSince: 0,
      outageSteps: 0, localDrift: 0, lastFlush: undefined, flushes: [], restored: false, restoredBuffered: 0, lastError: '',
      psUrl: new URL(host.baseUrl).toString(), failovers: 0, acks: [],
    };
    host.mesh?.onGossip((theirs) => this.answerGossip(theirs));
  }

  stop(): void {
    this.stopped = true;
    this.transport?.close();
  }

  /** Runs until stop() or maxSteps; rejects only on a terminal error. */
  async run(): Promise<WorkerStatus> {
    try {
      await this.restore();
      const max = this.opts.maxSteps ?? Infinity;
      let windowStart = performance.now();
      let windowSteps = 0;
      while (!this.stopped && this.status.steps < max) {
        this.maybeConnect();
        if (this.fatal) throw this.fatal;
        if (!this.trainer?.hasWeights || !this.shardSet?.examples) {
          await this.waitForStart();
          continue;
        }
        if (this.connected && (this.outbox || this.buffer!.count > 0)) {
          await this.flush();
          continue;
        }
        await this.step();
        windowSteps += 1;
        const now = performance.now();
        if (now - windowStart >= 1000) {
          this.status.examplesPerSec = (windowSteps * this.trainer.batch * 1000) / (now - windowStart);
          windowStart = now;
          windowSteps = 0;
        }
        this.status.numTensors = this.host.tf.memory().numTensors;
        this.host.onStatus?.(this.status);
        if (this.connected && now - this.lastReport >= (this.opts.reportEveryMs ?? 2000)) this.report(now);
      }
      await this.persist(true);
      this.setState('stopped');
      return this.status;
    } catch (err) {
      this.status.lastError = (err as Error).message;
      this.setState('failed');
      throw err;
    } finally {
      this.stopped = true;
      this.transport?.close();
      this.trainer?.dispose();
    }
  }

  /** Exponential backoff with jitter: min * 2^(n-1), capped, then scaled by 1 +- jitter. */
  backoff(failures: number): number {
    const min = this.opts.backoffMinMs ?? 250;
    const max = this.opts.backoffMaxMs ?? 2000;
    const jitter = this.opts.backoffJitter ?? 0.5;
    const base = Math.min(max, min * 2 ** Math.min(failures - 1, 30));
    return base * (1 - jitter + 2 * jitter * Math.random());
  }

  // ---- one step -------------------------------------------------------------------------

  private async step(): Promise<void> {
    const trainer = this.trainer!;
    const model = trainer.model;
    const ppe = model.input[0] * model.input[1] * model.input[2];
    if (this.pendingShards && this.connected) {
      const shards = this.pendingShards;
      this.pendingShards = undefined;
      await this.useShards(shards);
    }
    if (this.labels?.length !== trainer.batch) {
      this.pixels = new Uint8Array(trainer.batch * ppe);
      this.labels = new Uint8Array(trainer.batch);
    }
    this.shardSet!.sample(this.random, this.pixels!, this.labels);
    const { grad, loss } = await trainer.step(this.pixels!, this.labels);
    this.status.steps += 1;
    this.status.loss = loss;
    if (!this.connected) {
      this.bufferStep(grad);
      // Let socket events run: on a CPU backend a step awaits only microtasks, and a loop that
      // never yields to the event loop would never see the PS come back.
      return yieldToEventLoop();
    }
    await this.reserveSeq();
    const out: Outgoing = { seq: ++this.seq, count: 1, baseVersion: this.version, grad, flush: false };
    this.outbox = out;
    const transport = this.transport!;
    const pullNow = this.status.steps % this.info!.pullEvery === 0;
    const viaMesh = pullNow && this.host.mesh?.relay === true;
    try {
      // Push and pull back to back: the PS handles a socket's frames in order, so the weights
      // that come back already contain this gradient. One round trip per step.
      const [ack, pulled] = await Promise.all([transport.push(grad, out.seq, out.baseVersion), pullNow && !viaMesh ? this.pull(transport) : undefined]);
      this.outbox = undefined;
      this.status.serverVersion = ack.version;
      if (this.opts.logAcks) this.status.acks.push([out.seq, ack.version, ack.duplicate ? 1 : 0]);
      if (pulled) this.takeWeights(pulled);
      else if (viaMesh) this.takeWeights(await this.pullViaMesh(transport, ack.version));
      this.failures = 0;
    } catch (err) {
      this.disconnected(err); // the push stays in the outbox, delivered first on reconnect
    }
  }

  private bufferStep(grad: Float32Array): void {
    const buffer = this.buffer!;
    if (buffer.count === 0) this.status.bufferedSince = Date.now();
    buffer.add(grad, this.version);
    this.status.buffered = buffer.count;
    this.status.outageSteps += 1;
    if (this.info!.bufferMode === 'local' || this.opts.bufferMode === 'local') {
      // Local SGD on the worker's own copy; the buffer still sums the raw gradients.
      if (!this.local) {
        this.localBase = decodeFrame(this.tagged!, this.frameOpts()).payload;
        this.local = Float32Array.from(this.localBase);
      }
      const lr = this.info!.lr;
      const w = this.local;
      const base = this.localBase!;
      let drift = 0;
      for (let i = 0; i < w.length; i++) {
        const v = w[i]! - lr * grad[i]!;
        w[i] = v;
        drift += (v - base[i]!) ** 2;
      }
      this.status.localDrift = Math.sqrt(drift);
      this.meshGossip(w);
      this.trainer!.setWeights(w);
    }
    this.setState('buffering');
    void this.persist(false);
  }

  // ---- flushing -------------------------------------------------------------------------

  private async flush(): Promise<void> {
    const transport = this.transport!;
    this.setState('flushing');
    try {
      if (this.outbox) await this.deliver(transport, this.outbox);
      const buffer = this.buffer!;
      if (buffer.count > 0) {
        await this.reserveSeq();
        const b = buffer.take();
        this.outbox = { seq: ++this.seq, count: b.count, baseVersion: b.baseVersion, grad: b.sum, flush: true };
        await this.persist(true); // the flush keeps this seq even if the tab dies now
        await this.deliver(transport, this.outbox);
      }
      this.takeWeights(await this.pull(transport));
      this.local = this.localBase = undefined;
      this.status.localDrift = 0;
      this.status.buffered = 0;
      this.status.bufferedSince = 0;
      await this.persist(true);
      this.failures = 0;
      this.setState('connected');
    } catch (err) {
      this.disconnected(err);
    }
  }

  private async deliver(transport: WsTransport, out: Outgoing): Promise<void> {
    const ack = await transport.push(out.grad, out.seq, out.baseVersion, out.count, out.flush);
    this.outbox = undefined;
    this.status.serverVersion = ack.version;
    if (this.opts.logAcks) this.status.acks.push([out.seq, ack.version, ack.duplicate ? 1 : 0]);
    if (!out.flush) return;
    const entry: FlushLogEntry = { workerId: this.info!.workerId, seq: out.seq, count: out.count, baseVersion: out.baseVersion, version: ack.version, duplicate: ack.duplicate, at: Date.now() };
    this.status.lastFlush = entry;
    this.status.flushes.push(entry);
  }

  // ---- connection -----------------------------------------------------------------------

  private maybeConnect(): void {
    if (this.connected || this.connecting || Date.now() < this.nextAttempt) return;
    this.connecting = this.connect().finally(() => (this.connecting = undefined));
  }

  private async connect(): Promise<void> {
    this.transport?.close();
    this.transport = undefined;
    try {
      if (this.relocate && this.cluster) await this.locateHead();
      if (!this.join) await this.joinServer();
      const join = this.join!;
      const url = new URL(`${join.wsPath}?token=${join.token}`, this.psUrl);
      url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
      const transport = new WsTransport(
        {
          url: url.toString(),
          workerId: join.workerId,
          layoutHash: join.layoutHash,
          layoutSize: join.layoutSize,
          requestTimeoutMs: this.opts.requestTimeoutMs ?? 10000,
          onControl: (msg) => {
            if (msg.type === 'assign' && Array.isArray(msg.shards)) this.pendingShards = msg.shards;
          },
        },
        this.host.socket,
      );
      this.transport = transport;
      await transport.connect();
      const hello = await Promise.race([transport.hello, transport.closed.then((e) => Promise.reject(e))]);
      if (hello.wantsWeights && this.tagged) {
        try {
          await transport.offer(retypeFrame(this.tagged, MsgType.OFFER, join.workerId));
        } catch (err) {
          if (err instanceof TabswarmError && (err.code === 'PS_FORGED_WEIGHTS' || err.code === 'PROTO_BAD_META')) this.tagged = undefined;
          throw err;
        }
      }
      void transport.closed.then((e) => {
        if (this.transport === transport && this.connected) this.disconnected(e);
      });
      this.connected = true;
      if (!this.trainer!.hasWeights) this.takeWeights(await transport.pull());
      if (this.status.state !== 'buffering') this.setState('connected');
    } catch (err) {
      this.disconnected(err);
    }
  }

  /** Classifies a failure, drops what it invalidates, and schedules the next attempt. */
  private disconnected(err: unknown): void {
    if (this.stopped) return;
    // One failure is often reported twice (the close event and the request it failed).
    if (this.transport && this.transport === this.failedTransport) return;
    this.failedTransport = this.transport;
    this.connected = false;
    this.transport?.close(1000, 'reconnecting');
    const e = err instanceof TabswarmError ? err : new TabswarmError('WORKER_DISCONNECTED', { code: 0, reason: (err as Error).message });
    this.status.lastError = e.message;
    const action: ErrorAction = classify(e);
    if (action === 'fatal') this.fatal = e;
    if (action === 'relocate' || (this.cluster && action === 'retry')) {
      // A cluster: the head may have changed. Look it up before the next attempt, at once
      // for the first few failures (locateHead waits on the nodes for the reconfiguration).
      this.relocate = true;
      if (!this.cluster) this.cluster = { epoch: 0, nodes: [this.psUrl] };
      const head = e.code === 'CHAIN_NOT_HEAD' ? /(https?:\/\/\S+?)\/?(?:\s|$)/.exec(e.message)?.[1] : undefined;
      if (head && !this.cluster.nodes.includes(`${head}/`)) this.cluster.nodes.push(`${head}/`);
    }
    if (action === 'rejoin') this.join = undefined;
    if (action === 'forget-identity') {
      this.join = undefined;
      this.info = this.info && { ...this.info, workerId: 0, idTag: '' };
    }
    if (action === 'drop-outgoing') {
      // The PS refused our own frame as malformed: resending the same bytes cannot help.
      this.outbox = undefined;
    }
    this.failures += 1;
    this.nextAttempt = Date.now() + (this.relocate && this.failures <= 3 ? 0 : this.backoff(this.failures));
    if (this.status.state !== 'buffering') this.setState('connecting');
  }

  /**
   * Finds the chain's current head: asks every known node for /api/cluster and takes the head
   * of the highest epoch. If that is still the node that just failed, the cluster has not
   * reconfigured yet: wait on the other nodes (long poll) for the next epoch, which comes once
   * ZooKeeper expires the dead node's session.
   */
  private async locateHead(): Promise<void> {
    const known = this.cluster!;
    const ask = async (node: string, after?: number): Promise<ClusterInfo> => {
      const url = new URL('/api/cluster', node);
      if (after !== undefined) url.search = `after=${after}&waitMs=4000`;
      const res = await this.fetchFn(url, { signal: AbortSignal.timeout(after !== undefined ? 5000 : 1500) });
      if (!res.ok) throw new Error(`${res.status}`);
      return (await res.json()) as ClusterInfo;
    };
    const learn = (infos: ClusterInfo[]): ClusterInfo | undefined => {
      let best: ClusterInfo | undefined;
      for (const c of infos) if (c.head && (!best || c.epoch > best.epoch)) best = c;
      if (best) this.absorb(best);
      return best;
    };
    const settled = await Promise.allSettled(known.nodes.map((n) => ask(n)));
    let best = learn(settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : [])));
    if (!best || best.head === this.psUrl) {
      const others = known.nodes.filter((n) => n !== this.psUrl);
      const epoch = best?.epoch ?? known.epoch;
      best = learn([await Promise.any(others.map((n) => ask(n, epoch).then((c) => (c.epoch > epoch && c.head ? c : Promise.reject(new Error('no new head')))))).catch(() => undefined)].filter((c): c is ClusterInfo => !!c)) ?? best;
    }
    this.relocate = false;
    if (best?.head && best.head !== this.psUrl) {
      this.psUrl = best.head;
      this.status.psUrl = best.head;
      this.status.failovers += 1;
      this.join = undefined; // sessions are per node: rejoin the head under the same id
    }
  }

  private async joinServer(): Promise<void> {
    this.setState(this.trainer?.hasWeights ? this.status.state : 'joining');
    const resume = this.info?.workerId && this.info.idTag ? { workerId: this.info.workerId, idTag: this.info.idTag } : undefined;
    const res = await this.fetchFn(new URL('/api/join', this.psUrl), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ userAgent: this.host.userAgent ?? `tabswarm-worker (${this.host.backend})`, ...(resume ? { resume } : {}) }),
    });
    if (!res.ok) {
      const body = (await res.json().catch(() => ({}))) as { code?: string; message?: string };
      if (body.code === 'PS_BAD_RESUME') throw new TabswarmError('PS_BAD_RESUME', { worker: resume?.workerId ?? 0 });
      if (body.code === 'CHAIN_NOT_HEAD' || body.code === 'CHAIN_FENCED' || body.code === 'CHAIN_NOT_READY') {
        const err = new TabswarmError(body.code, {});
        err.message = `${body.code}: ${body.message ?? ''}`;
        throw err;
      }
      throw new TabswarmError('WORKER_DISCONNECTED', { code: res.status, reason: body.message ?? res.statusText });
    }
    const join = (await res.json()) as JoinResponse;
    this.host.checkModel?.(join.model);
    if (!this.cluster) await this.readCluster();
    this.ensureTrainer(join);
    if (this.trainer!.layout.hash !== join.layoutHash) throw new TabswarmError('PROTO_LAYOUT_MISMATCH', { got: this.trainer!.layout.hash, want: join.layoutHash });
    if (this.info && this.info.dataKey !== join.dataKey) this.shardSet = undefined;
    const { token: _token, ...info } = join;
    this.join = join;
    this.info = info;
    this.seq = Math.max(this.seq, join.lastSeq);
    Object.assign(this.status, { workerId: join.workerId, model: join.model, bufferMode: this.opts.bufferMode ?? join.bufferMode });
    if (!this.trainer!.hasWeights) this.setState('loading-data');
    await this.useShards(join.shards);
    await this.persist(true);
  }

  /**
   * The current weights: from the node the worker writes to, or, in a cluster with strict reads,
   * from the tail (only updates every node holds). The tail is asked over HTTP with the worker's
   * id tag (it holds no session there); if it cannot answer, the write node's copy is used.
   */
  private async pull(transport: WsTransport): Promise<PullResult> {
    const tail = this.cluster?.reads === 'strict' ? this.cluster.tail : undefined;
    if (!tail || tail === this.psUrl || !this.info?.idTag) return transport.pull();
    try {
      const res = await this.fetchFn(new URL('/api/weights', tail), { headers: { authorization: `Worker ${this.info.workerId}:${this.info.idTag}` }, signal: AbortSignal.timeout(this.opts.requestTimeoutMs ?? 10000) });
      if (!res.ok) throw new Error(`GET /api/weights on the tail: ${res.status}`);
      const bytes = new Uint8Array(await res.arrayBuffer());
      const frame = decodeFrame(bytes, this.frameOpts());
      if (frame.type !== MsgType.WEIGHTS) throw new Error('not a WEIGHTS frame');
      return { version: frame.modelVersion, weights: frame.payload, frame: bytes };
    } catch {
      return transport.pull();
    }
  }

  /**
   * Reads /api/cluster from the write node: on the first join it tells whether the PS is a node
   * of a cluster (then failover is on; a single PS answers 404); while connected it keeps the
   * tail (strict reads) and the node list current. Best effort, like the report.
   */
  private async readCluster(): Promise<void> {
    try {
      const res = await this.fetchFn(new URL('/api/cluster', this.psUrl), { signal: AbortSignal.timeout(2000) });
      if (res.ok) this.absorb((await res.json()) as ClusterInfo);
    } catch {
      // Not known yet; read again on the next join or report.
    }
  }

  /** Merges what a node said of the chain into what the worker knows; an older epoch changes nothing. */
  private absorb(c: ClusterInfo): void {
    const known = (this.cluster ??= { epoch: c.epoch, nodes: [this.psUrl] });
    if (c.epoch < known.epoch) return;
    Object.assign(known, { epoch: c.epoch, reads: c.reads, tail: c.tail });
    for (const n of c.nodes) if (!known.nodes.includes(n.url)) known.nodes.push(n.url);
  }

  private ensureTrainer(info: Omit<JoinResponse, 'token'>): void {
    const model = getModel(info.model);
    if (this.trainer && this.trainer.model.name === model.name && this.trainer.batch === info.batch) return;
    this.trainer?.dispose();
    this.trainer = new Trainer(this.host.tf, model, info.batch);
    this.buffer = new GradientBuffer(this.trainer.layout.size);
  }

  private async useShards(shards: number[]): Promise<void> {
    this.shardSet ??= new ShardSet(() => this.psUrl, this.info!.dataKey, this.host.cache, this.fetchFn);
    await this.shardSet.use(shards);
    this.status.shards = shards;
    this.status.examples = this.shardSet.examples;
  }

  private takeWeights(pulled: PullResult): void {
    this.trainer!.setWeights(pulled.weights);
    this.version = pulled.version;
    this.tagged = pulled.frame;
    this.taggedSaved = false;
    this.status.serverVersion = Math.max(this.status.serverVersion, pulled.version);
    this.peerWeights = undefined; // gossip from an outage never leaks into PS weights
    this.host.mesh?.hold(pulled.frame, pulled.version);
  }

  // ---- mesh (client/mesh/): gossip during outages, relay while the PS is up ----------------

  /** `local` mode, after a local step: averages in a peer's weights, and starts an exchange when due. */
  private meshGossip(w: Float32Array): void {
    const mesh = this.host.mesh;
    if (!mesh) return;
    const theirs = this.peerWeights;
    this.peerWeights = undefined;
    if (theirs) for (let i = 0; i < w.length; i++) w[i] = (w[i]! + theirs[i]!) / 2;
    if (mesh.gossipEveryMs <= 0 || this.gossiping || Date.now() - this.lastGossip < mesh.gossipEveryMs) return;
    this.gossiping = true;
    this.lastGossip = Date.now();
    void mesh
      .exchange(Float32Array.from(w))
      .then((peer) => {
        if (peer && this.local) this.peerWeights = peer;
      })
      .finally(() => (this.gossiping = false));
  }

  /** A peer asks to average: only during a `local` outage; its weights are averaged in at the next step. */
  private answerGossip(theirs: Float32Array): Float32Array | undefined {
    if (!this.local || this.connected) return undefined;
    this.peerWeights = theirs;
    return Float32Array.from(this.local);
  }

  /** Signed weights at most relayMaxLag versions behind `ackVersion` from a peer, else from the PS. */
  private async pullViaMesh(transport: WsTransport, ackVersion: number): Promise<PullResult> {
    const mesh = this.host.mesh!;
    const got = await mesh.fetch(Math.max(this.version + 1, ackVersion - mesh.relayMaxLag));
    return got ?? transport.pull();
  }

  /** The weights the worker computes on now (its own copy in a `local` outage), for the page and tests. */
  currentWeights(): Float32Array | undefined {
    if (this.local) return this.local;
    return this.tagged && this.info ? decodeFrame(this.tagged, this.frameOpts()).payload : undefined;
  }

  private async waitForStart(): Promise<void> {
    if (this.connecting) await this.connecting;
    else await new Promise((r) => setTimeout(r, Math.max(10, Math.min(250, this.nextAttempt - Date.now()))));
  }

  // ---- persistence ----------------------------------------------------------------------

  private frameOpts() {
    return { layoutHash: this.info!.layoutHash, layoutSize: this.info!.layoutSize };
  }

  /** Restores what an earlier page of this tab saved: identity, seq, outbox, buffer, weights. */
  private async restore(): Promise<void> {
    const store = this.host.state;
    const saved = await store?.load();
    if (!store || !saved || saved.baseUrl !== this.host.baseUrl) return;
    this.host.checkModel?.(saved.join.model);
    this.info = saved.join;
    this.ensureTrainer(saved.join);
    this.seq = this.seqReserved = saved.seqReserved;
    this.outbox = saved.outbox;
    if (saved.buffer) this.buffer!.load(saved.buffer);
    Object.assign(this.status, { workerId: saved.join.workerId, model: saved.join.model, bufferMode: this.opts.bufferMode ?? saved.join.bufferMode, restored: true });
    this.status.buffered = this.status.restoredBuffered = this.buffer!.count;
    this.status.bufferedSince = this.buffer!.since;
    const tagged = await store.loadTagged();
    if (tagged) {
      try {
        const frame = decodeFrame(tagged, this.frameOpts());
        this.takeWeights({ version: frame.modelVersion, weights: frame.payload, frame: tagged });
        this.taggedSaved = true;
      } catch {
        // A damaged copy is not trained on; the worker waits for the PS instead.
      }
    }
    await this.useShards(saved.join.shards).catch(() => {
      // Not cached: nothing to train on until the PS is back.
    });
    if (this.trainer!.hasWeights && this.buffer!.count > 0) this.setState('buffering');
  }

  /** Saves the small state (often) and the tagged weights (when changed, during outages). */
  private async persist(force: boolean): Promise<void> {
    const store = this.host.state;
    if (!store || !this.info) return;
    const now = Date.now();
    if (!force && now - this.lastPersist < (this.opts.persistEveryMs ?? 2000)) return;
    this.lastPersist = now;
    const buffer = this.buffer!;
    await store.save({
      baseUrl: this.host.baseUrl,
      join: this.info,
      seqReserved: Math.max(this.seqReserved, this.seq),
      ...(this.outbox ? { outbox: this.outbox } : {}),
      ...(buffer.count > 0 ? { buffer: { sum: buffer.sum, count: buffer.count, baseVersion: buffer.baseVersion, since: buffer.since } } : {}),
      savedAt: now,
    });
    if (!this.connected && this.tagged && !this.taggedSaved) {
      this.taggedSaved = true;
      await store.saveTagged(this.tagged);
    }
  }

  private async reserveSeq(): Promise<void> {
    if (this.seq + 1 < this.seqReserved) return;
    this.seqReserved = this.seq + 1 + SEQ_BLOCK;
    await this.persist(true);
  }

  // ---- reporting ------------------------------------------------------------------------

  private report(now: number): void {
    this.lastReport = now;
    const join = this.join;
    if (!join) return;
    if (this.cluster) void this.readCluster();
    const s = this.status;
    const body: ReportRequest = {
      backend: this.host.backend,
      examplesPerSec: s.examplesPerSec,
      steps: s.steps,
      numTensors: s.numTensors,
      state: s.state,
      buffered: s.buffered,
      bufferedSince: s.bufferedSince,
      ...(Number.isFinite(s.loss) ? { loss: s.loss } : {}),
      ...(s.lastFlush ? { lastFlush: { count: s.lastFlush.count, version: s.lastFlush.version, duplicate: s.lastFlush.duplicate, at: s.lastFlush.at } } : {}),
    };
    this.fetchFn(new URL('/api/report', this.psUrl), {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${join.token}` },
      body: JSON.stringify(body),
    })
      .then(async (res) => {
        if (!res.ok) return;
        const { shards } = (await res.json()) as ReportResponse;
        if (shards.join(',') !== s.shards.join(',')) this.pendingShards = shards;
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

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => (typeof setImmediate === 'function' ? setImmediate(resolve) : setTimeout(resolve, 0)));
}
