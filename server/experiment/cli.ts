/**
 * `tabswarm experiment`: for each strategy and repeat, a fresh system, a swarm, the failure
 * schedule, and the recorder; then CSV per run, SVG figures and a markdown summary in --out.
 * Runs already in --out (runs/<strategy>/r<k>/run.json) are kept, not run again, so an
 * interrupted experiment resumes where it stopped. Ctrl-C tears every process down.
 * Options: EXPERIMENT_OPTIONS in server/options/tools.ts (`tabswarm experiment --help`) and
 * docs/experiments.md.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { TabswarmError } from '../../shared/errors.ts';
import { samplesToCSV } from '../admin/recorder.ts';
import { teardownAll } from './children.ts';
import { renderFigures } from './figures.ts';
import { parseOptions } from '../options/schema.ts';
import { EXPERIMENT_OPTIONS } from '../options/tools.ts';
import { Progress } from './progress.ts';
import { buildReport } from './report.ts';
import { spread } from './analysis.ts';
import { runOnce, type RunRecord, type RunSetup, type Schedule } from './run.ts';
import { EXPERIMENT_STRATEGIES, getExperimentStrategy, REFERENCE_STRATEGIES } from './strategies.ts';

export async function experimentCommand(argv: string[]): Promise<void> {
  const a = parseOptions(EXPERIMENT_OPTIONS, argv);
  const bad = (option: string, detail: string) => new TabswarmError('CONFIG_INVALID', { option, detail });
  const names = a.strategies.includes('all') ? [...REFERENCE_STRATEGIES] : a.strategies;
  const strategies = names.map((n) => getExperimentStrategy(n) ?? (() => { throw bad('--strategies', `unknown strategy '${n}'; known: ${EXPERIMENT_STRATEGIES.map((s) => s.name).join(', ')}`); })());
  const schedule: Schedule = { kills: a.kills, downtime: a.downtime, duration: a.duration };
  if (schedule.kills.some((k) => k + schedule.downtime >= schedule.duration)) throw bad('--kills', 'every kill plus the downtime must end before --duration');
  const setup: RunSetup = {
    model: a.model, dataset: a.dataset,
    ...(a.lr !== undefined ? { lr: a.lr } : {}), ...(a.batch !== undefined ? { batch: a.batch } : {}),
    workers: a.workers, browsers: a.browsers, backend: a.backend,
    evalEveryMs: a.evalEvery, evalExamples: a.evalExamples, sampleMs: a.sampleMs,
    nodeArgs: a.nodeArgs.split(/\s+/).filter(Boolean),
  };
  const repeats = a.repeat;
  const target = a.target;
  const out = a.out ?? join('experiments', new Date().toISOString().replace(/[:.]/g, '-'));
  mkdirSync(out, { recursive: true });

  const plan: { strategy: (typeof strategies)[number]; repeat: number; baseline: boolean; dir: string }[] = [];
  for (const strategy of strategies) {
    for (let r = 1; r <= repeats; r++) plan.push({ strategy, repeat: r, baseline: false, dir: join(out, 'runs', strategy.name, `r${r}`) });
    if (a.baseline === 'yes' && schedule.kills.length) plan.push({ strategy, repeat: 1, baseline: true, dir: join(out, 'runs', strategy.name, 'no-failure') });
  }

  const abort = new AbortController();
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
    abort.abort();
    process.stderr.write('\ntabswarm experiment: interrupted; stopping every process (finished runs are kept in the output folder)\n');
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const runs: RunRecord[] = [];
  const failures: string[] = [];
  const progress = new Progress(plan.length, schedule.duration);
  try {
    for (const [i, step] of plan.entries()) {
      const file = join(step.dir, 'run.json');
      const what = `${step.strategy.name}${step.baseline ? ' (no failure)' : ` r${step.repeat}/${repeats}`}`;
      if (existsSync(file)) {
        runs.push(JSON.parse(readFileSync(file, 'utf8')) as RunRecord);
        progress.note(`${what}: kept from an earlier run (${file})`);
        continue;
      }
      if (a.reportOnly || interrupted) continue;
      try {
        const record = await runOnce(step.strategy, step.repeat, step.baseline, schedule, setup, step.dir, {
          signal: abort.signal,
          onTick: (t, s) => progress.update(i, what, t, s),
        });
        runs.push(record);
        progress.note(`${what}: done, final accuracy ${record.samples.filter((s) => s.accuracy !== null).at(-1)?.accuracy?.toFixed(3) ?? '-'}`);
      } catch (err) {
        await teardownAll();
        if (interrupted) break;
        const msg = `${what}: ${(err as Error).message.split('\n')[0]!.slice(0, 400)}`;
        failures.push(msg);
        progress.note(`FAILED ${msg}`);
      }
    }
  } finally {
    progress.done();
    await teardownAll();
  }

  if (!runs.length && interrupted) process.exit(130);
  if (!runs.length) throw new TabswarmError('CONFIG_INVALID', { option: '--out', detail: `no run finished; see ${out}/runs/*/*/logs` });
  const figures = await renderFigures(runs, schedule, out);
  for (const r of runs) writeFileSync(join(out, `${r.strategy}-${r.baseline ? 'no-failure' : `r${r.repeat}`}.csv`), samplesToCSV(r.samples, r.events));
  const cpus = os.cpus();
  const { markdown, metrics } = buildReport({
    runs, schedule, target, figures, failures,
    title: `tabswarm experiment: ${setup.model} on ${setup.dataset}`,
    setup: [
      `model ${setup.model} on ${setup.dataset}; lr ${setup.lr ?? "the model's default"}, batch ${setup.batch ?? "the model's default"}; ${setup.workers} ${setup.backend} worker tab(s) in ${setup.browsers} headless Chromium process(es)`,
      `strategies: ${strategies.map((s) => s.label).join(', ')}; ${repeats} repeat(s)${a.baseline === 'yes' ? ', plus one run without failures per strategy' : ''}`,
      `evaluation every ${setup.evalEveryMs} ms on ${setup.evalExamples} test examples; extra node options: ${setup.nodeArgs.join(' ') || 'none'}`,
      // When the runs ran, not when this report was written (--report-only rewrites it later).
      `machine: ${cpus.length} x ${cpus[0]?.model ?? '?'}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, node ${process.version}; runs from ${runSpan(runs)}`,
      `throughput on it: ${updateRate(runs.filter((r) => r.baseline))} updates/s applied in the runs without failures, ${updateRate(runs.filter((r) => !r.baseline))} in the runs with failures (mean over runs, updates applied over the run's length)`,
      `command: tabswarm experiment ${argv.join(' ')}`,
    ],
  });
  writeFileSync(join(out, 'summary.md'), markdown);
  writeFileSync(join(out, 'metrics.json'), JSON.stringify({ schedule, setup, target, metrics, failures }, null, 1));
  console.log(markdown);
  console.log(`\ntabswarm experiment: results in ${out} (summary.md, ${figures.join(', ')}, one CSV per run)`);
  if (interrupted) process.exit(130);
}

function updateRate(runs: readonly RunRecord[]): string {
  const { mean } = spread(runs.map((r) => r.samples.at(-1)).map((x) => (x && x.t > 0 ? x.updatesApplied / x.t : null)));
  return mean === null ? '-' : mean.toFixed(2);
}

function runSpan(runs: readonly RunRecord[]): string {
  const at = runs.map((r) => r.startedAt).filter(Number.isFinite).sort((a, b) => a - b);
  return at.length ? `${new Date(at[0]!).toISOString()} to ${new Date(at.at(-1)!).toISOString()}` : 'unknown';
}
