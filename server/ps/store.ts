/**
 * The parameter server's state behind one small interface: the flat weights, the model
 * version, the optimizer, and the record of applied pushes per worker (so a retried push is
 * acknowledged again, never applied twice). Recovery strategies snapshot and restore it.
 *
 * The record is bounded (docs/PROTOCOL.md, "The applied-push record"): it keeps the workers
 * whose last applied push is at most `recordHorizon` versions old, at most `recordMax` of them,
 * forgetting the oldest first. What it forgot is summed up by one entry under worker id 0 (an
 * id no session ever gets): its version is the newest version a forgotten mark held, the
 * record's *floor*. Because the floor is an ordinary entry, it travels wherever the record
 * does (WEIGHTS frames, checkpoints, chain state transfer, stateless copies) with no format
 * change, and the PS that restores it knows its record is incomplete. Eviction depends only on
 * versions, so every chain replica forgets the same workers at the same version.
 */
import { sumSq } from '../../shared/codec/norm.ts';
import type { Layout } from '../../shared/layout.ts';
import type { AppliedRecordEntry } from '../../shared/protocol.ts';
import { AGGREGATOR_DEFAULTS, createAggregator, type Aggregator } from './aggregate/index.ts';
import { Sgd, type SgdOptions } from './optimizer.ts';
import { RULES, type StaleRule } from './rules.ts';

/** Per worker: the highest push sequence number applied and the version its ack reported. */
export interface AppliedMark {
  readonly seq: number;
  readonly version: number;
}

/** Worker id of the record's floor entry (no session ever gets id 0). */
export const FLOOR_WORKER = 0;

/** Bounds of the applied-push record. */
export interface RecordBounds {
  /** Forget a worker whose last applied push is more than this many versions old. @default 1000000 */
  horizon: number;
  /** Most workers remembered (one more entry carries the floor). @default 65535 */
  max: number;
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
  /**
   * `grad`'s squared L2 norm when the decode pass computed it (Frame.normSq), handed to the
   * aggregator so that it makes no pass of its own. @default computed by whoever needs it
   */
  readonly normSq?: number;
  /** A sparse `grad` (Frame.support): the only indices that may be non-zero. @default dense */
  readonly support?: Uint32Array;
}

/**
 * What the last apply did to the weights, as a chain replica must repeat it: `grad` applied with
 * the rule's scale (decided false: what `none` hands through), or with scale 1 (decided true: an
 * aggregator's step), or nothing (grad null: a window still collecting, or the output guard
 * refused the new version).
 */
export interface Decision {
  readonly grad: Float32Array | null;
  readonly decided: boolean;
}

/** A version the output guard refused to make (never applied, served, checkpointed or forwarded). */
export interface GuardRefusal {
  /** Version whose update was dropped (the version still advances, with the weights unchanged). */
  readonly version: number;
  readonly workerId: number;
  readonly seq: number;
  readonly reason: string;
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
  /**
   * Worker id -> mark, in the order of the marks' versions (a mark is deleted and set again on
   * every apply), so the oldest mark is always first and eviction is O(1).
   */
  private readonly applied = new Map<number, AppliedMark>();
  /** Newest version of a forgotten mark; 0 while the record is complete. */
  private floorVersion = 0;
  /** Bounds of the record. @default horizon 1000000, max 65535; the PS sets --record-horizon, --record-max */
  recordBounds: RecordBounds = { horizon: 1_000_000, max: 65535 };
  /** How a (possibly stale, possibly summed) update is applied. @default RULES.mean */
  rule: StaleRule = RULES.mean;
  /** Robust aggregation in front of the optimizer (aggregate/). @default none */
  aggregator: Aggregator = createAggregator('none', AGGREGATOR_DEFAULTS, 0);
  /**
   * Output guard: a new version whose weights' L2 norm exceeds this many times the current one
   * (floor 1) is refused, as is one with a non-finite value. 0 turns the norm check off (the
   * non-finite check stays). @default 0 here; the PS sets --max-norm-jump
   */
  maxNormJump = 0;
  /** Versions the output guard refused (tabswarm_versions_refused_total). */
  guardRefused = 0;
  lastGuardRefusal: GuardRefusal | undefined;
  /** What the last apply did to the weights, for the chain to forward. */
  lastDecision: Decision = { grad: null, decided: true };
  private normSq: number;
  /** Pending while a strategy holds applies (see hold); undefined otherwise. */
  private holding: { promise: Promise<void>; release: () => void; count: number } | undefined;

  constructor(layout: Layout, initial: Float32Array, opts: SgdOptions) {
    if (initial.length !== layout.size) throw new RangeError(`ParameterStore: initial weights have ${initial.length} values, layout ${layout.size}`);
    this.layout = layout;
    this.weights = Float32Array.from(initial);
    this.optimizer = new Sgd(layout.size, opts);
    this.normSq = sumSq(this.weights);
  }

  get version(): number {
    return this.versionValue;
  }

  /** The applied-push record of one worker, if any. */
  appliedMark(workerId: number): AppliedMark | undefined {
    return this.applied.get(workerId);
  }

  /** Newest version of a mark the record forgot; 0 while it forgot none. */
  get recordFloor(): number {
    return this.floorVersion;
  }

  /** Workers the record remembers (the floor entry not counted). */
  get recordSize(): number {
    return this.applied.size;
  }

