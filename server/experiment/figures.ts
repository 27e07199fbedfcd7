/**
 * The experiment's figures, as SVG rendered by Vega-Lite (compiled to Vega and rendered headless
 * in Node: no canvas, no browser). Every time chart marks the schedule's kills (red) and
 * restarts (green); runs without failures, when present, are drawn dashed.
 *
 * Accuracy is drawn as small multiples: one panel per strategy, its runs with failures against
 * its runs without, each the mean over repeats with a band of ± one sample standard deviation,
 * and the paper's reported before/after points where the paper has them (paper.ts).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as vega from 'vega';
import * as vl from 'vega-lite';
import { CAO_2024, isPaperSchedule, paperPoints, type PaperPoint } from './paper.ts';
import type { RunRecord, Schedule } from './run.ts';

type Row = Record<string, string | number | null>;
type Spec = Record<string, unknown>;

const WIDTH = 640;

function timeRows(runs: readonly RunRecord[], value: (s: RunRecord['samples'][number]) => number | null | undefined, xMax: number): Row[] {
  return runs.flatMap((r) => r.samples.filter((s) => s.t <= xMax).map((s) => {
    const v = value(s);
    return { t: s.t, value: v === undefined || v === null || !Number.isFinite(v) ? null : v, strategy: r.label, run: `${r.label} #${r.repeat}${r.baseline ? ' (no failure)' : ''}`, failure: r.baseline ? 'no failure' : 'with failures' };
  }));
}

function eventRows(schedule: Schedule, xMax: number): Row[] {
  return schedule.kills.flatMap((k) => [{ t: k, what: 'kill' }, { t: k + schedule.downtime, what: 'restart' }]).filter((e) => e.t <= xMax);
}

function layered(title: string, rows: Row[], events: Row[], yTitle: string, xMax: number, yDomain?: [number, number]): Spec {
  return {
    title,
    width: WIDTH,
    height: 260,
    layer: [
      {
        data: { values: rows },
        // Null (not measured: no node up) breaks the line instead of joining across the outage.
        mark: { type: 'line', interpolate: 'linear', strokeWidth: 1.8, invalid: 'break-paths-show-domains' },
        encoding: {
          x: { field: 't', type: 'quantitative', title: 'time since the first update (s)', scale: { domain: [0, xMax] } },
          y: { field: 'value', type: 'quantitative', title: yTitle, ...(yDomain ? { scale: { domain: yDomain } } : {}) },
          color: { field: 'strategy', type: 'nominal', title: 'strategy', legend: { labelLimit: 0 } },
          detail: { field: 'run', type: 'nominal' },
          strokeDash: { field: 'failure', type: 'nominal', title: 'run', scale: { domain: ['with failures', 'no failure'], range: [[1, 0], [5, 4]] } },
        },
      },
      {
        data: { values: events },
        mark: { type: 'rule', strokeWidth: 1.5 },
        encoding: {
          x: { field: 't', type: 'quantitative' },
          stroke: { field: 'what', type: 'nominal', title: 'event', scale: { domain: ['kill', 'restart'], range: ['#d62728', '#2ca02c'] } },
          strokeDash: { value: [4, 3] },
        },
      },
    ],
    resolve: { scale: { color: 'independent', stroke: 'independent', strokeDash: 'independent' } },
  };
}

/** Evaluations come every 2 s: repeats are aligned on 2-s bins before the mean and sd. */
const BIN_S = 2;

