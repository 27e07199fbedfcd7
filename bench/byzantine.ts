/**
 * Byzantine workers: `npm run bench:byzantine [-- --full]`.
 *
 * Every aggregator × every attack, in real processes: one PS (`tabswarm start`) and n Node
 * workers (`tabswarm worker`), f of them hostile through the test-only `--attack`
 * (client/attack.ts). Every worker runs the same number of steps, so a run with attackers has
 * the same number of pushes as the clean run; the PS evaluates the final version on the first
 * `--eval-examples` test images. A cell misses when its accuracy is more than 2 points below
 * the clean run of `none` (the target). Second table: the in-process cost of one apply
 * per aggregator on a fashion-cnn gradient (813,258 values), against `none`.
 *
 * Short defaults (mnist-logreg, n = 8, f = 1, 40 steps per worker) fit a few minutes on two
 * cores; `--full` runs f = 1 and 2 with mnist-mlp and 150 steps.
 */
import { deriveLayout } from '../shared/layout.ts';
import { getModel } from '../shared/models.ts';
import { defineOptions, parseCommandLine } from '../server/options/schema.ts';
import { AGGREGATOR_DEFAULTS, AGGREGATOR_NAMES, createAggregator } from '../server/ps/aggregate/index.ts';
import { ParameterStore } from '../server/ps/store.ts';
import { latestAccuracy, spawnCli, startPs, until, type Proc, type Status } from '../test/helpers.ts';
import { machineLine, printTable } from './sys.ts';

const ATTACKS = ['clean', 'sign-flip', 'scale:1e3', 'scale:1e30', 'noise:1', 'zero', 'alie', 'ipm:2', 'lie-base', 'lie-count', 'replay'];

const OPTIONS = defineOptions({
  full: { type: 'flag', help: 'f = 1 and 2, mnist-mlp, 150 steps per worker' },
  workers: { type: 'int', min: 2, default: 8, help: 'n, workers in all (honest and hostile)' },
  byzantine: { type: 'list', of: 'int', min: 0, arg: 'F,...', default: [1], help: 'f, hostile workers among the n' },
  steps: { type: 'int', min: 1, default: 40, help: 'steps per worker' },
  model: { type: 'string', default: 'mnist-logreg', help: 'model' },
  aggregators: { type: 'list', of: 'string', default: [...AGGREGATOR_NAMES], help: 'aggregators to run' },
  attacks: { type: 'list', of: 'string', default: ATTACKS, help: 'attacks to run (clean = none)' },
  evalExamples: { type: 'int', min: 100, default: 2000, help: 'test images evaluated' },
});

interface Cell {
  accuracy: number;
  loss: number;
  version: number;
  clipped: number;
  refusedVersions: number;
  refusedFrames: number;
}

async function metric(url: string, re: RegExp): Promise<number> {
  const text = await (await fetch(new URL('/metrics', url))).text();
  return text.split('\n').filter((l) => re.test(l) && !l.startsWith('#')).reduce((s, l) => s + Number(l.split(' ').pop()), 0);
}

async function cell(o: { model: string; aggregator: string; attack: string; n: number; f: number; steps: number; evalExamples: number }): Promise<Cell> {
  const ps = await startPs(['--model', o.model, '--dataset', 'mnist', '--shards', String(o.n), '--seed', '3', '--eval-every', '500', '--eval-examples', String(o.evalExamples), '--aggregator', o.aggregator]);
  const procs: Proc[] = [];
  try {
    const hostile = o.attack === 'clean' ? 0 : o.f;
    for (let i = 0; i < o.n; i++) {
      const attack = i < hostile ? ['--attack', o.attack] : [];
      procs.push(spawnCli(['worker', '--url', ps.url, '--seed', String(i + 1), '--steps', String(o.steps), ...attack]));
    }
    // A refused liar's worker may keep retrying: the honest ones decide when the run is over.
    await until(() => procs.slice(hostile).every((w) => w.child.exitCode !== null), 'the honest workers to finish', 600_000, 250);
    const { version } = await ps.get<Status>('/api/status');
    const point = await until(async () => {
      const p = await latestAccuracy(ps);
      return p && p.version >= version ? p : undefined;
    }, 'an evaluation of the final version', 60_000, 200);
    return {
      accuracy: point.accuracy,
      loss: point.loss,
      version: point.version,
      clipped: await metric(ps.url, /^tabswarm_pushes_clipped_total/),
      refusedVersions: await metric(ps.url, /^tabswarm_versions_refused_total/),
      refusedFrames: await metric(ps.url, /^tabswarm_frames_rejected_total/),
    };
  } finally {
    for (const p of procs.reverse()) await p.kill('SIGKILL');
    await ps.kill('SIGKILL');
  }
}

