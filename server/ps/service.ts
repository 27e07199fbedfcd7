/**
 * The one PS loop, shared by every transport: authenticate, decode and validate, apply, let the
 * recovery strategy make the update safe, acknowledge. Nothing from a frame that fails any check
 * is applied; the error is thrown to the transport, which reports it to that client alone.
 */
import { CODEC_NAMES, Codec, ScratchPool, type CodecName } from '../../shared/codec/index.ts';
import type { FastifyBaseLogger } from 'fastify';
import { TabswarmError } from '../../shared/errors.ts';
import type { Robustness } from '../../shared/api.ts';
import type { Layout } from '../../shared/layout.ts';
import { Flag, HEADER_BYTES, MAX_RECORD_ENTRIES, MsgType, TAG_BYTES, decodeFrame, encodeFrame, type Frame } from '../../shared/protocol.ts';
import type { Metrics } from '../metrics.ts';
import { ClaimCheck } from './aggregate/claims.ts';
import { decisionOf, forwardOf } from './aggregate/decision.ts';
import type { ShardAssignment } from './assignment.ts';
import { Offenders, Pace } from './pace.ts';
import type { WorkerSession, Sessions } from './sessions.ts';
import type { Signer } from './signer.ts';
import type { ApplyResult, ParameterStore, Update } from './store.ts';
import type { RecoveryStrategy } from './strategy.ts';

export interface ParameterServerDeps {
  readonly layout: Layout;
  readonly store: ParameterStore;
  readonly strategy: RecoveryStrategy;
  readonly sessions: Sessions;
  readonly assignment: ShardAssignment;
  readonly metrics: Metrics;
  readonly log: FastifyBaseLogger;
  readonly signer: Signer;
  /** Push codecs accepted besides float32 (shared/codec/). @default every registered one */
  readonly codecs?: readonly string[];
}

/** One applied (or recognised as duplicate) flush, as /api/flushes lists it. */
export interface FlushRecord {
  readonly workerId: number;
  readonly seq: number;
  readonly count: number;
  readonly baseVersion: number;
  /** Version the ack reported. */
  readonly version: number;
  readonly staleness: number;
  readonly duplicate: boolean;
  readonly at: number;
}