/** Mean and sample sd per (strategy, failure, bin) over repeats; null where no repeat measured. */
function bandRows(runs: readonly RunRecord[], xMax: number): Row[] {
  const groups = new Map<string, { panel: string; failure: string; bins: Map<number, (number | null)[]> }>();
  for (const r of runs) {
    const failure = r.baseline ? 'no failure' : 'with failures';
    const key = `${r.label}\u0000${failure}`;
    const g = groups.get(key) ?? { panel: r.label, failure, bins: new Map() };
    groups.set(key, g);
    const perRun = new Map<number, number[]>();
    const seen = new Set<number>();
    for (const s of r.samples) {
      if (s.t > xMax) continue;
      const bin = Math.round(s.t / BIN_S) * BIN_S;
      seen.add(bin);
      if (s.accuracy !== null && s.accuracy !== undefined && Number.isFinite(s.accuracy)) perRun.set(bin, [...(perRun.get(bin) ?? []), s.accuracy]);
    }
    for (const bin of seen) {
      const xs = perRun.get(bin);
      g.bins.set(bin, [...(g.bins.get(bin) ?? []), xs ? xs.reduce((a, b) => a + b, 0) / xs.length : null]);
    }
  }
  const rows: Row[] = [];
  for (const g of groups.values()) {
    for (const [t, vals] of [...g.bins].sort((a, b) => a[0] - b[0])) {
      const xs = vals.filter((v): v is number => v !== null);
      const mean = xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null;
      const sd = xs.length >= 2 && mean !== null ? Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (xs.length - 1)) : null;
      rows.push({ kind: 'series', panel: g.panel, failure: g.failure, t, mean, lo: sd === null || mean === null ? null : mean - sd, hi: sd === null || mean === null ? null : mean + sd, n: xs.length });
    }
  }
  return rows;
}

const PAPER_BEFORE = `${CAO_2024.citation}: before the kill`;
const PAPER_AFTER = `${CAO_2024.citation}: after the restart`;

/** One panel per strategy: accuracy with and without failures, the kills, the paper's points. */
function accuracyPanels(title: string, runs: readonly RunRecord[], schedule: Schedule, xMax: number, paper: Readonly<Record<string, readonly PaperPoint[]>>): Spec {
  const panels = [...new Map(runs.map((r) => [r.label, r.strategy])).entries()];
  const kills = [...schedule.kills].sort((a, b) => a - b);
  const rows: Row[] = [...bandRows(runs, xMax)];
  for (const [panel, strategy] of panels) {
    for (const e of eventRows(schedule, xMax)) rows.push({ kind: 'event', panel, ...e });
    for (const p of paperPoints(paper, strategy)) {
      const at = kills[p.kill];
      if (at === undefined) continue;
      if (at <= xMax) rows.push({ kind: 'paper', panel, t: at, value: p.before, what: PAPER_BEFORE });
      if (at + schedule.downtime <= xMax) rows.push({ kind: 'paper', panel, t: at + schedule.downtime, value: p.after, what: PAPER_AFTER });
    }
  }
  const x = { field: 't', type: 'quantitative', title: 'time since the first update (s)', scale: { domain: [0, xMax] } };
  const y = { type: 'quantitative', title: 'test accuracy', scale: { domain: [0, 1] } };
  const failure = { field: 'failure', type: 'nominal', title: 'run (mean over repeats, band ± 1 sd)', scale: { domain: ['with failures', 'no failure'], range: ['#1f77b4', '#8c8c8c'] }, legend: { labelLimit: 0, titleLimit: 0 } };
  return {
    title,
    data: { values: rows },
    columns: 2,
    facet: { field: 'panel', type: 'nominal', title: null, sort: panels.map(([p]) => p), header: { labelLimit: 0, labelFontSize: 12, labelFontWeight: 'bold' } },
    spec: {
      width: 320,
      height: 150,
      layer: [
        { transform: [{ filter: "datum.kind === 'series' && isValid(datum.lo)" }], mark: { type: 'area', opacity: 0.2 }, encoding: { x, y: { ...y, field: 'lo' }, y2: { field: 'hi' }, color: failure } },
        {
          transform: [{ filter: "datum.kind === 'series'" }],
          // Null (no node up, nothing evaluated) breaks the line instead of joining across the outage.
          mark: { type: 'line', strokeWidth: 1.6, invalid: 'break-paths-show-domains' },
          encoding: { x, y: { ...y, field: 'mean' }, color: failure, strokeDash: { field: 'failure', type: 'nominal', legend: null, scale: { domain: ['with failures', 'no failure'], range: [[1, 0], [5, 4]] } } },
        },
        {
          transform: [{ filter: "datum.kind === 'event'" }],
          mark: { type: 'rule', strokeWidth: 1.2, strokeDash: [4, 3] },
          encoding: { x, stroke: { field: 'what', type: 'nominal', title: 'event', scale: { domain: ['kill', 'restart'], range: ['#d62728', '#2ca02c'] } } },
        },
        {
          transform: [{ filter: "datum.kind === 'paper'" }],
          mark: { type: 'point', filled: true, size: 70, color: '#000000' },
          encoding: { x, y: { ...y, field: 'value' }, shape: { field: 'what', type: 'nominal', title: 'reported', scale: { domain: [PAPER_BEFORE, PAPER_AFTER], range: ['triangle-down', 'triangle-up'] }, legend: { labelLimit: 0 } } },
        },
      ],
    },
  };
}

