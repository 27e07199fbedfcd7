/**
 * The worker's training loop, free of DOM and of any particular socket, storage or tfjs backend:
 * hosts (the page in main.ts, the Node worker in node.ts) inject them. An orchestrator over
 * parts: the PS session (session.ts), the head locator (head-locator.ts), the connection and
 * its reconnect policy (connection.ts), the outage state (outage.ts), the journal (journal.ts)
 * and mesh gossip (mesh/gossip.ts).
 *
 * Connected: pull, sample a batch, compute the gradient, push, repeat.
 * PS unreachable: keep training on the cached shards into the gradient buffer (in `local` mode
 * also stepping the worker's own copy), persisted every few seconds; reconnect in the
 * background. Once back, and after the PS's hello (offering the tagged copy of the weights to a
 * PS that wants one), deliver the outbox under its original sequence number, then flush the
 * buffer as one push under a new one, saved before it is sent. The PS applies each (worker,
 * seq) at most once, so a retried flush is acknowledged again and never applied twice.
 *
 * Stopping (maxSteps, stop(), a signal in the Node worker) drains: the same delivery of the
 * outbox and the buffer (a local phase under way joins the buffer first, so no step computed is
 * dropped), reconnecting as needed, bounded by drainTimeoutMs; `status.drain`
 * then says what was delivered and what was left, so the acks reconcile with the PS's version.
 * A second stop ends the drain at once. A closed tab cannot drain: its journal keeps the rest.
 */
import type { JoinResponse } from '../shared/api.ts';
import type { CodecName } from '../shared/codec/index.ts';
import { TabswarmError } from '../shared/errors.ts';
import { HEADER_BYTES } from '../shared/protocol.ts';
import { mulberry32 } from '../shared/layout.ts';
import { WorkerConnection, ReconnectPolicy, type ConnectionState } from './connection.ts';
import { HeadLocator } from './head-locator.ts';
import { Journal } from './journal.ts';
import { MeshGossip } from './mesh/gossip.ts';
import type { LoopOptions, WorkerHost } from './options.ts';
import { Outage } from './outage.ts';
import { Replica } from './replica.ts';
import { LocalPhase } from './local-phase.ts';
import { PushCoder } from './push-coder.ts';
import { PsSession, type Identity } from './session.ts';
import type { Outgoing } from './state.ts';
import { Drain } from './drain.ts';
import { Throughput, WorkerLedger, initialStatus, type WorkerStatus } from './status.ts';
import type { AckResult, PullResult, WsTransport } from './transport.ts';

export { ConnectionState } from './connection.ts';
export type { LoopOptions, WorkerHost } from './options.ts';
export type { AckEntry, DrainReport, FlushLogEntry, LeftPush, WorkerStatus } from './status.ts';

export class WorkerLoop {
  readonly status: WorkerStatus;
  /** Acknowledged flushes, and pushes with `logAcks`: what tests compare with the PS's records. */
  readonly ledger: WorkerLedger;
  readonly connection: WorkerConnection;
  private readonly session: PsSession;
  private readonly replica: Replica;
  private readonly outage: Outage;
  private readonly journal: Journal;
  private readonly gossip: MeshGossip | undefined;
  private coder: PushCoder;
  private readonly phase = new LocalPhase();
  /** With `overlap`: the push (and pull) still in flight while the next gradient is computed. */
  private inflight: Promise<void> | undefined;
  /** With `overlap`: the worker's guess of the PS's weights once its push in flight is applied. */
  private ahead: Float32Array | undefined;
  private stopped = false;
  /** A second stop: the drain ends at once (resolves `abort`). */
  private aborted = false;
  private abort!: () => void;
  private readonly aborting = new Promise<void>((r) => (this.abort = r));
  /** The drain once the worker stops (drain.ts); acks after its report are not counted. */
  private draining: Drain | undefined;
  private finished = false;
  private lastReport = 0;
  private pendingShards: number[] | undefined;