const FLUSH_LOG_LIMIT = 10000;

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
  readonly signer: Signer;
  /** The most recent flushes this process handled (bounded), for operators and tests. */
  readonly flushLog: FlushRecord[] = [];
  private readonly assignment: ShardAssignment;
  private readonly log: FastifyBaseLogger;
  /** Largest frame accepted: a header plus one full gradient. */
  readonly maxFrameBytes: number;
  /** Push codecs workers may use (float32 always): the join answer and /api/model list them. */
  readonly codecs: readonly CodecName[];
  private readonly codecDtypes: readonly number[];
  /** Decode buffers for coded pushes, reused (shared/codec/scratch.ts). */
  private readonly scratch: ScratchPool;
  /** Updates applied by this process (unlike the version, never reset by a restore). */
  appliedCount = 0;
  private weightsCache: { key: string; bytes: Uint8Array } | undefined;
  /** What pushes may claim about their base version and count (aggregate/claims.ts). */
  readonly claims = new ClaimCheck({ maxCount: 100000, sessionBound: true });
  /** Pushes per second and in flight per session (pace.ts). */
  readonly pace = new Pace();
  /** Sessions too often clipped or refused: disconnected and kept out for a while (pace.ts). */
  readonly offenders = new Offenders();
  /**
   * Pushes applied since the store's last restore (its generation) before a clipped push counts
   * as a strike: during the aggregator's warm-up its radius is an absolute bound, not a measure
   * of honest pushes, so honest ones may be cut there. @default 32; the PS sets --clip-window
   */
  warmupPushes = 32;
  private warm = { generation: -1, pushes: 0 };
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
    this.signer = deps.signer;
    this.maxFrameBytes = HEADER_BYTES + 4 * deps.layout.size;
    this.codecs = CODEC_NAMES.filter((name) => name === 'float32' || (deps.codecs ?? CODEC_NAMES).includes(name));
    this.codecDtypes = this.codecs.map((name) => Codec[name]);
    this.scratch = new ScratchPool(deps.layout.size);
    this.metrics.modelVersion.set(this.store.version);
  }

  /**
   * Joins a worker; with `resume`, under its old id once the id tag verifies. A resumed id the
   * applied-push record no longer holds, while the record has forgotten workers, is refused
   * (PS_RECORD_EXPIRED): its pushes may have been applied, and the PS could not tell a retry.
   */
  join(userAgent: string, resume?: { workerId: number; idTag: string }, address = ''): WorkerSession {
    this.strategy.admitWrite();
    this.offenders.check(address, resume?.workerId);
    if (resume && !this.signer.verifyIdTag(resume.workerId, resume.idTag)) throw new TabswarmError('PS_BAD_RESUME', { worker: resume.workerId });
    const marked = resume !== undefined && this.store.appliedMark(resume.workerId) !== undefined;
    if (resume && !marked && this.store.recordFloor > 0) throw new TabswarmError('PS_RECORD_EXPIRED', { worker: resume.workerId });
    if (resume && this.sessions.get(resume.workerId)) this.leave(resume.workerId, 'resumed in a new session');
    const session = this.sessions.join(userAgent, Date.now(), resume?.workerId, address);
    session.marked = marked;
    session.resumed = resume !== undefined;
    this.claims.joined(session, this.store.version, resume !== undefined);
    this.reassign(this.assignment.join(session.id));
    this.log.info({ worker: session.id, shards: session.shards }, 'worker joined');
    this.updateWorkerGauge();
    return session;
  }

  /** Ends a session; its socket closes with `close`'s code and reason (1000 without). */
  leave(id: number, why: string, close?: TabswarmError): void {
    const session = this.sessions.remove(id);
    if (!session) return;
    session.closeSocket?.(close?.spec.wsClose ?? 1000, close?.closeReason() ?? 'session ended');
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
   * Throws TabswarmError for anything refused; the store is then unchanged. The transport that
   * carried the frame answers and counts the refusal (app.ts error handler, ws.ts `refuse`).
   */
  async handle(session: WorkerSession, bytes: Uint8Array, paced = false): Promise<Uint8Array> {
    // A transport that counts pushes where they arrive (ws.ts) has called arrive() already.
    const release = paced ? undefined : this.arrive(session, bytes);
    try {
      return await this.handleFrame(session, bytes);
    } finally {
      release?.();
    }
  }

  /**
   * Counts a frame as it arrives: a push past the session's pace is refused here (PS_PUSH_RATE,
   * PS_PUSHES_IN_FLIGHT) and is a strike. Returns what to call once the push is answered, or
   * undefined for a frame that is not a push (byte 5 of a frame is its type).
   */
  arrive(session: WorkerSession, bytes: Uint8Array): (() => void) | undefined {
    if (bytes.byteLength <= 5 || bytes[5] !== MsgType.PUSH) return undefined;
    try {
      this.pace.arrive(session, session.id);
    } catch (err) {
      this.strike(session, err instanceof TabswarmError ? err.code : 'refused');
      throw err;
    }
    return () => this.pace.done(session);
  }

  private async handleFrame(session: WorkerSession, bytes: Uint8Array): Promise<Uint8Array> {
    const started = performance.now();
    const frame = decodeFrame(bytes, { layoutHash: this.layout.hash, layoutSize: this.layout.size, maxBytes: this.maxFrameBytes, maxRecordEntries: MAX_RECORD_ENTRIES, codecs: this.codecDtypes, scratch: this.scratch });
    try {
      return await this.route(session, frame, bytes.byteLength, started);
    } finally {
      this.scratch.release(frame.payload); // a coded push decoded into a lent buffer
    }
  }

  private async route(session: WorkerSession, frame: Frame, byteLength: number, started: number): Promise<Uint8Array> {
    if (frame.workerId !== session.id) throw new TabswarmError('PS_WRONG_WORKER', { claimed: frame.workerId, owner: session.id });
    session.lastSeen = session.lastWork = Date.now();
    switch (frame.type) {
      case MsgType.PULL:
        await this.strategy.ready();
        this.strategy.admitRead();
        this.metrics.pulls.inc();
        this.claims.served(session, this.store.version, true);
        return this.weightsFrame();
      case MsgType.PUSH:
        await this.strategy.ready();
        return await this.push(session, frame, byteLength, started);
      case MsgType.OFFER: {
        this.strategy.admitWrite();
        const adopted = this.strategy.offer({
          workerId: frame.workerId,
          version: frame.modelVersion,
          weights: frame.payload,
          weightBytes: frame.payloadBytes,
          record: frame.meta!.record,
          tag: frame.meta!.tag,
          ...(frame.meta!.keyId ? { keyId: frame.meta!.keyId } : {}),
        });
        return this.ack(session, 0, 0, this.store.version, adopted ? Flag.ADOPTED : 0);
      }
      default:
        // WEIGHTS and ACK decode fine but only ever travel from the PS to a worker.
        throw new TabswarmError('PROTO_UNKNOWN_TYPE', { type: frame.type.toString(16).padStart(2, '0') });
    }
  }

  private async push(session: WorkerSession, frame: Frame, bytes: number, started: number): Promise<Uint8Array> {
    this.metrics.gradientBytes.inc(bytes);
    const update = { workerId: frame.workerId, seq: frame.seq, baseVersion: frame.modelVersion, count: frame.count, grad: frame.payload, normSq: frame.normSq, support: frame.support };
    // A strategy may hold applies (a sync checkpoint write, a restore). The check and the apply
    // run in one synchronous step, so no update slips in once a hold is taken.
    while (this.store.held) await this.store.held;
    this.strategy.admitWrite();
    this.checkRecord(session);
    if (!this.store.isRetry(update)) {
      try {
        this.claims.check(session, update.workerId, update.baseVersion, update.count, this.store.version); // a retry is acked again, never re-checked
      } catch (err) {
        this.strike(session, err instanceof TabswarmError ? err.code : 'refused');
        throw err;
      }
    }
    const guardRefused = this.store.guardRefused;
    const before = this.store.aggregator.stats();
    const result = this.store.apply(update);
    this.aggregated(guardRefused);
    // Judged after the ack is on its way (strike schedules the disconnect): answered exactly once.
    if (result.applied) {
      this.claims.counted(update.workerId, update.count);
      if (this.warm.generation !== this.store.generation) this.warm = { generation: this.store.generation, pushes: 0 };
      const judged = ++this.warm.pushes > this.warmupPushes;
      // Past the warm-up, a step the output guard refused is a strike too: an attacker who has
      // taken the clipping scale over (the only worker pushing, or most of the last
      // --clip-window pushes) is no longer clipped, but every step it asks for is refused. In
      // the warm-up the radius is an absolute bound, and a first honest step from weights near
      // 0 may pass the guard's floor.
      const after = this.store.aggregator.stats();
      const reason = !judged ? undefined
        : after.clipped > before.clipped ? 'clipped'
        // A partial cut (cosine between -T and 0) is no strike: an honest worker near
        // convergence, its gradient mostly noise, may drift there now and then.
        : (after.directionZeroed ?? 0) > (before.directionZeroed ?? 0) ? 'direction'
        : this.store.guardRefused > guardRefused ? 'guard' : undefined;
      this.strike(session, reason);
    }
    const isFlush = (frame.flags & Flag.FLUSH) !== 0;
    if (!result.applied) {
      this.metrics.duplicates.inc();
      if (isFlush) this.logFlush(update, result.version, 0, true);
      await this.strategy.durable(result.version);
      return this.ack(session, frame.seq, frame.count, result.version, Flag.DUPLICATE);
    }
    this.metrics.applySeconds.observe((performance.now() - started) / 1000);
    this.counted(result.version, result.staleness);
    session.marked = true;
    session.pushes += 1;
    session.lastStaleness = result.staleness;
    if (isFlush) this.logFlush(update, result.version, result.staleness, false);
    // Replicas apply what this head decided (aggregate/decision.ts), not the worker's gradient.
    const fwd = forwardOf(this.store.lastDecision, this.layout.size);
    await this.strategy.afterApply({ ...update, grad: fwd.grad, version: result.version, flags: (frame.flags & Flag.FLUSH) | fwd.flags });
    return this.ack(session, frame.seq, frame.count, result.version, 0);
  }

  /**
   * Refuses a push the record cannot place: the worker had a mark (this session saw it, or it
   * resumed an id after the record forgot workers) and the mark is gone, so whether its pushes
   * were applied is unknown. The worker drops what it holds and joins as a new worker.
   */
  private checkRecord(session: WorkerSession): void {
    // Floor 0: the record never forgot anyone, so a missing mark means a rollback (a restore to
    // before this worker's first push), after which its pushes are new: the old behaviour.
    if (this.store.recordFloor === 0 || this.store.appliedMark(session.id)) return;
    if (session.marked || session.resumed) throw new TabswarmError('PS_RECORD_EXPIRED', { worker: session.id });
  }

  /**
   * Applies an update another PS applied first (a chain replica applying what its predecessor
   * forwarded): the same store apply, counted and logged like a worker's push, with no strategy
   * hook and no ack (the chain acknowledges along itself).
   */
  applyReplicated(update: Update, flags: number): ApplyResult {
    const result = this.store.applyDecided(update, decisionOf(flags, update.grad));
    if (!result.applied) return result;
    this.counted(result.version, result.staleness);
    if (flags & Flag.FLUSH) this.logFlush(update, result.version, result.staleness, false);
    return result;
  }

  private counted(version: number, staleness: number): void {
    this.appliedCount += 1;
    this.metrics.updatesApplied.inc();
    this.metrics.modelVersion.set(version);
    this.metrics.staleness.observe(staleness);
  }

  private logFlush(u: { workerId: number; seq: number; count: number; baseVersion: number }, version: number, staleness: number, duplicate: boolean): void {
    if (!duplicate) this.metrics.flushes.inc();
    this.flushLog.push({ workerId: u.workerId, seq: u.seq, count: u.count, baseVersion: u.baseVersion, version, staleness, duplicate, at: Date.now() });
    if (this.flushLog.length > FLUSH_LOG_LIMIT) this.flushLog.splice(0, this.flushLog.length - FLUSH_LOG_LIMIT);
    this.log.info({ worker: u.workerId, seq: u.seq, count: u.count, baseVersion: u.baseVersion, version, staleness, duplicate }, duplicate ? 'flush already applied; acknowledged again' : 'flush applied');
  }

  /**
   * Counts a refusal at the boundary. Called from two places only: the HTTP error handler
   * (server/app.ts) and the WebSocket's `refuse` (server/plugins/ws.ts).
   */
  rejected(err: TabswarmError, transport: Transport): void {
    this.metrics.framesRejected.inc({ reason: err.code, transport });
  }

  private clippedSeen = 0;
  private directionSeen = 0;
  private excessSeen = 0;

  /** What /api/status and the console show of the aggregator, the output guard and offenders. */
  robustness(): Robustness {
    const { clipped, radius, excessLimited, directionLimited } = this.store.aggregator.stats();
    const keptOut = this.offenders.list();
    this.metrics.keptOut.set(keptOut.length);
    let offenders = 0;
    for (const n of this.offenders.disconnected.values()) offenders += n;
    const g = this.store.lastGuardRefusal;
    return {
      aggregator: this.store.aggregator.name, clipped, radius, ...(excessLimited !== undefined ? { excessLimited } : {}), ...(directionLimited !== undefined ? { directionLimited } : {}), versionsRefused: this.store.guardRefused, offenders, keptOut,
      ...(g ? { lastGuardRefusal: { version: g.version, workerId: g.workerId, seq: g.seq, reason: g.reason } } : {}),
    };
  }

  /**
   * Records one push's outcome (`reason`: why it was a strike, undefined for a clean push). The
   * push that makes the session an offender is still answered (its ack or its refusal) first:
   * the disconnect is scheduled after the reply is sent (a macrotask; replies go out in
   * microtasks), with PS_OFFENDER as the socket's close code.
   */
  private strike(session: WorkerSession, reason: string | undefined): void {
    if (!this.offenders.record(session, reason !== undefined) || !this.sessions.get(session.id)) return;
    const why = reason ?? 'clipped';
    const { strikes, window } = this.offenders.limits;
    const kept = this.offenders.keepOut(session.id, session.address, why);
    this.metrics.offenders.inc({ reason: why });
    this.metrics.keptOut.set(this.offenders.list().length);
    this.log.warn({ worker: session.id, address: session.address, reason: why, strikes, window, until: new Date(kept.until).toISOString() }, 'repeat offender disconnected and kept out; shards reassigned');
    const close = new TabswarmError('PS_OFFENDER', { worker: session.id, strikes, window });
    setImmediate(() => this.leave(session.id, `offender: ${why}`, close));
  }

  /** Counts what the aggregator cut, and says so when the output guard kept the last good version. */
  private aggregated(guardRefusedBefore: number): void {
    const { clipped, excessLimited = 0, directionLimited = 0 } = this.store.aggregator.stats();
    this.clippedSeen = countSince(this.metrics.pushesClipped, clipped, this.clippedSeen);
    this.excessSeen = countSince(this.metrics.pushesExcessLimited, excessLimited, this.excessSeen);
    this.directionSeen = countSince(this.metrics.pushesDirectionLimited, directionLimited, this.directionSeen);
    if (this.store.guardRefused === guardRefusedBefore) return;
    this.metrics.versionsRefused.inc();
    this.log.warn({ ...this.store.lastGuardRefusal }, 'new version refused by the output guard; the last good weights stay');
  }

  private ack(session: WorkerSession, seq: number, count: number, version: number, flags: number): Uint8Array {
    this.claims.served(session, version, false);
    return encodeFrame({ type: MsgType.ACK, layoutHash: this.layout.hash, modelVersion: version, workerId: session.id, seq, count, flags });
  }

  /**
   * The current weights as a tagged WEIGHTS frame: encoded and tagged once per version (one
   * SHA-256 of the weights, about 2 ms for fashion-cnn here) and shared by all pulls.
   */
  weightsFrame(): Uint8Array {
    const version = this.store.version;
    const key = `${this.store.generation}:${version}`;
    if (this.weightsCache?.key !== key) {
      const record = this.store.record();
      const meta = { tag: new Uint8Array(TAG_BYTES), record, keyId: this.signer.keyId };
      const bytes = encodeFrame({ type: MsgType.WEIGHTS, layoutHash: this.layout.hash, modelVersion: version, workerId: 0, seq: 0, count: 0 }, this.store.weights, meta);
      // The tag covers the payload's wire bytes, so it is computed on the encoded frame.
      const payloadStart = bytes.byteLength - 4 * this.layout.size;
      bytes.set(this.signer.weightsTag(this.layout.hash, version, record, bytes.subarray(payloadStart)), HEADER_BYTES + 4);
      this.weightsCache = { key, bytes };
    }
    return this.weightsCache.bytes;
  }
}

/** Adds to `counter` what an aggregator's running `total` grew by since `seen`; the new `seen`. */
function countSince(counter: { inc(n: number): void }, total: number, seen: number): number {
  if (total > seen) counter.inc(total - seen);
  return total;
}