async function render(spec: Spec, file: string): Promise<void> {
  const compiled = vl.compile({ $schema: 'https://vega.github.io/schema/vega-lite/v6.json', background: 'white', padding: 8, ...spec } as vl.TopLevelSpec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  writeFileSync(file, await view.toSVG());
  view.finalize();
}

/** Writes the figures into `dir`; returns their file names. */
export async function renderFigures(runs: readonly RunRecord[], schedule: Schedule, dir: string): Promise<string[]> {
  const files: string[] = [];
  const duration = schedule.duration;
  const events = (xMax: number) => eventRows(schedule, xMax);
  const acc = (title: string, xMax: number, name: string, paper: Readonly<Record<string, readonly PaperPoint[]>>) => {
    files.push(name);
    return render(accuracyPanels(title, runs, schedule, xMax, paper), join(dir, name));
  };
  const kills = [...schedule.kills].sort((a, b) => a - b);
  // The paper's points belong to its schedule (kills at 30 s and 80 s); another schedule gets none.
  const reference = isPaperSchedule(kills, schedule.downtime);
  if (kills.length >= 1) {
    const oneKillEnd = kills.length >= 2 ? kills[1]! : duration;
    await acc(`Test accuracy after one kill (kill at ${kills[0]} s, ${schedule.downtime} s down)`, oneKillEnd, 'accuracy-one-kill.svg', reference ? CAO_2024.oneKill : {});
  }
  await acc(kills.length >= 2 ? `Test accuracy through ${kills.length} kills (at ${kills.join(' s, ')} s; ${schedule.downtime} s down each)` : 'Test accuracy over the whole run', duration, kills.length >= 2 ? 'accuracy-two-kills.svg' : 'accuracy.svg', reference ? CAO_2024.twoKills : {});

  const pair = async (name: string, title: string, parts: [string, (s: RunRecord['samples'][number]) => number | null | undefined, string][]) => {
    files.push(name);
    await render({ title, vconcat: parts.map(([t, f, y]) => layered(t, timeRows(runs, f, duration), events(duration), y, duration)) }, join(dir, name));
  };
  await pair('cpu.svg', 'CPU', [
    ['PS node processes', (s) => s.extra?.serverCpu, 'CPU (% of one core)'],
    ['worker browsers (all tabs)', (s) => s.extra?.workerCpu, 'CPU (% of one core)'],
  ]);
  await pair('memory.svg', 'Resident memory', [
    ['PS node processes', (s) => s.extra?.serverRssMB, 'RSS (MB)'],
    ['worker browsers (all tabs)', (s) => s.extra?.workerRssMB, 'RSS (MB)'],
  ]);
  await pair('gradients.svg', 'Gradients processed', [
    ['gradients computed by the workers (cumulative)', (s) => s.extra?.gradientsComputed, 'gradients'],
    ['updates applied by the PS (cumulative; a flush of buffered gradients is one update)', (s) => s.updatesApplied, 'updates'],
    ['gradients buffered in the tabs (as the swarm reads them, also while the PS is down)', (s) => s.extra?.tabsBuffered, 'gradients'],
  ]);
  await pair('loss-updates.svg', 'Test loss and updates/s', [
    ['test loss', (s) => s.loss, 'loss'],
    ['updates applied per second', (s) => s.updatesPerSec, 'updates/s'],
  ]);
  return files;
}
