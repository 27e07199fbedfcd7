/**
 * The checkpoint recovery strategy (`--strategy checkpoint`).
 *
 *   sync   every K updates (or T ms) the PS stops applying (ParameterStore.hold), writes each
 *          shard from the live arrays, then continues; the update that triggered it is acked
 *          only once the checkpoint is durable.
 *   async  the PS copies what it saves (all of it, or the prioritized blocks) and writes in the
 *          background while it keeps applying; at most one write is in flight, and a checkpoint
 *          that falls due meanwhile is taken on the first apply after the write ends.
 *
 * On start the PS restores every shard from its stream (newest checkpoint that verifies; torn
 * or corrupt files are reported and skipped), or writes a first checkpoint when there is none.
 * When a shard is lost (the admin fault), it restores that shard alone (partial) or rolls every
 * shard back (full), as `--recovery` says.
 */
import { resolve } from 'node:path';
import type { FastifyBaseLogger } from 'fastify';
import { TabswarmError } from '../../../shared/errors.ts';
import type { ParameterStore } from '../../ps/store.ts';
import { compose, type AppliedUpdate, type Durability, type RecoveryStrategy, type StrategyContext } from '../../ps/strategy.ts';
import { Checkpointer, type WriteReport } from './checkpointer.ts';
import type { CheckpointOptions } from './options.ts';
import { recoverFull, recoverPartial, type RecoveryReport } from './recovery.ts';
import { ShardMap } from './shards.ts';
import { FileStorage, type CheckpointStorage } from './storage.ts';
import type { Rejected } from './stream.ts';

/** What the admin API can ask of a strategy that owns PS shards and checkpoints. */
export interface CheckpointControl {
  /** Takes a checkpoint now (after any write in flight) and resolves when it is durable. */
  checkpointNow(): Promise<WriteReport>;
  /** The fault: shard k's in-memory state is lost; then recovery, as configured. */
  dropShard(k: number): Promise<ShardLossReport>;
  shardStates(): ReturnType<ShardMap['describe']>;
  checkpointFiles(): Promise<{ shard: number; files: { name: string; seq: number; kind: string }[] }[]>;
}

export interface ShardLossReport {
  readonly shard: number;
  /** The store's version when the shard was lost, and the lost shard's own version. */
  readonly storeVersion: number;
  readonly shardVersion: number;
  readonly recovery: RecoveryReport;
}

export function isCheckpointControl<T extends object>(s: T): s is T & CheckpointControl {
  return typeof (s as Partial<CheckpointControl>).dropShard === 'function' && typeof (s as Partial<CheckpointControl>).checkpointNow === 'function';
}

export interface CheckpointStrategyDeps {
  /** Where the streams live. @default files under options.checkpointDir */
  storage?: CheckpointStorage;
}

interface Stats {
  count: number;
  bytes: number;
  lastMs: number;
  totalMs: number;
  maxMs: number;
  deferred: number;
  /** Time the PS loop spent capturing (selecting and, in async mode, copying) what is saved. */
  captureMs: number;
  maxCaptureMs: number;
  failures: number;
  lastError: string;
}

/** The checkpoint strategy's durability (with the admin controls); checkpointStrategy() composes it. */
export class CheckpointStrategy implements Durability, CheckpointControl {
  readonly name = 'checkpoint';
  private store!: ParameterStore;
  private log!: FastifyBaseLogger;
  private map!: ShardMap;
  private ck!: Checkpointer;
  private inflight: Promise<WriteReport> | undefined;
  private writing: { storeVersion: number; since: number } | undefined;
  private deferredFlag = false;
  private sinceLast = 0;
  private lastAt = Date.now();
  private serial: Promise<unknown> = Promise.resolve();
  private last: WriteReport | undefined;
  private restored: (RecoveryReport & { swept: string[] }) | undefined;
  private readonly recoveries: ShardLossReport[] = [];
  /** The store's generation this strategy last saw: a change it did not make is a whole-store restore. */
  private generation = -1;
  private report: (version: number) => void = () => {};
  private readonly stats: Stats = { count: 0, bytes: 0, lastMs: 0, totalMs: 0, maxMs: 0, deferred: 0, captureMs: 0, maxCaptureMs: 0, failures: 0, lastError: '' };

  constructor(readonly opts: CheckpointOptions & { model: string }, private readonly deps: CheckpointStrategyDeps = {}) {}

  get checkpointer(): Checkpointer {
    return this.ck;
  }