  constructor(private readonly host: WorkerHost, private readonly opts: LoopOptions = {}) {
    const fetchFn = host.fetch ?? ((...a) => fetch(...a));
    const session = (this.session = new PsSession({ baseUrl: host.baseUrl, fetch: fetchFn, userAgent: host.userAgent ?? `tabswarm-worker (${host.backend})`, requestTimeoutMs: opts.requestTimeoutMs }));
    this.status = initialStatus(host.backend, this.session.url, host.backendReason);
    this.ledger = new WorkerLedger(opts.logAcks ?? false);
    const random = mulberry32(opts.seed ?? Math.floor(Math.random() * 2 ** 31));
    this.replica = new Replica({ tf: host.tf, cache: host.cache, fetch: fetchFn, shardsUrl: () => this.session.url, authorization: () => this.session.authorization(), random, onModel: (size) => this.outage.resize(size), relabel: opts.attack?.relabel });
    this.outage = new Outage(this.status);
    this.coder = this.makeCoder(opts.codec ?? 'float32');
    const snapshot = () => ({ join: this.session.info, outbox: this.outage.outbox, buffer: this.outage.buffer, tagged: this.replica.tagged, connected: this.connection.connected, residual: this.coder.residual });
    this.journal = new Journal(host.state, host.baseUrl, opts.persistEveryMs ?? 2000, snapshot);
    this.gossip = host.mesh && new MeshGossip(host.mesh, () => this.outage.local, () => this.connection.connected);
    this.connection = new WorkerConnection(host.socket, new ReconnectPolicy(opts), session, new HeadLocator({ fetch: fetchFn }), {
      joining: () => this.setState(this.replica.trainer?.hasWeights ? this.status.state : 'joining'),
      joined: (join) => this.joined(join),
      tagged: () => this.replica.tagged,
      refused: () => (this.replica.tagged = undefined),
      opened: async (transport) => {
        if (!this.replica.trainer!.hasWeights) this.takeWeights(await transport.pull());
        if (this.status.state !== 'buffering') this.setState('connected');
      },
      failed: (e, action) => {
        this.status.lastError = e.message;
        // The PS refused our own frame as malformed: resending the same bytes cannot help.
        if (action === 'drop-outgoing') this.outage.outbox = undefined;
        // The PS forgot which of our pushes it applied (past its record's horizon): resending
        // could apply one twice, so the unacknowledged push and the buffer are dropped and the
        // worker joins as a new one (docs/PROTOCOL.md, "The applied-push record").
        if (e.code === 'PS_RECORD_EXPIRED') {
          this.outage.outbox = undefined;
          this.coder.reset();
          this.outage.buffer.clear();
          this.status.buffered = 0;
        }
        if (this.status.state !== 'buffering') this.setState('connecting');
      },
      moved: (head) => Object.assign(this.status, { psUrl: head, failovers: this.status.failovers + 1 }),
      control: (msg) => {
        if (msg.type === 'assign') this.pendingShards = msg.shards;
      },
    }, opts.requestTimeoutMs);
  }

  /**
   * Stops after the current step, draining first (see drain). `{ drain: false }`, a second
   * call, or any call while a drain runs stops at once: what was owed is reported as left.
   */
  stop(opts: { drain?: boolean } = {}): void {
    if (this.stopped || this.draining || opts.drain === false) {
      this.aborted = true;
      this.abort();
      this.connection.stop();
    }
    this.stopped = true;
  }

  /** Runs until stop() or maxSteps, then drains (status.drain says how); rejects only on a terminal error. */
  async run(): Promise<WorkerStatus> {
    try {
      await this.restore();
      const max = this.opts.maxSteps ?? Infinity;
      const throughput = new Throughput();
      while (!this.stopped && this.status.steps < max) {
        this.connection.maybeConnect();
        if (this.connection.fatal) throw this.connection.fatal;
        if (!this.replica.ready) {
          await this.connection.settle();
          continue;
        }
        // An outage or a buffer to flush first: the push in flight settles (acked or failed) before.
        if (this.inflight && (!this.connection.connected || this.outage.buffer.count > 0)) await this.landed();
        if (this.connection.connected && this.outage.owed && !this.inflight) {
          await this.flush(this.connection.transport!);
          continue;
        }
        await this.step();
        const now = performance.now();
        this.status.examplesPerSec = throughput.step(this.replica.trainer!.batch, now) ?? this.status.examplesPerSec;
        this.status.numTensors = this.host.tf.memory().numTensors;
        this.host.onStatus?.(this.status);
        if (this.connection.connected && now - this.lastReport >= (this.opts.reportEveryMs ?? 2000)) this.report(now);
      }
      await this.landed();
      // A local phase cut by the stop is owed like an outage's steps: the drain flushes it.
      await this.handOverPhase();
      const ms = this.opts.drainTimeoutMs ?? (this.opts.requestTimeoutMs ?? 10000) + 5000;
      this.draining = new Drain({ outage: this.outage, connection: this.connection, flush: (t) => this.flush(t), aborting: this.aborting, aborted: () => this.aborted, setState: (st) => this.setState(st) }, ms);
      this.status.drain = await this.draining.run();
      await this.journal.persist(true);
      this.setState('stopped');
      return this.status;
    } catch (err) {
      this.status.lastError = (err as Error).message;
      this.setState('failed');
      throw err;
    } finally {
      this.stopped = this.finished = true;
      this.connection.stop();
      this.replica.dispose();
    }
  }

