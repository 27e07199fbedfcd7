/**
 * The worker's connection to the PS: one state enum, one reconnect policy, one path that
 * connects. An attempt finds the head first when the last failure says it may have moved
 * (client/head-locator.ts), joins when there is no session (client/session.ts), opens the
 * WebSocket, waits for the PS's hello (with a timeout), offers the worker's copy of the weights
 * to a PS that wants one, and only then counts as connected. Every failure goes through
 * `disconnected`, which classifies it (client/failures.ts), ends what it invalidates, lets the
 * loop drop the rest, and schedules the next attempt.
 */
import type { ControlMessage, JoinResponse, ReportResponse } from '../shared/api.ts';
import { Backoff, backoffDelay, type BackoffOptions } from '../shared/backoff.ts';
import { TabswarmError } from '../shared/errors.ts';
import { MsgType, retypeFrame } from '../shared/protocol.ts';
import { classify, type ErrorAction } from './failures.ts';
import type { HeadLocator } from './head-locator.ts';
import type { PsSession } from './session.ts';
import type { WorkerStatus } from './status.ts';
import { WsTransport, type Hello, type PullResult, type SocketFactory } from './transport.ts';

/**
 * What the worker is doing, as status.state shows it (the page, the report, tests).
 *
 *   joining      -> loading-data -> connected       first join: weights and shards to fetch
 *   connected    -> connecting                       a failure (retried by the policy below)
 *   connecting   -> buffering                        a step computed while disconnected
 *   connecting   -> connected                        back, nothing owed
 *   buffering    -> flushing -> connected            back: outbox, then the buffer, then fresh weights
 *   flushing     -> connecting / buffering           the flush failed: it is retried (same seq)
 *   any          -> draining -> stopped              stop(), a signal or maxSteps: deliver what is owed first
 *   draining     -> stopped                          drained, the drain timeout, or a second stop()
 *   any          -> failed                           a fatal error (wrong model, backend, layout)
 * A restored tab starts in `buffering` when it saved weights and gradients.
 */
export const ConnectionState = {
  Joining: 'joining',
  LoadingData: 'loading-data',
  Connecting: 'connecting',
  Connected: 'connected',
  /** PS unreachable: training goes on into the gradient buffer (client/outage.ts). */
  Buffering: 'buffering',
  /** Back: delivering the outbox, then the buffer, before training on. */
  Flushing: 'flushing',
  /** Stopping: delivering the outbox, then the buffer, within the drain timeout (client/loop.ts). */
  Draining: 'draining',
  Stopped: 'stopped',
  Failed: 'failed',
} as const;
export type ConnectionState = (typeof ConnectionState)[keyof typeof ConnectionState];

export interface ReconnectOptions {
  /**
   * Reconnect backoff: first delay, cap, and +- jitter fraction. The cap bounds how late a
   * worker notices a restarted PS (keep the stateless PS's adoption window above cap * 1.5).
   * @default 250, 2000, 0.5
   */
  backoffMinMs?: number;
  backoffMaxMs?: number;
  backoffJitter?: number;
}

/**
 * When to try again: shared/backoff.ts's delays after consecutive failures. The count resets
 * only after a successful sync (an acknowledged push, a finished flush), never on socket open.
 * While the worker relocates in a cluster the first three attempts go at once: the locator
 * itself waits on the nodes for the reconfiguration.
 */
export class ReconnectPolicy {
  private readonly backoffOptions: BackoffOptions;
  private readonly backoff: Backoff;
  private nextAttempt = 0;

  constructor(o: ReconnectOptions = {}) {
    this.backoffOptions = {
      ...(o.backoffMinMs !== undefined ? { minMs: o.backoffMinMs } : {}),
      ...(o.backoffMaxMs !== undefined ? { maxMs: o.backoffMaxMs } : {}),
      ...(o.backoffJitter !== undefined ? { jitter: o.backoffJitter } : {}),
    };
    this.backoff = new Backoff(this.backoffOptions);
  }

