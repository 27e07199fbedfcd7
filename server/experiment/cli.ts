/**
 * `tabswarm experiment`: for each strategy and repeat, a fresh system, a swarm, the failure
 * schedule, and the recorder; then CSV per run, SVG figures and a markdown summary in --out.
 * Runs already in --out (runs/<strategy>/r<k>/run.json) are kept, not run again, so an
 * interrupted experiment resumes where it stopped. Ctrl-C tears every process down.
 * Options: EXPERIMENT_HELP below and docs/experiments.md.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { TabswarmError } from '../../shared/errors.ts';
import { samplesToCSV } from '../admin/recorder.ts';
import { teardownAll } from './children.ts';
import { renderFigures } from './figures.ts';
import { Progress } from './progress.ts';
import { buildReport } from './report.ts';
import { runOnce, type RunRecord, type RunSetup, type Schedule } from './run.ts';
import { EXPERIMENT_STRATEGIES, getExperimentStrategy, REFERENCE_STRATEGIES } from './strategies.ts';

export const EXPERIMENT_HELP = `tabswarm experiment [options]
  --strategies S,...  ${EXPERIMENT_STRATEGIES.map((s) => s.name).join(', ')} | all (default all: ${REFERENCE_STRATEGIES.join(', ')});
                      a strategy may carry node options: stateless+rule=sum+buffer-mode=local
  --kills T,...       SIGKILL the PS (the chain's head) at these seconds after the first update (default 30,80; 'none' for no kills)
  --downtime S        restart S seconds after each kill (default 20)
  --duration S        seconds of each run after the first update (default 200)
  --model M           (default fashion-cnn)      --dataset D   (default fashion-mnist)
  --lr X, --batch N   (default: the model's: 0.01 and 32 for fashion-cnn)
  --workers N         worker tabs (default 2)    --browsers M  browser processes (default 1)
  --backend B         the tabs' backend (default webgl)
  --repeat R          runs per strategy (default 1)
  --baseline yes|no   also run each strategy once without failures, for time-to-target (default yes)
  --target A          the accuracy for time-to-target (default 0.6)
  --eval-every MS     PS test evaluation period (default 2000)   --eval-examples N (default 10000)
  --sample-ms MS      recorder period (default 1000)
  --node-args "..."   extra options for every PS node, e.g. "--rule sum --buffer-mode local"
  --out DIR           results folder (default experiments/<date>)
  --report-only       re-render the figures and summary from the runs in --out
`;

export async function experimentCommand(argv: string[]): Promise<void> {
  const { values: a } = parseArgs({
    args: argv,
    strict: true,
    options: {
      strategies: { type: 'string', default: 'all' }, kills: { type: 'string', default: '30,80' }, downtime: { type: 'string', default: '20' },
      duration: { type: 'string', default: '200' }, model: { type: 'string', default: 'fashion-cnn' }, dataset: { type: 'string', default: 'fashion-mnist' },
      lr: { type: 'string' }, batch: { type: 'string' }, workers: { type: 'string', default: '2' }, browsers: { type: 'string', default: '1' },
      backend: { type: 'string', default: 'webgl' }, repeat: { type: 'string', default: '1' }, baseline: { type: 'string', default: 'yes' },
      target: { type: 'string', default: '0.6' }, 'eval-every': { type: 'string', default: '2000' }, 'eval-examples': { type: 'string', default: '10000' },
      'sample-ms': { type: 'string', default: '1000' }, 'node-args': { type: 'string', default: '' }, out: { type: 'string' },
      'report-only': { type: 'boolean', default: false }, help: { type: 'boolean', default: false },
    },
  });
  if (a.help) return void console.log(EXPERIMENT_HELP);
  const bad = (option: string, detail: string) => new TabswarmError('CONFIG_INVALID', { option, detail });
  const num = (option: string, v: string, min: number): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) throw bad(option, `must be a number >= ${min}, got '${v}'`);
    return n;
  };
  const names = a.strategies === 'all' ? [...REFERENCE_STRATEGIES] : a.strategies!.split(',').map((s) => s.trim()).filter(Boolean);
  const strategies = names.map((n) => getExperimentStrategy(n) ?? (() => { throw bad('--strategies', `unknown strategy '${n}'; known: ${EXPERIMENT_STRATEGIES.map((s) => s.name).join(', ')}`); })());
  const schedule: Schedule = {
    kills: a.kills === 'none' ? [] : a.kills!.split(',').map((k) => num('--kills', k, 0)),
    downtime: num('--downtime', a.downtime!, 0),
    duration: num('--duration', a.duration!, 1),
  };
  if (schedule.kills.some((k) => k + schedule.downtime >= schedule.duration)) throw bad('--kills', 'every kill plus the downtime must end before --duration');
  if (a.baseline !== 'yes' && a.baseline !== 'no') throw bad('--baseline', `must be yes or no, got '${a.baseline}'`);
  const setup: RunSetup = {
    model: a.model!, dataset: a.dataset!,
    ...(a.lr !== undefined ? { lr: num('--lr', a.lr, 0) } : {}), ...(a.batch !== undefined ? { batch: num('--batch', a.batch, 1) } : {}),
    workers: num('--workers', a.workers!, 1), browsers: num('--browsers', a.browsers!, 1), backend: a.backend!,
    evalEveryMs: num('--eval-every', a['eval-every']!, 100), evalExamples: num('--eval-examples', a['eval-examples']!, 1), sampleMs: num('--sample-ms', a['sample-ms']!, 100),
    nodeArgs: a['node-args']!.split(/\s+/).filter(Boolean),
  };
  const repeats = num('--repeat', a.repeat!, 1);
  const target = num('--target', a.target!, 0);
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
      if (a['report-only'] || interrupted) continue;
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
      `machine: ${cpus.length} x ${cpus[0]?.model ?? '?'}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, node ${process.version}; ${new Date().toISOString()}`,
      `command: tabswarm experiment ${argv.join(' ')}`,
    ],
  });
  writeFileSync(join(out, 'summary.md'), markdown);
  writeFileSync(join(out, 'metrics.json'), JSON.stringify({ schedule, setup, target, metrics, failures }, null, 1));
  console.log(markdown);
  console.log(`\ntabswarm experiment: results in ${out} (summary.md, ${figures.join(', ')}, one CSV per run)`);
  if (interrupted) process.exit(130);
}
