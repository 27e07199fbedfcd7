/**
 * Rework cost of a partial failure (SCAR, Qiao et al. 2019): `npm run bench:rework [-- --model
 * mnist-logreg|mf-synthetic|fashion-cnn --quick --sweep --metric back|converge]`.
 *
 * One seeded training run (the real ParameterStore and Sgd, gradients from client/trainer.ts on
 * tfjs-cpu, real MNIST or Fashion-MNIST) drives two checkpoint strategies at once, both sync, on
 * real files:
 *   full      a full checkpoint of every PS shard every K updates;
 *   priority  every E updates, the fraction r of each shard's blocks that changed most. r is
 *             fitted to the byte budget: E/K of a full checkpoint per checkpoint, headers and
 *             block indices included, so priority never writes more bytes than full.
 * At each failure point F the live state is forked, PS shard k (and the next `lost` - 1) is
 * dropped (ShardMap.drop) and recovered by the real recovery code in three ways:
 *   (1) full checkpoint + full recovery      every shard rolled back to the full stream
 *   (2) full checkpoint + partial recovery   shard k alone from the full stream
 *   (3) prioritized + partial recovery       shard k alone from the prioritized stream
 * and training continues on the fork with the same batches the run would have used. Rework cost
 * = the updates it takes the fork to get back to the loss the run had at F (loss on a fixed
 * evaluation set of training examples, no dropout), 0 if recovery already meets it, censored at
 * `maxRework`. ||delta|| is the distance of the recovered weights from the live ones at F.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mulberry32, type Layout } from '../shared/layout.ts';
import { defineOptions, parseCommandLine } from '../server/options/schema.ts';
import { makeWorkload } from './rework-workloads.ts';
import { ParameterStore } from '../server/ps/store.ts';
import { Checkpointer } from '../server/strategies/checkpoint/checkpointer.ts';
import { encodeCheckpoint } from '../server/strategies/checkpoint/format.ts';
import { CHECKPOINT_DEFAULTS } from '../server/strategies/checkpoint/options.ts';
import { recoverFull, recoverPartial } from '../server/strategies/checkpoint/recovery.ts';
import { ShardMap } from '../server/strategies/checkpoint/shards.ts';
import { FileStorage } from '../server/strategies/checkpoint/storage.ts';
import { CheckpointStrategy } from '../server/strategies/checkpoint/strategy.ts';
import type { FastifyBaseLogger } from 'fastify';

export interface ReworkConfig {
  model: string;
  dataset: 'mnist' | 'fashion-mnist' | 'synthetic';
  batch: number;
  lr: number;
  seed: number;
  psShards: number;
  blockSize: number;
  /** Full checkpoint every K updates. */
  fullEvery: number;
  /** Prioritized checkpoint every E updates (r is fitted to the same bytes). */
  priorityEvery: number;
  /** Failure points: the first after `warmup` updates, then every `spacing`, each shifted by a seeded offset in [0, K). */
  warmup: number;
  spacing: number;
  failures: number;
  /** First PS shard lost, one trial each. @default all */
  lostShards?: number[];
  /**
   * Shards lost at once (SCAR's failure model: a fraction of the PS lost): shard k and the
   * next lost - 1 (mod psShards), so the fraction lost is lost / psShards. @default 1
   */
  lost?: number;
  maxRework: number;
  evalExamples: number;
  /**
   * What a fork must reach. `back`: the loss the run had at the failure (the updates to get back
   * to where training was). `converge` (SCAR's): the loss the run without the failure reaches
   * `horizon` updates later; rework is the fork's updates to reach it minus the run's own.
   * @default back
   */
  metric?: 'back' | 'converge';
  /** Updates after the failure whose loss `converge` aims at. @default 2 * fullEvery */
  horizon?: number;
}

