/**
 * The markdown summary of an experiment: one row per strategy, each cell the mean (± the sample
 * standard deviation when there are repeats) over the runs with failures; time to target is
 * set next to the same strategy's run without failures.
 */
import { analyseRun, spread, type RunMetrics } from './analysis.ts';
import { CAO_2024, isPaperSchedule, paperPoints } from './paper.ts';
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
  const compact = besideThePaper(metrics, runs, kills, schedule.downtime);
  const efficiency = outageEfficiency(metrics, runs, kills);
  const lines = [
    `# ${input.title}`,
    '',
    ...input.setup.map((l) => `- ${l}`),
    `- schedule: ${kills.length ? `SIGKILL of the PS (the chain's head) at ${kills.join(' s and ')} s, restarted ${schedule.downtime} s after each kill` : 'no kills'}; ${schedule.duration} s from the first applied update`,
    '',
    ...compact,
    rows.join('\n'),
    '',
    'Columns: accuracy is on the test set the PS evaluates; "before" is the last evaluation before the kill, "after recovery" the first evaluation once updates are applied again after the restart. Failover is from the kill to the first update applied again (it includes the downtime). Updates lost is the model version before the kill minus the version the system resumed from. A flush of gradients buffered during an outage is one applied update. CPU is in % of one core (PS down = between a kill and its restart). Cells are mean ± sample standard deviation over repeats.',
    '',
    ...efficiency,
    ...(input.figures.length ? ['Figures:', '', ...input.figures.map((f) => `![${f}](${f})`), ''] : []),
    ...(input.failures.length ? ['Runs that failed (not in the table):', '', ...input.failures.map((f) => `- ${f}`), ''] : []),
  ];
  return { markdown: lines.join('\n'), metrics };
}

/**
 * The compact table: accuracy before and after each kill and at the end, mean ± sd over
 * repeats, beside what Cao et al. 2024 report for the same strategy. Only for the paper's
 * schedule (kills at 30 s and 80 s, 20 s down): another schedule has nothing to compare with.
 */
function besideThePaper(metrics: readonly RunMetrics[], runs: readonly RunRecord[], kills: readonly number[], downtime: number): string[] {
  if (!isPaperSchedule(kills, downtime)) return [];
  const head = ['strategy', 'repeats', 'kill 1: before → after', `${CAO_2024.citation}, one kill`, `${CAO_2024.citation}, two kills`, 'kill 2: before → after', `${CAO_2024.citation}, two kills`, 'final acc'];
  const out = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  const paper = (table: typeof CAO_2024.oneKill, strategy: string, kill: number): string => {
    const p = paperPoints(table, strategy).find((x) => x.kill === kill);
    return p ? `${p.before.toFixed(3)} → ${p.after.toFixed(3)}` : '-';
  };
  for (const strategy of [...new Set(runs.map((r) => r.strategy))]) {
    const failed = metrics.filter((m) => m.strategy === strategy && !m.baseline);
    if (!failed.length) continue;
    const label = runs.find((r) => r.strategy === strategy)!.label;
    const kill = (i: number) => `${fmt(spread(failed.map((m) => m.kills[i]?.accBefore)), 3)} → ${fmt(spread(failed.map((m) => m.kills[i]?.accAfter)), 3)}`;
    out.push(`| ${[label, String(failed.length), kill(0), paper(CAO_2024.oneKill, strategy, 0), paper(CAO_2024.twoKills, strategy, 0), kill(1), paper(CAO_2024.twoKills, strategy, 1), fmt(spread(failed.map((m) => m.accFinal)), 3)].join(' | ')} |`);
  }
  return [
    `Beside the paper (${CAO_2024.citation}; its runs all end near ${CAO_2024.finalRange[0].toFixed(2)}-${CAO_2024.finalRange[1].toFixed(2)}; "-": the paper gives no number for it). Mean ± sample sd over repeats:`,
    '',
    ...out,
    '',
    'All measurements:',
    '',
  ];
}

/**
 * Outage efficiency per strategy and kill (analysis.ts, KillOutcome.outageEfficiency): how much
 * of the work the tabs did while the PS was down turned into progress, against a connected step.
 */
function outageEfficiency(metrics: readonly RunMetrics[], runs: readonly RunRecord[], kills: readonly number[]): string[] {
  if (!kills.length) return [];
  const head = ['strategy'];
  kills.forEach((k, i) => head.push(`kill ${i + 1} (${k} s): worker steps across the outage`, `accuracy gained`, `outage efficiency`));
  const out = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  for (const strategy of [...new Set(runs.map((r) => r.strategy))]) {
    const failed = metrics.filter((m) => m.strategy === strategy && !m.baseline);
    if (!failed.length) continue;
    const cells = [runs.find((r) => r.strategy === strategy)!.label];
    kills.forEach((_, i) => {
      const k = failed.map((m) => m.kills[i]);
      const gain = k.map((x) => (x && x.accBefore !== null && x.accAfter !== null ? x.accAfter - x.accBefore : null));
      cells.push(fmt(spread(k.map((x) => x?.outageSteps)), 0), fmt(spread(gain), 3), fmt(spread(k.map((x) => x?.outageEfficiency)), 2));
    });
    out.push(`| ${cells.join(' | ')} |`);
  }
  return [
    'Outage efficiency: accuracy gained per worker step across the outage (from the last evaluation before the kill to the first after updates are applied again), divided by accuracy gained per worker step while connected just before the kill (over as much wall time as the outage took, not before the previous recovery). 1 means a step taken through the outage was worth a connected one, 0 that it bought nothing, below 0 that the recovery lost ground; "-" where a rate cannot be measured (no evaluation, or no gain while connected). Mean ± sample sd over repeats:',
    '',
    ...out,
    '',
  ];
}