  /** Standalone use (benchmarks, unit tests) may leave out `reportDurable`: nobody listens then. */
  async start(ctx: Pick<StrategyContext, 'store' | 'log'> & Partial<Pick<StrategyContext, 'reportDurable' | 'signer'>>): Promise<void> {
    const o = this.opts;
    this.store = ctx.store;
    this.log = ctx.log;
    this.report = ctx.reportDurable ?? (() => {});
    this.map = new ShardMap(ctx.store, o.psShards);
    const testPauseMs = Number(process.env.TABSWARM_TEST_CHECKPOINT_PAUSE_MS ?? 0);
    const storage = this.deps.storage ?? new FileStorage(resolve(o.checkpointDir), { testPauseMs });
    const { layout } = ctx.store;
    this.ck = new Checkpointer(this.map, storage, { model: o.model, layoutHash: layout.hash, layoutSize: layout.size, runId: ctx.signer?.runId ?? '' }, {
      priorityFraction: o.priorityFraction, blockSize: o.checkpointBlock, fullEvery: o.checkpointFullEvery, keep: o.checkpointKeep,
    });
    const swept = await storage.sweep(this.ck.streams.map((s) => s.folder));
    if (swept.length) this.log.warn({ files: swept }, `checkpoint: removed ${swept.length} unfinished temporary file(s) left by an interrupted write`);
    for (const s of this.ck.streams) await s.open();
    const report = await recoverFull(this.ck);
    this.reportRejected(report.rejected);
    this.restored = { ...report, swept };
    if (report.shards.length) {
      this.log.info({ version: report.version, shards: report.shards }, `checkpoint: restored version ${report.version} from ${storage.where}`);
      if (!report.missing.length) this.report(report.version);
    }
    this.generation = this.store.generation;
    if (report.missing.length) {
      if (report.shards.length) this.log.warn({ shards: report.missing }, 'checkpoint: no checkpoint of these shards verifies; they start from their initial values');
      await this.run(false); // a first checkpoint, so every shard can always be restored
    }
  }

  private reportRejected(rejected: readonly Rejected[]): void {
    for (const r of rejected) this.log.error({ file: r.name }, `checkpoint rejected and skipped: ${r.reason}`);
  }

  private due(): boolean {
    const { checkpointEvery: every, checkpointEveryMs: everyMs } = this.opts;
    return (every > 0 && this.sinceLast >= every) || (everyMs > 0 && this.sinceLast > 0 && Date.now() - this.lastAt >= everyMs);
  }

  afterApply(_update: AppliedUpdate): void | Promise<void> {
    this.sinceLast += 1;
    if (!this.due()) return;
    if (this.inflight) {
      if (!this.deferredFlag) this.stats.deferred += 1;
      this.deferredFlag = true;
      return;
    }
    const written = this.run(this.opts.checkpointMode === 'async');
    // A failed write is logged and counted (and the next one is full); the update stays applied.
    if (this.opts.checkpointMode === 'sync') return written.then(() => {}, () => {});
    written.catch(() => {});
  }

  /**
   * A duplicate push is acked with the version of its first apply; that ack waited for any sync
   * checkpoint then, so nothing more to wait for (a crash loses what came after the last
   * checkpoint either way).
   */
  durable(_version: number): void {}

  /** Captures now (synchronously) and writes; `copy` false holds the store until written. */
  private run(copy: boolean): Promise<WriteReport> {
    if (this.store.generation !== this.generation) {
      // Someone else replaced the whole store (a chain node took a state transfer): every shard
      // is at the store's version, and a delta against the old saved copy would be wrong.
      this.map.resetVersions([]);
      for (let k = 0; k < this.map.count; k++) this.ck.loaded(k, undefined);
    }
    const release = copy ? undefined : this.store.hold();
    let capture;
    const t0 = performance.now();
    try {
      capture = this.ck.capture(copy);
    } catch (err) {
      release?.();
      throw err;
    }
    this.generation = this.store.generation;
    const captureMs = performance.now() - t0;
    this.stats.captureMs += captureMs;
    this.stats.maxCaptureMs = Math.max(this.stats.maxCaptureMs, captureMs);
    this.sinceLast = 0;
    this.deferredFlag = false;
    this.lastAt = Date.now();
    this.writing = { storeVersion: capture.storeVersion, since: Date.now() };
    const p = this.ck.write(capture).then(
      (rep) => {
        const s = this.stats;
        s.count += 1;
        s.bytes += rep.bytes;
        s.lastMs = rep.ms;
        s.totalMs += rep.ms;
        s.maxMs = Math.max(s.maxMs, rep.ms);
        this.last = rep;
        this.log.debug({ version: rep.storeVersion, bytes: rep.bytes, ms: Math.round(rep.ms) }, 'checkpoint written');
        this.report(rep.storeVersion);
        return rep;
      },
      (err: unknown) => {
        this.stats.failures += 1;
        const e = new TabswarmError('CHECKPOINT_WRITE_FAILED', { version: capture.storeVersion, where: this.ck.streams[0]!.storage.where, detail: (err as Error).message });
        this.stats.lastError = e.message;
        this.log.error({ err }, e.message);
        throw e;
      },
    ).finally(() => {
      release?.();
      this.inflight = undefined;
      this.writing = undefined;
    });
    this.inflight = p;
    return p;
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.serial.then(fn, fn);
    this.serial = next.catch(() => {});
    return next;
  }

