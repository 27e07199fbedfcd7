/**
 * The markdown summary of an experiment: one row per strategy, each cell the mean (± the sample
 * standard deviation when there are repeats) over the runs with failures; time to target is
 * set next to the same strategy's run without failures.
 */
import { analyseRun, spread, type RunMetrics } from './analysis.ts';
import type { RunRecord, Schedule } from './run.ts';

const fmt = (x: { mean: number | null; sd: number | null }, digits: number): string =>
  x.mean === null ? '-' : x.sd === null ? x.mean.toFixed(digits) : `${x.mean.toFixed(digits)} ± ${x.sd.toFixed(digits)}`;

export interface ReportInput {
  runs: readonly RunRecord[];
  schedule: Schedule;
  target: number;
  title: string;
  /** Lines about the setup (model, data, workers, machine). */
  setup: readonly string[];
  failures: readonly string[];
  figures: readonly string[];
}

export function buildReport(input: ReportInput): { markdown: string; metrics: RunMetrics[] } {
  const { runs, schedule, target } = input;
  const metrics = runs.map((r) => analyseRun(r, target));
  const strategies = [...new Set(runs.map((r) => r.strategy))];
  const kills = [...schedule.kills].sort((a, b) => a - b);
  const head = ['strategy', 'runs'];
  kills.forEach((k, i) => head.push(`acc before kill ${i + 1} (${k} s)`, `acc after recovery ${i + 1}`, `failover ${i + 1} (s)`, `updates lost ${i + 1}`));
  head.push('final acc', `time to ${target} (s)`, `same, no failure (s)`, 'gradients computed', 'updates applied', 'PS CPU % down / up', 'PS RSS peak (MB)', 'workers RSS peak (MB)');
  const rows = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  for (const name of strategies) {
    const failed = metrics.filter((m) => m.strategy === name && !m.baseline);
    const base = metrics.filter((m) => m.strategy === name && m.baseline);
    const label = runs.find((r) => r.strategy === name)!.label;
    const cells = [label, `${failed.length}${base.length ? ` + ${base.length} without failure` : ''}`];
    kills.forEach((_, i) => {
      const k = failed.map((m) => m.kills[i]);
      cells.push(fmt(spread(k.map((x) => x?.accBefore)), 3), fmt(spread(k.map((x) => x?.accAfter)), 3), fmt(spread(k.map((x) => x?.failoverSec)), 1), fmt(spread(k.map((x) => x?.updatesLost)), 0));
    });
    const tt = spread(failed.map((m) => m.timeToTarget));
    const never = failed.filter((m) => m.timeToTarget === null).length;
    cells.push(
      fmt(spread(failed.map((m) => m.accFinal)), 3),
      `${fmt(tt, 1)}${never ? ` (${never} never)` : ''}`,
      base.length ? fmt(spread(base.map((m) => m.timeToTarget)), 1) : '-',
      fmt(spread(failed.map((m) => m.gradientsComputed)), 0),
      fmt(spread(failed.map((m) => m.updatesApplied)), 0),
      `${fmt(spread(failed.map((m) => m.serverCpuMeanDown)), 0)} / ${fmt(spread(failed.map((m) => m.serverCpuMeanUp)), 0)}`,
      fmt(spread(failed.map((m) => m.serverRssPeakMB)), 0),
      fmt(spread(failed.map((m) => m.workerRssPeakMB)), 0),
    );
    rows.push(`| ${cells.join(' | ')} |`);
  }
  const lines = [
    `# ${input.title}`,
    '',
    ...input.setup.map((l) => `- ${l}`),
    `- schedule: ${kills.length ? `SIGKILL of the PS (the chain's head) at ${kills.join(' s and ')} s, restarted ${schedule.downtime} s after each kill` : 'no kills'}; ${schedule.duration} s from the first applied update`,
    '',
    rows.join('\n'),
    '',
    'Columns: accuracy is on the test set the PS evaluates; "before" is the last evaluation before the kill, "after recovery" the first evaluation once updates are applied again after the restart. Failover is from the kill to the first update applied again (it includes the downtime). Updates lost is the model version before the kill minus the version the system resumed from. A flush of gradients buffered during an outage is one applied update. CPU is in % of one core (PS down = between a kill and its restart). Cells are mean ± sample standard deviation over repeats.',
    '',
    ...(input.figures.length ? ['Figures:', '', ...input.figures.map((f) => `![${f}](${f})`), ''] : []),
    ...(input.failures.length ? ['Runs that failed (not in the table):', '', ...input.failures.map((f) => `- ${f}`), ''] : []),
  ];
  return { markdown: lines.join('\n'), metrics };
}
