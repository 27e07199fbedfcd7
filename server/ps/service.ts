/**
 * The one PS loop, shared by every transport: authenticate, decode and validate, apply, let the
 * recovery strategy make the update safe, acknowledge. Nothing from a frame that fails any check
 * is applied; the error is thrown to the transport, which reports it to that client alone.
 */
import type { FastifyBaseLogger } from 'fastify';
import { TabswarmError } from '../../shared/errors.ts';
import type { Layout } from '../../shared/layout.ts';
import { HEADER_BYTES, MsgType, decodeFrame, encodeFrame } from '../../shared/protocol.ts';
import type { Metrics } from '../metrics.ts';
import type { ShardAssignment } from './assignment.ts';
import type { WorkerSession, Sessions } from './sessions.ts';
import type { ParameterStore } from './store.ts';
import type { RecoveryStrategy } from './strategy.ts';

export interface ParameterServerDeps {
  readonly layout: Layout;
  readonly store: ParameterStore;
  readonly strategy: RecoveryStrategy;
  readonly sessions: Sessions;
  readonly assignment: ShardAssignment;
  readonly metrics: Metrics;
  readonly log: FastifyBaseLogger;
}

export type Transport = 'ws' | 'http';

/** Frame that tells a worker its shards changed (sent as a WebSocket text message). */
export interface AssignMessage {
  readonly type: 'assign';
  readonly shards: number[];
}

export class ParameterServer {
  readonly layout: Layout;
  readonly store: ParameterStore;
  readonly strategy: RecoveryStrategy;
  readonly sessions: Sessions;
  readonly metrics: Metrics;
  private readonly assignment: ShardAssignment;
  private readonly log: FastifyBaseLogger;
  /** Largest frame accepted: a header plus one full gradient. */
  readonly maxFrameBytes: number;
  /** Updates applied by this process (unlike the version, never reset by a restore). */
  appliedCount = 0;
  private weightsCache: { key: string; bytes: Uint8Array } | undefined;
  /** Sends an assignment change to a worker's socket, if connected (set by the WS transport). */
  notify: (session: WorkerSession, msg: AssignMessage) => void = () => {};

  constructor(deps: ParameterServerDeps) {
    this.layout = deps.layout;
    this.store = deps.store;
    this.strategy = deps.strategy;
    this.sessions = deps.sessions;
    this.assignment = deps.assignment;
    this.metrics = deps.metrics;
    this.log = deps.log;
    this.maxFrameBytes = HEADER_BYTES + 4 * deps.layout.size;
    this.metrics.modelVersion.set(this.store.version);
  }

  join(userAgent: string): WorkerSession {
    const session = this.sessions.join(userAgent);
    this.reassign(this.assignment.join(session.id));
    this.log.info({ worker: session.id, shards: session.shards }, 'worker joined');
    this.updateWorkerGauge();
    return session;
  }

  leave(id: number, why: string): void {
    const session = this.sessions.remove(id);
    if (!session) return;
    session.closeSocket?.(1000, 'session ended');
    this.reassign(this.assignment.leave(id));
    this.log.info({ worker: id, why }, 'worker left; shards reassigned');
    this.updateWorkerGauge();
  }

  private reassign(changed: Set<number>): void {
    for (const id of changed) {
      const s = this.sessions.get(id);
      if (!s) continue;
      s.shards = this.assignment.shardsOf(id);
      this.notify(s, { type: 'assign', shards: s.shards });
    }
  }

  updateWorkerGauge(): void {
    const counts = { joined: 0, connected: 0, disconnected: 0 };
    for (const s of this.sessions.all()) counts[s.state] += 1;
    for (const [state, n] of Object.entries(counts)) this.metrics.workers.set({ state }, n);
  }

  /**
   * Handles one binary frame from an authenticated worker and returns the reply frame.
   * Throws TabswarmError for anything refused; the store is then unchanged.
   */
  async handle(session: WorkerSession, bytes: Uint8Array, transport: Transport): Promise<Uint8Array> {
    const started = performance.now();
    try {
      const frame = decodeFrame(bytes, { layoutHash: this.layout.hash, layoutSize: this.layout.size, maxBytes: this.maxFrameBytes });
      if (frame.workerId !== session.id) throw new TabswarmError('PS_WRONG_WORKER', { claimed: frame.workerId, owner: session.id });
      session.lastSeen = Date.now();
      switch (frame.type) {
        case MsgType.PULL:
          this.metrics.pulls.inc();
          return this.weightsFrame();
        case MsgType.PUSH: {
          this.metrics.gradientBytes.inc(bytes.byteLength);
          const update = { workerId: frame.workerId, seq: frame.seq, baseVersion: frame.modelVersion, count: frame.count, grad: frame.payload };
          const result = this.store.apply(update);
          if (!result.applied) {
            this.metrics.duplicates.inc();
            return this.ack(session, frame.seq, frame.count, result.version);
          }
          this.metrics.applySeconds.observe((performance.now() - started) / 1000);
          this.appliedCount += 1;
          this.metrics.updatesApplied.inc();
          this.metrics.modelVersion.set(result.version);
          this.metrics.staleness.observe(result.staleness);
          session.pushes += 1;
          session.lastStaleness = result.staleness;
          await this.strategy.afterApply({ ...update, version: result.version });
          return this.ack(session, frame.seq, frame.count, result.version);
        }
        default:
          // WEIGHTS and ACK decode fine but only ever travel from the PS to a worker.
          throw new TabswarmError('PROTO_UNKNOWN_TYPE', { type: frame.type.toString(16).padStart(2, '0') });
      }
    } catch (err) {
      if (err instanceof TabswarmError) this.metrics.framesRejected.inc({ reason: err.code, transport });
      throw err;
    }
  }

  /** Counts a refusal that happened before a frame reached `handle` (auth, text frames). */
  rejected(err: TabswarmError, transport: Transport): void {
    this.metrics.framesRejected.inc({ reason: err.code, transport });
  }

  private ack(session: WorkerSession, seq: number, count: number, version: number): Uint8Array {
    return encodeFrame({ type: MsgType.ACK, layoutHash: this.layout.hash, modelVersion: version, workerId: session.id, seq, count });
  }

  /** The current weights as a WEIGHTS frame, encoded once per version and shared by all pulls. */
  weightsFrame(): Uint8Array {
    const version = this.store.version;
    const key = `${this.store.generation}:${version}`;
    if (this.weightsCache?.key !== key) {
      const bytes = encodeFrame({ type: MsgType.WEIGHTS, layoutHash: this.layout.hash, modelVersion: version, workerId: 0, seq: 0, count: 0 }, this.store.weights);
      this.weightsCache = { key, bytes };
    }
    return this.weightsCache.bytes;
  }
}