  /** The delay after `failures` consecutive failures, as this policy draws it. */
  delay(failures: number): number {
    return backoffDelay(failures, this.backoffOptions);
  }

  get failures(): number {
    return this.backoff.failures;
  }

  /** ms until the next attempt may start (0 when due). */
  wait(now = Date.now()): number {
    return Math.max(0, this.nextAttempt - now);
  }

  failed(relocating: boolean): void {
    const delay = this.backoff.fail();
    this.nextAttempt = Date.now() + (relocating && this.backoff.failures <= 3 ? 0 : delay);
  }

  synced(): void {
    this.backoff.reset();
  }
}

/** What the loop does at each point of an attempt. */
export interface ConnectionHooks {
  /** A join is about to start (the state shows it). */
  joining(): void;
  /** A session was opened: the loop sets up its trainer and data for it; throws to fail the attempt. */
  joined(join: JoinResponse): Promise<void>;
  /** The tagged copy of the weights, offered to a PS whose hello wants one. */
  tagged(): Uint8Array | undefined;
  /** The PS refused that copy as forged: it is never offered again. */
  refused(): void;
  /** Connected: fetch weights if there are none yet, show the state. */
  opened(transport: WsTransport): Promise<void>;
  /** A failure, classified: the loop shows it and drops what it invalidates beyond the session. */
  failed(err: TabswarmError, action: ErrorAction): void;
  /** Writes go to another node of the cluster (a new head). */
  moved(head: string): void;
  /** A control message other than the hello (e.g. new shards). */
  control(msg: ControlMessage): void;
}

/**
 * The connection to the PS: the HTTP session (session.ts), the head of a cluster (head-locator.ts)
 * and the socket (transport.ts), with one path that opens them in order and one that takes every
 * failure.
 */
export class WorkerConnection {
  /** The socket of the current (or last) attempt. */
  transport: WsTransport | undefined;
  /** Handshake done and no failure since: pushes go out; otherwise the worker buffers. */
  connected = false;
  /** A failure no retry can mend: the loop stops with it. */
  fatal: TabswarmError | undefined;
  private connecting: Promise<void> | undefined;
  private failedTransport: WsTransport | undefined;
  private stopped = false;

  constructor(
    private readonly socket: SocketFactory,
    readonly policy: ReconnectPolicy,
    readonly session: PsSession,
    readonly locator: HeadLocator,
    private readonly hooks: ConnectionHooks,
    /** Timeout of every socket request and of the hello. @default 10000 */
    private readonly requestTimeoutMs = 10000,
  ) {}

  /** Starts an attempt in the background when one is due and none is running. */
  maybeConnect(): void {
    if (this.stopped || this.connected || this.connecting || this.policy.wait() > 0) return;
    this.connecting = this.connect().finally(() => (this.connecting = undefined));
  }

  /** Waits for the attempt in flight, or a little (at most 250 ms) towards the next one. */
  async settle(): Promise<void> {
    if (this.connecting) await this.connecting;
    else await new Promise((r) => setTimeout(r, Math.max(10, Math.min(250, this.policy.wait()))));
  }

  /**
   * The current weights: from the write node, or, in a cluster with strict reads, from the tail
   * (only updates every node holds), falling back to the write node if the tail cannot answer.
   */
  pull(transport: WsTransport): Promise<PullResult> {
    const view = this.locator.view;
    const tail = view?.reads === 'strict' ? view.tail : undefined;
    if (!tail || tail === this.session.url || !this.session.info?.idTag) return transport.pull();
    return this.session.tailWeights(tail).catch(() => transport.pull());
  }

  /** The status report, with a fresh read of the cluster; undefined without a session. Best effort. */
  async report(status: Readonly<WorkerStatus>): Promise<ReportResponse | undefined> {
    if (!this.session.current) return undefined;
    if (this.locator.view || !this.locator.settled) void this.locator.refresh(this.session.url);
    return this.session.report(status).catch(() => undefined);
  }

