/**
 * The parameter server's state behind one small interface: the flat weights, the model
 * version, the optimizer, and the record of applied pushes per worker (so a retried push is
 * acknowledged again, never applied twice). Recovery strategies snapshot and restore it.
 */
import type { Layout } from '../../shared/layout.ts';
import type { AppliedRecordEntry } from '../../shared/protocol.ts';
import { Sgd, type SgdOptions } from './optimizer.ts';
import { RULES, type StaleRule } from './rules.ts';

/** Per worker: the highest push sequence number applied and the version its ack reported. */
export interface AppliedMark {
  readonly seq: number;
  readonly version: number;
}

export interface PsSnapshot {
  readonly layoutHash: number;
  readonly version: number;
  readonly weights: Float32Array;
  readonly velocity: Float32Array;
  readonly applied: ReadonlyMap<number, AppliedMark>;
}

export interface Update {
  readonly workerId: number;
  readonly seq: number;
  /** Model version the gradient was computed against. */
  readonly baseVersion: number;
  /** Number of gradients summed in `grad`. */
  readonly count: number;
  readonly grad: Float32Array;
}

export type ApplyResult =
  | { readonly applied: true; readonly version: number; readonly staleness: number }
  | { readonly applied: false; readonly duplicate: true; readonly version: number };

export class ParameterStore {
  readonly layout: Layout;
  readonly weights: Float32Array;
  readonly optimizer: Sgd;
  private versionValue = 0;
  /** Bumped by every restore, so caches keyed by version can tell restored weights apart. */
  generation = 0;
  private readonly applied = new Map<number, AppliedMark>();
  /** How a (possibly stale, possibly summed) update is applied. @default RULES.mean */
  rule: StaleRule = RULES.mean;
  /** Pending while a strategy holds applies (see hold); undefined otherwise. */
  private holding: { promise: Promise<void>; release: () => void; count: number } | undefined;

  constructor(layout: Layout, initial: Float32Array, opts: SgdOptions) {
    if (initial.length !== layout.size) throw new RangeError(`ParameterStore: initial weights have ${initial.length} values, layout ${layout.size}`);
    this.layout = layout;
    this.weights = Float32Array.from(initial);
    this.optimizer = new Sgd(layout.size, opts);
  }

  get version(): number {
    return this.versionValue;
  }

  /** The applied-push record of one worker, if any. */
  appliedMark(workerId: number): AppliedMark | undefined {
    return this.applied.get(workerId);
  }

  /**
   * Applies one update in place, exactly once per (worker, seq): a seq at or below the
   * worker's high-water mark is a duplicate and changes nothing. The gradient is the sum of
   * `count` gradients; the store's stale-update rule (rules.ts) decides its scale and step.
   */
  apply(update: Update): ApplyResult {
    const mark = this.applied.get(update.workerId);
    if (mark && update.seq <= mark.seq) {
      // The same ack as the first time when it is the latest push; otherwise the current version.
      return { applied: false, duplicate: true, version: update.seq === mark.seq ? mark.version : this.versionValue };
    }
    const staleness = Math.max(0, this.versionValue - update.baseVersion);
    const { scale, lr } = this.rule({ count: update.count, staleness, lr: this.optimizer.lr });
    this.optimizer.apply(this.weights, update.grad, scale, lr);
    this.versionValue += 1;
    this.applied.set(update.workerId, { seq: update.seq, version: this.versionValue });
    return { applied: true, version: this.versionValue, staleness };
  }

  /**
   * Stops applies until every returned release has been called: the PS loop awaits `held`
   * before each apply. A strategy holds the store while it reads the live arrays (a sync
   * checkpoint write) or rewrites them (a restore), so no update lands half-way through.
   */
  hold(): () => void {
    if (!this.holding) {
      let release!: () => void;
      const promise = new Promise<void>((r) => (release = r));
      this.holding = { promise, release, count: 0 };
    }
    const h = this.holding;
    h.count += 1;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      if (--h.count === 0) {
        this.holding = undefined;
        h.release();
      }
    };
  }

  /** Pending while the store is held, undefined otherwise (so an open store costs no await). */
  get held(): Promise<void> | undefined {
    return this.holding?.promise;
  }

  /** The applied-push record as it travels with the weights, sorted by worker id. */
  record(): AppliedRecordEntry[] {
    return [...this.applied].map(([workerId, m]) => ({ workerId, seq: m.seq, version: m.version })).sort((a, b) => a.workerId - b.workerId);
  }

  /** A deep copy: one copy of each flat array. */
  snapshot(): PsSnapshot {
    return {
      layoutHash: this.layout.hash,
      version: this.versionValue,
      weights: Float32Array.from(this.weights),
      velocity: Float32Array.from(this.optimizer.velocity),
      applied: new Map(this.applied),
    };
  }

  restore(s: PsSnapshot): void {
    if (s.layoutHash !== this.layout.hash) throw new RangeError(`ParameterStore.restore: snapshot layout ${s.layoutHash} is not ${this.layout.hash}`);
    if (s.weights.length !== this.weights.length) throw new RangeError(`ParameterStore.restore: snapshot has ${s.weights.length} weights, layout ${this.weights.length}`);
    this.weights.set(s.weights);
    if (this.optimizer.velocity.length === s.velocity.length) this.optimizer.velocity.set(s.velocity);
    else this.optimizer.velocity.fill(0);
    this.versionValue = s.version;
    this.generation += 1;
    this.applied.clear();
    for (const [w, m] of s.applied) this.applied.set(w, m);
  }
}