  /** The weights the worker computes on now (its own copy in a `local` outage), for the page and tests. */
  currentWeights(): Float32Array | undefined {
    const { tagged } = this.replica;
    return this.outage.local ?? (tagged && this.session.info ? Replica.weightsOf(tagged, this.session.info).weights : undefined);
  }

  private async step(): Promise<void> {
    if (this.pendingShards && this.connection.connected) {
      const shards = this.pendingShards;
      this.pendingShards = undefined;
      await this.useShards(shards);
    }
    const info = this.session.info!;
    // Local steps, connected: H steps on the backend's own copy, then their sum as one update.
    if (info.localSteps > 1 && this.connection.connected) return this.localStep(info);
    const { grad, loss } = await this.replica.step();
    this.status.steps += 1;
    this.status.loss = loss;
    await this.landed(); // one push in flight at most
    if (!this.connection.connected) {
      await this.handOverPhase();
      this.buffer(grad);
      // Let socket events run: on a CPU backend a step awaits only microtasks, and a loop that
      // never yields to the event loop would never see the PS come back.
      return yieldToEventLoop();
    }
    return this.push({ sum: grad, count: 1, baseVersion: this.replica.version }, info);
  }

  /** One step of a local phase (client/local-phase.ts); the phase's last one pushes the phase. */
  private async localStep(info: Identity): Promise<void> {
    this.replica.computeLocal();
    this.status.steps += 1;
    await this.landed(); // one push in flight at most; its pull, if it came, is what this step lands on
    this.phase.step(this.replica.trainer!, this.replica.version, info.lr);
    if (!this.connection.connected) {
      await this.handOverPhase();
      this.setState('buffering');
      void this.journal.persist(false);
      return yieldToEventLoop();
    }
    if (this.phase.count < info.localSteps) return yieldToEventLoop();
    const phase = await this.phase.take();
    this.status.loss = phase.loss;
    return this.push(phase, info);
  }

  /** A local phase under way joins the outage buffer (a drop, or a stop): its steps are owed. */
  private handOverPhase(): Promise<void> {
    const info = this.session.info;
    return this.phase.handOver(this.outage, () => Replica.weightsOf(this.replica.tagged!, info!).weights);
  }

  /** Sends one update (a step's gradient, or a local phase's sum) and pulls as the run says. */
  private async push(update: { sum: Float32Array; count: number; baseVersion: number }, info: Identity): Promise<void> {
    // Never claim a base version past what this connection's PS told: after a rollback (a
    // checkpoint restore) a step begun on the old weights ends here, and its true base is a
    // version the PS never reached (refused as PS_CLAIM_AHEAD, which stopped both tabs of the
    // reference experiment). Claimed as the PS's newest version instead, it counts as fresh.
    const baseVersion = Math.min(update.baseVersion, this.connection.transport!.told);
    const honest: Outgoing = { seq: await this.journal.nextSeq(), count: update.count, baseVersion, grad: update.sum, flush: false };
    const out = this.coder.code(this.opts.attack ? this.opts.attack(honest) : honest); // attack: test-only hostile worker
    this.outage.outbox = out;
    const transport = this.connection.transport!;
    // After a local phase the own copy is spent: fresh weights, always.
    const pullNow = info.localSteps > 1 || this.status.steps % info.pullEvery === 0;
    const mesh = pullNow && this.host.mesh?.relay ? this.host.mesh : undefined;
    const exchange = this.exchange(transport, out, pullNow, mesh);
    // Overlap: the next gradient is computed while this push is on the wire. Computed on the
    // weights from before it, it would be one push staler, and delayed SGD at the same rate sits
    // past its stability edge (measured: mnist-mlp stalled at loss ~2). So the worker looks
    // ahead: it applies its own push to its copy, as the PS will (plain SGD at the run's rate),
    // and computes on that; the pulled weights replace the guess when they arrive.
    if (!this.opts.overlap) return exchange;
    this.inflight = exchange;
    if (info.localSteps === 1) {
      const ahead = this.ahead ?? Float32Array.from(Replica.weightsOf(this.replica.tagged!, info).weights);
      const g = out.grad;
      for (let i = 0; i < ahead.length; i++) ahead[i] = ahead[i]! - info.lr * g[i]!;
      this.ahead = ahead;
      this.replica.trainer!.setWeights(ahead);
    }
  }

