/**
 * Local steps (a run with `localSteps` H > 1, DiLoCo-style): while connected, the worker takes H
 * SGD steps on its own copy of the weights, with the run's (inner) learning rate, then pushes
 * the sum of those H gradients as one update (count H); the PS turns it into the model delta
 * (inner lr x sum) and applies it with its outer optimizer (Nesterov momentum; server/ps/).
 * The worker then pulls fresh weights and starts the next phase from them.
 *
 * An outage is a long local phase: a phase the connection drops in is handed over to the outage
 * buffer (`local` mode: the own copy goes on stepping) and flushed the same way when the PS is
 * back. A graceful stop hands the phase over the same way, so the drain flushes it. A phase is
 * not journaled: a reload (or a kill) loses at most H - 1 steps of it.
 */
import { GradientBuffer } from './buffer.ts';
import type { Outage } from './outage.ts';

export class LocalPhase {
  private buffer = new GradientBuffer(0);
  private own: Float32Array | undefined;
  private base: Float32Array | undefined;

  /** Steps taken in this phase. */
  get count(): number {
    return this.buffer.count;
  }

  /** One inner step from `base()` (read at the phase's first step): returns the own copy to compute on next. */
  step(grad: Float32Array, version: number, lr: number, base: () => Float32Array): Float32Array {
    if (this.buffer.sum.length !== grad.length) this.buffer = new GradientBuffer(grad.length);
    if (!this.own) {
      this.base = base();
      this.own = Float32Array.from(this.base);
    }
    this.buffer.add(grad, version);
    const w = this.own;
    for (let i = 0; i < w.length; i++) w[i] = w[i]! - lr * grad[i]!;
    return w;
  }

  /** The phase as one update: the sum of its gradients, their count and base version. Ends the phase. */
  take(): { sum: Float32Array; count: number; baseVersion: number } {
    const t = this.buffer.take();
    this.own = this.base = undefined;
    return t;
  }

  /** The connection dropped mid-phase: the outage buffer carries on from it. */
  handOver(outage: Outage): void {
    if (this.count === 0) return;
    const own = this.own!;
    const base = this.base!;
    outage.continueFrom(this.take(), own, base);
  }
}
