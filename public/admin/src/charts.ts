/**
 * The console's time-series charts, drawn by uPlot: one chart per measure, all on the run's
 * time axis (seconds since the recorder started, with the PS, whose evaluations before the
 * console was first opened are backfilled: server/admin/recorder.ts), with every failure and recovery
 * event drawn as a vertical marker by a small uPlot plugin.
 */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { RunEvent, Sample } from '../../../shared/admin-api.ts';

const FAILURE = new Set(['kill', 'node-down', 'expire', 'drop-shard']);
const RECOVERY = new Set(['restart', 'node-up', 'recovered', 'epoch']);

export interface ChartSpec {
  readonly id: string;
  readonly title: string;
  readonly value: (s: Sample) => number | null;
  readonly color: string;
}

export const CHARTS: readonly ChartSpec[] = [
  { id: 'accuracy', title: 'test accuracy', value: (s) => s.accuracy, color: '#1f77b4' },
  { id: 'loss', title: 'test loss', value: (s) => s.loss, color: '#ff7f0e' },
  { id: 'updates', title: 'updates/s', value: (s) => s.updatesPerSec, color: '#2ca02c' },
  { id: 'buffered', title: 'buffered gradients (all workers)', value: (s) => s.buffered, color: '#9467bd' },
];

function markers(events: () => readonly RunEvent[]): uPlot.Plugin {
  return {
    hooks: {
      draw: [(u: uPlot) => {
        const { ctx, bbox } = u;
        ctx.save();
        for (const e of events()) {
          if (!FAILURE.has(e.kind) && !RECOVERY.has(e.kind)) continue;
          const x = Math.round(u.valToPos(e.t, 'x', true));
          if (x < bbox.left || x > bbox.left + bbox.width) continue;
          ctx.strokeStyle = FAILURE.has(e.kind) ? '#d62728' : '#2ca02c';
          ctx.lineWidth = 2 * devicePixelRatio;
          ctx.setLineDash(FAILURE.has(e.kind) ? [] : [6, 4]);
          ctx.beginPath();
          ctx.moveTo(x, bbox.top);
          ctx.lineTo(x, bbox.top + bbox.height);
          ctx.stroke();
        }
        ctx.restore();
      }],
    },
  };
}

export class Charts {
  private readonly plots: uPlot[] = [];

  constructor(root: HTMLElement, private readonly samples: () => readonly Sample[], events: () => readonly RunEvent[]) {
    for (const spec of CHARTS) {
      const box = document.createElement('div');
      box.className = 'chart';
      box.dataset.chart = spec.id;
      root.appendChild(box);
      this.plots.push(new uPlot({
        title: spec.title,
        width: 560,
        height: 220,
        scales: { x: { time: false } },
        axes: [{ label: 'time (s)' }, {}],
        series: [{ label: 't (s)' }, { label: spec.title, stroke: spec.color, width: 2, spanGaps: false }],
        plugins: [markers(events)],
      }, [[], []], box));
    }
  }

  update(): void {
    const rows = this.samples();
    const t = rows.map((s) => s.t);
    CHARTS.forEach((spec, i) => this.plots[i]!.setData([t, rows.map((s) => spec.value(s))] as uPlot.AlignedData));
  }
}