  /** The push in flight, settled (its ack recorded, or the outage begun). */
  private async landed(): Promise<void> {
    const inflight = this.inflight;
    this.inflight = undefined;
    await inflight;
  }

  private async exchange(transport: WsTransport, out: Outgoing, pullNow: boolean, mesh: WorkerHost['mesh'] | undefined): Promise<void> {
    try {
      // Push and pull back to back: the PS handles a socket's frames in order, so the weights
      // that come back already contain this gradient.
      const [ack, pulled] = await Promise.all([this.send(transport, out), pullNow && !mesh ? this.connection.pull(transport) : undefined]);
      this.acked(out, ack);
      // Relay: signed weights at most relayMaxLag versions behind the ack from a peer, else from
      // the PS. A peer's copy from before a checkpoint rollback may be taken here; the next
      // push's claim is clamped to what this PS told (step()), and the next fetch asks for a
      // version past it, which only the PS has.
      if (mesh) this.takeWeights((await mesh.fetch(Math.max(this.replica.version + 1, ack.version - mesh.relayMaxLag))) ?? (await transport.pull()));
      else if (pulled) this.takeWeights(pulled);
      this.connection.policy.synced();
    } catch (err) {
      this.connection.disconnected(err); // the push stays in the outbox, delivered first on reconnect
    }
  }

  /** A gradient computed while the PS is unreachable goes into the outage's buffer. */
  private buffer(grad: Float32Array): void {
    const info = this.session.info!;
    const local = info.bufferMode === 'local' || this.opts.bufferMode === 'local';
    const base = () => Replica.weightsOf(this.replica.tagged!, info).weights;
    const own = this.outage.add(grad, this.replica.version, local ? { lr: info.lr, base, mix: this.gossip && ((w) => this.gossip!.mix(w)) } : undefined);
    if (own) this.replica.trainer!.setWeights(own);
    this.setState('buffering');
    void this.journal.persist(false);
  }

  /** Delivers the outbox, then the buffer as one flush under a new seq saved before sending; then fresh weights. */
  private async flush(transport: WsTransport): Promise<void> {
    this.setState('flushing');
    try {
      // Claims clamped to what this PS told, as in step(): a rolled-back PS never sent them.
      const told = transport.told;
      if (this.outage.outbox && this.outage.outbox.baseVersion > told) this.outage.outbox = { ...this.outage.outbox, baseVersion: told };
      if (this.outage.outbox) this.acked(this.outage.outbox, await this.send(transport, this.outage.outbox));
      if (this.outage.buffer.count > 0) {
        const out = this.outage.takeFlush(await this.journal.nextSeq(), (o) => this.coder.code({ ...o, baseVersion: Math.min(o.baseVersion, told) }));
        await this.journal.persist(true); // the flush keeps this seq even if the tab dies now
        this.acked(out, await this.send(transport, out));
      }
      if (!this.draining) this.takeWeights(await this.connection.pull(transport)); // stopping: nothing to train on
      this.outage.end();
      await this.journal.persist(true);
      this.connection.policy.synced();
      this.setState('connected');
    } catch (err) {
      this.connection.disconnected(err);
    }
  }

  /** Sends `out`; once written to an open socket it counts as possibly applied. */
  private send(transport: WsTransport, out: Outgoing): Promise<AckResult> {
    if (transport.open && out === this.outage.outbox) this.outage.outboxSent = true;
    this.status.pushBytes = (this.status.pushBytes ?? 0) + HEADER_BYTES + (out.coded ? out.coded.bytes.byteLength : 4 * out.grad.length);
    return transport.deliver(out);
  }

  private acked(out: Outgoing, ack: AckResult): void {
    // After the drain's report was written the worker is gone as far as its ledger goes: an ack
    // that still arrives is not recorded, so the report's `left` stays exact.
    if (this.finished || this.draining?.done) return;
    if (this.outage.outbox === out) this.outage.outbox = undefined;
    this.status.serverVersion = Math.max(this.status.serverVersion, ack.version);
    this.status.lastFlush = this.ledger.record(this.session.info!.workerId, out, ack) ?? this.status.lastFlush;
    this.draining?.acked(out, ack);
  }