export const PRESETS: Record<string, ReworkConfig> = {
  'mnist-logreg': { model: 'mnist-logreg', dataset: 'mnist', batch: 64, lr: 0.01, seed: 1, psShards: 4, blockSize: 10, fullEvery: 40, priorityEvery: 10, warmup: 40, spacing: 40, failures: 16, maxRework: 200, evalExamples: 2000 },
  'mf-synthetic': { model: 'mf-synthetic', dataset: 'synthetic', batch: 64, lr: 0.1, seed: 1, psShards: 4, blockSize: 8, fullEvery: 40, priorityEvery: 10, warmup: 40, spacing: 40, failures: 16, maxRework: 400, evalExamples: 4000 },
  'fashion-cnn': { model: 'fashion-cnn', dataset: 'fashion-mnist', batch: 16, lr: 0.01, seed: 1, psShards: 4, blockSize: 256, fullEvery: 12, priorityEvery: 3, warmup: 24, spacing: 16, failures: 3, lostShards: [0, 3], maxRework: 40, evalExamples: 200 },
};

export const VARIANTS = ['(1) full ckpt + full recovery', '(2) full ckpt + partial recovery', '(3) prioritized ckpt + partial recovery'] as const;

export interface Trial {
  readonly variant: number;
  readonly failure: number;
  /** The first shard lost (the trial lost `lost` consecutive shards from it). */
  readonly shard: number;
  readonly rework: number;
  readonly censored: boolean;
  readonly delta: number;
}

export interface ReworkResult {
  readonly config: ReworkConfig;
  readonly fraction: number;
  /** Checkpoint bytes written per 1,000 updates, after the first (full) checkpoint each stream starts with. */
  readonly bytesPer1000: { full: number; priority: number };
  readonly trials: Trial[];
  readonly seconds: number;
}

/** The largest r whose delta files, per E updates, fit in E/K of a full checkpoint's bytes. */
export function fitFraction(cfg: ReworkConfig, layout: Layout): number {
  const shardLen = Math.ceil(layout.size / cfg.psShards);
  const blocks = Math.ceil(shardLen / cfg.blockSize);
  const meta = { model: cfg.model, layoutHash: layout.hash, layoutSize: layout.size, shard: 99, shards: cfg.psShards, start: 9999999, end: 9999999, seq: 99999999, kind: 'delta' as const, base: 99999999, version: 99999999, storeVersion: 99999999, blockSize: cfg.blockSize, applied: [[4294967295, 99999999, 99999999]] as [number, number, number][], createdAt: new Date().toISOString() };
  const empty = new Float32Array(0);
  const header = encodeCheckpoint(meta, { indices: new Uint32Array(0), weights: empty, velocity: empty }).reduce((n, c) => n + c.length, 0) + 16;
  const fullBytes = header + 4 * shardLen; // a full checkpoint stores no block indices
  const budget = (fullBytes * cfg.priorityEvery) / cfg.fullEvery;
  const n = Math.floor((budget - header) / (4 + 4 * cfg.blockSize));
  if (n < 1) throw new RangeError(`fitFraction: a delta of one block does not fit in ${budget} bytes`);
  return Math.min(1, (n - 0.5) / blocks); // ceil(r * blocks) = n
}