  /** Resolves when no checkpoint write is in flight. */
  async settle(): Promise<void> {
    while (this.inflight) await this.inflight.catch(() => {});
  }

  checkpointNow(): Promise<WriteReport> {
    return this.exclusive(async () => {
      await this.settle();
      return this.run(this.opts.checkpointMode === 'async');
    });
  }

  dropShard(k: number): Promise<ShardLossReport> {
    if (!Number.isInteger(k) || k < 0 || k >= this.map.count) return Promise.reject(new TabswarmError('ADMIN_NO_SHARD', { shard: k, shards: this.map.count }));
    return this.exclusive(async () => {
      await this.settle(); // the streams then hold everything the saved copies say they do
      const release = this.store.hold();
      try {
        const storeVersion = this.store.version;
        const shardVersion = this.map.version(k);
        this.map.drop(k);
        this.log.warn({ shard: k, version: storeVersion }, `checkpoint: shard ${k} lost; ${this.opts.recovery} recovery`);
        const recovery = this.opts.recovery === 'partial' ? await recoverPartial(this.ck, [k]) : await recoverFull(this.ck);
        this.reportRejected(recovery.rejected);
        if (recovery.missing.includes(k)) {
          this.map.drop(k);
          throw new TabswarmError('CHECKPOINT_MISSING', { shard: k, where: this.ck.streams[k]!.storage.where, detail: 'no checkpoint verifies' });
        }
        const report = { shard: k, storeVersion, shardVersion, recovery };
        this.recoveries.push(report);
        if (this.recoveries.length > 10) this.recoveries.shift();
        this.log.info({ shard: k, mode: recovery.mode, version: recovery.version, shards: recovery.shards, ms: Math.round(recovery.ms) }, `checkpoint: shard ${k} recovered`);
        return report;
      } finally {
        this.generation = this.store.generation; // its own restore, not someone else's
        release();
      }
    });
  }

  shardStates(): ReturnType<ShardMap['describe']> {
    return this.map.describe();
  }

  async checkpointFiles(): Promise<{ shard: number; files: { name: string; seq: number; kind: string }[] }[]> {
    return Promise.all(this.ck.streams.map(async (s) => ({ shard: s.range.index, files: await s.files() })));
  }

  status(): Record<string, unknown> {
    const o = this.opts;
    const s = this.stats;
    return {
      durable: true,
      mode: o.checkpointMode,
      every: o.checkpointEvery,
      everyMs: o.checkpointEveryMs,
      dir: this.ck?.streams[0]?.storage.where,
      psShards: o.psShards,
      priorityFraction: o.priorityFraction,
      recoveryMode: o.recovery,
      checkpoints: s.count,
      bytesWritten: s.bytes,
      writeMs: { last: s.lastMs, mean: s.count ? s.totalMs / s.count : 0, max: s.maxMs },
      captureMs: { mean: s.count ? s.captureMs / s.count : 0, max: s.maxCaptureMs },
      deferredWhileWriting: s.deferred,
      failures: s.failures,
      lastError: s.lastError || undefined,
      writing: this.writing ?? null,
      lastCheckpoint: this.last ? { storeVersion: this.last.storeVersion, files: this.last.files, bytes: this.last.bytes, ms: this.last.ms } : null,
      restored: this.restored ?? null,
      recoveries: this.recoveries,
      shards: this.map?.describe(),
    };
  }

  /**
   * A graceful shutdown (SIGTERM, SIGINT, app.close) loses nothing: after any write in flight,
   * a final checkpoint of what changed since the last one. A crash loses the updates since.
   */
  async stop(): Promise<void> {
    await this.settle();
    if (this.ck && this.sinceLast > 0) await this.exclusive(() => this.run(false)).catch(() => {});
  }
}

/** `--strategy checkpoint`: checkpoint durability, default bootstrap and admission, and the admin controls. */
export function checkpointStrategy(opts: CheckpointOptions & { model: string }, deps: CheckpointStrategyDeps = {}): RecoveryStrategy & CheckpointControl & { readonly durability: CheckpointStrategy } {
  const durability = new CheckpointStrategy(opts, deps);
  return { ...compose('checkpoint', { durability }), ...controlsOf(durability), durability };
}

/** The admin controls of `c`, bound: a strategy that wraps a checkpoint strategy exposes them too. */
export function controlsOf(c: CheckpointControl): CheckpointControl {
  return {
    checkpointNow: () => c.checkpointNow(),
    dropShard: (k) => c.dropShard(k),
    shardStates: () => c.shardStates(),
    checkpointFiles: () => c.checkpointFiles(),
  };
}
