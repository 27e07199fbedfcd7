/**
 * The experiment's figures, as SVG rendered by Vega-Lite (compiled to Vega and rendered headless
 * in Node: no canvas, no browser). Every time chart marks the schedule's kills (solid red) and
 * restarts (dashed green); runs without failures, when present, are drawn dashed.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as vega from 'vega';
import * as vl from 'vega-lite';
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
          color: { field: 'strategy', type: 'nominal', title: 'strategy' },
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
  const acc = (title: string, xMax: number, name: string) => {
    files.push(name);
    return render(layered(title, timeRows(runs, (s) => s.accuracy, xMax), events(xMax), 'test accuracy', xMax, [0, 1]), join(dir, name));
  };
  const kills = [...schedule.kills].sort((a, b) => a - b);
  if (kills.length >= 1) {
    const oneKillEnd = kills.length >= 2 ? kills[1]! : duration;
    await acc(`Test accuracy after one kill (kill at ${kills[0]} s, ${schedule.downtime} s down)`, oneKillEnd, 'accuracy-one-kill.svg');
  }
  await acc(kills.length >= 2 ? `Test accuracy through ${kills.length} kills (at ${kills.join(' s, ')} s; ${schedule.downtime} s down each)` : 'Test accuracy over the whole run', duration, kills.length >= 2 ? 'accuracy-two-kills.svg' : 'accuracy.svg');

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