export async function runRework(cfg: ReworkConfig, say: (line: string) => void = () => {}): Promise<ReworkResult> {
  const started = performance.now();
  const work = await makeWorkload(cfg);
  const layout = work.layout;
  const fraction = fitFraction(cfg, layout);
  const step = async (store: ParameterStore, t: number): Promise<void> => {
    const grad = await work.grad(store.weights, t); // batch t is the same in the run and every fork
    store.apply({ workerId: 1, seq: t + 1, baseVersion: store.version, count: 1, grad });
  };
  const opts = { lr: cfg.lr, momentum: 0 };
  const store = new ParameterStore(layout, work.init, opts);
  const root = await mkdtemp(join(tmpdir(), 'tabswarm-rework-'));
  const base = { ...CHECKPOINT_DEFAULTS, model: cfg.model, checkpointMode: 'sync' as const, psShards: cfg.psShards, checkpointBlock: cfg.blockSize, checkpointKeep: 2, checkpointFullEvery: 0 };
  const storages = { full: new FileStorage(join(root, 'full')), priority: new FileStorage(join(root, 'priority')) };
  const full = new CheckpointStrategy({ ...base, checkpointEvery: cfg.fullEvery, priorityFraction: 1 }, { storage: storages.full });
  const prio = new CheckpointStrategy({ ...base, checkpointEvery: cfg.priorityEvery, priorityFraction: fraction }, { storage: storages.priority });
  const noop = () => {};
  const log = { info: noop, warn: noop, error: noop, debug: noop, fatal: noop, trace: noop, silent: noop, level: 'silent', child: () => log } as unknown as FastifyBaseLogger;
  await full.start({ store, log });
  await prio.start({ store, log });
  const initial = { full: storages.full.bytesWritten, priority: storages.priority.bytesWritten };

  const random = mulberry32(cfg.seed + 17);
  const failures = Array.from({ length: cfg.failures }, (_, i) => cfg.warmup + i * cfg.spacing + Math.floor(random() * cfg.fullEvery));
  const shards = cfg.lostShards ?? Array.from({ length: cfg.psShards }, (_, k) => k);
  const lost = cfg.lost ?? 1;
  const metric = cfg.metric ?? 'back';
  const horizon = cfg.horizon ?? 2 * cfg.fullEvery;
  if (!(lost >= 1 && lost < cfg.psShards)) throw new RangeError(`rework: --lost ${lost} must be at least 1 and below --ps-shards ${cfg.psShards}`);
  const trials: Trial[] = [];
  let t = 0;
  try {
    for (const F of failures) {
      while (t < F) {
        await step(store, t++);
        const u = { workerId: 1, seq: t, baseVersion: t - 1, count: 1, grad: new Float32Array(0), version: store.version };
        await full.afterApply(u);
        await prio.afterApply(u);
      }
      // The no-failure reference: `back` aims at the loss at F; `converge` at the loss the run
      // reaches H updates later on the same batches, and counts only the updates beyond the
      // first at which the run itself got there.
      let target = work.loss(store.weights);
      let own = 0;
      if (metric === 'converge') {
        const ahead = new ParameterStore(layout, store.weights, opts);
        ahead.restore(store.snapshot());
        const losses: number[] = [];
        for (let h = 0; h < horizon; h++) {
          await step(ahead, F + h);
          losses.push(work.loss(ahead.weights));
        }
        target = losses.at(-1)!;
        own = 1 + losses.findIndex((l) => l <= target);
      }
      say(`failure at update ${F}: target loss ${target.toFixed(4)}${metric === 'converge' ? ` (the run reaches it ${own} updates on)` : ''}`);
      for (let variant = 0; variant < 3; variant++) {
        for (const k of variant === 0 ? [shards[0]!] : shards) {
          const fork = new ParameterStore(layout, store.weights, opts);
          fork.restore(store.snapshot());
          const ck = new Checkpointer(new ShardMap(fork, cfg.psShards), variant === 2 ? storages.priority : storages.full, { model: cfg.model, layoutHash: layout.hash, layoutSize: layout.size }, { priorityFraction: 1, blockSize: cfg.blockSize, fullEvery: 0, keep: 2 });
          const lostSet = Array.from({ length: lost }, (_, i) => (k + i) % cfg.psShards);
          for (const j of lostSet) ck.map.drop(j);
          if (variant === 0) await recoverFull(ck);
          else await recoverPartial(ck, lostSet);
          let delta = 0;
          for (let i = 0; i < layout.size; i++) delta += (fork.weights[i]! - store.weights[i]!) ** 2;
          let steps = 0;
          while (steps < own + cfg.maxRework && work.loss(fork.weights) > target) await step(fork, F + steps++);
          const censored = steps >= own + cfg.maxRework && work.loss(fork.weights) > target;
          const rework = Math.max(0, steps - own);
          trials.push({ variant, failure: F, shard: k, rework, censored, delta: Math.sqrt(delta) });
          say(`  ${VARIANTS[variant]} shard ${k}: rework ${rework}${censored ? '+' : ''}, ||delta|| ${Math.sqrt(delta).toFixed(4)}`);
        }
      }
    }
  } finally {
    // No stop(): its final checkpoint would count in the bytes. Sync mode leaves nothing in flight.
    work.dispose();
    await rm(root, { recursive: true, force: true });
  }
  // Byte rates, not totals: at a given failure point one stream may be just before its next write.
  const rate = (written: number, initialBytes: number, every: number) => (1000 * (written - initialBytes)) / (Math.floor(t / every) * every);
  const bytesPer1000 = { full: rate(storages.full.bytesWritten, initial.full, cfg.fullEvery), priority: rate(storages.priority.bytesWritten, initial.priority, cfg.priorityEvery) };
  if (!(bytesPer1000.priority <= bytesPer1000.full)) throw new Error(`rework: prioritized checkpoints wrote ${bytesPer1000.priority} bytes per 1000 updates, more than full's ${bytesPer1000.full}: not a fair comparison`);
  return { config: cfg, fraction, bytesPer1000, trials, seconds: (performance.now() - started) / 1000 };
}