  /** Forgets the oldest marks past the horizon or beyond the most entries; O(1) per mark forgotten. */
  private evict(): void {
    const { horizon, max } = this.recordBounds;
    for (const [w, m] of this.applied) {
      if (this.applied.size <= max && this.versionValue - m.version <= horizon) break;
      this.applied.delete(w);
      this.floorVersion = Math.max(this.floorVersion, m.version);
    }
  }

  /**
   * Applies one update in place, exactly once per (worker, seq): a seq at or below the
   * worker's high-water mark is a duplicate and changes nothing. The gradient is the sum of
   * `count` gradients; the store's stale-update rule (rules.ts) decides its scale and step, the
   * aggregator what is left of it, and the output guard whether the new version may exist.
   * A push the aggregator holds back or the guard refuses still takes a version (the weights
   * unchanged), so it is acknowledged and recorded exactly like an applied one.
   */
  apply(update: Update): ApplyResult {
    const dup = this.duplicate(update);
    if (dup) return dup;
    const staleness = Math.max(0, this.versionValue - update.baseVersion);
    const { scale, lr } = this.rule({ count: update.count, staleness, lr: this.optimizer.lr });
    const agg = this.aggregator;
    let grad = agg.admit(update.grad, scale, update.normSq, update.workerId);
    const applyScale = agg.scales ? 1 : scale;
    if (grad) {
      const limit = this.maxNormJump > 0 ? (this.maxNormJump * Math.max(Math.sqrt(this.normSq), 1)) ** 2 : Infinity;
      // A sparse push the aggregator handed through (clip scales in place: zeros stay zero) and
      // no momentum: only its support moves.
      const sparse = update.support && grad === update.grad && this.optimizer.momentum === 0;
      const sq = sparse
        ? this.optimizer.trySparse(this.weights, grad, update.support!, applyScale, lr, limit, this.normSq)
        : this.optimizer.tryApply(this.weights, grad, applyScale, lr, limit);
      if (sq < 0) {
        this.refuseVersion(update, sq === -1);
        grad = null;
      } else this.normSq = sq;
    }
    this.lastDecision = { grad, decided: agg.scales };
    return this.advance(update, staleness);
  }

  /**
   * Applies what a chain head decided for an update (its Decision), without asking this node's
   * aggregator or guard: the replica must end bit for bit where the head did.
   */
  applyDecided(update: Update, decision: Decision): ApplyResult {
    const dup = this.duplicate(update);
    if (dup) return dup;
    const staleness = Math.max(0, this.versionValue - update.baseVersion);
    const { scale, lr } = this.rule({ count: update.count, staleness, lr: this.optimizer.lr });
    if (decision.grad) {
      this.normSq = this.optimizer.apply(this.weights, decision.grad, decision.decided ? 1 : scale, lr);
    }
    this.lastDecision = decision;
    return this.advance(update, staleness);
  }

  /** Whether (worker, seq) is at or below the worker's high-water mark: a retry, never applied again. */
  isRetry(update: Pick<Update, 'workerId' | 'seq'>): boolean {
    const mark = this.applied.get(update.workerId);
    return mark !== undefined && update.seq <= mark.seq;
  }

  private duplicate(update: Update): ApplyResult | undefined {
    if (!this.isRetry(update)) return undefined;
    const mark = this.applied.get(update.workerId)!;
    // The same ack as the first time when it is the latest push; otherwise the current version.
    return { applied: false, duplicate: true, version: update.seq === mark.seq ? mark.version : this.versionValue };
  }

  private advance(update: Update, staleness: number): ApplyResult {
    this.versionValue += 1;
    this.applied.delete(update.workerId); // re-inserted last: the map stays in version order
    this.applied.set(update.workerId, { seq: update.seq, version: this.versionValue });
    this.evict();
    return { applied: true, version: this.versionValue, staleness };
  }

  private refuseVersion(update: Update, nonFinite: boolean): void {
    this.guardRefused += 1;
    const reason = nonFinite ? 'a weight would not be finite' : `the weights' norm would pass ${this.maxNormJump} times ${Math.sqrt(this.normSq).toPrecision(4)}`;
    this.lastGuardRefusal = { version: this.versionValue + 1, workerId: update.workerId, seq: update.seq, reason };
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
    const out = [...this.applied].map(([workerId, m]) => ({ workerId, seq: m.seq, version: m.version }));
    if (this.floorVersion > 0) out.push({ workerId: FLOOR_WORKER, seq: 0, version: this.floorVersion });
    return out.sort((a, b) => a.workerId - b.workerId);
  }

  /** A deep copy: one copy of each flat array. */
  snapshot(): PsSnapshot {
    return {
      layoutHash: this.layout.hash,
      version: this.versionValue,
      weights: Float32Array.from(this.weights),
      velocity: Float32Array.from(this.optimizer.velocity),
      applied: this.floorVersion > 0 ? new Map([...this.applied, [FLOOR_WORKER, { seq: 0, version: this.floorVersion }]]) : new Map(this.applied),
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
    this.normSq = sumSq(this.weights);
    // The aggregator's history belongs to the weights it was built on; it starts over (warm-up).
    this.aggregator.reset();
    this.applied.clear();
    this.floorVersion = 0;
    // Back into version order (a snapshot's map may come sorted by worker id), then bounded as
    // this store's options say: a copy made under looser bounds shrinks to these.
    const marks = [...s.applied].sort((a, b) => a[1].version - b[1].version);
    for (const [w, m] of marks) {
      if (w === FLOOR_WORKER) this.floorVersion = Math.max(this.floorVersion, m.version);
      else this.applied.set(w, m);
    }
    this.evict();
  }
}
