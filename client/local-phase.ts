/**
 * Local steps (a run with `localSteps` H > 1, DiLoCo-style): while connected, the worker takes H
 * SGD steps on its own copy of the weights, with the run's (inner) learning rate, then pushes
 * the sum of those H gradients as one update (count H); the PS turns it into the model delta
 * (inner lr x sum) and applies it with its outer optimizer (Nesterov momentum; server/ps/).
 * The worker then pulls fresh weights and starts the next phase from them.
 *
 * The phase runs on the tfjs backend (Trainer.computeLocal / applyLocal): the own copy is the
 * trainer's weight tensors, and the gradient and loss sums are kept beside them, so a step
 * reads nothing back and a phase reads back one sum (the status shows the phase's mean loss).
 * Reading every gradient back, stepping a host copy and uploading it again cost wasm most of
 * its step (docs/benchmarks.md, "Local steps on the backend").
 *
 * An outage is a long local phase: a phase the connection drops in is handed over to the outage
 * buffer (`local` mode: the own copy, read back once, goes on stepping) and flushed the same way
 * when the PS is back. A graceful stop hands the phase over the same way, so the drain flushes
 * it. A phase is not journaled: a reload (or a kill) loses at most H - 1 steps of it.
 */
import type { Outage } from './outage.ts';
import type { Trainer } from './trainer.ts';

export class LocalPhase {
  private baseVersion = 0;
  private trainer: Trainer | undefined;

  /** Steps taken in this phase (a new trainer, for another model, starts none). */
  get count(): number {
    return this.trainer?.localCount ?? 0;
  }

  /** Applies the step `trainer` computed (Trainer.computeLocal) on its current weights, `version`. */
  step(trainer: Trainer, version: number, lr: number): void {
    if (this.trainer !== trainer || trainer.localCount === 0) {
      this.trainer = trainer;
      this.baseVersion = version;
    }
    trainer.applyLocal(lr);
  }

  /** The phase as one update: the sum of its gradients, their count and base version, and its mean loss. Ends the phase. */
  async take(): Promise<{ sum: Float32Array; count: number; baseVersion: number; loss: number }> {
    const trainer = this.trainer!;
    const count = trainer.localCount;
    const { sum, loss } = await trainer.takeLocal();
    return { sum, count, baseVersion: this.baseVersion, loss };
  }

  /**
   * The connection dropped mid-phase (or the worker is stopping): the outage buffer carries on
   * from it, with the own copy read back and `base` (the pulled weights the phase began from).
   */
  async handOver(outage: Outage, base: () => Float32Array): Promise<void> {
    if (this.count === 0) return;
    const own = await this.trainer!.readWeights();
    const from = base();
    outage.continueFrom(await this.take(), own, from);
  }
}