export const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

/** Mean rework per variant, and its reduction versus (1). */
export function summarise(r: ReworkResult): { variant: string; mean: number; median: number; delta: number; trials: number; censored: number; reduction: number }[] {
  const base = mean(r.trials.filter((x) => x.variant === 0).map((x) => x.rework));
  return VARIANTS.map((variant, v) => {
    const ts = r.trials.filter((x) => x.variant === v);
    const sorted = ts.map((x) => x.rework).sort((a, b) => a - b);
    const m = mean(sorted);
    return { variant, mean: m, median: sorted[Math.floor(sorted.length / 2)] ?? 0, delta: mean(ts.map((x) => x.delta)), trials: ts.length, censored: ts.filter((x) => x.censored).length, reduction: base > 0 ? 1 - m / base : 0 };
  });
}

export function table(r: ReworkResult): string {
  const c = r.config;
  const lines = [
    `${c.model} on ${c.dataset}: batch ${c.batch}, lr ${c.lr}, ${c.psShards} PS shards (${c.lost ?? 1} lost per failure: ${((100 * (c.lost ?? 1)) / c.psShards).toFixed(1)}% of the parameters), blocks of ${c.blockSize}; full checkpoint every ${c.fullEvery} updates, prioritized every ${c.priorityEvery} with r = ${r.fraction.toFixed(3)}`,
    `rework: ${c.metric === 'converge' ? `updates to reach the loss the run without the failure reaches ${c.horizon ?? 2 * c.fullEvery} updates later, minus the run's own` : 'updates to get back to the loss at the failure'}`,
    `checkpoint bytes written per 1,000 updates: full ${Math.round(r.bytesPer1000.full)}, prioritized ${Math.round(r.bytesPer1000.priority)} (${((100 * r.bytesPer1000.priority) / r.bytesPer1000.full).toFixed(1)}%); ${r.seconds.toFixed(0)} s`,
    '',
    '| Recovery | Trials | Mean rework (updates) | Median | Mean ‖δ‖ | Reduction vs (1) |',
    '|---|---:|---:|---:|---:|---:|',
  ];
  for (const s of summarise(r)) {
    lines.push(`| ${s.variant} | ${s.trials}${s.censored ? ` (${s.censored} censored)` : ''} | ${s.mean.toFixed(1)} | ${s.median} | ${s.delta.toFixed(3)} | ${s.variant.startsWith('(1)') ? '—' : `${(100 * s.reduction).toFixed(0)}%`} |`);
  }
  return lines.join('\n');
}