  private async connect(): Promise<void> {
    this.transport?.close();
    this.transport = undefined;
    try {
      if (this.locator.pending) {
        const head = await this.locator.locate(this.session.url);
        if (head && head !== this.session.url) {
          this.session.moveTo(head);
          this.hooks.moved(head);
        }
      }
      const join = this.session.current ?? (await this.join());
      const transport = new WsTransport(
        { url: this.session.socketUrl(), workerId: join.workerId, layoutHash: join.layoutHash, layoutSize: join.layoutSize, requestTimeoutMs: this.requestTimeoutMs, onControl: (msg) => this.hooks.control(msg) },
        this.socket,
      );
      this.transport = transport;
      await transport.connect();
      const hello = await helloOf(transport, this.requestTimeoutMs);
      const tagged = this.hooks.tagged();
      if (hello.wantsWeights && tagged) await this.offer(transport, tagged, join.workerId);
      void transport.closed.then((e) => {
        if (this.transport === transport && this.connected) this.disconnected(e);
      });
      this.connected = true;
      await this.hooks.opened(transport);
    } catch (err) {
      this.disconnected(err);
    }
  }

  private async join(): Promise<JoinResponse> {
    this.hooks.joining();
    const join = await this.session.join();
    // A join tells whether the PS is a node of a cluster (then failover is on), until one read
    // has answered it (reports read again too).
    if (!this.locator.settled) await this.locator.refresh(this.session.url);
    await this.hooks.joined(join);
    return join;
  }

  /** Offers the tagged copy to a PS that wants one (a restarted stateless PS adopts a copy). */
  private async offer(transport: WsTransport, tagged: Uint8Array, workerId: number): Promise<void> {
    try {
      await transport.offer(retypeFrame(tagged, MsgType.OFFER, workerId));
    } catch (err) {
      if (err instanceof TabswarmError && (err.code === 'PS_FORGED_WEIGHTS' || err.code === 'PS_OTHER_RUN' || err.code === 'PROTO_BAD_META')) this.hooks.refused();
      throw err;
    }
  }

  /** Classifies a failure, drops what it invalidates, and schedules the next attempt. */
  disconnected(err: unknown): void {
    if (this.stopped) return;
    // One failure is often reported twice (the close event and the request it failed).
    if (this.transport && this.transport === this.failedTransport) return;
    this.failedTransport = this.transport;
    this.connected = false;
    this.transport?.close(1000, 'reconnecting');
    const e = err instanceof TabswarmError ? err : new TabswarmError('WORKER_DISCONNECTED', { code: 0, reason: (err as Error).message });
    const action = classify(e);
    if (action === 'fatal') this.fatal = e;
    // A cluster: the head may have changed. A node that is not the head names the one it knows.
    if (action === 'relocate' || (this.locator.view && action === 'retry')) {
      if (e.code === 'CHAIN_NOT_HEAD') this.locator.suspect(this.session.url, String(e.details.head ?? ''), Number(e.details.epoch));
      else this.locator.suspect(this.session.url);
    }
    if (action === 'rejoin') this.session.end();
    if (action === 'forget-identity') this.session.forgetIdentity();
    this.hooks.failed(e, action);
    this.policy.failed(this.locator.pending);
  }

  stop(): void {
    this.stopped = true;
    this.transport?.close();
  }
}

/** The PS's hello, the first message on every connection; a socket that closes or stays silent fails. */
function helloOf(transport: WsTransport, ms: number): Promise<Hello> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const silent = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TabswarmError('WORKER_TIMEOUT', { what: 'the hello', ms })), ms);
  });
  return Promise.race([transport.hello, transport.closed.then((e) => Promise.reject(e)), silent]).finally(() => clearTimeout(timer));
}