  /** A new session: the trainer for its model, its data, its sequence numbers. */
  private async joined(join: JoinResponse): Promise<void> {
    this.host.checkModel?.(join.model);
    const { layout } = this.replica.ensure(join);
    if (layout.hash !== join.layoutHash) throw new TabswarmError('PROTO_LAYOUT_MISMATCH', { got: layout.hash, want: join.layoutHash });
    this.journal.observe(join.lastSeq);
    // A new id owes nothing of the old one's residual; a PS that does not take our codec gets float32.
    if (join.workerId !== this.status.workerId && this.status.workerId !== 0) this.coder.reset();
    const asked = this.opts.codec ?? 'float32';
    const accepted = !join.codecs || join.codecs.includes(asked);
    if ((accepted ? asked : 'float32') !== this.coder.name) this.coder = this.makeCoder(accepted ? asked : 'float32');
    this.status.codec = accepted ? asked : `float32 (this PS does not accept ${asked})`;
    this.status.localSteps = join.localSteps ?? 1;
    Object.assign(this.status, { workerId: join.workerId, model: join.model, bufferMode: this.opts.bufferMode ?? join.bufferMode });
    if (!this.replica.trainer!.hasWeights) this.setState('loading-data');
    await this.useShards(join.shards);
    await this.journal.persist(true);
  }

  // ---- weights, data, restore, report -------------------------------------------------------

  private takeWeights(pulled: PullResult): void {
    this.replica.take(pulled);
    this.ahead = undefined;
    this.status.serverVersion = Math.max(this.status.serverVersion, pulled.version);
    this.gossip?.forget();
    this.host.mesh?.hold(pulled.frame, pulled.version);
  }

  private async useShards(shards: number[]): Promise<void> {
    await this.replica.useShards(this.session.info!.dataKey, shards);
    this.status.shards = shards;
    this.status.examples = this.replica.examples;
  }

  /** Restores what an earlier page of this tab saved: identity, seq, outbox, buffer, weights. */
  private async restore(): Promise<void> {
    const restored = await this.journal.restore();
    if (!restored) return;
    const { saved, tagged } = restored;
    this.host.checkModel?.(saved.join.model);
    this.session.info = saved.join;
    this.replica.ensure(saved.join);
    this.outage.restore(saved);
    this.coder.restore(saved.residual, saved.join.layoutSize);
    Object.assign(this.status, { workerId: saved.join.workerId, model: saved.join.model, bufferMode: this.opts.bufferMode ?? saved.join.bufferMode, restored: true });
    // A damaged copy is not trained on; the worker waits for the PS instead.
    const weights = tagged && Replica.weightsOrNothing(tagged, saved.join);
    if (weights) this.takeWeights(weights);
    await this.useShards(saved.join.shards).catch(() => {}); // not cached: nothing to train on until the PS is back
    if (this.replica.trainer!.hasWeights && this.outage.buffer.count > 0) this.setState('buffering');
  }

  /** Best effort: the socket tells when the PS is really gone. Keeps the cluster view and the shards current. */
  private report(now: number): void {
    this.lastReport = now;
    const s = this.status;
    void this.connection.report(s).then((answer) => {
      if (answer && answer.shards.join(',') !== s.shards.join(',')) this.pendingShards = answer.shards;
    });
  }

  private makeCoder(name: CodecName): PushCoder {
    return new PushCoder(name, { ...(this.opts.topkRatio !== undefined ? { topkRatio: this.opts.topkRatio } : {}), ...(this.opts.int8Block !== undefined ? { blockSize: this.opts.int8Block } : {}) });
  }

  private setState(state: ConnectionState): void {
    // While draining, the connection's own transitions (flushing, connecting) stay inside it.
    if (this.draining && !this.draining.done && state !== 'stopped' && state !== 'failed') state = 'draining';
    this.status.state = state;
    this.host.onStatus?.(this.status);
  }
}

/**
 * Lets pending events run (socket messages, timers) before the next step. Node: setImmediate. A
 * page: a message on a MessageChannel, not setTimeout(0), which browsers clamp to 4 ms once
 * timers nest 5 deep, as a loop of steps does: 4 ms a step is most of a small model's step.
 */
const yieldToEventLoop: () => Promise<void> =
  typeof setImmediate === 'function'
    ? () => new Promise((resolve) => setImmediate(resolve))
    : typeof MessageChannel === 'function'
      ? messageYield()
      : () => new Promise((resolve) => setTimeout(resolve, 0));

function messageYield(): () => Promise<void> {
  const channel = new MessageChannel();
  const waiting: (() => void)[] = [];
  channel.port1.onmessage = () => waiting.shift()?.();
  return () => new Promise<void>((resolve) => {
    waiting.push(resolve);
    channel.port2.postMessage(null);
  });
}
