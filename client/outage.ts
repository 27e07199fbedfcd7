/**
 * What the worker owes the PS: the outbox (the one push sent and not acknowledged, resent
 * first under its original sequence number) and the gradient buffer (every gradient computed
 * while the PS was unreachable, summed: O(model size) however long the outage), flushed later
 * as one push under a new sequence number. In `local` buffer mode the worker also steps its
 * own copy of the weights during the outage; the buffer still sums the raw gradients, so what
 * is flushed does not depend on the mode (nor on mesh gossip, which only moves the own copy).
 */
import { GradientBuffer } from './buffer.ts';
import type { Outgoing, SavedState } from './state.ts';
import type { WorkerStatus } from './status.ts';

/** `local` mode: the step size and the weights the outage started from. */
export interface LocalStep {
  readonly lr: number;
  /** The pulled weights the worker's own copy starts from (read once per outage). */
  readonly base: () => Float32Array;
  /** Mixes other workers' weights into the own copy after each step (client/mesh/gossip.ts). */
  readonly mix?: (weights: Float32Array) => void;
}

type OutageStatus = Pick<WorkerStatus, 'buffered' | 'bufferedSince' | 'outageSteps' | 'localDrift' | 'restoredBuffered'>;

export class Outage {
  buffer = new GradientBuffer(0);
  /**
   * Whether the outbox was written to a socket: the PS may then have applied it with its ack
   * lost (`unacknowledged`); never written, it was certainly not applied (`undelivered`).
   */
  outboxSent = false;
  private pending: Outgoing | undefined;
  /** `local` mode: the worker's own copy during an outage, and the pulled copy it left. */
  private own: Float32Array | undefined;
  private base: Float32Array | undefined;

  constructor(private readonly status: OutageStatus) {}

  /** The model changed: a buffer of its size (what the old one held cannot apply to it). */
  resize(size: number): void {
    if (this.buffer.sum.length !== size) this.buffer = new GradientBuffer(size);
  }

  /** A push with a sequence number that must reach the PS exactly once. */
  get outbox(): Outgoing | undefined {
    return this.pending;
  }

  set outbox(out: Outgoing | undefined) {
    this.pending = out;
    this.outboxSent = false;
  }

  /** Takes over what an earlier page of this tab saved (client/journal.ts). */
  restore(saved: SavedState): void {
    this.outbox = saved.outbox;
    // The earlier page may have sent it before it was closed: count it as possibly applied.
    this.outboxSent = saved.outbox !== undefined;
    if (saved.buffer) this.buffer.load(saved.buffer);
    this.status.buffered = this.status.restoredBuffered = this.buffer.count;
    this.status.bufferedSince = this.buffer.since;
  }

  /** Something to deliver before training on. */
  get owed(): boolean {
    return this.outbox !== undefined || this.buffer.count > 0;
  }

  /** The weights the worker computes on during a `local` outage, else undefined. */
  get local(): Float32Array | undefined {
    return this.own;
  }

  /**
   * A gradient computed while the PS was unreachable. With `local`, also steps the own copy
   * and returns it (the weights to compute the next gradient on).
   */
  add(grad: Float32Array, version: number, local: LocalStep | undefined): Float32Array | undefined {
    const buffer = this.buffer;
    if (buffer.count === 0) this.status.bufferedSince = Date.now();
    buffer.add(grad, version);
    this.status.buffered = buffer.count;
    this.status.outageSteps += 1;
    if (!local) return undefined;
    if (!this.own) {
      this.base = local.base();
      this.own = Float32Array.from(this.base);
    }
    const w = this.own;
    const base = this.base!;
    let drift = 0;
    for (let i = 0; i < w.length; i++) {
      const v = w[i]! - local.lr * grad[i]!;
      w[i] = v;
      drift += (v - base[i]!) ** 2;
    }
    this.status.localDrift = Math.sqrt(drift);
    local.mix?.(w);
    return w;
  }

  /** A local phase cut by the outage (client/local-phase.ts): its gradients and own copy carry on here. */
  continueFrom(phase: { sum: Float32Array; count: number; baseVersion: number }, own: Float32Array, base: Float32Array): void {
    if (this.buffer.count === 0) this.status.bufferedSince = Date.now();
    this.buffer.merge(phase);
    this.status.buffered = this.buffer.count;
    if (!this.own) {
      this.own = own;
      this.base = base;
    }
  }

  /** Moves the buffer into the outbox as one flush under `seq` (count = gradients summed), coded by `code`. */
  takeFlush(seq: number, code: (out: Outgoing) => Outgoing = (out) => out): Outgoing {
    const b = this.buffer.take();
    this.outbox = code({ seq, count: b.count, baseVersion: b.baseVersion, grad: b.sum, flush: true });
    return this.outbox;
  }

  /** Everything was delivered and fresh weights pulled: the outage is over. */
  end(): void {
    this.own = this.base = undefined;
    this.status.localDrift = 0;
    this.status.buffered = 0;
    this.status.bufferedSince = 0;
  }
}