/** Each overrides the preset's value (PRESETS). */
const OPTIONS = defineOptions({
  model: { type: 'choice', values: Object.keys(PRESETS), default: 'mnist-logreg', help: 'the preset (the workload: bench/rework-workloads.ts)' },
  quick: { type: 'flag', help: 'two failures only (a smoke run)' },
  failures: { type: 'int', min: 1, defaultText: "the preset's", help: 'failure points' },
  lr: { type: 'number', min: 0, exclusive: 'min', arg: 'X', defaultText: "the preset's", help: 'SGD learning rate' },
  batch: { type: 'int', min: 1, defaultText: "the preset's", help: 'batch size' },
  blockSize: { flag: 'block', type: 'int', min: 1, defaultText: "the preset's", help: 'values per checkpoint block' },
  fullEvery: { type: 'int', min: 1, defaultText: "the preset's", help: 'full checkpoint every K updates' },
  priorityEvery: { type: 'int', min: 1, defaultText: "the preset's", help: 'prioritized checkpoint every E updates' },
  psShards: { type: 'int', min: 1, defaultText: "the preset's", help: 'PS shards' },
  lost: { type: 'int', min: 1, defaultText: '1', help: 'PS shards lost at once per failure (the fraction lost is lost / ps-shards)' },
  metric: { type: 'choice', values: ['back', 'converge'], defaultText: 'back', help: "rework to get back to the loss at the failure, or (SCAR's) to the loss the run without it reaches --horizon updates later" },
  horizon: { type: 'int', min: 1, defaultText: '2 x full-every', help: 'updates ahead for --metric converge' },
  maxRework: { type: 'int', min: 1, defaultText: "the preset's", help: 'rework cap per trial' },
  evalExamples: { type: 'int', min: 1, defaultText: "the preset's", help: 'examples of the loss probe' },
  seed: { type: 'int', min: 0, defaultText: "the preset's", help: 'seed' },
  sweep: { type: 'flag', help: "SCAR's failure model: one run per fraction of the PS lost (1 shard of 4, 8, 16), one table beside SCAR's 78-95%" },
});

/** One row per fraction lost: rework of (1), and of (2) and (3) with their reductions. */
async function sweep(cfg: ReworkConfig): Promise<string> {
  const lines = [
    `${cfg.model}: rework ${cfg.metric === 'converge' ? `to the no-failure loss ${cfg.horizon ?? 2 * cfg.fullEvery} updates on` : 'to the loss at the failure'}; ${cfg.failures} failure points, seed ${cfg.seed}; SCAR (Qiao et al. 2019) reports 78-95% lower cost than full recovery`,
    '',
    '| PS lost | (1) full ckpt + full recovery | (2) full ckpt + partial | reduction | (3) prioritized + partial | reduction | prioritized r |',
    '|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const psShards of [4, 8, 16]) {
    const r = await runRework({ ...cfg, psShards, lost: 1 });
    const [one, two, three] = summarise(r);
    lines.push(`| 1 of ${psShards} shards (${(100 / psShards).toFixed(1)}%) | ${one!.mean.toFixed(1)} | ${two!.mean.toFixed(1)} | ${(100 * two!.reduction).toFixed(0)}% | ${three!.mean.toFixed(1)} | ${(100 * three!.reduction).toFixed(0)}% | ${r.fraction.toFixed(3)} |`);
  }
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { model, quick, sweep: wantSweep, ...values } = parseCommandLine(OPTIONS, 'npm run bench:rework -- [options]: rework cost of a partial failure (docs/benchmarks.md)');
  const preset = PRESETS[model]!;
  const over = { ...values, failures: values.failures ?? (quick ? 2 : undefined) };
  const cfg: ReworkConfig = { ...preset, ...Object.fromEntries(Object.entries(over).filter(([, x]) => x !== undefined)) };
  if (wantSweep) console.log(await sweep(cfg));
  else {
    const result = await runRework(cfg, (l) => console.log(l));
    console.log(`\n${table(result)}`);
  }
}