/** Microseconds per store.apply on a fashion-cnn-sized gradient, per aggregator. */
function applyCost(): string[][] {
  const layout = deriveLayout(getModel('fashion-cnn'));
  const rows = [['aggregator', 'us per apply', 'vs none']];
  let base = 0;
  for (const name of AGGREGATOR_NAMES) {
    const store = new ParameterStore(layout, new Float32Array(layout.size).fill(0.01), { lr: 0.01, momentum: 0 });
    store.aggregator = createAggregator(name, AGGREGATOR_DEFAULTS, layout.size);
    store.maxNormJump = 2;
    const grads = Array.from({ length: 4 }, (_, k) => Float32Array.from({ length: layout.size }, (_, i) => Math.sin(i * 0.37 + k) * 1e-3));
    const N = 64;
    for (let i = 0; i < 16; i++) store.apply({ workerId: 1, seq: i + 1, baseVersion: store.version, count: 1, grad: Float32Array.from(grads[i % 4]!) });
    const copies = Array.from({ length: N }, (_, i) => Float32Array.from(grads[i % 4]!));
    const t0 = performance.now();
    for (let i = 0; i < N; i++) store.apply({ workerId: 1, seq: 100 + i, baseVersion: store.version, count: 1, grad: copies[i]! });
    const us = ((performance.now() - t0) * 1000) / N;
    if (name === 'none') base = us;
    rows.push([name, us.toFixed(0), `${(us / base).toFixed(2)}x`]);
  }
  return rows;
}

async function main(): Promise<void> {
  const o = parseCommandLine(OPTIONS, 'npm run bench:byzantine -- [options]: aggregator x attack (docs/benchmarks.md)');
  const full = o.full;
  const model = full ? 'mnist-mlp' : o.model;
  const steps = full ? 150 : o.steps;
  const fs = full ? [1, 2] : o.byzantine;
  console.log(machineLine());
  console.log(`${model}, n = ${o.workers}, f = ${fs.join(', ')}, ${steps} steps per worker, accuracy on the first ${o.evalExamples} MNIST test images; a miss is more than 2 points below clean 'none'`);
  for (const f of fs) {
    const results = new Map<string, Cell>();
    for (const attack of o.attacks) {
      for (const aggregator of o.aggregators) {
        const t0 = Date.now();
        const c = await cell({ model, aggregator, attack, n: o.workers, f, steps, evalExamples: o.evalExamples });
        results.set(`${attack}/${aggregator}`, c);
        console.error(`f=${f} ${attack} ${aggregator}: ${JSON.stringify(c)} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      }
    }
    const ref = results.get('clean/none')?.accuracy;
    const rows = [['attack', ...o.aggregators]];
    for (const attack of o.attacks) {
      rows.push([attack, ...o.aggregators.map((a) => {
        const c = results.get(`${attack}/${a}`)!;
        const miss = ref !== undefined && !(c.accuracy >= ref - 0.02);
        return `${(100 * c.accuracy).toFixed(1)}${miss ? ' MISS' : ''}`;
      })]);
    }
    console.log(`\nf = ${f}: test accuracy (%)`);
    printTable(rows);
  }
  console.log('\napply cost, fashion-cnn gradient, in process');
  printTable(applyCost());
}

await main();
